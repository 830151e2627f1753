"""Rooms end to end over real sockets: lifecycle, ordering, late join, resume, presence."""

from __future__ import annotations

import pytest
import trio
from support import running_broadcaster, wait_for

from broadcaster.client import ServerError, connect
from protocol import Applied, ClientJoined, ClientLeft, ClientUpdated, EventRelayed, RoomsChanged


async def test_create_list_join_leave_delete(server):
    host, port = server
    async with connect(host, port, name="ana") as ana:
        await ana.create_room("shot-010", keep_open=True)
        rooms = await ana.list_rooms()
        assert [r["name"] for r in rooms] == ["shot-010"]
        assert rooms[0]["keep_open"] and not rooms[0]["locked"] and rooms[0]["users"] == 0
        joined = await ana.join("shot-010")
        assert joined.mode == "snapshot" and joined.seq == 0
        assert await ana.set("obj/1/transform", b"\x01") == 1
        assert await ana.batch([["set", "obj/2/transform", b"\x02"], ["delete", "obj/1/transform"]]) == 2
        await ana.leave()
        with pytest.raises(ServerError) as info:
            await ana.create_room("shot-010")
        assert info.value.code == "room_exists"
        await ana.delete_room("shot-010")
        assert await ana.list_rooms() == []


async def test_sender_gets_an_ack_and_the_others_the_operation(server):
    host, port = server
    async with connect(*server, name="a") as a, connect(host, port, name="b") as b:
        await a.create_room("r", keep_open=True)
        await a.join("r")
        await b.join("r")
        seq = await a.set("k", b"v")
        event = await b.receive()
        while not isinstance(event, Applied):
            event = await b.receive()
        assert (event.seq, event.client_id, event.ops) == (seq, a.client_id, [["set", "k", b"v"]])
        await trio.sleep(0.05)
        # No echo: a has nothing but presence/membership news.
        while True:
            try:
                extra = a.events.receive_nowait()
            except trio.WouldBlock:
                break
            assert not isinstance(extra, Applied)


async def test_concurrent_writers_everyone_sees_one_order(server):
    host, port = server
    clients_n, ops_n = 4, 150
    async with connect(host, port, name="c0") as c0:
        await c0.create_room("r", keep_open=True)
        clients = [c0]
        async with (
            connect(host, port, name="c1") as c1,
            connect(host, port, name="c2") as c2,
            connect(host, port, name="c3") as c3,
        ):
            clients += [c1, c2, c3]
            for client in clients:
                await client.join("r")

            async def writer(client, index):
                for i in range(ops_n):
                    # everyone writes the same few keys: the order decides the final values
                    await client.send_ops([["set", f"k{i % 7}", f"{index}:{i}".encode()]])

            async with trio.open_nursery() as nursery:
                for index, client in enumerate(clients):
                    nursery.start_soon(writer, client, index)
            total = clients_n * ops_n
            await wait_for(lambda: all(c.seq == total for c in clients))
            states = [c.state for c in clients]
            assert all(state == states[0] for state in states)
            # A late joiner gets the same state from the snapshot.
            async with connect(host, port, name="late") as late:
                joined = await late.join("r")
                assert joined.seq == total
                assert late.state == states[0]


async def test_join_during_writes_has_no_gap_and_no_duplicate(server):
    host, port = server
    async with connect(host, port, name="writer") as writer:
        await writer.create_room("r", keep_open=True)
        await writer.join("r")
        done = trio.Event()
        seen: list[int] = []

        async def write_continuously():
            for i in range(600):
                await writer.send_ops([["set", f"k{i % 50}", str(i).encode()]])
                if i % 20 == 0:
                    await trio.sleep(0)
            done.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(write_continuously)
            await trio.sleep(0.02)
            async with connect(host, port, name="late") as late:
                joined = await late.join("r")
                await done.wait()
                await wait_for(lambda: writer.seq == 600)

                async def collect():
                    while not seen or seen[-1] < 600:
                        event = await late.receive()
                        if isinstance(event, Applied):
                            seen.append(event.seq)

                with trio.fail_after(10):
                    await collect()
                assert seen == list(range(joined.seq + 1, 601))
                assert late.state == writer.state


