"""One test per claim of the Raft paper (§5.1-5.4), plus membership (§6), ReadIndex (§8) and the
dissertation's PreVote / CheckQuorum (§9.6). Each docstring restates the claim being checked."""

from __future__ import annotations

from typing import Any

import pytest

from replication.core import (
    ConfChange,
    ConfChangeType,
    Config,
    Entry,
    EntryKind,
    HardState,
    MemoryStorage,
    Message,
    MessageType,
    NotLeaderError,
    ProposalDroppedError,
    Raft,
    RawNode,
    ReadState,
    Role,
)
from tools.raftsim import Network

ELECTION = 10
HEARTBEAT = 1


class Solo:
    """One node on MemoryStorage, driven by hand; its peers exist only as message addresses."""

    def __init__(
        self,
        node_id: int = 1,
        peers: tuple[int, ...] = (1, 2, 3),
        *,
        log_terms: tuple[int, ...] = (),
        term: int = 0,
        vote: int = 0,
        commit: int = 0,
        **config: Any,
    ) -> None:
        self.storage = MemoryStorage(peers)
        self.storage.append([Entry(t, i + 1) for i, t in enumerate(log_terms)])
        self.storage.set_hard_state(HardState(term, vote, commit))
        config.setdefault("pre_vote", False)
        config.setdefault("check_quorum", False)
        config.setdefault("election_tick", ELECTION)
        config.setdefault("heartbeat_tick", HEARTBEAT)
        self.config = Config(node_id, **config)
        self.node = RawNode(self.config, self.storage)
        self.applied: list[Entry] = []
        self.read_states: list[ReadState] = []

    @property
    def raft(self) -> Raft:
        return self.node.raft

    def flush(self) -> list[Message]:
        """Persist, apply and advance every pending Ready; return the messages to send."""
        out: list[Message] = []
        while self.node.has_ready():
            rd = self.node.ready()
            if rd.snapshot is not None:
                self.storage.apply_snapshot(rd.snapshot)
            self.storage.append(rd.entries)
            if rd.hard_state is not None:
                self.storage.set_hard_state(rd.hard_state)
            for e in rd.committed_entries:
                if e.kind is EntryKind.CONF_CHANGE:
                    self.storage.set_voters(self.node.apply_conf_change(ConfChange.from_bytes(e.data)))
                self.applied.append(e)
            self.read_states.extend(rd.read_states)
            out.extend(rd.messages)
            self.node.advance(rd)
        return out

    def receive(self, msg_type: MessageType, src: int, **fields: Any) -> list[Message]:
        self.node.step(Message(msg_type, src, self.raft.id, **fields))
        return self.flush()

    def tick(self, times: int = 1) -> list[Message]:
        out: list[Message] = []
        for _ in range(times):
            self.node.tick()
            out.extend(self.flush())
        return out

    def make_leader(self) -> list[Message]:
        """Win an election with the votes of every peer; returns the leader's first messages."""
        self.node.campaign()
        self.flush()
        out: list[Message] = []
        for peer in sorted(self.raft.voters - {self.raft.id}):
            if self.raft.role is Role.LEADER:
                break
            out.extend(self.receive(MessageType.VOTE_RESP, peer, term=self.raft.term))
        assert self.raft.role is Role.LEADER
        return out


def of_type(msgs: list[Message], msg_type: MessageType) -> list[Message]:
    return [m for m in msgs if m.type is msg_type]


def make_candidate(solo: Solo) -> None:
    solo.node.campaign()
    solo.flush()
    assert solo.raft.role is Role.CANDIDATE


# -- §5.1 -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["follower", "candidate", "leader"])
def test_5_1_server_adopts_higher_term_and_becomes_follower(role: str) -> None:
    """If a server sees a term larger than its own it adopts it, and a candidate or leader that
    does so immediately reverts to follower."""
    s = Solo()
    if role == "candidate":
        make_candidate(s)
    elif role == "leader":
        s.make_leader()
    s.receive(MessageType.APPEND, 2, term=7, index=0, log_term=0)
    assert s.raft.term == 7
    assert s.raft.role is Role.FOLLOWER
    assert s.raft.leader == 2


