"""``python -m tools.bench fanout|join``: measure a running broadcaster against a bare trio relay started in
the same run (``... relay``).

Figures are whole-system (server process + this client process on one machine); read them as ratios to the
baseline, which has the same clients, framing and decoding but no rooms, ordering or persistence.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import struct
import subprocess
import sys
import time
from functools import partial
from typing import Any

import trio

from broadcaster.client import connect
from protocol import (
    NEED_DATA,
    PROTOCOL_VERSION,
    Applied,
    Connection,
    Hello,
    JoinRoom,
    Ping,
    Pong,
    Role,
    SnapshotEnd,
    encode_frame,
)
from protocol.framing import FrameReader, unpack_body
from tools.cluster import REPO

_STAMP = struct.Struct("<d")


def add_arguments(kinds: Any) -> None:
    fanout = kinds.add_parser("fanout", help="one sender, N receivers in one room")
    fanout.add_argument("--host", default="127.0.0.1")
    fanout.add_argument("--port", type=int, default=12800)
    fanout.add_argument("--clients", type=int, default=10, help="receivers")
    fanout.add_argument("--messages", type=int, default=2000)
    fanout.add_argument("--size", type=int, default=256, help="value bytes per operation")
    fanout.add_argument(
        "--rate", type=float, default=0.0, help="messages per second (0: as fast as possible)"
    )
    fanout.add_argument("--no-baseline", action="store_true")
    fanout.add_argument(
        "--cluster",
        type=int,
        choices=[3, 5],
        help="start a cluster of N nodes, receivers spread over them,"
        " and a single node in the same run (ignores --host/--port)",
    )
    fanout.add_argument("--json", action="store_true")

    join = kinds.add_parser("join", help="a late joiner into a room with a long history")
    join.add_argument("--host", default="127.0.0.1")
    join.add_argument("--port", type=int, default=12800)
    join.add_argument("--history", type=int, default=100_000, help="operations written before the join")
    join.add_argument("--keys", type=int, default=1000, help="distinct keys they write")
    join.add_argument("--size", type=int, default=256)
    join.add_argument("--no-baseline", action="store_true")
    join.add_argument("--json", action="store_true")

    relay = kinds.add_parser("relay", help="(baseline) a bare trio relay: every frame to every other peer")
    relay.add_argument("--host", default="127.0.0.1")
    relay.add_argument("--port", type=int, default=0)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """``fanout`` or ``join`` against ``--host``/``--port``, then against the bare relay."""
    if args.bench == "fanout":
        result = await fanout(args.host, args.port, args.clients, args.messages, args.size, args.rate)
        if not args.no_baseline:
            with baseline_relay() as (host, port):
                base = await relay_fanout(host, port, args.clients, args.messages, args.size, args.rate)
            result["baseline"] = base
            result["ratio_deliveries"] = round(result["deliveries_per_s"] / base["deliveries_per_s"], 3)
            result["ratio_p99"] = round(result["p99_ms"] / max(base["p99_ms"], 1e-6), 3)
        return result
    result = await late_join(args.host, args.port, args.history, args.keys, args.size)
    if not args.no_baseline:
        with baseline_relay() as (host, port):
            base = await relay_transfer(host, port, args.keys, args.size)
        result["baseline"] = base
        result["ratio_join"] = round(result["join_seconds"] / max(base["transfer_seconds"], 1e-9), 3)
    return result


def _summary(latencies: list[float], deliveries: int, elapsed: float) -> dict[str, Any]:
    latencies.sort()
    return {
        "deliveries": deliveries,
        "seconds": round(elapsed, 4),
        "deliveries_per_s": round(deliveries / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 3),
        "p99_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000, 3),
    }


async def _pace(rate: float, index: int, start: float) -> None:
    """Sleep until message ``index`` is due; ``start`` is on trio's clock."""
    if rate > 0:
        await trio.sleep_until(start + index / rate)


