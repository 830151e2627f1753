"""Viewers go after the artists: a room queues an operation to its artists first, and the viewers' writer
(DirectWrites) runs after the artists' writer tasks, so their copies of an operation never wait behind
hundreds of viewer sends. The interleavings are forced with events inside one trio run: trio runs the tasks
woken in one step in either order, so each case is repeated until both orders have surely occurred."""

from __future__ import annotations

import hashlib

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from broadcaster.direct_writes import SLICE, DirectWrites
from broadcaster.rooms import VIEWER_KIND, Members, Room
from protocol import Applied
from protocol.events import Sender, event_from_body
from protocol.framing import HEADER, unpack_body
from protocol.versions import APPLIED_BLOBS_SINCE

ROUNDS = 40  # a wrong order survives 40 coin flips with probability 2**-40


class Viewer:
    def __init__(self, name: str, order: list[str], on_write=None):
        self.name, self.order, self.on_write = name, order, on_write

    def write_pending(self) -> None:
        self.order.append(self.name)
        if self.on_write is not None:
            self.on_write()


async def _artist_writer(
    woken: trio.Event, order: list[str], name: str, task_status=trio.TASK_STATUS_IGNORED
):
    """An artist session's writer task, waiting for its queue as Session._writer does."""
    task_status.started()
    await woken.wait()
    order.append(name)


async def _rounds(one_round) -> None:
    """``one_round(direct, nursery)`` ROUNDS times against one running DirectWrites."""
    direct = DirectWrites()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(direct.run)
        for _ in range(ROUNDS):
            await one_round(direct, nursery)
            await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()


async def test_the_artists_writer_sends_before_the_viewers_of_the_same_fan_out() -> None:
    async def one_round(direct: DirectWrites, nursery: trio.Nursery) -> None:
        order: list[str] = []
        woken = trio.Event()
        await nursery.start(_artist_writer, woken, order, "artist")
        # One fan-out step, no yield inside: the artist's frame is queued, three viewers gather theirs.
        woken.set()
        for i in range(3):
            direct.add(Viewer(f"viewer{i}", order))
        await trio.testing.wait_all_tasks_blocked()
        assert order == ["artist", "viewer0", "viewer1", "viewer2"]

    await _rounds(one_round)


async def test_an_operation_arriving_during_a_long_viewer_fan_out_reaches_the_artists_first() -> None:
    async def one_round(direct: DirectWrites, nursery: trio.Nursery) -> None:
        order: list[str] = []
        next_op = trio.Event()
        await nursery.start(_artist_writer, next_op, order, "next op to artist")
        viewers = [Viewer(f"viewer{i}", order) for i in range(4 * SLICE)]
        viewers[0].on_write = next_op.set  # the next operation commits while viewers are being written
        for viewer in viewers:
            direct.add(viewer)
        await trio.testing.wait_all_tasks_blocked()
        assert len(order) == 4 * SLICE + 1
        assert order.index("next op to artist") <= SLICE  # after at most one slice, not all 256
        assert [name for name in order if name.startswith("viewer")] == [v.name for v in viewers]

    await _rounds(one_round)


class Recording:
    def __init__(self, name: str, kind: str, order: list[str]):
        self.name, self.kind, self.order, self.room, self.protocol = name, kind, order, None, 3

    def info(self) -> dict:
        return {"name": self.name}

    def send_frame(self, frame: bytes) -> None:
        self.order.append(self.name)


def test_a_room_queues_an_operation_to_its_artists_before_its_viewers_whatever_the_join_order() -> None:
    order: list[str] = []
    room = Room("r")
    for name, kind in (("v1", VIEWER_KIND), ("ana", "blender"), ("v2", VIEWER_KIND), ("ben", "blender")):
        room.members[name] = Recording(name, kind, order)
    room.fan_out(7, {"c": "cleo", "o": 1, "ops": [["set", "k", b"v"]]})
    assert order == ["ana", "ben", "v1", "v2"]
    order.clear()
    room.send(b"frame", exclude=room.members["ana"])
    assert order == ["ben", "v1", "v2"]


class DeferringViewer(Recording):
    """A viewer that defers fan-out copies to DirectWrites and, like WebSocketSession.send_frame, has the
    deferred frames queued before a frame of its own."""

    def __init__(self, name: str, order: list[str], direct: DirectWrites):
        super().__init__(name, VIEWER_KIND, order)
        self.direct = direct
        self.frames: list[bytes] = []

    def defer_frame(self, frame: bytes, viewers: list) -> None:
        self.direct.defer(frame, viewers)

    def send_frame(self, frame: bytes) -> None:
        self.direct.queue_deferred(self)
        self.order.append(self.name)
        self.frames.append(frame)

    def write_pending(self) -> None:
        pass


