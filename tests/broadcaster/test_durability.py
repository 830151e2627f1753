"""`blendsync serve` killed with SIGKILL mid-stream and restarted: every acked op is there, exactly once."""

from __future__ import annotations

import trio

from broadcaster.client import ConnectionLost, ServerError, connect
from protocol import Applied


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