async def test_resume_gets_the_tail_or_a_snapshot_when_it_is_gone(tmp_path):
    async with running_broadcaster(tmp_path / "d", room_tail=20) as (host, port):
        async with connect(host, port, name="w") as w:
            await w.create_room("r", keep_open=True)
            await w.join("r")
            for i in range(10):
                await w.set(f"k{i}", b"x")
            async with connect(host, port, name="reader") as reader:
                joined = await reader.join("r", since=4)
                assert (joined.mode, joined.seq) == ("resume", 4)
                await wait_for(lambda: reader.seq == 10)
                assert set(reader.state) == {f"k{i}" for i in range(4, 10)}  # only the tail after 4
            for i in range(40):
                await w.set(f"k{i % 10}", b"y")  # seq 50; tail holds 31..50
            async with connect(host, port, name="reader2") as reader:
                joined = await reader.join("r", since=4)
                assert (joined.mode, joined.seq) == ("snapshot", 50)
                assert reader.state == w.state
            async with connect(host, port, name="reader3") as reader:
                joined = await reader.join("r", since=35)
                assert joined.mode == "resume"
                await wait_for(lambda: reader.seq == 50)


async def test_room_list_updates_are_coalesced(server):
    host, port = server
    async with connect(host, port, name="watcher") as watcher, connect(host, port, name="w") as w:
        await watcher.list_rooms(subscribe=True)
        await w.create_room("r", keep_open=True)
        await w.join("r")
        for i in range(300):
            await w.send_ops([["set", f"k{i}", b"x" * 10]])
        await wait_for(lambda: w.seq == 300)
        await trio.sleep(0.6)
        updates = []
        while True:
            try:
                updates.append(watcher.events.receive_nowait())
            except trio.WouldBlock:
                break
        changes = [u for u in updates if isinstance(u, RoomsChanged)]
        assert 1 <= len(changes) <= 20  # a few per second, not one per operation
        last = [room for change in changes for room in change.updated if room["name"] == "r"][-1]
        assert last["keys"] == 300 and last["seq"] == 300 and last["bytes"] == 3000 and last["users"] == 1


async def test_presence_membership_and_events(server):
    host, port = server
    async with connect(host, port, name="ana") as ana, connect(host, port, name="ben") as ben:
        await ana.create_room("r", keep_open=True)
        await ana.join("r")
        await ana.presence(color=[1.0, 0.0, 0.0], frame=3)
        joined = await ben.join("r")
        assert [(c["name"], c.get("frame")) for c in joined.clients] == [("ana", 3)]
        event = await ana.receive()
        assert isinstance(event, ClientJoined) and event.client["name"] == "ben"
        for frame in range(100):
            await ben.presence(frame=frame)
        updates = []
        with trio.move_on_after(0.5):
            while True:
                event = await ana.receive()
                if isinstance(event, ClientUpdated):
                    updates.append(event.state["frame"])
                    if event.state["frame"] == 99:
                        break
        assert updates[-1] == 99
        assert len(updates) < 50  # rate-limited and coalesced, latest value wins
        await ben.event(b"ping!")
        while not isinstance(event := await ana.receive(), EventRelayed):
            pass
        assert event.value == b"ping!" and event.client_id == ben.client_id
        await ben.leave()
        while not isinstance(event := await ana.receive(), ClientLeft):
            pass
        # Events are relayed, not stored.
        async with connect(host, port, name="late") as late:
            await late.join("r")
            assert late.state == {}


async def test_password_room(server):
    host, port = server
    async with connect(host, port, name="a") as a:
        await a.create_room("secret", keep_open=True, password="hunter2")
        rooms = await a.list_rooms()
        assert rooms[0]["locked"]
        for wrong in (None, "nope"):
            with pytest.raises(ServerError) as info:
                await a.join("secret", password=wrong)
            assert info.value.code == "wrong_password"
        await a.join("secret", password="hunter2")


async def test_room_not_kept_open_goes_when_its_last_member_leaves(server):
    host, port = server
    async with connect(host, port, name="a") as a:
        await a.create_room("temp")
        await a.join("temp")
        await a.set("k", b"v")
        await a.leave()
        assert await a.list_rooms() == []


