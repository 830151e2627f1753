"""The ack-placement checker itself: it accepts right streams and names every kind of misplaced ack."""

from __future__ import annotations

from ackcheck import check_stream

from protocol import Ack, Applied, Joined, SnapshotEnd


def joined(seq: int, mode: str = "snapshot") -> Joined:
    return Joined(room="r", seq=seq, mode=mode, key_count=0)


def applied(seq: int) -> Applied:
    return Applied(room="r", seq=seq, client_id="other", op_id=seq, ops=[["set", "k", b"v"]])


def test_a_stream_with_acks_in_place_is_right():
    stream = [joined(3), SnapshotEnd(room="r", seq=3), applied(4), Ack(op_id=1, seq=5), applied(6)]
    assert check_stream(stream, sent=[1]) == []
    resumed = [joined(5, "resume"), Ack(op_id=1, seq=6), Ack(op_id=2, seq=7), applied(8)]
    assert check_stream(resumed, sent=[1, 2]) == []


def test_an_ack_after_a_later_applied_is_caught():
    # The ack of seq 5 comes after the applied of seq 6: the client would apply its own value last.
    stream = [joined(3), SnapshotEnd(room="r", seq=3), applied(4), applied(6), Ack(op_id=1, seq=5)]
    problems = check_stream(stream, sent=[1])
    assert problems and "seq 6 where the stream is at seq 4" in problems[0]


def test_an_ack_before_earlier_operations_is_caught():
    stream = [joined(3), SnapshotEnd(room="r", seq=3), Ack(op_id=1, seq=5), applied(4)]
    assert check_stream(stream, sent=[1]) == ["frame 2: ack of op 1 at seq 5 where the stream is at seq 3"]


def test_a_second_ack_of_one_operation_is_caught():
    # A retry of a committed op acked again after its ack already came in place (resume tail, fan-out).
    stream = [joined(0, "resume"), Ack(op_id=1, seq=1), applied(2), Ack(op_id=1, seq=1)]
    problems = check_stream(stream, sent=[1])
    assert problems == ["frame 3: second ack of op 1 (seq 1; first at 1)"]


def test_an_ack_the_stream_has_passed_is_caught_unless_before_the_join():
    # A retry of an op inside the snapshot (or the resumed state) is answered after it: allowed, once.
    inside = [joined(10), SnapshotEnd(room="r", seq=10), Ack(op_id=1, seq=7), applied(11)]
    assert check_stream(inside, sent=[1]) == []
    resumed = [joined(10, "resume"), applied(11), Ack(op_id=1, seq=10)]
    assert check_stream(resumed, sent=[1]) == []
    again = [*inside, Ack(op_id=1, seq=7)]
    assert check_stream(again, sent=[1]) == ["frame 4: second ack of op 1 (seq 7; first at 7)"]
    # Past the join's seq it must be in place.
    beyond = [joined(10), SnapshotEnd(room="r", seq=10), applied(11), applied(12), Ack(op_id=1, seq=11)]
    assert check_stream(beyond, sent=[1]) == ["frame 4: ack of op 1 at seq 11 where the stream is at seq 12"]


def test_gaps_repeats_and_foreign_acks_are_caught():
    assert check_stream([joined(0, "resume"), applied(1), applied(3)]) != []
    assert check_stream([joined(0, "resume"), applied(1), applied(1)]) != []
    assert check_stream([joined(0, "resume"), Ack(op_id=9, seq=1)], sent=[1]) == [
        "frame 1: ack of op 9, which this client never sent"
    ]
    assert check_stream([applied(1)]) == ["frame 0: applied seq 1 before any join"]