@pytest.mark.parametrize("role", ["follower", "candidate", "leader"])
def test_5_1_higher_term_vote_request_makes_server_follower_without_leader(role: str) -> None:
    """A vote request from a newer term also updates the term; the server no longer knows a leader."""
    s = Solo()
    if role == "candidate":
        make_candidate(s)
    elif role == "leader":
        s.make_leader()
    s.receive(MessageType.VOTE, 3, term=9, index=100, log_term=100)
    assert (s.raft.term, s.raft.role, s.raft.leader) == (9, Role.FOLLOWER, None)
    assert s.raft.vote == 3


def test_5_1_stale_term_request_is_rejected() -> None:
    """A request carrying a stale term is rejected: it changes nothing on the receiver."""
    s = Solo(log_terms=(1,), term=3)
    out = s.receive(MessageType.APPEND, 2, term=2, index=1, log_term=1, entries=(Entry(2, 2),), commit=1)
    assert s.raft.term == 3
    assert s.raft.log.last_index() == 1
    assert s.raft.log.committed == 0
    assert out == []  # without PreVote/CheckQuorum the stale leader is simply ignored
    out = s.receive(MessageType.VOTE, 2, term=2, index=5, log_term=2)
    assert s.raft.vote == 0
    assert out == []


def test_5_1_stale_leader_is_told_the_newer_term() -> None:
    """With CheckQuorum, a stale leader's append is answered with the newer term so it steps down."""
    s = Solo(log_terms=(1,), term=3, check_quorum=True)
    out = s.receive(MessageType.HEARTBEAT, 2, term=2)
    assert [(m.type, m.dst, m.term) for m in out] == [(MessageType.APPEND_RESP, 2, 3)]


# -- §5.2 -----------------------------------------------------------------------------------------


def test_5_2_servers_start_as_followers() -> None:
    """When servers start up, they begin as followers."""
    s = Solo()
    assert s.raft.role is Role.FOLLOWER
    assert s.raft.leader is None


def test_5_2_leader_sends_periodic_heartbeats() -> None:
    """A leader sends heartbeats (empty AppendEntries) to all followers to maintain its authority."""
    s = Solo()
    s.make_leader()
    out = s.tick(HEARTBEAT)
    beats = of_type(out, MessageType.HEARTBEAT)
    assert sorted(m.dst for m in beats) == [2, 3]
    assert all(m.term == s.raft.term for m in beats)


def test_5_2_follower_starts_election_after_timeout() -> None:
    """A follower that hears nothing for an election timeout increments its term, votes for
    itself, becomes a candidate and asks every other server for its vote."""
    s = Solo(log_terms=(1, 1), term=1)
    out = s.tick(ELECTION - 1)
    assert s.raft.role is Role.FOLLOWER and out == []
    out = s.tick(ELECTION)
    assert s.raft.role is Role.CANDIDATE
    assert s.raft.term == 2
    assert s.raft.vote == 1
    votes = of_type(out, MessageType.VOTE)
    assert sorted(m.dst for m in votes) == [2, 3]
    assert all((m.term, m.index, m.log_term) == (2, 2, 1) for m in votes)


def test_5_2_candidate_starts_new_election_after_timeout() -> None:
    """A candidate that neither wins nor loses within an election timeout starts a new election
    with a higher term."""
    s = Solo()
    make_candidate(s)
    out = s.tick(2 * ELECTION)
    assert s.raft.role is Role.CANDIDATE
    assert s.raft.term == 2
    assert sorted(m.dst for m in of_type(out, MessageType.VOTE)) == [2, 3]


def test_5_2_election_timeouts_are_randomized() -> None:
    """Election timeouts are drawn at random from a fixed interval ([T, 2T) ticks here) so that
    split votes are rare."""
    seen = set()
    for seed in range(200):
        s = Solo(seed=seed)
        timeout = s.raft.randomized_election_timeout
        assert ELECTION <= timeout < 2 * ELECTION
        seen.add(timeout)
        ticks = 0
        while s.raft.role is Role.FOLLOWER:
            s.tick()
            ticks += 1
        assert ticks == timeout
    assert len(seen) == ELECTION  # every value of the interval shows up


