"""Override notices, sans-IO: which of our committed values another client replaced without having seen them
(protocol/convergence.py ``Overrides``, through the client session as ``Step.overridden``)."""

from __future__ import annotations

from protocol import (
    PROTOCOL_VERSION,
    Ack,
    Applied,
    Hello,
    Joined,
    Left,
    Overridden,
    SnapshotChunk,
    SnapshotEnd,
)
from protocol.client_session import ClientSession
from protocol.convergence import Overrides

I63 = 2**63 - 1
BEN, CLEO = "b" * 32, "c" * 32


def joined(seq: int = 0) -> ClientSession:
    s = ClientSession(Hello(protocol=PROTOCOL_VERSION, client_name="ana", session="a" * 32), [("h", 1)])
    ref, _ = s.join("r")
    s.receive(Joined(room="r", seq=seq, mode="snapshot", key_count=0, ref=ref), 0.0)
    s.receive(SnapshotChunk(room="r", items=[]), 0.0)
    s.receive(SnapshotEnd(room="r", seq=seq), 0.0)
    return s


def theirs(seq: int, key: str, seen: int | None, value: bytes | None = b"t", who: str = BEN) -> Applied:
    op = ["set", key, value] if value is not None else ["delete", key]
    return Applied(room="r", seq=seq, client_id=who, op_id=seq, ops=[op], seen=seen)


def ours(s: ClientSession, key: str, seq: int) -> None:
    """Our edit of ``key``, committed at ``seq``."""
    op_id, event = s.write([["set", key, b"mine"]])
    assert event.seen == s.seq  # made from what we had
    s.receive(Ack(op_id=op_id, seq=seq), 0.0)


def test_a_value_made_without_seeing_ours_overrides_it_once():
    s = joined()
    ours(s, "obj/1/location", 1)
    step = s.receive(theirs(2, "obj/1/location", seen=0), 0.0)
    assert step.overridden == [Overridden("obj/1/location", 1, 2, BEN, 2, b"t")]
    assert step.view == [("obj/1/location", b"t")]  # server order decides: theirs is applied
    assert s.receive(theirs(3, "obj/1/location", seen=0, who=CLEO), 0.0).overridden == []  # not ours now


def test_turn_taking_is_not_an_override():
    """They had seen our value (seen at or above our seq) when they changed it."""
    s = joined()
    ours(s, "k", 5)
    assert s.receive(theirs(6, "k", seen=5), 0.0).overridden == []
    ours(s, "k", 7)
    assert s.receive(theirs(9, "k", seen=I63), 0.0).overridden == []


def test_the_boundary_is_our_seq():
    s = joined(seq=10)
    ours(s, "k", 11)
    assert s.receive(theirs(12, "k", seen=10), 0.0).overridden[0].our_seq == 11  # seen one below ours
    ours(s, "k", 13)
    assert s.receive(theirs(14, "k", seen=13), 0.0).overridden == []  # seen exactly ours


def test_the_winner_has_no_notice():
    """Their edit arrives while ours is unacknowledged: it was ordered first, ours replaced it."""
    s = joined()
    op_id, _ = s.write([["set", "k", b"mine"]])
    step = s.receive(theirs(1, "k", seen=0), 0.0)
    assert step.overridden == [] and step.view == []
    assert s.receive(Ack(op_id=op_id, seq=2), 0.0).overridden == []


def test_our_newer_pending_edit_wins_so_no_notice():
    s = joined()
    ours(s, "k", 1)
    s.write([["set", "k", b"again"]])
    assert s.receive(theirs(2, "k", seen=0), 0.0).overridden == []


def test_only_our_keys_of_their_batch_and_a_delete_counts():
    s = joined()
    ours(s, "a", 1)
    ours(s, "b", 2)
    batch = Applied(
        room="r",
        seq=3,
        client_id=BEN,
        op_id=9,
        ops=[["delete", "a"], ["set", "x", b"1"], ["set", "b", b"2"]],
        seen=0,
    )
    step = s.receive(batch, 0.0)
    assert step.overridden == [Overridden("a", 1, 3, BEN, 9, None), Overridden("b", 2, 3, BEN, 9, b"2")]


def test_without_seen_nothing_is_reported():
    """An older client sends no ``seen``: whether it saw ours is unknown, so no notice."""
    s = joined()
    ours(s, "k", 1)
    assert s.receive(theirs(2, "k", seen=None), 0.0).overridden == []


def test_three_artists_each_loser_hears_of_their_own_winner():
    s = joined()
    ours(s, "k", 1)
    assert [o.client_id for o in s.receive(theirs(2, "k", seen=0), 0.0).overridden] == [BEN]
    assert s.receive(theirs(3, "k", seen=0, who=CLEO), 0.0).overridden == []


def test_leaving_or_a_fresh_join_forgets_our_values():
    s = joined()
    ours(s, "k", 1)
    ref, _ = s.leave()
    s.receive(Left(room="r", ref=ref), 0.0)
    assert s.overrides.ours == {}
    s = joined()
    ours(s, "k", 1)
    ref, _ = s.join("r")
    s.receive(Joined(room="r", seq=5, mode="snapshot", key_count=0, ref=ref), 0.0)
    assert s.overrides.ours == {}


def test_an_applied_of_another_room_or_during_a_snapshot_is_not_looked_at():
    s = joined()
    ours(s, "k", 1)
    other = Applied(room="other", seq=2, client_id=BEN, op_id=2, ops=[["set", "k", b"t"]], seen=0)
    assert s.receive(other, 0.0).overridden == []
    assert s.overrides.ours == {"k": 1}


def test_seq_not_after_ours_is_never_an_override():
    """Values ordered before our edit (a held value, a resume) did not replace it."""
    o = Overrides()
    o.committed(5, [["set", "k", b""]])
    assert o.remote(5, BEN, 1, [["set", "k", b""]], 0, {}) == []
    o.committed(5, [["set", "k", b""]])
    assert o.remote(I63, BEN, I63, [["set", "k", b""]], 0, {})[0].seq == I63