async def test_viewers_copies_are_queued_by_the_viewers_writer_and_keep_their_order() -> None:
    direct, order = DirectWrites(), []
    room = Room("r")
    viewers = [DeferringViewer(f"v{i}", order, direct) for i in range(3)]
    for name, member in (("v0", viewers[0]), ("ana", Recording("ana", "blender", order)), ("v1", viewers[1])):
        room.members[name] = member
    room.members["v2"] = viewers[2]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(direct.run)
        await trio.testing.wait_all_tasks_blocked()
        room.fan_out(7, {"c": "cleo", "o": 1, "ops": [["set", "k", b"v"]]})
        assert order == ["ana"]  # in the fan-out step: the artist only
        await trio.testing.wait_all_tasks_blocked()
        assert order == ["ana", "v0", "v1", "v2"]
        # A frame of a viewer's own right after a deferred one goes after it.
        order.clear()
        room.fan_out(8, {"c": "cleo", "o": 2, "ops": [["set", "k", b"w"]]})
        viewers[1].send_frame(b"presence")
        assert order == ["ana", "v1", "v1"]  # its deferred copy, then its own; the others' wait their turn
        assert viewers[1].frames[-1] == b"presence" and viewers[1].frames[-2] != b"presence"
        await trio.testing.wait_all_tasks_blocked()
        assert order == ["ana", "v1", "v1", "v0", "v2"]  # and it does not get the operation twice
        assert [len(v.frames) for v in viewers] == [2, 3, 2]
        assert [f for v in viewers for f in v.frames].count(b"presence") == 1
        nursery.cancel_scope.cancel()


class GatheringViewer:
    """A viewer as WebSocketSession gathers: deferred frames queued before its own, pending bytes added to
    DirectWrites when the first comes, and each write_pending one send of what was gathered."""

    def __init__(self, name: str, direct: DirectWrites, on_frame=None):
        self.name, self.direct, self.on_frame = name, direct, on_frame
        self.pending: list[bytes] = []
        self.sends: list[list[bytes]] = []

    def send_frame(self, frame: bytes) -> None:
        self.direct.queue_deferred(self)
        if not self.pending:
            self.direct.add(self)
        self.pending.append(frame)
        if self.on_frame is not None:
            self.on_frame()

    def write_pending(self) -> None:
        if self.pending:
            self.sends.append(self.pending)
            self.pending = []

    def frames(self) -> list[bytes]:
        return [frame for send in self.sends for frame in send] + self.pending


async def test_a_frame_for_many_viewers_is_queued_a_slice_at_a_time_and_an_operation_goes_between() -> None:
    # Queueing one frame to 500 viewers is a couple of milliseconds: the next operation's artists must not
    # wait for all of it, only for the slice under way.
    async def one_round(direct: DirectWrites, nursery: trio.Nursery) -> None:
        order: list[str] = []
        next_op = trio.Event()
        await nursery.start(_artist_writer, next_op, order, "next op to artist")
        viewers = [GatheringViewer(f"v{i}", direct) for i in range(4 * SLICE)]
        for viewer in viewers:
            viewer.on_frame = lambda name=viewer.name: order.append(name)
        viewers[0].on_frame = lambda: (order.append("v0"), next_op.set())  # it commits as the first is queued
        direct.defer(b"op", tuple(viewers))
        await trio.testing.wait_all_tasks_blocked()
        assert order.index("next op to artist") <= SLICE, order.index("next op to artist")
        assert [name for name in order if name != "next op to artist"] == [v.name for v in viewers]
        assert all(v.sends == [[b"op"]] for v in viewers)

    await _rounds(one_round)


async def test_frames_deferred_together_reach_each_viewer_in_order_in_one_send() -> None:
    direct = DirectWrites()
    viewers = tuple(GatheringViewer(f"v{i}", direct) for i in range(2 * SLICE + 3))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(direct.run)
        await trio.testing.wait_all_tasks_blocked()
        direct.defer(b"op1", viewers)  # two operations committed in one step
        direct.defer(b"op2", viewers)
        direct.defer(b"other", viewers[:2])  # another room's: its own pass, after them
        await trio.testing.wait_all_tasks_blocked()
        assert all(v.sends == [[b"op1", b"op2"]] for v in viewers[2:])
        assert all(v.frames() == [b"op1", b"op2", b"other"] for v in viewers[:2])
        nursery.cancel_scope.cancel()


async def test_a_viewers_own_frame_between_two_slices_comes_after_every_frame_deferred_before_it() -> None:
    async def one_round(direct: DirectWrites, nursery: trio.Nursery) -> None:
        viewers = tuple(GatheringViewer(f"v{i}", direct) for i in range(3 * SLICE))
        last = viewers[-1]
        between = trio.Event()

        async def own_frame() -> None:  # its reader answering a ping while the slices go on
            await between.wait()
            last.send_frame(b"pong")

        nursery.start_soon(own_frame)
        await trio.testing.wait_all_tasks_blocked()
        viewers[0].on_frame = between.set
        direct.defer(b"op1", viewers)
        direct.defer(b"op2", viewers)
        await trio.testing.wait_all_tasks_blocked()
        assert last.frames() == [b"op1", b"op2", b"pong"]
        assert all(v.frames() == [b"op1", b"op2"] for v in viewers[:-1])

    await _rounds(one_round)