def test_5_2_node_ids_change_the_draw_for_the_same_seed() -> None:
    """Nodes configured with the same seed still draw different timeouts (the id is mixed in)."""
    draws = {Solo(node_id=i, peers=tuple(range(1, 10)), seed=7).raft.rng.random() for i in range(1, 10)}
    assert len(draws) == 9


@pytest.mark.parametrize(
    ("size", "votes", "expected"),
    [
        (1, {}, Role.LEADER),
        (3, {2: True, 3: True}, Role.LEADER),
        (3, {2: True}, Role.LEADER),
        (5, {2: True, 3: True, 4: True, 5: True}, Role.LEADER),
        (5, {2: True, 3: True, 4: True}, Role.LEADER),
        (5, {2: True, 3: True}, Role.LEADER),
        (3, {2: False, 3: False}, Role.FOLLOWER),
        (5, {2: False, 3: False, 4: False, 5: False}, Role.FOLLOWER),
        (5, {2: True, 3: False, 4: False, 5: False}, Role.FOLLOWER),
        (3, {}, Role.CANDIDATE),
        (5, {2: True}, Role.CANDIDATE),
        (5, {2: False, 3: False}, Role.CANDIDATE),
        (5, {}, Role.CANDIDATE),
    ],
)
def test_5_2_candidate_wins_with_votes_from_a_majority(
    size: int, votes: dict[int, bool], expected: Role
) -> None:
    """A candidate wins once a majority of the servers granted their vote for the term; it returns
    to follower once a majority refused; otherwise it keeps waiting."""
    s = Solo(peers=tuple(range(1, size + 1)))
    s.node.campaign()
    s.flush()
    for peer, granted in votes.items():
        s.receive(MessageType.VOTE_RESP, peer, term=1, reject=not granted)
    assert s.raft.role is expected
    assert s.raft.term == 1


@pytest.mark.parametrize(
    ("voted_for", "candidate", "reject"),
    [(0, 2, False), (0, 3, False), (2, 2, False), (3, 3, False), (2, 3, True), (3, 2, True)],
)
def test_5_2_vote_granted_at_most_once_per_term(voted_for: int, candidate: int, reject: bool) -> None:
    """Each server votes for at most one candidate in a term, first-come-first-served; asking
    again for the same candidate gets the same answer."""
    s = Solo(term=1, vote=voted_for)
    out = s.receive(MessageType.VOTE, candidate, term=1, index=0, log_term=0)
    (resp,) = out
    assert (resp.type, resp.dst, resp.term, resp.reject) == (MessageType.VOTE_RESP, candidate, 1, reject)


def test_5_2_vote_is_persisted_before_it_is_announced() -> None:
    """The vote is part of the durable state: it reaches stable storage in the same Ready whose
    messages announce it, and a restarted server keeps it."""
    s = Solo(term=1)
    s.node.step(Message(MessageType.VOTE, 2, 1, term=1, index=0, log_term=0))
    rd = s.node.ready()
    assert rd.hard_state == HardState(1, 2, 0)
    assert rd.must_sync
    assert [(m.type, m.reject) for m in rd.messages] == [(MessageType.VOTE_RESP, False)]
    s.storage.set_hard_state(rd.hard_state)
    s.node.advance(rd)
    restarted = RawNode(s.config, s.storage)
    restarted.step(Message(MessageType.VOTE, 3, 1, term=1, index=0, log_term=0))
    (resp,) = restarted.ready().messages
    assert resp.reject


@pytest.mark.parametrize("term", [1, 2])
def test_5_2_candidate_becomes_follower_on_append_from_current_leader(term: int) -> None:
    """A candidate that receives AppendEntries from a leader whose term is at least its own
    recognises that leader and returns to follower."""
    s = Solo()
    make_candidate(s)
    s.receive(MessageType.APPEND, 2, term=term, index=0, log_term=0)
    assert (s.raft.role, s.raft.term, s.raft.leader) == (Role.FOLLOWER, term, 2)


