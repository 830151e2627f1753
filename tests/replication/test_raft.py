"""Cluster-level behaviour of the Raft core on the lockstep in-memory ``Network``, plus the wire
format, storage and progress units."""

from __future__ import annotations

import contextlib
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from replication.core import (
    CompactedError,
    ConfChange,
    ConfChangeType,
    Entry,
    EntryKind,
    MemoryStorage,
    Message,
    MessageType,
    NotLeaderError,
    ProposalDroppedError,
    ReadState,
    Role,
    Snapshot,
    SnapshotMeta,
    UnavailableError,
    message_from_wire,
    message_to_wire,
)
from replication.core.progress import Progress, ProgressState
from tools.raftsim import Network

ELECTION = 10


def elect(net: Network, node_id: int) -> None:
    net.campaign(node_id)
    assert net.leader() == node_id


def tick_until_leader(net: Network, rounds: int = 20 * ELECTION) -> int:
    for _ in range(rounds):
        net.tick_all()
        leader = net.leader()
        if leader is not None and all(
            n.raft.role is not Role.LEADER or i == leader for i, n in net.nodes.items()
        ):
            return leader
    raise AssertionError("no leader emerged")


# -- the network helper itself --------------------------------------------------------------------


def test_network_filters() -> None:
    net = Network(3)
    elect(net, 1)
    net.cut(1, 3)
    net.propose(1, b"a")
    assert net.applied_data(2) == [b"a"] and net.applied_data(3) == []
    net.recover()
    net.ignore(MessageType.APPEND)
    net.propose(1, b"b")
    assert net.applied_data(2) == [b"a"]
    net.recover()
    net.tick(1)  # a heartbeat answer makes the leader resend what followers miss
    assert net.applied_data(2) == net.applied_data(3) == [b"a", b"b"]
    net.drop(1, 2, 0.0)
    net.isolate(2)
    net.propose(1, b"c")
    assert net.applied_data(2) == [b"a", b"b"] and net.applied_data(3)[-1] == b"c"


# -- PreVote, CheckQuorum and the leader lease -----------------------------------------------------


def test_prevote_keeps_a_partitioned_node_from_disrupting_on_rejoin() -> None:
    """A node cut off from the cluster keeps pre-campaigning without raising its term; when it
    comes back with a stale log its pre-votes fail and the leader keeps its term."""
    net = Network(3, pre_vote=True)
    elect(net, 1)
    net.isolate(3)
    for i in range(3):
        net.propose(1, f"x{i}".encode())
    net.tick(3, 10 * ELECTION)
    assert net.raft(3).term == 1
    assert net.raft(3).role is Role.PRE_CANDIDATE
    net.recover()
    for _ in range(3 * ELECTION):
        net.tick_all()
    assert net.leader() == 1 and net.raft(1).term == 1
    assert net.raft(3).role is Role.FOLLOWER
    assert net.applied_data(3) == [b"x0", b"x1", b"x2"]


def test_without_prevote_a_rejoining_node_does_disrupt() -> None:
    """The contrast case: without PreVote the isolated node's term runs ahead and its return
    deposes the leader (but, lacking entries, it still cannot win)."""
    net = Network(3, pre_vote=False)
    elect(net, 1)
    net.isolate(3)
    net.propose(1, b"x")
    net.tick(3, 10 * ELECTION)
    assert net.raft(3).term > 3
    net.recover()
    net.tick(3, 2 * ELECTION)
    assert net.raft(1).term > 1
    assert net.raft(3).role is not Role.LEADER


def test_prevote_with_check_quorum_rejoining_node_with_equal_log_does_not_disrupt() -> None:
    """With PreVote and CheckQuorum even an up-to-date rejoining node cannot depose a live leader:
    followers inside the leader lease ignore its pre-votes."""
    net = Network(3, pre_vote=True, check_quorum=True)
    elect(net, 1)
    net.isolate(3)
    net.tick(3, 10 * ELECTION)
    net.recover()
    for _ in range(3 * ELECTION):
        net.tick_all()
    assert net.leader() == 1 and net.raft(1).term == 1


