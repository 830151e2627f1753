"""``python -m tools.bench guessing``: a bystander's write latency, quiet and while wrong passwords hammer.

One run measures both phases against the same server (A/B): first the bystander alone, then the bystander
while ``--guessers`` connections each send wrong-password joins to a password room, one after another as
fast as the server answers. The guessers run in a child process, so that their work on the client side
does not delay the bystander's. With ``--addresses N`` they come from N loopback addresses (127.0.0.2 ...;
Linux routes all of 127/8 to loopback), so the per-address allowance is met N times.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
from typing import Any

import trio

from broadcaster.client import connect
from protocol import NEED_DATA, PROTOCOL_VERSION, Connection, Error, Hello, JoinRoom, Role


def add_arguments(kinds: Any) -> None:
    guessing = kinds.add_parser("guessing", help="bystander write latency while wrong passwords hammer")
    guessing.add_argument("--host", default="127.0.0.1")
    guessing.add_argument("--port", type=int, default=12800)
    guessing.add_argument("--guessers", type=int, default=100, help="parallel connections guessing")
    guessing.add_argument("--addresses", type=int, default=1, help="loopback addresses they come from")
    guessing.add_argument("--writes", type=int, default=300, help="bystander writes per phase")
    guessing.add_argument("--rate", type=float, default=20.0, help="bystander writes per second")
    guessing.add_argument(
        "--warmup", type=float, default=0.0, help="seconds of guessing before measuring (lockouts grow)"
    )
    guessing.add_argument("--json", action="store_true")


async def run(args: argparse.Namespace) -> dict[str, Any]:
    room = f"guess-{secrets.token_hex(4)}"
    async with connect(args.host, args.port, name="owner") as owner:
        await owner.create_room(room, keep_open=True, password=secrets.token_urlsafe(12))
    async with connect(args.host, args.port, name="bystander") as bystander:
        await bystander.create_room(f"{room}-quiet", keep_open=True)
        await bystander.join(f"{room}-quiet")
        quiet = await _writes(bystander, args.writes, args.rate)
        child = [sys.executable, "-m", __name__, args.host, str(args.port), room]
        hammer = subprocess.Popen(
            [*child, str(args.guessers), str(args.addresses)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert hammer.stdin is not None and hammer.stdout is not None
            await trio.to_thread.run_sync(hammer.stdout.readline)  # every guesser connected
            await trio.sleep(0.5 + args.warmup)  # and guessing
            before = await _answers_so_far(hammer)
            since = trio.current_time()
            hammered = await _writes(bystander, args.writes, args.rate)
            seconds = trio.current_time() - since
            after = await _answers_so_far(hammer)
        finally:
            hammer.kill()
            hammer.wait()
    return {
        "bench": "guessing",
        "guessers": args.guessers,
        "addresses": args.addresses,
        "warmup_s": args.warmup,
        "quiet": _latency(quiet),
        "hammered": _latency(hammered),
        "ratio_p50": round(statistics.median(hammered) / statistics.median(quiet), 2),
        "ratio_p99": round(_p99(hammered) / _p99(quiet), 2),
        "join_answers_per_s": {
            code: round((n - before.get(code, 0)) / seconds, 1) for code, n in sorted(after.items())
        },
    }


async def _answers_so_far(hammer: subprocess.Popen[str]) -> dict[str, int]:
    assert hammer.stdin is not None and hammer.stdout is not None
    hammer.stdin.write("\n")
    hammer.stdin.flush()
    return json.loads(await trio.to_thread.run_sync(hammer.stdout.readline))


async def _writes(bystander: Any, count: int, rate: float) -> list[float]:
    latencies = []
    start = trio.current_time()
    for i in range(count):
        await trio.sleep_until(start + i / rate)
        sent = trio.current_time()
        await bystander.set(f"k{i % 100}", b"x" * 256)
        latencies.append(trio.current_time() - sent)
    return latencies


async def _guesser(host: str, port: int, room: str, local: str | None, answers: dict[str, int]) -> None:
    """Wrong-password joins on one connection, each sent when the previous one is answered."""
    stream = await trio.open_tcp_stream(host, port, local_address=local)
    conn = Connection(Role.CLIENT)
    async with stream:
        await stream.send_all(conn.send(Hello(protocol=PROTOCOL_VERSION, client_name="guesser")))
        ref = 0
        while True:
            ref += 1
            await stream.send_all(conn.send(JoinRoom(room=room, password=f"guess-{ref}", ref=ref)))
            while True:
                event = conn.next_event()
                if event is NEED_DATA:
                    data = await stream.receive_some(65536)
                    if not data:
                        return
                    conn.receive_data(data)
                elif getattr(event, "ref", None) == ref:
                    code = event.code if isinstance(event, Error) else event.TYPE
                    answers[code] = answers.get(code, 0) + 1
                    break


def _p99(latencies: list[float]) -> float:
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def _latency(latencies: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(statistics.median(latencies) * 1000, 3),
        "p99_ms": round(_p99(latencies) * 1000, 3),
        "max_ms": round(max(latencies) * 1000, 3),
    }


async def _hammer(host: str, port: int, room: str, guessers: int, addresses: int) -> None:
    """The child process: guess until killed; print the answers so far for each line read from stdin."""
    answers: dict[str, int] = {}
    async with trio.open_nursery() as nursery:
        for i in range(guessers):
            local = f"127.0.0.{2 + i % addresses}" if addresses > 1 else None
            nursery.start_soon(_guesser, host, port, room, local, answers)
        await trio.sleep(0.2)
        print("{}", flush=True)
        commands = trio.lowlevel.FdStream(os.dup(0))
        while await commands.receive_some(1):
            print(json.dumps(answers), flush=True)
        nursery.cancel_scope.cancel()


if __name__ == "__main__":
    host, port, room, guessers, addresses = sys.argv[1:6]
    trio.run(_hammer, host, int(port), room, int(guessers), int(addresses))