def test_5_2_proposals_to_a_non_leader_are_refused() -> None:
    """Only the leader accepts client requests; others refuse and name the leader they know."""
    s = Solo()
    with pytest.raises(NotLeaderError) as err:
        s.node.propose(b"x")
    assert err.value.leader is None
    s.receive(MessageType.HEARTBEAT, 2, term=1)
    with pytest.raises(NotLeaderError) as err:
        s.node.propose(b"x")
    assert err.value.leader == 2
    assert s.raft.log.last_index() == 0


# -- §5.3 -----------------------------------------------------------------------------------------


def test_5_3_new_leader_appends_a_no_op_entry() -> None:
    """A new leader appends a blank entry of its own term, so that it can commit it and learn which
    entries of earlier terms are committed."""
    s = Solo(log_terms=(1, 1), term=1)
    s.node.campaign()
    s.flush()
    s.node.step(Message(MessageType.VOTE_RESP, 2, 1, term=2))
    rd = s.node.ready()
    assert rd.entries == [Entry(2, 3, EntryKind.NORMAL, b"")]
    appends = of_type(rd.messages, MessageType.APPEND)
    assert sorted(m.dst for m in appends) == [2, 3]
    assert all(m.entries == (Entry(2, 3),) and (m.index, m.log_term) == (2, 1) for m in appends)


def test_5_3_leader_replicates_then_commits_on_majority() -> None:
    """The leader appends a command to its log, sends AppendEntries carrying it with the preceding
    index and term, and commits it once a majority stored it; later messages carry the new commit
    index and the entry is handed out to be applied."""
    s = Solo()
    s.make_leader()
    s.receive(MessageType.APPEND_RESP, 2, term=1, index=1)  # the no-op commits
    s.receive(MessageType.APPEND_RESP, 3, term=1, index=1)
    s.applied.clear()
    index = s.node.propose(b"cmd")
    rd = s.node.ready()
    assert rd.entries == [Entry(1, index, EntryKind.NORMAL, b"cmd")]
    appends = of_type(rd.messages, MessageType.APPEND)
    assert sorted(m.dst for m in appends) == [2, 3]
    assert all((m.index, m.log_term, m.commit) == (index - 1, 1, 1) for m in appends)
    assert rd.committed_entries == []
    s.storage.append(rd.entries)
    s.node.advance(rd)
    out = s.receive(MessageType.APPEND_RESP, 3, term=1, index=index)
    assert s.raft.log.committed == index
    assert [e.data for e in s.applied] == [b"cmd"]
    assert all(m.commit == index for m in of_type(out, MessageType.APPEND))


def test_5_3_commit_includes_all_preceding_entries() -> None:
    """Committing an entry also commits every entry before it, including those of earlier terms."""
    s = Solo(log_terms=(1, 2), term=2)
    s.make_leader()
    last = s.raft.log.last_index()
    s.receive(MessageType.APPEND_RESP, 2, term=s.raft.term, index=last)
    assert s.raft.log.committed == last
    assert [e.index for e in s.applied] == [1, 2, 3]


def test_5_3_follower_commits_up_to_leader_commit() -> None:
    """A follower learns the commit index from the leader's messages and applies entries up to it
    (never beyond what it holds from this leader)."""
    s = Solo()
    ents = (Entry(1, 1, data=b"a"), Entry(1, 2, data=b"b"), Entry(1, 3, data=b"c"))
    s.receive(MessageType.APPEND, 2, term=1, index=0, log_term=0, entries=ents[:2], commit=5)
    assert s.raft.log.committed == 2  # capped at what this message proved
    s.receive(MessageType.APPEND, 2, term=1, index=2, log_term=1, entries=ents[2:], commit=2)
    assert s.raft.log.committed == 2
    s.receive(MessageType.HEARTBEAT, 2, term=1, commit=3)
    assert [e.data for e in s.applied] == [b"a", b"b", b"c"]


