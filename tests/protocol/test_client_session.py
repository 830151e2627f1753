"""The sans-IO client session: refs, op ids, acks at their position, resume and failover, with no sockets."""

from __future__ import annotations

import hashlib

import pytest

from protocol import (
    PROTOCOL_VERSION,
    Ack,
    Applied,
    Batch,
    Delete,
    Error,
    ExportBlob,
    ExportItems,
    Hello,
    Joined,
    JoinRoom,
    Left,
    ListRooms,
    Ping,
    Pong,
    RoomCreated,
    RoomDeleted,
    RoomList,
    Set,
    SnapshotChunk,
    SnapshotEnd,
    Welcome,
)
from protocol.client_session import REF_BASE, ClientSession
from protocol.nodes import parse_address

A, B, C = ("10.0.0.1", 1), ("10.0.0.2", 2), ("10.0.0.3", 3)


def session(*, failover: bool = True, addresses=(A,), timeout: float = 60.0) -> ClientSession:
    hello = Hello(protocol=PROTOCOL_VERSION, client_name="ana", session="s" * 32)
    return ClientSession(hello, list(addresses), failover=failover, failover_timeout=timeout)


def welcome(nodes=(), heartbeat: float = 5.0) -> Welcome:
    return Welcome(
        protocol=PROTOCOL_VERSION,
        server_version="x",
        session="s" * 32,
        client_id="s" * 32,
        nodes=list(nodes),
        heartbeat_interval=heartbeat,
    )


def joined_room(s: ClientSession, seq: int = 0, items=()) -> None:
    """Welcome, join ``r`` and take a snapshot at ``seq``."""
    s.receive(welcome(), 0.0)
    ref, _ = s.join("r", password="pw")
    s.receive(Joined(room="r", seq=seq, mode="snapshot", key_count=len(items), ref=ref), 0.0)
    s.receive(SnapshotChunk(room="r", items=[list(item) for item in items]), 0.0)
    s.receive(SnapshotEnd(room="r", seq=seq), 0.0)


def applied(seq: int, key: str, value: bytes | None) -> Applied:
    op = ["set", key, value] if value is not None else ["delete", key]
    return Applied(room="r", seq=seq, client_id="other", op_id=seq, ops=[op])


# ---- refs and op ids --------------------------------------------------------------------------------


def test_replies_are_matched_by_ref_and_refs_never_collide_with_op_ids():
    s = session()
    s.receive(welcome(), 0.0)
    ref, event = s.request(lambda ref: ListRooms(ref=ref))
    assert ref >= REF_BASE and event == ListRooms(ref=ref)
    op_id, _ = s.write([["set", "k", b"v"]])
    assert op_id == 1
    assert s.receive(RoomList(rooms=[], ref=ref + 7), 0.0).deliver  # nobody asked: the application's
    step = s.receive(RoomList(rooms=[], ref=ref), 0.0)
    assert step.reply == (ref, RoomList(rooms=[], ref=ref)) and not step.deliver
    assert s.receive(RoomList(rooms=[], ref=ref), 0.0).deliver  # answered once only
    ref2, _ = s.request(lambda ref: ListRooms(ref=ref))
    error = Error(code="bad_message", message="no", ref=ref2)
    assert s.receive(error, 0.0).reply == (ref2, error)
    # An error naming the op id refuses the op, not a request.
    refused = Error(code="locked", message="held", ref=op_id)
    step = s.receive(refused, 0.0)
    assert step.refused == [(op_id, refused)] and step.reply is None and op_id not in s.unacked


def test_op_ids_increase_and_a_chosen_op_id_moves_the_counter():
    s = session()
    assert s.write([["set", "a", b"1"]])[0] == 1
    op_id, event = s.write([["set", "b", b"2"]], op_id=10)
    assert op_id == 10 and event == Set(op_id=10, key="b", value=b"2", seen=0)
    op_id, event = s.write([["delete", "c"]])
    assert op_id == 11 and event == Delete(op_id=11, key="c", seen=0)
    op_id, event = s.write([["set", "d", b""], ["delete", "e"]])
    assert event == Batch(op_id=12, ops=[["set", "d", b""], ["delete", "e"]], seen=0)
    assert list(s.unacked) == [1, 10, 11, 12]
    assert s.reserve_op_id() == 13 and s.write([["delete", "f"]])[0] == 14
    event_op, _ = s.room_event(b"hi")
    assert event_op == 15 and 15 not in s.unacked  # relayed, never resent


