"""Majority arithmetic, checked exhaustively against brute-force definitions."""

from __future__ import annotations

import itertools

import pytest

from replication.core.quorum import VoteResult, committed_index, has_quorum, majority, vote_result

MAX_VOTERS = 7


def voter_sets() -> list[tuple[int, ...]]:
    # Ids are deliberately not 1..n so that nothing depends on dense ids.
    return [tuple(range(10, 10 + n * 3, 3)) for n in range(0, MAX_VOTERS + 1)]


@pytest.mark.parametrize("n", range(1, 200))
def test_majority_is_the_smallest_strict_majority(n: int) -> None:
    q = majority(n)
    assert 2 * q > n
    assert 2 * (q - 1) <= n


def test_any_two_majorities_intersect() -> None:
    for voters in voter_sets()[1:]:
        q = majority(len(voters))
        quorums = [set(c) for c in itertools.combinations(voters, q)]
        for a, b in itertools.combinations(quorums, 2):
            assert a & b, (voters, a, b)


@pytest.mark.parametrize("voters", voter_sets(), ids=lambda v: f"{len(v)}voters")
def test_committed_index_exhaustive(voters: tuple[int, ...]) -> None:
    # Every assignment of match indexes 0..3 to every voter (plus a non-voter that must not count).
    for matches in itertools.product(range(4), repeat=len(voters)):
        acked = dict(zip(voters, matches, strict=True))
        acked[999] = 3  # not a voter
        expected = 0
        for index in range(4):
            holders = sum(1 for v in voters if acked[v] >= index)
            if voters and holders >= majority(len(voters)):
                expected = index
        assert committed_index(voters, acked) == expected, acked


def test_committed_index_treats_missing_voters_as_zero() -> None:
    assert committed_index({1, 2, 3}, {1: 5}) == 0
    assert committed_index({1, 2, 3}, {1: 5, 2: 4}) == 4
    assert committed_index(set(), {1: 5}) == 0


@pytest.mark.parametrize("voters", voter_sets(), ids=lambda v: f"{len(v)}voters")
def test_vote_result_exhaustive(voters: tuple[int, ...]) -> None:
    for outcome in itertools.product((None, True, False), repeat=len(voters)):
        votes = {v: o for v, o in zip(voters, outcome, strict=True) if o is not None}
        votes[999] = True  # a non-voter's vote never counts
        granted = outcome.count(True)
        missing = outcome.count(None)
        if not voters:
            expected = VoteResult.LOST
        elif 2 * granted > len(voters):
            expected = VoteResult.WON
        elif 2 * (granted + missing) <= len(voters):
            expected = VoteResult.LOST
        else:
            expected = VoteResult.PENDING
        assert vote_result(voters, votes) is expected, (voters, votes)


@pytest.mark.parametrize("voters", voter_sets(), ids=lambda v: f"{len(v)}voters")
def test_has_quorum_exhaustive(voters: tuple[int, ...]) -> None:
    for size in range(len(voters) + 1):
        for members in itertools.combinations(voters, size):
            expected = bool(voters) and 2 * size > len(voters)
            assert has_quorum(voters, {*members, 999}) is expected


def test_won_and_lost_are_final() -> None:
    """Once decided, no further vote changes an election's outcome."""
    voters = (1, 2, 3, 4, 5)
    for outcome in itertools.product((None, True, False), repeat=5):
        votes = {v: o for v, o in zip(voters, outcome, strict=True) if o is not None}
        first = vote_result(voters, votes)
        if first is VoteResult.PENDING:
            continue
        for v in voters:
            if v not in votes:
                for extra in (True, False):
                    assert vote_result(voters, {**votes, v: extra}) is first
