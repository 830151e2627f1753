"""``python -m tools.bench viewers|viewer-load``: the browser viewer's load on a real ``blendsync serve``.

- ``viewers``: one room, one writer at ``--rate`` updates/s, ``--tcp`` Blender-protocol receivers, and
  ``--viewers`` WebSocket viewers (share-link sessions over the HTTP port, decoding every frame). Delivery
  latency (send to receipt, one clock: every client is in this process) of the TCP receivers **without**
  viewers, then of both **with** them, then of the TCP receivers without them again, in the same run
  (A/B/A: the two A phases show what the same run's noise is), after ``--warmup`` seconds of the same
  writing that are not measured. ``--apart`` keeps the Blender-protocol clients and the viewers' process
  off the server's CPU.
- ``viewer-load``: a room of ``--objects`` objects (a mesh and a material each, as the add-on writes them);
  headless Chromium opens its share link ``--runs`` times: time from navigation start to the first frame
  drawn with the whole room (the page's ``blendsyncViewer.firstFrameMs``).

Both start their own server (``blendsync serve`` with a tokens file and an HTTP port) in a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import msgpack
import trio
from wsproto.events import BytesMessage

from broadcaster.auth import add_user
from broadcaster.client import connect
from protocol import PROTOCOL_VERSION, Hello, JoinRoom
from tools.bench.server import _lean_receiver, _summary
from tools.cluster import REPO, free_port
from tools.wsclient import WSClient

_STAMP = struct.Struct("<d")
SETTLE = 0.5  # seconds between the writer's join or last write and anything else it does
PING_INTERVAL = 4.0  # seconds; the page pings every heartbeat interval (5 s by default) it sent nothing


def add_arguments(kinds: Any) -> None:
    viewers = kinds.add_parser("viewers", help="WebSocket viewers beside Blender-protocol clients (A/B)")
    viewers.add_argument("--viewers", type=int, default=500)
    viewers.add_argument(
        "--measured",
        type=int,
        default=50,
        help="viewers that decode and time every message (the rest"
        " only read their bytes, so that this process does not become the bottleneck)",
    )
    viewers.add_argument("--tcp", type=int, default=5, help="Blender-protocol receivers")
    viewers.add_argument("--rate", type=float, default=30.0, help="updates per second")
    viewers.add_argument("--seconds", type=float, default=10.0, help="length of each phase")
    viewers.add_argument(
        "--warmup",
        type=float,
        default=3.0,
        help="seconds of the same writing before the first phase, not measured (a fresh server's first"
        " seconds had a p99 up to 15x the later phases')",
    )
    viewers.add_argument("--size", type=int, default=64, help="value bytes per update (a location is ~30)")
    viewers.add_argument(
        "--apart",
        action="store_true",
        help="the server alone on the first CPU, the Blender-protocol clients on the others with the"
        " viewers' process beside them (with only the CPU nothing else wants), as on machines of their"
        " own: the scheduler cannot queue the clients behind the server's sends to the viewers, nor the"
        " server's threads behind the viewers' reading",
    )
    viewers.add_argument("--json", action="store_true")
    load = kinds.add_parser("viewer-load", help="open a share link of a large room in headless Chromium")
    load.add_argument("--objects", type=int, default=500)
    load.add_argument("--runs", type=int, default=3)
    load.add_argument("--json", action="store_true")


_SERVER_PID = [0]


def server_cpu_seconds() -> float:
    """User + system CPU time of the server process so far."""
    return process_cpu_seconds(_SERVER_PID[0])


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def serving(root: Path):
    """``blendsync serve`` with auth and an HTTP port; yields (host, port, http address, admin token)."""
    tokens = root / "tokens.toml"
    admin = add_user(tokens, "bench", "admin")
    http_port = free_port()
    command = [
        sys.executable, "-m", "broadcaster.cli", "--log-level", "warning", "serve", "--port", "0",
        "--data-dir", str(root / "data"), "--tokens-file", str(tokens), "--http-port", str(http_port),
    ]  # fmt: skip
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        host, _, port = line.split("listening on ", 1)[1].split()[0].rpartition(":")
        _SERVER_PID[0] = process.pid
        yield host, int(port), f"127.0.0.1:{http_port}", admin
    finally:
        process.terminate()
        process.wait(timeout=20)


def _pin(pid: int, cpus: set[int], idle: bool = False) -> None:
    for thread in os.listdir(f"/proc/{pid}/task"):
        os.sched_setaffinity(int(thread), cpus)
        if idle:
            os.sched_setscheduler(int(thread), os.SCHED_IDLE, os.sched_param(0))


def _apart(server_pid: int) -> None:
    """The server's threads on the first CPU this process may use, this process (the writer and the
    Blender-protocol receivers) on the rest (the viewers' process joins it, with what CPU they leave)."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        raise SystemExit("--apart needs two CPUs")
    _pin(server_pid, {cpus[0]})
    os.sched_setaffinity(0, set(cpus[1:]))


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="blendsync-bench-") as folder, serving(Path(folder)) as server:
        if args.bench == "viewers" and args.apart:
            _apart(_SERVER_PID[0])
        if args.bench == "viewers":
            return await viewers(*server, args)
        return await viewer_load(*server, Path(folder), args)