async def test_retried_operation_applies_once(server):
    """A client that reconnects with its session and resends an op gets the original seq back."""
    host, port = server
    session = "retry-session-1"
    async with connect(host, port, name="a", session=session) as a:
        await a.create_room("r", keep_open=True)
        await a.join("r")
        first = await a.set("k", b"1")
    async with connect(host, port, name="a", session=session) as a:
        await a.join("r")
        _, waiter = await a.send_ops([["set", "k", b"1"]], op_id=1)
        assert await waiter.wait() == first
        assert await a.set("k2", b"2") == first + 1  # nothing was applied twice


class RawClient:
    """A client speaking the protocol by hand (sans-IO Connection over a socket), to send what the library
    would not: requests pipelined in one write, an op id resent in another room."""

    def __init__(self, stream: trio.SocketStream):
        from protocol import Connection, Role

        self.stream = stream
        self.conn = Connection(Role.CLIENT)
        self.seen: list = []  # received, not yet taken

    async def send(self, *events) -> None:
        await self.stream.send_all(b"".join(self.conn.send(event) for event in events))  # in one write

    async def wait_for(self, kind: str):
        """The first received event of type ``kind`` (taken from ``seen``), reading until it comes."""
        from protocol import NEED_DATA

        while True:
            for i, event in enumerate(self.seen):
                if kind == event.TYPE:
                    return self.seen.pop(i)
            event = self.conn.next_event()
            if event is NEED_DATA:
                self.conn.receive_data(await self.stream.receive_some(65536))
            else:
                self.seen.append(event)


async def test_a_write_pipelined_with_leave_room_is_still_answered(tmp_path):
    """The leave is handled while the write is being committed: the write commits all the same, so its
    author gets its ack (after `left`, outside the room's stream) instead of no answer at all."""
    from protocol import Hello, JoinRoom, LeaveRoom, Set

    async with running_broadcaster(tmp_path / "d") as (host, port), connect(host, port, name="b") as other:
        await other.create_room("r", keep_open=True)
        await other.join("r")
        raw = RawClient(await trio.open_tcp_stream(host, port))
        with trio.fail_after(30):
            await raw.send(
                Hello(protocol=1, client_name="a", session="pipelined-1"), JoinRoom(room="r", ref=1)
            )
            await raw.wait_for("snapshot_end")
            # One write: the server reads both before the set commits.
            await raw.send(Set(op_id=1, key="k", value=b"v"), LeaveRoom(ref=2))
            await raw.wait_for("left")
            assert not any(e.TYPE == "ack" for e in raw.seen)  # not before `left`
            ack = await raw.wait_for("ack")
        await wait_for(lambda: other.state.get("k") == b"v")
        assert ack.op_id == 1 and ack.seq == other.seq
        await raw.stream.aclose()


async def test_a_retry_in_another_room_than_its_op_committed_in_is_refused(tmp_path):
    """Op ids are per session, not per room: resending op 1 after moving from room a to room b must not be
    answered with room a's seq as if the op were in b (nor be left unanswered)."""
    from protocol import Hello, JoinRoom, LeaveRoom, Set

    async with running_broadcaster(tmp_path / "d") as (host, port), connect(host, port, name="o") as owner:
        for name in ("a", "b"):
            await owner.create_room(name, keep_open=True)
        await owner.join("b")
        for i in range(3):
            await owner.set(f"k{i}", b"x")  # b's seq is past a's, so a's seq would read as "in your state"
        raw = RawClient(await trio.open_tcp_stream(host, port))
        with trio.fail_after(30):
            await raw.send(
                Hello(protocol=1, client_name="r", session="cross-room-1"), JoinRoom(room="a", ref=1)
            )
            await raw.wait_for("snapshot_end")
            await raw.send(Set(op_id=1, key="k", value=b"v"))
            assert (await raw.wait_for("ack")).seq == 1
            await raw.send(LeaveRoom(ref=2), JoinRoom(room="b", ref=3))
            await raw.wait_for("snapshot_end")
            await raw.send(Set(op_id=1, key="k", value=b"v"))
            error = await raw.wait_for("error")
        assert error.code == "bad_message" and "another room" in error.message and error.ref == 1
        assert not any(e.TYPE == "ack" for e in raw.seen)
        await raw.stream.aclose()