def test_ping_is_answered():
    s = session()
    assert s.receive(Ping(nonce=2**63 - 1), 0.0).send == [Pong(nonce=2**63 - 1)]


# ---- acks at their position, and the convergence rule -----------------------------------------------


def test_own_op_enters_the_mirror_at_its_ack_after_everything_ordered_before_it():
    s = session()
    joined_room(s, seq=4, items=[("k", b"old")])
    op_id, _ = s.write([["set", "k", b"mine"]])
    assert s.state == {"k": b"old"}  # the mirror is the room at s.seq
    step = s.receive(applied(5, "k", b"theirs"), 0.0)
    assert step.deliver and step.view == []  # held back: our edit is ordered after it
    assert s.state == {"k": b"theirs"} and s.edits.held == {"k": (5, b"theirs")}
    step = s.receive(Ack(op_id=op_id, seq=6), 0.0)
    assert step.acked == (op_id, 6) and step.view == []  # the held value was older than ours
    assert s.state == {"k": b"mine"} and s.seq == 6 and not s.unacked
    assert s.edits.pending == {} and s.edits.held == {}
    step = s.receive(applied(7, "k", None), 0.0)
    assert step.view == [("k", None)] and s.state == {}


def test_only_the_latest_own_edit_of_a_key_releases_it():
    s = session()
    joined_room(s)
    first, _ = s.write([["set", "k", b"1"]])
    second, _ = s.write([["set", "k", b"2"], ["set", "j", b"x"]])
    s.receive(applied(1, "k", b"other"), 0.0)
    s.receive(Ack(op_id=first, seq=2), 0.0)
    assert s.edits.pending == {"k": second, "j": second}  # still held by the second edit
    assert s.receive(applied(3, "k", b"later"), 0.0).view == []
    assert s.receive(Ack(op_id=second, seq=4), 0.0).view == []
    assert s.state == {"k": b"2", "j": b"x"}


def test_a_refused_op_releases_the_room_value_it_held_back():
    s = session(failover=False)
    joined_room(s)
    op_id, _ = s.write([["set", "k", b"mine"]])
    s.receive(applied(1, "k", b"theirs"), 0.0)
    error = Error(code="locked", message="k is locked", ref=op_id)
    step = s.receive(error, 0.0)
    assert step.refused == [(op_id, error)] and step.view == [("k", b"theirs")]
    assert s.state == {"k": b"theirs"} and not s.unacked


# ---- resume -----------------------------------------------------------------------------------------


def test_resume_plan_joins_since_our_seq_and_resends_unacked_ops_under_their_op_ids_in_order():
    s = session()
    joined_room(s, seq=9)
    s.receive(applied(10, "x", b"1"), 0.0)
    ops = {i: s.write([["set", f"k{i}", b"v"]])[0] for i in range(3)}
    s.receive(Ack(op_id=ops[1], seq=11), 0.0)
    ref, _ = s.request(lambda ref: ListRooms(ref=ref))
    event_op, _ = s.room_event(b"e")
    assert s.connection_lost("reset", 1.0) == [ref, event_op]  # not replayed: they fail
    s.connecting(B)
    s.receive(welcome(), 1.0)
    plan = s.resume_plan()
    join = plan[0]
    assert isinstance(join, JoinRoom) and (join.room, join.password, join.since) == ("r", "pw", 11)
    assert join.ref >= REF_BASE and join.ref != ref
    # Each with the seq it was made from (10), although the session has seen 11 since.
    assert plan[1:] == [
        Set(op_id=ops[0], key="k0", value=b"v", seen=10),
        Set(op_id=ops[2], key="k2", value=b"v", seen=10),
    ]
    assert event_op not in [getattr(e, "op_id", None) for e in plan]
    # Resumed: the tail comes as usual; the resent ops are acked at their place.
    s.receive(Joined(room="r", seq=11, mode="resume", key_count=3, ref=join.ref), 1.0)
    s.receive(Ack(op_id=ops[0], seq=12), 1.0)
    assert s.receive(Ack(op_id=ops[0], seq=12), 1.0).acked == (ops[0], 12)  # a duplicate ack is harmless
    s.receive(Ack(op_id=ops[2], seq=13), 1.0)
    assert s.seq == 13 and not s.unacked
    assert s.state == {"x": b"1", "k0": b"v", "k1": b"v", "k2": b"v"}