def test_check_quorum_isolated_leader_steps_down() -> None:
    """A leader that cannot reach a majority steps down within two election timeouts, and the
    majority side elects a new leader."""
    net = Network(3, check_quorum=True, pre_vote=True)
    elect(net, 1)
    net.isolate(1)
    for _ in range(2 * ELECTION):
        net.tick(1)
    assert net.raft(1).role is Role.FOLLOWER
    for _ in range(4 * ELECTION):
        net.tick(2)
        net.tick(3)
        if net.raft(2).role is Role.LEADER or net.raft(3).role is Role.LEADER:
            break
    assert {net.raft(2).role, net.raft(3).role} == {Role.LEADER, Role.FOLLOWER}


def test_leader_lease_ignores_disruptive_vote_requests() -> None:
    """Servers that heard from the leader recently ignore a vote request of a higher term."""
    net = Network(3, check_quorum=True)
    elect(net, 1)
    net.ignore(MessageType.HEARTBEAT)  # keep the leader from freeing the candidate right away
    net.campaign(3)
    assert net.raft(3).role is Role.CANDIDATE and net.raft(3).term == 2
    assert net.raft(1).term == 1 and net.raft(1).role is Role.LEADER
    assert net.raft(2).term == 1 and net.raft(2).vote == 1


def test_leader_lease_expires_without_leader_contact() -> None:
    net = Network(3, check_quorum=True)
    elect(net, 1)
    net.stop(1)
    net.tick(2, ELECTION)  # 2 has not heard from the leader for an election timeout
    net.campaign(3)
    assert net.leader() == 3


# -- leadership transfer ---------------------------------------------------------------------------


def test_leadership_transfer_to_up_to_date_follower() -> None:
    net = Network(3, pre_vote=True, check_quorum=True)
    elect(net, 1)
    net.propose(1, b"a")
    net.nodes[1].transfer_leader(2)
    net.flush()
    assert net.leader() == 2
    assert net.raft(2).term == 2
    assert net.raft(1).role is Role.FOLLOWER and net.raft(1).leader == 2


def test_leadership_transfer_catches_up_a_lagging_follower_first() -> None:
    net = Network(3)
    elect(net, 1)
    net.isolate(3)
    for i in range(5):
        net.propose(1, f"p{i}".encode())
    net.recover()
    net.nodes[1].transfer_leader(3)
    net.flush()
    assert net.leader() == 3
    assert net.applied_data(3)[:5] == [f"p{i}".encode() for i in range(5)]


def test_leadership_transfer_blocks_proposals_and_times_out() -> None:
    net = Network(3)
    elect(net, 1)
    net.isolate(3)
    net.nodes[1].transfer_leader(3)
    net.flush()
    with pytest.raises(ProposalDroppedError):
        net.nodes[1].propose(b"x")
    assert net.raft(1).lead_transferee == 3
    net.tick(1, ELECTION)
    assert net.raft(1).lead_transferee is None
    net.propose(1, b"x")
    assert net.applied_data(2) == [b"x"]


def test_transfer_request_on_follower_is_refused() -> None:
    net = Network(3)
    elect(net, 1)
    with pytest.raises(NotLeaderError) as err:
        net.nodes[2].transfer_leader(3)
    assert err.value.leader == 1


# -- ReadIndex ------------------------------------------------------------------------------------


def test_read_index_on_leader_and_followers() -> None:
    net = Network(3)
    elect(net, 1)
    net.propose(1, b"a")
    for node_id in (1, 2, 3):
        net.nodes[node_id].read_index(f"r{node_id}".encode())
        net.flush()
        assert net.read_states[node_id] == [ReadState(2, f"r{node_id}".encode())]


def test_read_index_is_not_answered_by_an_isolated_ex_leader() -> None:
    """A leader cut off from the majority cannot confirm its leadership, so it never answers,
    while the new leader on the majority side serves reads that include new writes."""
    net = Network(3, check_quorum=True, pre_vote=True)
    elect(net, 1)
    net.isolate(1)
    net.nodes[1].read_index(b"stale")
    net.flush()
    for _ in range(10 * ELECTION):
        net.tick_all()
        if Role.LEADER in (net.raft(2).role, net.raft(3).role):
            break
    new_leader = 2 if net.raft(2).role is Role.LEADER else 3
    assert net.raft(new_leader).role is Role.LEADER
    net.propose(new_leader, b"new")
    for _ in range(3 * ELECTION):
        net.tick_all()
    assert net.read_states[1] == []
    net.nodes[3].read_index(b"fresh")
    net.flush()
    assert net.read_states[3] == [ReadState(net.raft(new_leader).log.committed, b"fresh")]


