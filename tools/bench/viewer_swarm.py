"""The viewers of ``python -m tools.bench viewers``, in a process of their own.

Browsers run on other machines. In the measuring process, hundreds of viewer sockets would share one event
loop with the Blender-protocol receivers, and the A/B would time that loop, not the server. Here they share
only the machine's cores with the server, as a studio's reviewers share its network.

Run by the bench: ``python -m tools.bench.viewer_swarm HTTP TOKEN ROOM COUNT MEASURED``. It prints
``ready`` once every viewer has the room's snapshot, then reads one line from stdin holding how many
deliveries to wait for (at most 10 s), prints the measured viewers' latencies (seconds) and its own CPU
time as one JSON object, and ends.
"""

from __future__ import annotations

import json
import os
import sys
import time
from functools import partial

import trio

from tools.bench.viewers import _viewer


async def swarm(http: str, token: str, room: str, count: int, measured: int) -> None:
    latencies: list[float] = []
    every = max(1, count // max(measured, 1))
    limiter = trio.CapacityLimiter(32)  # the HTTP port serves 64 requests at once
    stdin = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
    async with trio.open_nursery() as nursery:

        async def open_one(i: int) -> None:
            async with limiter:
                viewer = partial(_viewer, http, token, room, latencies if i % every == 0 else None)
                await nursery.start(viewer)

        async with trio.open_nursery() as opening:
            for i in range(count):
                opening.start_soon(open_one, i)
        print("ready", flush=True)
        line = b""
        while not line.endswith(b"\n"):
            data = await stdin.receive_some(64)
            if not data:
                break
            line += data
        expected = int(line or b"0")
        with trio.move_on_after(10):
            while len(latencies) < expected:
                await trio.sleep(0.05)
        print(json.dumps({"latencies": latencies, "cpu_seconds": time.process_time()}), flush=True)
        nursery.cancel_scope.cancel()


def main(argv: list[str]) -> None:
    http, token, room, count, measured = argv
    # Below the server and the measured Blender-protocol clients: the reviewers' machines would not take
    # their CPU, and on this machine they must not delay the receivers the A/B measures.
    os.nice(10)
    trio.run(swarm, http, token, room, int(count), int(measured))


if __name__ == "__main__":
    main(sys.argv[1:])