def test_a_resume_that_became_a_snapshot_keeps_newer_room_values_and_skips_duplicate_acks():
    s = session()
    joined_room(s, seq=2, items=[("a", b"1"), ("gone", b"1")])
    committed, _ = s.write([["set", "a", b"mine"]])  # committed at 3, ack lost with the connection
    lost, _ = s.write([["set", "b", b"mine"]])  # never reached the server
    s.connection_lost("reset", 0.0)
    s.connecting(B)
    s.receive(welcome(), 0.0)
    join = s.resume_plan()[0]
    s.receive(Joined(room="r", seq=8, mode="snapshot", key_count=1, ref=join.ref), 0.0)
    step = s.receive(SnapshotChunk(room="r", items=[["a", b"newer"], ["c", b"1"]]), 0.0)
    assert step.view == [("c", b"1")]  # "a" is held: we still have an edit of it in flight
    step = s.receive(SnapshotEnd(room="r", seq=8), 0.0)
    assert step.snapshot_end == 8 and step.view_keep == {"a", "b", "c"}  # "gone" was deleted meanwhile
    assert s.state == {"a": b"newer", "c": b"1"}
    step = s.receive(Ack(op_id=committed, seq=3), 0.0)  # its original seq, below the snapshot's
    assert step.view == [("a", b"newer")] and s.state["a"] == b"newer" and s.seq == 8
    step = s.receive(Ack(op_id=lost, seq=9), 0.0)
    assert step.view == [] and s.state == {"a": b"newer", "b": b"mine", "c": b"1"}


def test_a_connection_lost_mid_snapshot_resumes_with_a_fresh_snapshot():
    s = session()
    s.receive(welcome(), 0.0)
    ref, _ = s.join("r")
    s.receive(Joined(room="r", seq=5, mode="snapshot", key_count=2, ref=ref), 0.0)
    s.receive(SnapshotChunk(room="r", items=[["a", b"1"]]), 0.0)
    s.connection_lost("reset", 0.0)
    s.receive(welcome(), 0.0)
    (join,) = s.resume_plan()
    assert join.since is None and join.password is None


def test_leaving_and_a_deleted_room_stop_resuming():
    s = session()
    joined_room(s)
    ref, _ = s.leave()
    assert s.receive(Left(room="r", ref=ref), 0.0).reply is not None and s.room is None
    assert s.resume_plan() == []
    joined_room(s)
    assert s.receive(RoomDeleted(room="r"), 0.0).deliver and s.room is None


def test_a_resume_refused_for_good_refuses_the_unacked_ops():
    s = session()
    joined_room(s)
    op_id, _ = s.write([["set", "k", b"v"]])
    s.connection_lost("reset", 0.0)
    s.receive(welcome(), 0.0)
    join = s.resume_plan()[0]
    error = Error(code="no_such_room", message="gone", ref=join.ref)
    step = s.receive(error, 0.0)
    assert step.failover is None and step.refused == [(op_id, error)] and s.room is None


# ---- failover ---------------------------------------------------------------------------------------


def test_failover_order_follows_welcome_nodes_skipping_the_failed_node_and_wrapping():
    s = session(addresses=[B])
    s.receive(welcome(nodes=["10.0.0.1:1", "10.0.0.2:2", "[::1]:4", "10.0.0.3:3", "bad", ""]), 0.0)
    assert s.failover_order() == [("10.0.0.1", 1), ("::1", 4), C, B]
    s.connecting(("::1", 4))
    assert s.failover_order() == [C, B, A, ("::1", 4)]
    assert parse_address(" [::1]:12800 ") == ("::1", 12800)
    with pytest.raises(ValueError):
        parse_address("host")