async def test_a_viewers_own_frame_queues_only_the_frames_it_is_due_and_never_one_twice() -> None:
    # Queueing everything deferred to every viewer whenever one answered a ping was a step of a
    # millisecond or two: a viewer's own frame now has only its own deferred frames queued before it.
    for speaks_in in ("before the writer runs", "between two slices"):
        direct = DirectWrites()
        viewers = tuple(GatheringViewer(f"v{i}", direct) for i in range(3 * SLICE))
        some = viewers[SLICE - 2 : SLICE + 2]  # another room's frame, to a few of the same sessions
        speaker = viewers[SLICE - 1] if speaks_in == "between two slices" else viewers[SLICE]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(direct.run)
            await trio.testing.wait_all_tasks_blocked()
            direct.defer(b"op1", viewers)
            direct.defer(b"op2", viewers)
            direct.defer(b"other", some)
            if speaks_in == "before the writer runs":
                speaker.send_frame(b"pong")
                assert not any(v.frames() for v in viewers if v is not speaker)  # its frames only
            else:  # its reader, as the second slice is queued: op1 and op2 reached it, `other` did not
                second_slice = trio.Event()
                viewers[SLICE + 5].on_frame = second_slice.set

                async def answer(
                    speaker: GatheringViewer = speaker, event: trio.Event = second_slice
                ) -> None:
                    await event.wait()
                    speaker.send_frame(b"pong")

                nursery.start_soon(answer)
            await trio.testing.wait_all_tasks_blocked()
            assert speaker.frames() == [b"op1", b"op2", b"other", b"pong"], speaks_in
            for viewer in viewers:
                if viewer is not speaker:
                    assert viewer.frames() == [b"op1", b"op2"] + ([b"other"] if viewer in some else [])
            nursery.cancel_scope.cancel()


class Sent(Recording):
    """A member that keeps the frames it is sent, speaking protocol ``protocol``."""

    def __init__(self, name: str, kind: str, protocol: int):
        super().__init__(name, kind, [])
        self.protocol = protocol
        self.frames: list[bytes] = []

    def send_frame(self, frame: bytes) -> None:
        self.frames.append(frame)


def test_an_operation_with_pushed_blobs_reaches_each_member_as_its_protocol_reads_it() -> None:
    room = Room("r")
    members = [
        Sent("ana", "blender", APPLIED_BLOBS_SINCE),
        Sent("old", "blender", APPLIED_BLOBS_SINCE - 1),
        Sent("v-new", VIEWER_KIND, APPLIED_BLOBS_SINCE),
        Sent("v-old", VIEWER_KIND, APPLIED_BLOBS_SINCE - 1),
    ]
    for member in members:
        room.members[member.name] = member
    blob = [hashlib.sha256(b"data").digest(), b"data"]
    entry = {"c": "cleo-0001", "o": 1, "ops": [["set", "k", b"v"]], "p": [blob[0]]}
    room.fan_out(7, entry, lambda e: [blob])
    for name, events in ((m.name, _events(m.frames)) for m in members):
        (event,) = events
        assert isinstance(event, Applied) and event.seq == 7, name
        assert event.blobs == ([blob] if name in ("ana", "v-new") else None), name


def _events(frames: list[bytes]) -> list:
    return [event_from_body(unpack_body(f[HEADER.size :]), from_role=Sender.SERVER) for f in frames]


MEMBER_OPS = st.lists(
    st.tuples(st.sampled_from(["set", "pop", "del", "clear"]), st.sampled_from("abcd"), st.booleans()),
    max_size=30,
)


@settings(max_examples=200, deadline=None)
@given(MEMBER_OPS)
def test_a_rooms_artists_and_viewers_are_always_its_members(ops) -> None:
    members, model = Members(), {}
    for op, client_id, viewer in ops:
        if op == "set":
            member = Recording(client_id, VIEWER_KIND if viewer else "blender", [])
            model.pop(client_id, None)  # a member joining again comes last, as in Members
            members[client_id] = model[client_id] = member
        elif op == "pop":
            assert members.pop(client_id, None) is model.pop(client_id, None)
        elif op == "del" and client_id in model:
            del members[client_id]
            del model[client_id]
        elif op == "clear":
            members.clear()
            model.clear()
        assert dict(members) == model
        assert members.artists == {c: m for c, m in model.items() if m.kind != VIEWER_KIND}
        assert members.viewers == tuple(m for m in model.values() if m.kind == VIEWER_KIND)
    with pytest.raises(TypeError):
        members.update({})
    with pytest.raises(KeyError):
        members.pop("absent")