# ---- delivery to viewers ----------------------------------------------------------------------------------


async def _viewer(http: str, token: str, room: str, latencies: list[float] | None, task_status) -> None:
    """A WebSocket viewer reduced to what the page does per message: unframe, unpack, read the ops."""
    ws = await WSClient.open(http)
    await ws.send(Hello(protocol=PROTOCOL_VERSION, client_name="viewer", client_kind="viewer", token=token))
    await ws.send(JoinRoom(room=room, ref=1))

    async def keep_alive() -> None:  # as the page does: the server hears from it every few seconds,
        # from a random point of half the period on (connection.js: pages connected together do not
        # ping in step)
        await trio.sleep(random.uniform(0.0, PING_INTERVAL / 2))
        nonce = 0
        while True:
            await trio.sleep(PING_INTERVAL)
            nonce += 1
            await ws.send_body({"type": "ping", "nonce": nonce})

    async with trio.open_nursery() as nursery:
        nursery.start_soon(keep_alive)
        if latencies is None:  # not measured: take the bytes and drop them, costing this process little
            await _drain(ws, task_status)
        else:
            await _viewer_loop(ws, latencies, task_status)
        nursery.cancel_scope.cancel()


async def _drain(ws: WSClient, task_status) -> None:
    received = b""
    while b"snapshot_end" not in received:
        received = received[-64:] + await ws.stream.receive_some(1 << 20)
    task_status.started()
    # Browsers run on other machines: here, read what arrived twice a second (the kernel buffers the
    # rest), so that 450 receiving tasks do not take the CPU the server needs on this 2-core machine.
    # The server's work for them (framing, one send per message) is the same as for a reading browser.
    while True:
        await trio.sleep(0.5)
        if not await ws.stream.receive_some(1 << 20):
            return


async def _viewer_loop(ws: WSClient, latencies: list[float] | None, task_status) -> None:
    started = False
    partial: list[bytes] = []
    while True:
        data = await ws.stream.receive_some(1 << 20)
        if not data:
            return
        now = time.perf_counter()
        ws.ws.receive_data(data)
        for event in ws.ws.events():
            if not isinstance(event, BytesMessage):
                continue
            partial.append(bytes(event.data))
            if not event.message_finished:
                continue
            body = msgpack.unpackb(b"".join(partial), raw=False)
            partial = []
            kind = body.get("type")
            if kind == "applied" and latencies is not None:
                for op in body["ops"]:
                    latencies.append(now - _STAMP.unpack_from(op[2])[0])
            elif kind == "snapshot_end" and not started:
                started = True
                task_status.started()
            elif kind == "ping":
                await ws.send_body({"type": "pong", "nonce": body["nonce"]})
            elif kind == "error":
                raise RuntimeError(f"viewer refused: {body}")