@pytest.mark.parametrize("ref_kind", ["op", "resume"])
def test_unavailable_leaves_the_node_and_keeps_the_op(ref_kind):
    s = session()
    joined_room(s)
    op_id, _ = s.write([["set", "k", b"v"]])
    ref = op_id
    if ref_kind == "resume":
        s.connection_lost("reset", 0.0)
        s.receive(welcome(), 0.0)
        ref = s.resume_plan()[0].ref
    step = s.receive(Error(code="unavailable", message="no quorum", ref=ref), 0.0)
    assert step.failover == "unavailable: no quorum" and step.refused == [] and step.fatal is None
    assert s.unacked == {op_id: [["set", "k", b"v"]]} and s.room == "r"


def test_without_failover_an_op_answered_unavailable_stays_unacked_and_its_late_ack_applies_it():
    """``unavailable`` leaves the outcome unknown (the leader may have committed it): the caller hears of
    the error, but the op is kept, so that its ack, if it comes, enters it at its place."""
    s = session(failover=False)
    joined_room(s)
    op_id, _ = s.write([["set", "k", b"v"]])
    error = Error(code="unavailable", message="leader changed before answering", ref=op_id)
    step = s.receive(error, 0.0)
    assert step.failover is None and step.refused == [] and step.unknown == [(op_id, error)]
    assert s.unacked == {op_id: [["set", "k", b"v"]]}
    s.receive(Applied(room="r", seq=1, client_id="b" * 32, op_id=7, ops=[["set", "k", b"other"]]), 0.0)
    step = s.receive(Ack(op_id=op_id, seq=2), 0.0)
    assert step.acked == (op_id, 2) and s.state == {"k": b"v"} and s.unacked == {}
    # Another refusal still drops the op.
    op_id, _ = s.write([["set", "j", b"w"]])
    error = Error(code="bad_message", message="no", ref=op_id)
    step = s.receive(error, 0.0)
    assert step.refused == [(op_id, error)] and s.unacked == {}


def test_unavailable_to_a_request_answers_it_and_leaves_the_node():
    s = session()
    s.receive(welcome(), 0.0)
    ref, _ = s.request(lambda ref: ListRooms(ref=ref))
    error = Error(code="unavailable", message="no quorum", ref=ref)
    step = s.receive(error, 0.0)
    assert step.reply == (ref, error) and step.failover is not None


@pytest.mark.parametrize(
    ("code", "failover", "leaves"),
    [
        ("slow_consumer", True, True),
        ("kicked", True, False),
        ("auth_failed", True, False),
        ("x", False, False),
    ],
)
def test_fatal_errors_leave_the_node_unless_no_node_can_help(code, failover, leaves):
    s = session(failover=failover)
    s.receive(welcome(), 0.0)
    step = s.receive(Error(code=code, message="", fatal=True), 0.0)
    assert (step.failover is not None) == leaves and (step.fatal is not None) == (not leaves)


def test_silence_for_three_heartbeats_means_the_server_is_dead():
    s = session()
    assert s.silence_deadline() is None  # not connected yet
    s.receive(welcome(heartbeat=2.0), 100.0)
    assert s.silence_deadline() == 106.0
    s.receive(Ping(nonce=1), 104.0)
    assert s.silence_deadline() == 110.0
    s.connection_lost("silent", 110.0)
    assert s.silence_deadline() is None
    assert session(failover=False).silence_deadline() is None


def test_the_failover_clock_runs_until_a_node_lets_us_resume():
    s = session(timeout=10.0)
    joined_room(s)
    op_id, _ = s.write([["set", "k", b"v"]])
    s.receive(Error(code="unavailable", message="", ref=op_id), 0.0)
    s.connection_lost("unavailable", 1.0)
    for now in (2.0, 5.0):  # nodes that welcome us but cannot resume do not reset the clock
        s.receive(welcome(), now)
        join = s.resume_plan()[0]
        s.receive(Joined(room="r", seq=0, mode="resume", key_count=0, ref=join.ref), now)
        assert s.receive(Error(code="unavailable", message="", ref=op_id), now).failover
        s.connection_lost("unavailable", now)
    assert not s.gave_up(10.9) and s.gave_up(11.0)
    s.receive(Ack(op_id=op_id, seq=1), 11.0)
    assert not s.gave_up(100.0) and s.reconnects == 2