def test_read_index_without_leader_raises() -> None:
    net = Network(3)
    with pytest.raises(NotLeaderError):
        net.nodes[1].read_index(b"x")


# -- snapshots ------------------------------------------------------------------------------------


def test_lagging_follower_receives_snapshot_after_compaction() -> None:
    net = Network(3)
    elect(net, 1)
    net.isolate(3)
    for i in range(20):
        net.propose(1, f"s{i}".encode())
    leader_storage = net.storages[1]
    applied = net.raft(1).log.applied
    leader_storage.create_snapshot(applied, net.raft(1).voters, b"state@%d" % applied)
    leader_storage.compact(applied)
    net.recover()
    net.tick(1)
    assert [s.index for s in net.snapshots_applied[3]] == [applied]
    assert net.storages[3].snapshot().data == b"state@%d" % applied
    assert net.storages[3].voters == {1, 2, 3}
    net.propose(1, b"after")
    assert net.applied_data(3) == [b"after"]
    assert net.raft(1).progress[3].state is ProgressState.REPLICATE


def test_dropped_snapshot_is_retried() -> None:
    net = Network(3)
    elect(net, 1)
    net.isolate(3)
    for i in range(5):
        net.propose(1, f"s{i}".encode())
    applied = net.raft(1).log.applied
    net.storages[1].create_snapshot(applied, {1, 2, 3}, b"img")
    net.storages[1].compact(applied)
    net.recover()
    net.ignore(MessageType.SNAPSHOT)
    net.tick(1)
    assert net.snapshots_applied[3] == []
    net.recover()
    for _ in range(3):
        net.tick(1)
    assert [s.index for s in net.snapshots_applied[3]] == [applied]


# -- membership -----------------------------------------------------------------------------------


def test_add_member_replicates_to_it_and_counts_it() -> None:
    net = Network(3)
    elect(net, 1)
    net.propose(1, b"before")
    net.add_node(4)  # starts empty, outside any configuration
    assert not net.raft(4).promotable()
    net.nodes[1].propose_conf_change(ConfChange(ConfChangeType.ADD_NODE, 4))
    net.flush()
    for node_id in (1, 2, 3, 4):
        assert net.raft(node_id).voters == {1, 2, 3, 4}
    assert net.applied_data(4) == [b"before"]
    net.stop(2)
    net.stop(3)
    net.propose(1, b"two of four")
    assert net.raft(1).log.committed < net.raft(1).log.last_index()


def test_remove_member_shrinks_the_quorum() -> None:
    net = Network(3)
    elect(net, 1)
    net.nodes[1].propose_conf_change(ConfChange(ConfChangeType.REMOVE_NODE, 3))
    net.flush()
    assert net.raft(1).voters == {1, 2}
    assert net.raft(3).voters == {1, 2}
    assert not net.raft(3).promotable()
    net.stop(3)
    net.propose(1, b"x")
    assert net.applied_data(2) == [b"x"]


def test_second_conf_change_refused_while_first_pending() -> None:
    net = Network(3)
    elect(net, 1)
    net.isolate(1)  # the first change cannot commit
    net.nodes[1].propose_conf_change(ConfChange(ConfChangeType.ADD_NODE, 4))
    with pytest.raises(ProposalDroppedError):
        net.nodes[1].propose_conf_change(ConfChange(ConfChangeType.REMOVE_NODE, 2))
    net.recover()
    net.tick(1)
    assert net.raft(1).voters == {1, 2, 3, 4}
    net.nodes[1].propose_conf_change(ConfChange(ConfChangeType.REMOVE_NODE, 4))


def test_conf_change_refused_before_leader_commits_in_its_term() -> None:
    net = Network(3)
    net.ignore(MessageType.APPEND)
    net.campaign(1)
    assert net.leader() == 1
    with pytest.raises(ProposalDroppedError):
        net.nodes[1].propose_conf_change(ConfChange(ConfChangeType.ADD_NODE, 4))
    net.recover()
    net.tick(1)
    net.nodes[1].propose_conf_change(ConfChange(ConfChangeType.ADD_NODE, 4))