@pytest.mark.parametrize(
    ("prev_term", "prev_index", "reject", "resp_index"),
    [
        (0, 0, False, 1),  # below the commit index: answered with the commit index
        (1, 1, False, 1),
        (2, 2, False, 2),
        (1, 2, True, 2),  # the follower has index 2 but from another term
        (3, 3, True, 3),  # the follower has no index 3
    ],
)
def test_5_3_follower_checks_previous_index_and_term(
    prev_term: int, prev_index: int, reject: bool, resp_index: int
) -> None:
    """AppendEntries carries the index and term of the entry preceding the new ones; a follower
    whose log has no such entry refuses the new entries."""
    s = Solo(log_terms=(1, 2), term=2, commit=1)
    (resp,) = s.receive(MessageType.APPEND, 2, term=2, index=prev_index, log_term=prev_term, commit=1)
    assert (resp.type, resp.reject, resp.index) == (MessageType.APPEND_RESP, reject, resp_index)
    if reject:
        # The hint names the follower's last entry at or below the probe whose term is <= the probe's.
        assert resp.reject_hint <= prev_index
        assert resp.log_term <= prev_term
        assert s.raft.log.term(resp.reject_hint) == resp.log_term


@pytest.mark.parametrize(
    ("prev_index", "prev_term", "entries", "expected"),
    [
        (2, 2, [Entry(3, 3)], [1, 2, 3]),
        (1, 1, [Entry(3, 2), Entry(4, 3)], [1, 3, 4]),
        (0, 0, [Entry(1, 1)], [1, 2]),
        (0, 0, [Entry(3, 1)], [3]),
    ],
)
def test_5_3_follower_deletes_conflicting_entries(
    prev_index: int, prev_term: int, entries: list[Entry], expected: list[int]
) -> None:
    """If an existing entry conflicts with a new one (same index, different term) the follower
    deletes it and all that follow, then appends the new entries; entries it already has stay."""
    s = Solo(log_terms=(1, 2), term=2)
    s.receive(MessageType.APPEND, 2, term=4, index=prev_index, log_term=prev_term, entries=tuple(entries))
    assert [e.term for e in s.storage.all_entries()] == expected


FIGURE_7_LEADER = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6]
FIGURE_7_FOLLOWERS = {
    "a": [1, 1, 1, 4, 4, 5, 5, 6, 6],
    "b": [1, 1, 1, 4],
    "c": [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6],
    "d": [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7],
    "e": [1, 1, 1, 4, 4, 4, 4],
    "f": [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3],
}


@pytest.mark.parametrize("case", sorted(FIGURE_7_FOLLOWERS))
def test_5_3_leader_forces_follower_logs_to_match_its_own(case: str) -> None:
    """The leader finds the last point where a follower's log agrees with its own, the follower
    drops everything after it, and the leader sends its entries from there (Figure 7 cases);
    rejections skip a whole term at a time instead of one entry."""
    net = Network(3, election_tick=ELECTION)
    net.preload(1, FIGURE_7_LEADER, term=8)
    net.preload(2, FIGURE_7_FOLLOWERS[case], term=7)
    net.stop(3)  # a voter that grants its vote and then says nothing
    net.nodes[1].campaign()
    net.send(Message(MessageType.VOTE_RESP, 3, 1, term=9))
    assert net.leader() == 1
    net.propose(1, b"x")
    assert net.log_terms(2) == net.log_terms(1) == [*FIGURE_7_LEADER, 9, 9]
    rejects = [m for m in net.delivered if m.type is MessageType.APPEND_RESP and m.reject]
    assert len(rejects) <= 2


def test_5_3_acknowledgements_only_leave_with_persisted_entries() -> None:
    """A follower acknowledges entries only once they are durable: the answer is released in the
    same Ready that hands the entries to storage, which the driver persists before sending."""
    s = Solo()
    s.node.step(
        Message(MessageType.APPEND, 2, 1, term=1, index=0, log_term=0, entries=(Entry(1, 1), Entry(1, 2)))
    )
    rd = s.node.ready()
    (ack,) = rd.messages
    assert not ack.reject and ack.index == 2
    assert [e.index for e in rd.entries] == [1, 2]
    assert rd.must_sync


