"""Majority arithmetic over a set of voters. Pure functions, tested exhaustively."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from enum import Enum


class VoteResult(Enum):
    PENDING = "pending"  # neither side has a majority yet
    WON = "won"
    LOST = "lost"


def majority(n: int) -> int:
    """Smallest number of voters that forms a quorum among ``n``."""
    return n // 2 + 1


def committed_index(voters: Collection[int], acked: Mapping[int, int]) -> int:
    """Highest index stored on a majority of ``voters`` (missing voters count as 0).

    An empty configuration commits nothing: the caller must never be in one while leading.
    """
    if not voters:
        return 0
    matches = sorted((acked.get(v, 0) for v in voters), reverse=True)
    # The q-th highest value is held by at least q voters.
    return matches[majority(len(voters)) - 1]


def vote_result(voters: Collection[int], votes: Mapping[int, bool]) -> VoteResult:
    """Outcome of an election (or a quorum check) given the votes received so far."""
    if not voters:
        # With nobody to ask nothing can be decided; a node outside every configuration never wins.
        return VoteResult.LOST
    granted = rejected = 0
    for v in voters:
        vote = votes.get(v)
        if vote is True:
            granted += 1
        elif vote is False:
            rejected += 1
    q = majority(len(voters))
    if granted >= q:
        return VoteResult.WON
    if len(voters) - rejected < q:
        return VoteResult.LOST
    return VoteResult.PENDING


def has_quorum(voters: Collection[int], members: Collection[int]) -> bool:
    """True if ``members`` contains a majority of ``voters``."""
    return sum(1 for v in voters if v in members) >= majority(len(voters)) if voters else False