def test_invalid_conf_changes_refused() -> None:
    net = Network(1)
    elect(net, 1)
    with pytest.raises(ProposalDroppedError):
        net.nodes[1].propose_conf_change(ConfChange(ConfChangeType.ADD_NODE, 1))
    with pytest.raises(ProposalDroppedError):
        net.nodes[1].propose_conf_change(ConfChange(ConfChangeType.REMOVE_NODE, 7))
    with pytest.raises(ProposalDroppedError):
        net.nodes[1].propose_conf_change(ConfChange(ConfChangeType.REMOVE_NODE, 1))


def test_removing_the_leader_hands_over_leadership() -> None:
    net = Network(3, pre_vote=True, check_quorum=True)
    elect(net, 1)
    net.nodes[1].propose_conf_change(ConfChange(ConfChangeType.REMOVE_NODE, 1))
    net.flush()
    new_leader = net.leader()
    assert new_leader in (2, 3)
    assert net.raft(1).role is Role.FOLLOWER and not net.raft(1).promotable()
    net.stop(1)
    net.propose(new_leader, b"after removal")
    assert net.applied_data(2) == net.applied_data(3) == [b"after removal"]
    for _ in range(5 * ELECTION):
        net.tick_all()
    assert net.leader() == new_leader


def test_one_node_cluster_is_leader_at_once_and_commits_alone() -> None:
    net = Network(1)
    elect(net, 1)
    net.propose(1, b"solo")
    assert net.applied_data(1) == [b"solo"]


# -- a stale follower after a leader crash ----------------------------------------------------------


@pytest.mark.parametrize("pre_vote", [False, True])
def test_stale_follower_cannot_win_after_leader_crash(pre_vote: bool) -> None:
    """Isolate a follower, commit 50 entries, crash the leader and heal: the stale follower cannot
    be elected, and the 50 entries survive on the new leader and reach the stale node."""
    net = Network(3, pre_vote=pre_vote, check_quorum=True)
    elect(net, 1)
    net.propose(1, b"early")
    net.isolate(3)
    values = [f"w{i}".encode() for i in range(50)]
    for v in values:
        net.propose(1, v)
    assert net.raft(1).log.committed == 52
    net.stop(1)
    net.recover()
    net.tick(3, 3 * ELECTION)  # the stale node times out first
    assert net.raft(3).role is not Role.LEADER
    leader = tick_until_leader(net)
    assert leader == 2
    net.propose(2, b"next")
    assert net.applied_data(2) == net.applied_data(3) == [b"early", *values, b"next"]


def test_crashed_leader_restarts_and_catches_up() -> None:
    net = Network(3)
    elect(net, 1)
    net.propose(1, b"a")
    net.stop(1)
    elect(net, 2)
    net.propose(2, b"b")
    net.restart(1)
    net.tick(2)  # the next heartbeat finds the restarted node
    net.propose(2, b"c")
    assert net.raft(1).role is Role.FOLLOWER
    assert net.applied_data(1) == [b"a", b"b", b"c"]


# -- replication flow control -----------------------------------------------------------------------


def test_pipelining_respects_inflight_window() -> None:
    net = Network(3, max_inflight_msgs=2, max_entries_per_msg=1)
    elect(net, 1)
    net.ignore(MessageType.APPEND_RESP)
    for i in range(6):
        net.nodes[1].propose(f"q{i}".encode())
    net.flush()
    pr = net.raft(1).progress[2]
    assert pr.state is ProgressState.REPLICATE
    assert pr.inflights.full()
    sent = [m for m in net.delivered if m.type is MessageType.APPEND and m.dst == 2 and m.entries]
    assert len(sent) <= 3  # the no-op plus the window
    net.recover()
    net.tick(1)
    for _ in range(6):
        net.tick(1)
    assert net.applied_data(2) == [f"q{i}".encode() for i in range(6)]