# -- §5.4 -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("voter_log", "cand_log_term", "cand_index", "reject"),
    [
        ((1,), 1, 1, False),
        ((1,), 1, 2, False),
        ((1, 1), 1, 1, True),
        ((1,), 2, 1, False),
        ((1,), 2, 2, False),
        ((1, 1), 2, 1, False),
        ((2,), 1, 1, True),
        ((2,), 1, 2, True),
        ((2, 1), 1, 1, True),
    ],
)
def test_5_4_1_vote_denied_to_candidate_with_less_up_to_date_log(
    voter_log: tuple[int, ...], cand_log_term: int, cand_index: int, reject: bool
) -> None:
    """A voter denies its vote if its own log is more up to date: a later last term wins, and with
    equal last terms the longer log wins."""
    s = Solo(log_terms=voter_log, term=2)
    (resp,) = s.receive(MessageType.VOTE, 2, term=3, index=cand_index, log_term=cand_log_term)
    assert resp.type is MessageType.VOTE_RESP
    assert resp.reject is reject


def test_5_4_1_server_missing_committed_entries_cannot_be_elected() -> None:
    """Because a candidate must collect votes from a majority, and every committed entry is on a
    majority, a server lacking committed entries cannot win an election."""
    net = Network(3)
    net.campaign(1)
    net.isolate(3)
    for i in range(5):
        net.propose(1, f"c{i}".encode())
    assert net.raft(1).log.committed == 6
    net.stop(1)
    net.recover()
    for _ in range(5):
        net.campaign(3)
        assert net.raft(3).role is not Role.LEADER
    net.campaign(2)
    assert net.leader() == 2
    assert net.applied_data(3) == [f"c{i}".encode() for i in range(5)]


@pytest.mark.parametrize(("ack_index", "committed"), [(1, 0), (2, 0), (3, 3)])
def test_5_4_2_leader_commits_only_current_term_entries_by_counting(ack_index: int, committed: int) -> None:
    """A leader never commits an entry from an earlier term by counting replicas; only an entry of
    its current term is committed that way (and earlier ones with it)."""
    s = Solo(log_terms=(1, 2), term=2)
    s.make_leader()  # term 3, no-op at index 3
    s.receive(MessageType.APPEND_RESP, 2, term=3, index=ack_index)
    assert s.raft.log.committed == committed


def _figure_8_network() -> Network:
    # The situation of Figure 8 (c): S1 leads again and its old-term entry at index 2 is on S1-S3,
    # while S5 holds a different index 2 from a later term that never reached anyone.
    net = Network(5)
    net.preload(1, [1, 2], term=4)
    net.preload(2, [1, 2], term=4)
    net.preload(3, [1, 2], term=4)
    net.preload(4, [1], term=4)
    net.preload(5, [1, 3], term=4)
    return net


def test_5_4_2_figure_8_old_term_entry_on_a_majority_is_not_committed() -> None:
    """Figure 8: an entry from an earlier term may be stored on a majority and still be
    overwritten by a future leader, so the leader must not count it as committed."""
    net = _figure_8_network()
    net.ignore(MessageType.APPEND)  # S1 wins but its no-op (index 3, term 5) reaches nobody
    net.campaign(1)
    assert net.leader() == 1 and net.raft(1).term == 5
    # S1 learns that S2 and S3 store the term-2 entry: a majority, yet not committable.
    net.send(Message(MessageType.APPEND_RESP, 2, 1, term=5, index=2))
    net.send(Message(MessageType.APPEND_RESP, 3, 1, term=5, index=2))
    assert net.raft(1).log.committed == 0
    # (d) S1 crashes; S5 is elected with S2-S4 (its last term 3 beats their 2) and overwrites index 2.
    net.stop(1)
    net.recover()
    net.campaign(5)
    assert net.leader() == 5
    net.propose(5, b"after")
    for node_id in (2, 3, 4, 5):
        assert net.log_terms(node_id)[:2] == [1, 3]


