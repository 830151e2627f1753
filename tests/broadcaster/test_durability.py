"""`blendsync serve` killed with SIGKILL mid-stream and restarted: every acked op is there, exactly once."""

from __future__ import annotations

import trio

from broadcaster.client import ConnectionLost, ServerError, connect
from protocol import MAX_KEY_BYTES, MAX_ROOM_NAME_BYTES, Applied, Set, pack_body


async def test_kill_9_mid_stream_loses_no_acknowledged_operation(server_process):
    host, port = server_process.start()
    acked: dict[int, tuple[str, int]] = {}  # op_id -> (key, seq) for every acknowledged write
    async with connect(host, port, name="setup") as setup:
        await setup.create_room("durable", keep_open=True)

    async def writer(name: str, stop_after: trio.Event):
        try:
            async with connect(host, port, name=name) as client:
                await client.join("durable")
                i = 0
                while True:
                    i += 1
                    key = f"{name}/{i}"
                    _, waiter = await client.send_ops([["set", key, f"v{i}".encode()]])
                    if i % 50 == 0:
                        stop_after.set()
                    try:
                        seq = await waiter.wait()
                    except (ConnectionLost, ServerError):
                        return
                    acked[hash(key)] = (key, seq)
        except (ConnectionLost, OSError, ServerError):
            return

    started = trio.Event()
    async with trio.open_nursery() as nursery:
        for name in ("w1", "w2", "w3"):
            nursery.start_soon(writer, name, started)
        await started.wait()
        await trio.sleep(0.3)
        server_process.kill()  # SIGKILL while the writers are mid-stream

    assert len(acked) > 100
    server_process.start()
    async with connect(host, port, name="checker") as checker:
        (room,) = await checker.list_rooms()
        joined = await checker.join("durable", since=0)  # the whole held log, in order
        assert joined.mode == "resume"
        logged: list[tuple[int, str]] = []
        with trio.fail_after(10):
            while not logged or logged[-1][0] < room["seq"]:
                event = await checker.receive()
                if isinstance(event, Applied):
                    logged += [(event.seq, op[1]) for op in event.ops]
    assert [seq for seq, _ in logged] == list(range(1, room["seq"] + 1))  # no gap
    keys = [key for _, key in logged]
    assert len(keys) == len(set(keys))  # every write is in the log once
    for key, seq in acked.values():
        assert (seq, key) in logged, f"acknowledged {key} (seq {seq}) was lost"
        assert checker.state[key] == f"v{key.rsplit('/', 1)[1]}".encode()


async def test_rooms_survive_a_clean_restart(server_process):
    host, port = server_process.start()
    async with connect(host, port, name="a") as a:
        await a.create_room("kept", keep_open=True, password="pw")
        await a.join("kept", password="pw")
        for i in range(20):
            await a.set(f"k{i}", bytes([i]) * 10)
        state, seq = dict(a.state), a.seq
    server_process.stop()
    server_process.start()
    async with connect(host, port, name="b") as b:
        rooms = await b.list_rooms()
        assert [(r["name"], r["seq"], r["keys"], r["locked"]) for r in rooms] == [("kept", seq, 20, True)]
        await b.join("kept", password="pw")
        assert b.state == state and b.seq == seq


def longest(prefix: str, size: int) -> str:
    """``size`` bytes of printable UTF-8 holding pattern characters and multi-byte characters."""
    text = prefix + "*/%✓"
    text += "é" * ((size - len(text.encode())) // 2)
    return text + "x" * (size - len(text.encode()))


async def test_every_maximum_at_once_survives_kill_and_restart(server_process, tmp_path):
    """The longest room name, the longest key and the largest value one frame can carry, in one write."""
    max_frame_size = 4 * 1024 * 1024
    config = tmp_path / "blendsync.toml"
    config.write_text(f"[server]\nmax_frame_size = {max_frame_size}\n")
    server_process.extra = ["--config", str(config)]
    room, key = longest("room", MAX_ROOM_NAME_BYTES), longest("key", MAX_KEY_BYTES)
    assert len(room.encode()) == MAX_ROOM_NAME_BYTES and len(key.encode()) == MAX_KEY_BYTES

    def frame_size(value: bytes) -> int:
        return len(pack_body(Set(op_id=1, key=key, value=value, seen=0).to_body()))  # as the client sends it

    overhead = frame_size(b"x" * 100_000) - 100_000
    value = bytes(range(256)) * ((max_frame_size - overhead) // 256)
    value += b"\xff" * (max_frame_size - overhead - len(value))
    assert frame_size(value) == max_frame_size

    host, port = server_process.start()
    async with connect(host, port, name="writer") as writer:
        await writer.create_room(room, keep_open=True)
        await writer.join(room)
        _, waiter = await writer.send_ops([["set", key, value]], op_id=1)
        assert await waiter.wait() == 1
    # One byte more is a frame past max_frame_size: tests/broadcaster/test_limits.py.

    server_process.kill()  # before the tree is flushed: the restart replays the log
    for _ in range(2):  # then from the tree records the clean stop wrote
        host, port = server_process.start()
        async with connect(host, port, name="reader") as reader:
            (listed,) = await reader.list_rooms()
            assert listed["name"] == room and listed["keys"] == 1 and listed["seq"] == 1
            await reader.join(room)
            assert reader.state == {key: value}
        server_process.stop()
        assert server_process.proc.returncode == 0  # its last flush wrote the tree