def test_progress_probe_and_replicate_states() -> None:
    pr = Progress(next_index=11, max_inflight=2)
    assert pr.state is ProgressState.PROBE and not pr.is_paused()
    pr.sent_entries(11)
    assert pr.is_paused()  # one probe at a time
    assert not pr.maybe_decrease_to(rejected=9, match_hint=3)  # stale rejection
    assert pr.maybe_decrease_to(rejected=10, match_hint=3)
    assert pr.next == 4 and not pr.is_paused()
    assert pr.maybe_update(5)
    pr.become_replicate()
    assert pr.next == 6
    pr.sent_entries(7)
    pr.sent_entries(9)
    assert pr.next == 10 and pr.is_paused()
    pr.inflights.free_le(7)
    assert not pr.is_paused()
    assert not pr.maybe_decrease_to(rejected=4, match_hint=0)  # below match: stale
    assert pr.maybe_decrease_to(rejected=8, match_hint=0)
    assert pr.next == pr.match + 1
    pr.become_snapshot(40)
    assert pr.is_paused()
    pr.become_probe()
    assert pr.next == 41


# -- storage and log units ------------------------------------------------------------------------


def test_memory_storage_bounds_and_compaction() -> None:
    s = MemoryStorage({1})
    s.append([Entry(1, i) for i in range(1, 6)])
    assert (s.first_index(), s.last_index()) == (1, 5)
    assert [e.index for e in s.entries(2, 5, 1 << 20)] == [2, 3, 4]
    assert [e.index for e in s.entries(2, 5, 0)] == [2]  # always at least one
    s.create_snapshot(3, {1}, b"img")
    s.compact(3)
    assert (s.first_index(), s.last_index(), s.term(3)) == (4, 5, 1)
    with pytest.raises(CompactedError):
        s.term(2)
    with pytest.raises(CompactedError):
        s.entries(3, 5, 100)
    with pytest.raises(UnavailableError):
        s.term(6)
    s.append([Entry(2, 5), Entry(2, 6)])  # conflicting suffix replaced
    assert [e.term for e in s.all_entries()] == [1, 2, 2]
    s.apply_snapshot(Snapshot(SnapshotMeta(10, 3, frozenset({1, 2})), b"x"))
    assert (s.first_index(), s.last_index(), s.voters) == (11, 10, {1, 2})


def test_ready_must_sync_only_for_durable_changes() -> None:
    net = Network(3)
    elect(net, 1)
    node = net.nodes[2]
    node.step(Message(MessageType.HEARTBEAT, 1, 2, term=1, commit=1))
    rd = node.ready()
    assert not rd.must_sync  # a commit-index change alone can be recomputed after a crash
    node.advance(rd)


def test_heartbeats_are_taken_early_and_promise_only_what_is_durable() -> None:
    """``take_heartbeats`` hands heartbeats and their answers out while a Ready's write is outstanding;
    appends and acknowledgements stay in the Ready. A heartbeat's commit index names nothing its
    follower has not acknowledged, even with the leader's own new entry counted at append."""
    net = Network(3)
    elect(net, 1)
    leader, follower = net.nodes[1], net.nodes[2]
    acknowledged = leader.raft.progress[2].match
    index = leader.propose(b"x")  # appended, not persisted: its Ready is "being written"
    leader.tick()
    beats = leader.take_heartbeats()
    assert sorted(m.dst for m in beats) == [2, 3] and {m.type for m in beats} == {MessageType.HEARTBEAT}
    assert all(m.commit <= acknowledged < index for m in beats)
    assert leader.take_heartbeats() == []  # taken once
    rd = leader.ready()
    assert {m.type for m in rd.messages} == {MessageType.APPEND}  # the append waits for the write
    assert [e.index for e in rd.entries] == [index]

    follower.step(next(m for m in beats if m.dst == 2))
    append = next(m for m in rd.messages if m.dst == 2)
    follower.step(append)
    answers = follower.take_heartbeats()
    assert [(m.type, m.dst) for m in answers] == [(MessageType.HEARTBEAT_RESP, 1)]
    held = follower.ready()
    assert [m.type for m in held.messages] == [MessageType.APPEND_RESP]  # after its entry is durable
    assert [e.index for e in held.entries] == [index]

    # A driver that never takes them gets the heartbeats in the Ready, as before.
    leader.tick()
    assert MessageType.HEARTBEAT in {m.type for m in leader.raft.msgs}


def test_message_to_self_or_other_node_rejected() -> None:
    net = Network(3)
    with pytest.raises(ValueError):
        net.nodes[1].step(Message(MessageType.HEARTBEAT, 2, 3, term=1))
    with pytest.raises(ValueError):
        net.nodes[1].step(Message(MessageType.HEARTBEAT, 1, 1, term=1))