async def _phase(host, port, token, room, args, tcp_latencies) -> float:
    """Write at --rate for --seconds while --tcp lean receivers measure; returns the time taken."""
    rate, messages, size = args.rate, int(args.rate * args.seconds), args.size
    async with trio.open_nursery() as nursery:
        for i in range(args.tcp):
            receiver = partial(_lean_receiver, token=token)
            await nursery.start(receiver, host, port, room, f"tcp{i}", messages, tcp_latencies)
        async with connect(host, port, name="writer", kind="bench", token=token) as writer:
            await writer.join(room)
            # An artist's arrival and departure are told to every viewer (~5 ms of the server's time
            # with 500): apart from the measured writes, so that a phase's p99 (its 3 slowest writes of
            # 300) measures writing beside viewers, not the writer's own join and leave beside them.
            await trio.sleep(SETTLE)
            padding = b"\0" * max(0, size - _STAMP.size)
            start = trio.current_time()
            for i in range(messages):
                await trio.sleep_until(start + i / rate)
                stamp = _STAMP.pack(time.perf_counter()) + padding
                _, last = await writer.send_ops([["set", "obj/bench/location", stamp]])
            elapsed = trio.current_time() - start
            if messages:
                await last.wait()
            await trio.sleep(SETTLE)
            await writer.leave()
    return elapsed