def test_without_a_room_the_welcome_ends_the_outage():
    s = session(timeout=1.0)
    s.receive(welcome(), 0.0)
    s.connection_lost("reset", 0.0)
    s.receive(welcome(), 0.5)
    assert not s.gave_up(5.0)


def test_export_items_are_not_taken_for_the_reply():
    s = session()
    ref, _ = s.request(lambda ref: ListRooms(ref=ref))
    assert s.receive(ExportItems(room="r", items=[], ref=ref), 0.0).deliver
    assert s.receive(ExportBlob(hash=hashlib.sha256(b"x").digest(), data=b"x", ref=ref), 0.0).deliver
    assert s.receive(RoomCreated(room="r", ref=ref), 0.0).reply is not None


def test_retry_codes_keep_the_keys_pending_and_resend_only_what_was_not_edited_again():
    s = session(failover=False)
    s.retry_codes = frozenset({"rate_limited"})
    joined_room(s)
    first, _ = s.write([["set", "a", b"1"], ["set", "b", b"1"]])
    later, _ = s.write([["set", "b", b"2"]])
    s.receive(applied(1, "a", b"theirs"), 0.0)
    step = s.receive(Error(code="rate_limited", message="slow down", ref=first), 0.0)
    assert step.refused and step.view == []  # our value stays shown, "a" stays shielded
    assert s.edits.pending == {"a": first, "b": later}
    ((retried, event),) = s.retry_writes()
    # Made from seq 0: the retry says so, although "theirs" (seq 1) arrived since.
    assert retried > later and event == Set(op_id=retried, key="a", value=b"1", seen=0)
    assert s.edits.pending["a"] == retried and s.retry_writes() == []
    assert s.receive(Ack(op_id=retried, seq=2), 0.0).view == []  # the held value was older


def test_batches_only_when_asked_and_in_the_resume_plan_too():
    hello = Hello(protocol=PROTOCOL_VERSION, client_name="ana", session="s" * 32)
    s = ClientSession(hello, [A], failover=True, compact_ops=False)
    joined_room(s)
    op_id, event = s.write([["set", "k", b"v"]])
    assert event == Batch(op_id=op_id, ops=[["set", "k", b"v"]], seen=0)
    s.connection_lost("reset", 0.0)
    assert s.resume_plan()[1:] == [event]


def test_resumed_and_room_lost_are_reported():
    s = session()
    joined_room(s, seq=3)
    s.write([["set", "k", b"v"]])
    s.connection_lost("reset", 0.0)
    join = s.resume_plan()[0]
    resumed = Joined(room="r", seq=3, mode="resume", key_count=0, ref=join.ref)
    assert s.receive(resumed, 0.0).resumed == resumed
    step = s.receive(RoomDeleted(room="r"), 0.0)
    assert step.room_lost and s.room is None and s.seq == 0 and not s.unacked and not s.edits.pending
    # The server still answers the op it had: whoever waits for it hears of it.
    error = Error(code="no_such_room", message="gone", ref=1)
    step = s.receive(error, 0.0)
    assert step.refused == [(1, error)] and step.deliver


def test_nodes_advance_round_the_list():
    from protocol.nodes import Nodes

    nodes = Nodes([A, B, A])
    nodes.learn(["10.0.0.3:3", "10.0.0.2:2"])
    assert [nodes.advance() for _ in range(4)] == [B, C, A, B]


def test_an_ack_for_an_op_sent_before_leaving_does_not_move_the_new_rooms_seq():
    s = session(failover=False)
    joined_room(s, seq=50)
    op_id, _ = s.write([["set", "k", b"v"]])
    ref, _ = s.leave()
    s.receive(Left(room="r", ref=ref), 0.0)
    ref, _ = s.join("q")
    s.receive(Joined(room="q", seq=3, mode="snapshot", key_count=0, ref=ref), 0.0)
    s.receive(SnapshotEnd(room="q", seq=3), 0.0)
    step = s.receive(Ack(op_id=op_id, seq=51), 0.0)  # room r's seq, answered after `left`
    assert step.acked == (op_id, 51) and s.seq == 3 and s.state == {}