# -- wire format ----------------------------------------------------------------------------------

u64 = st.integers(min_value=0, max_value=(1 << 64) - 1)
small = st.integers(min_value=0, max_value=1000)
entries = st.builds(
    Entry, term=small, index=small, kind=st.sampled_from(EntryKind), data=st.binary(max_size=40)
)
snapshots = st.builds(
    Snapshot,
    meta=st.builds(SnapshotMeta, index=u64, term=u64, voters=st.frozensets(u64, max_size=5)),
    data=st.binary(max_size=40),
)
messages = st.builds(
    Message,
    type=st.sampled_from(MessageType),
    src=u64,
    dst=u64,
    term=u64,
    log_term=u64,
    index=u64,
    entries=st.lists(entries, max_size=4).map(tuple),
    commit=u64,
    reject=st.booleans(),
    reject_hint=u64,
    snapshot=st.none() | snapshots,
    context=st.binary(max_size=20),
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(1 << 63), max_value=(1 << 64) - 1)
    | st.floats(allow_nan=False)
    | st.binary(max_size=10)
    | st.text(max_size=10)
)
plain = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=13) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=30,
)


@given(messages)
@settings(max_examples=300, deadline=None)
def test_wire_round_trip_through_msgpack(m: Message) -> None:
    packed = msgpack.packb(message_to_wire(m), use_bin_type=True)
    assert message_from_wire(msgpack.unpackb(packed, raw=False)) == m


@given(plain)
@settings(max_examples=500, deadline=None)
def test_wire_garbage_only_raises_value_error(obj: Any) -> None:
    with contextlib.suppress(ValueError):
        message_from_wire(obj)


@given(messages, st.integers(min_value=0, max_value=11), plain)
@settings(max_examples=500, deadline=None)
def test_wire_corrupted_field_only_raises_value_error(m: Message, position: int, junk: Any) -> None:
    wire = message_to_wire(m)
    wire[position] = junk
    with contextlib.suppress(ValueError):
        message_from_wire(wire)


@given(messages, plain)
@settings(max_examples=200, deadline=None)
def test_wire_corrupted_entry_or_snapshot_only_raises_value_error(m: Message, junk: Any) -> None:
    wire = message_to_wire(m)
    wire[6] = [*wire[6], junk]
    with contextlib.suppress(ValueError):
        message_from_wire(wire)
    wire = message_to_wire(m)
    wire[10] = [1, 1, [junk], b""]
    with contextlib.suppress(ValueError):
        message_from_wire(wire)


def test_wire_rejects_specific_malformations() -> None:
    good = message_to_wire(Message(MessageType.APPEND, 1, 2, term=3, entries=(Entry(3, 1, data=b"x"),)))
    assert message_from_wire(good).entries[0].data == b"x"
    bad_cases = [
        None,
        good[:-1],
        [*good, 0],
        [99, *good[1:]],  # unknown type
        [good[0], True, *good[2:]],  # bool where an int belongs
        [good[0], -1, *good[2:]],
        [good[0], 1 << 64, *good[2:]],
        [*good[:8], 1, *good[9:]],  # reject must be a bool
        [*good[:11], "text"],  # context must be bytes
        [*good[:6], [[3, 1, 7, b"x"]], *good[7:]],  # unknown entry kind
        [*good[:10], [1, 1, [1], "img"], good[11]],
    ]
    for case in bad_cases:
        with pytest.raises(ValueError):
            message_from_wire(case)


@given(st.binary(max_size=64))
def test_conf_change_decoding_only_raises_value_error(data: bytes) -> None:
    try:
        cc = ConfChange.from_bytes(data)
    except ValueError:
        return
    assert ConfChange.from_bytes(cc.to_bytes()) == cc


def test_conf_change_round_trip() -> None:
    for cc in (
        ConfChange(ConfChangeType.ADD_NODE, 4),
        ConfChange(ConfChangeType.REMOVE_NODE, 2, b"ctx", frozenset({1, 3})),
        ConfChange(ConfChangeType.ADD_NODE, 9, b"", frozenset()),
    ):
        assert ConfChange.from_bytes(cc.to_bytes()) == cc