def test_5_4_2_figure_8_current_term_entry_commits_the_prefix_for_good() -> None:
    """Figure 8 (e): once the leader commits an entry of its own term on a majority, the earlier
    entries are committed with it and a server lacking them can no longer be elected."""
    net = _figure_8_network()
    net.isolate(5)
    net.campaign(1)
    assert net.raft(1).log.committed == 3
    net.stop(1)
    net.recover()
    net.campaign(5)
    assert net.raft(5).role is not Role.LEADER
    net.campaign(2)
    assert net.leader() == 2
    assert net.log_terms(5)[:3] == [1, 2, 5]


def test_5_4_3_leader_completeness_committed_entries_survive_leader_changes() -> None:
    """Entries committed in one term are in the log of every leader of a later term."""
    net = Network(5)
    net.campaign(1)
    for i in range(3):
        net.propose(1, f"e{i}".encode())
    committed = [(e.index, e.term) for e in net.storages[1].all_entries()[: net.raft(1).log.committed]]
    for new_leader in (2, 3, 4, 5):
        net.stop(net.leader() or 1)
        net.campaign(new_leader)
        assert net.leader() == new_leader
        log = net.raft(new_leader).log
        assert all(log.term(i) == t for i, t in committed)
        net.restart(1 if new_leader == 2 else new_leader - 1)
        net.flush()


# -- §6 membership --------------------------------------------------------------------------------


def _leader_with_commit(peers: tuple[int, ...] = (1, 2, 3)) -> Solo:
    s = Solo(peers=peers)
    s.make_leader()
    for peer in peers[1:]:
        s.receive(MessageType.APPEND_RESP, peer, term=s.raft.term, index=s.raft.log.last_index())
    return s


def test_6_single_server_change_takes_effect_when_applied() -> None:
    """Membership changes add or remove one server at a time; here the new configuration is used
    once its entry is committed and applied (and from then on counts for commitment)."""
    s = _leader_with_commit()
    index = s.node.propose_conf_change(ConfChange(ConfChangeType.ADD_NODE, 4))
    s.flush()
    assert s.raft.voters == {1, 2, 3}
    s.receive(MessageType.APPEND_RESP, 2, term=1, index=index)
    assert s.raft.voters == {1, 2, 3, 4}
    assert s.storage.voters == {1, 2, 3, 4}
    # Four voters: a majority is now three.
    data_index = s.node.propose(b"x")
    s.flush()
    s.receive(MessageType.APPEND_RESP, 2, term=1, index=data_index)
    assert s.raft.log.committed < data_index
    s.receive(MessageType.APPEND_RESP, 4, term=1, index=data_index)
    assert s.raft.log.committed == data_index


def test_6_only_one_change_at_a_time() -> None:
    """A new change may not start before the previous one is committed and applied."""
    s = _leader_with_commit()
    s.node.propose_conf_change(ConfChange(ConfChangeType.ADD_NODE, 4))
    s.flush()
    with pytest.raises(ProposalDroppedError):
        s.node.propose_conf_change(ConfChange(ConfChangeType.REMOVE_NODE, 3))


def test_6_change_waits_for_a_commit_in_the_leaders_term() -> None:
    """A leader may not start a membership change until it has committed an entry of its own term
    (the fix to single-server changes published in 2015)."""
    s = Solo()
    s.make_leader()
    with pytest.raises(ProposalDroppedError):
        s.node.propose_conf_change(ConfChange(ConfChangeType.ADD_NODE, 4))
    s.receive(MessageType.APPEND_RESP, 2, term=1, index=1)
    s.node.propose_conf_change(ConfChange(ConfChangeType.ADD_NODE, 4))