async def viewers(host: str, port: int, http: str, admin: str, args: argparse.Namespace) -> dict[str, Any]:
    room = f"bench-view-{secrets.token_hex(3)}"
    async with connect(host, port, name="setup", kind="bench", token=admin) as setup:
        await setup.create_room(room, keep_open=True)
        share = await setup.admin("share", room=room)
    if args.warmup > 0:
        warmup = argparse.Namespace(**{**vars(args), "seconds": args.warmup})
        await _phase(host, port, admin, room, warmup, [])
    alone: list[float] = []
    cpu = server_cpu_seconds()
    seconds = await _phase(host, port, admin, room, args, alone)
    cpu_alone = server_cpu_seconds() - cpu
    result: dict[str, Any] = {
        "bench": "viewers",
        "rate": args.rate,
        "seconds": round(seconds, 2),
        "tcp_receivers": args.tcp,
        "tcp_without_viewers": _summary(alone, len(alone), seconds),
        "server_cpu_share_without_viewers": round(cpu_alone / seconds, 3),
    }
    beside: list[float] = []
    command = [sys.executable, "-m", "tools.bench.viewer_swarm", http, share["token"], room]
    command += [str(args.viewers), str(args.measured)]
    connect_start = time.perf_counter()
    swarm = await trio.lowlevel.open_process(command, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    if args.apart:  # the viewers' reading stands for 500 browsers elsewhere: spare CPU only
        # Not on the server's CPU: there it ran whenever the server idled, and the server's storage
        # thread then waited 1 to 3 ms to start a commit (docs/performance.md). Beside the clients, the
        # clients' own latency shows whether it takes their CPU.
        _pin(swarm.pid, os.sched_getaffinity(0), idle=True)  # the clients' CPUs (_apart)
    try:
        lines = _Lines(swarm.stdout)
        if await lines.next() != "ready":  # every viewer has its snapshot
            raise RuntimeError("the viewers' process ended before its viewers joined")
        every = max(1, args.viewers // max(args.measured, 1))
        measured = len(range(0, args.viewers, every))
        result["viewers"] = args.viewers
        result["viewers_measured"] = measured
        result["viewers_connect_seconds"] = round(time.perf_counter() - connect_start, 2)
        cpu, own, swarm_cpu = server_cpu_seconds(), time.process_time(), process_cpu_seconds(swarm.pid)
        seconds = await _phase(host, port, admin, room, args, beside)
        result["server_cpu_share_with_viewers"] = round((server_cpu_seconds() - cpu) / seconds, 3)
        result["bench_cpu_share_with_viewers"] = round((time.process_time() - own) / seconds, 3)
        result["viewers_cpu_share"] = round((process_cpu_seconds(swarm.pid) - swarm_cpu) / seconds, 3)
        result["tcp_with_viewers"] = _summary(beside, len(beside), seconds)
        expected = int(args.rate * args.seconds) * measured
        await swarm.stdin.send_all(f"{expected}\n".encode())
        viewer_latencies = json.loads(await lines.next())["latencies"]
        result["viewer_deliveries"] = _summary(viewer_latencies, len(viewer_latencies), seconds)
        result["viewer_deliveries"]["expected"] = expected
    finally:
        swarm.kill()
        await swarm.wait()
    await trio.sleep(2.0)  # the server sees the viewers go
    after: list[float] = []
    seconds = await _phase(host, port, admin, room, args, after)
    result["tcp_without_viewers_after"] = _summary(after, len(after), seconds)
    phases = [
        result[name] for name in ("tcp_without_viewers", "tcp_with_viewers", "tcp_without_viewers_after")
    ]
    result["tcp_p50_ms_a_b_a"] = [phase["p50_ms"] for phase in phases]
    result["tcp_p99_ms_a_b_a"] = [phase["p99_ms"] for phase in phases]
    a_low, a_high = sorted(max(phase["p99_ms"], 1e-6) for phase in (phases[0], phases[2]))
    result["tcp_p99_ratio"] = round(phases[1]["p99_ms"] / a_high, 2)
    result["tcp_p99_a_to_a"] = round(a_high / a_low, 2)  # the same run's noise: its two A phases apart
    return result


class _Lines:
    """Lines of a child process's stdout."""

    def __init__(self, stream: trio.abc.ReceiveStream):
        self.stream, self.buffer = stream, b""

    async def next(self) -> str:
        while b"\n" not in self.buffer:
            data = await self.stream.receive_some(1 << 20)
            if not data:
                return ""
            self.buffer += data
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line.decode()


# ---- time to the first frame ---------------------------------------------------------------------------


def room_items(count: int) -> list[list[Any]]:
    """``count`` objects as the add-on writes them: a distinct cube mesh each, ten shared materials."""

    def pack(value: Any) -> bytes:
        return msgpack.packb(value, use_bin_type=True)

    corners = [c for z in (-1, 1) for y in (-1, 1) for x in (-1, 1) for c in (x, y, z)]
    faces = [[0, 1, 3, 2], [4, 6, 7, 5], [0, 4, 5, 1], [2, 3, 7, 6], [0, 2, 6, 4], [1, 5, 7, 3]]
    items = []
    for m in range(10):
        items.append(["set", f"mat/{m:032x}/set/diffuse_color", pack([m / 10, 0.5, 1 - m / 10, 1.0])])
    side = max(1, round(count**0.5))
    for i in range(count):
        obj, mesh, mat = f"{i + 1:08x}{'0' * 24}", f"{i + 1:08x}{'1' * 24}", f"{i % 10:032x}"
        geometry = {
            "vertices": struct.pack(f"<{len(corners)}f", *(c * 0.3 for c in corners)),
            "edges": b"",
            "face_starts": struct.pack("<6i", 0, 4, 8, 12, 16, 20),
            "corner_verts": struct.pack("<24i", *(v for f in faces for v in f)),
            "corner_edges": b"",
            "attributes": [],
        }
        items += [
            ["set", f"mesh/{mesh}/meta", pack({"materials": [mat]})],
            ["set", f"mesh/{mesh}/geometry", pack(geometry)],
            ["set", f"obj/{obj}/meta", pack({"type": "MESH", "data_kind": "mesh", "data": mesh})],
            ["set", f"obj/{obj}/location", pack([float(i % side), float(i // side), 0.0])],
        ]
    return items


async def viewer_load(
    host: str, port: int, http: str, admin: str, folder: Path, args: argparse.Namespace
) -> dict[str, Any]:
    from tools.browser import open_browser

    room = "bench-load"
    async with connect(host, port, name="setup", kind="bench", token=admin) as setup:
        await setup.create_room(room, keep_open=True)
        await setup.join(room)
        items = room_items(args.objects)
        for i in range(0, len(items), 400):
            await setup.batch(items[i : i + 400])
        share = await setup.admin("share", room=room)
        await setup.leave()
    times = []
    async with open_browser(folder / "profile") as page:
        for run in range(args.runs + 1):  # the first run warms the browser's cache of the libraries
            await page.navigate("about:blank")
            await page.navigate(share["url"])
            first = await page.wait_for("window.blendsyncViewer && blendsyncViewer.firstFrameMs", 120)
            count = await page.evaluate("blendsyncViewer.objectCount()")
            assert count == args.objects, (count, page.log[-5:])
            if run:
                times.append(first / 1000)
    return {
        "bench": "viewer-load",
        "objects": args.objects,
        "runs": args.runs,
        "first_frame_seconds": [round(t, 3) for t in times],
        "median_seconds": round(statistics.median(times), 3),
    }