# ---- blendsync ---------------------------------------------------------------------------------------------


async def fanout(
    host: str,
    port: int,
    clients: int,
    messages: int,
    size: int,
    rate: float,
    receiver_addresses: list[str] | None = None,
) -> dict[str, Any]:
    """One sender on host:port; receivers there too, or spread round-robin over ``receiver_addresses``."""
    room = f"bench-{secrets.token_hex(4)}"
    latencies: list[float] = []
    async with connect(host, port, name="sender", kind="bench") as sender:
        await sender.create_room(room)
        await sender.join(room)
        async with trio.open_nursery() as nursery:
            for i in range(clients):
                r_host, r_port = host, port
                if receiver_addresses:
                    r_host, _, text = receiver_addresses[i % len(receiver_addresses)].rpartition(":")
                    r_port = int(text)
                await nursery.start(_lean_receiver, r_host, r_port, room, f"r{i}", messages, latencies)
            padding = b"\0" * max(0, size - _STAMP.size)
            start, paced_from = time.perf_counter(), trio.current_time()
            for i in range(messages):
                await _pace(rate, i, paced_from)
                await sender.send_ops([["set", f"k{i % 100}", _STAMP.pack(time.perf_counter()) + padding]])
        elapsed = time.perf_counter() - start
        await sender.leave()  # the room goes with its last member
    return {
        "bench": "fanout",
        "clients": clients,
        "messages": messages,
        "size": size,
        "rate": rate,
        **_summary(latencies, clients * messages, elapsed),
    }


async def _lean_receiver(
    host: str,
    port: int,
    room: str,
    name: str,
    messages: int,
    latencies: list[float],
    task_status=trio.TASK_STATUS_IGNORED,
    token: str | None = None,
) -> None:
    """A receiving client reduced to the protocol object (full decoding and checks, no client library)."""
    conn = Connection(Role.CLIENT)
    async with await trio.open_tcp_stream(host, port) as stream:
        await stream.send_all(
            conn.send(Hello(protocol=PROTOCOL_VERSION, client_name=name, client_kind="bench", token=token))
            + encode_frame(JoinRoom(room=room, ref=1).to_body())
        )
        count = 0
        started = False
        last_sent = time.perf_counter()
        while count < messages:
            data = await stream.receive_some(1 << 20)
            if not data:
                raise ConnectionError("server closed the connection")
            conn.receive_data(data)
            now = time.perf_counter()
            if now - last_sent > 4.0:  # a listener still says something within heartbeat_timeout
                last_sent = now
                await stream.send_all(conn.send(Ping(nonce=1)))
            while (event := conn.next_event()) is not NEED_DATA:
                if isinstance(event, Applied):
                    for op in event.ops:
                        latencies.append(now - _STAMP.unpack_from(op[2])[0])
                        count += 1
                elif isinstance(event, SnapshotEnd) and not started:
                    started = True
                    task_status.started()
                elif isinstance(event, Ping):
                    await stream.send_all(conn.send(Pong(nonce=event.nonce)))


async def late_join(host: str, port: int, history: int, keys: int, size: int) -> dict[str, Any]:
    room = f"bench-join-{secrets.token_hex(4)}"
    value = os.urandom(size)
    async with connect(host, port, name="writer", kind="bench") as writer:
        await writer.create_room(room)
        await writer.join(room)
        setup_start = time.perf_counter()
        waiter = None
        for i in range(history):
            _, waiter = await writer.send_ops([["set", f"obj/{i % keys}/transform", value]])
        if waiter is not None:
            await waiter.wait()
        setup_seconds = time.perf_counter() - setup_start
        async with connect(host, port, name="late", kind="bench") as late:
            start = time.perf_counter()
            joined = await late.join(room)
            join_seconds = time.perf_counter() - start
            received = len(late.state)
        await writer.leave()
    return {
        "bench": "join",
        "history": history,
        "keys": keys,
        "size": size,
        "seq": joined.seq,
        "join_seconds": round(join_seconds, 4),
        "ops_received": received,
        "setup_writes_per_s": round(history / setup_seconds, 1),
    }