def test_6_leader_removed_from_configuration_steps_down() -> None:
    """A leader that is removed steps down once the change is committed, handing over to an
    up-to-date server, and no longer counts itself."""
    s = _leader_with_commit()
    index = s.node.propose_conf_change(ConfChange(ConfChangeType.REMOVE_NODE, 1))
    s.flush()
    out = s.receive(MessageType.APPEND_RESP, 2, term=1, index=index)
    assert s.raft.role is Role.FOLLOWER
    assert s.raft.voters == {2, 3}
    assert [m.dst for m in of_type(out, MessageType.TIMEOUT_NOW)] == [2]
    assert not s.raft.promotable()


# -- §8 ReadIndex ---------------------------------------------------------------------------------


def test_8_read_index_needs_current_term_commit_and_a_heartbeat_quorum() -> None:
    """A read-only request is answered with the commit index only after the leader committed an
    entry of its term and a majority answered a heartbeat sent after the request arrived."""
    s = Solo()
    s.make_leader()
    s.node.read_index(b"r1")
    assert of_type(s.flush(), MessageType.HEARTBEAT) == []  # waits for the no-op to commit
    out = s.receive(MessageType.APPEND_RESP, 2, term=1, index=1)
    beats = of_type(out, MessageType.HEARTBEAT)
    assert sorted(m.dst for m in beats) == [2, 3]
    assert s.read_states == []
    s.receive(MessageType.HEARTBEAT_RESP, 3, term=1, context=beats[0].context)
    assert s.read_states == [ReadState(1, b"r1")]


def test_8_single_voter_answers_reads_at_once() -> None:
    """With a single voter, the leader is the quorum and can answer immediately."""
    s = Solo(peers=(1,))
    s.node.campaign()
    s.flush()
    s.node.read_index(b"r")
    s.flush()
    assert s.read_states == [ReadState(1, b"r")]


def test_8_follower_reads_go_through_the_leader() -> None:
    """A follower forwards the request to the leader and serves the read once it has applied the
    index the leader returns."""
    net = Network(3)
    net.campaign(1)
    net.propose(1, b"x")
    net.nodes[2].read_index(b"f")
    net.flush()
    assert net.read_states[2] == [ReadState(net.raft(1).log.committed, b"f")]


# -- §9.6 of the dissertation: PreVote and CheckQuorum ---------------------------------------------


def test_9_6_prevote_does_not_increase_the_term() -> None:
    """With PreVote a server first asks whether it could win; it bumps its term only if a
    majority says yes, so a losing pre-candidate disturbs nobody."""
    s = Solo(pre_vote=True)
    out = s.tick(2 * ELECTION)
    assert s.raft.role is Role.PRE_CANDIDATE
    assert s.raft.term == 0
    pre = of_type(out, MessageType.PRE_VOTE)
    assert sorted(m.dst for m in pre) == [2, 3] and all(m.term == 1 for m in pre)
    s.receive(MessageType.PRE_VOTE_RESP, 2, term=1)
    assert s.raft.role is Role.CANDIDATE and s.raft.term == 1


def test_9_6_check_quorum_leader_steps_down_without_majority() -> None:
    """With CheckQuorum a leader that has not heard from a majority within an election timeout
    steps down."""
    s = Solo(check_quorum=True)
    s.make_leader()
    s.receive(MessageType.HEARTBEAT_RESP, 2, term=1)  # with itself, a majority of three
    s.tick(ELECTION)
    assert s.raft.role is Role.LEADER
    s.tick(ELECTION)  # nobody answered during this timeout
    assert s.raft.role is Role.FOLLOWER
    assert s.raft.term == 1


def test_9_6_server_with_live_leader_ignores_vote_requests() -> None:
    """A server that heard from a leader within the minimum election timeout ignores vote
    requests: it neither updates its term nor grants its vote."""
    s = Solo(check_quorum=True)
    s.receive(MessageType.HEARTBEAT, 2, term=1)
    out = s.receive(MessageType.VOTE, 3, term=2, index=10, log_term=2)
    assert out == []
    assert (s.raft.term, s.raft.vote, s.raft.leader) == (1, 0, 2)
    s.tick(ELECTION)
    out = s.receive(MessageType.VOTE, 3, term=2, index=10, log_term=2)
    assert [(m.type, m.reject) for m in out] == [(MessageType.VOTE_RESP, False)]