# ---- baseline: a bare relay ------------------------------------------------------------------------


class baseline_relay:
    """Start ``python -m tools.bench relay`` as a child process for the length of a block."""

    def __enter__(self) -> tuple[str, int]:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tools.bench", "relay", "--port", "0"],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        host, port = self.proc.stdout.readline().split()
        return host, int(port)

    def __exit__(self, *exc: object) -> None:
        self.proc.kill()
        self.proc.wait()


async def run_relay(host: str, port: int) -> None:
    peers: set[trio.SocketStream] = set()

    async def handle(stream: trio.SocketStream) -> None:
        peers.add(stream)
        reader = FrameReader()
        try:
            while data := await stream.receive_some(65536):
                reader.feed(data)
                while (payload := reader.next_payload()) is not None:
                    frame = struct.pack(">I", len(payload)) + payload
                    for peer in list(peers):
                        if peer is not stream:
                            try:
                                await peer.send_all(frame)
                            except trio.BrokenResourceError:
                                peers.discard(peer)
        except trio.BrokenResourceError:
            pass
        finally:
            peers.discard(stream)

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, handle, port, host=host))
        print(*listeners[0].socket.getsockname()[:2], flush=True)


async def _relay_frames(stream: trio.SocketStream):
    reader = FrameReader()
    while data := await stream.receive_some(1 << 20):
        reader.feed(data)
        while (payload := reader.next_payload()) is not None:
            yield unpack_body(payload)


async def relay_fanout(
    host: str, port: int, clients: int, messages: int, size: int, rate: float
) -> dict[str, Any]:
    latencies: list[float] = []
    async with trio.open_nursery() as nursery:
        receivers = [await trio.open_tcp_stream(host, port) for _ in range(clients)]
        sender = await trio.open_tcp_stream(host, port)
        await trio.sleep(0.2)  # let the relay register everyone
        done = trio.Event()
        remaining = clients

        async def receive(stream: trio.SocketStream) -> None:
            nonlocal remaining
            count = 0
            async for body in _relay_frames(stream):
                latencies.append(time.perf_counter() - _STAMP.unpack_from(body["value"])[0])
                count += 1
                if count == messages:
                    break
            remaining -= 1
            if remaining == 0:
                done.set()

        for stream in receivers:
            nursery.start_soon(receive, stream)
        padding = b"\0" * max(0, size - _STAMP.size)
        start, paced_from = time.perf_counter(), trio.current_time()
        for i in range(messages):
            await _pace(rate, i, paced_from)
            await sender.send_all(
                encode_frame(
                    {
                        "type": "set",
                        "op_id": i + 1,
                        "key": f"k{i % 100}",
                        "value": _STAMP.pack(time.perf_counter()) + padding,
                    }
                )
            )
        await done.wait()
        elapsed = time.perf_counter() - start
        for stream in [sender, *receivers]:
            await stream.aclose()
    return _summary(latencies, clients * messages, elapsed)


async def relay_transfer(host: str, port: int, keys: int, size: int) -> dict[str, Any]:
    """The same bytes a late joiner receives (keys x size), sent through the bare relay."""
    receiver = await trio.open_tcp_stream(host, port)
    sender = await trio.open_tcp_stream(host, port)
    await trio.sleep(0.2)
    value = os.urandom(size)
    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            sender.send_all,
            b"".join(
                encode_frame({"type": "set", "key": f"obj/{i}/transform", "value": value})
                for i in range(keys)
            ),
        )
        count = 0
        async for _ in _relay_frames(receiver):
            count += 1
            if count == keys:
                break
    elapsed = time.perf_counter() - start
    await sender.aclose()
    await receiver.aclose()
    return {"transfer_seconds": round(elapsed, 4), "frames": keys}
