"""``python -m tools.bench history-large``: checkpoint, restore and fork of rooms past one log entry.

Starts ``blendsync serve`` (default settings: 64 MiB frames, so a history change goes in parts past 32 MiB
and one log entry holds at most 129 MiB) on a fresh data dir. For each room size in ``--mb`` it fills a room
with values of ``--value`` bytes, then times, as a member sees them: a named checkpoint (until
``checkpoint_made``), a restore to it after every value changed (until the restorer holds the checkpoint's
state again: the ``restored`` answer comes after the last part is applied), and a fork from it (until
``forked``). Each is reported in seconds and MB/s of room, with the server's peak memory (VmHWM) at the
end of each size. The smallest size is the baseline: one transaction each.
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

from broadcaster import history_client as hc
from broadcaster.client import connect
from tools.bench.history_storage import serve_process


def add_arguments(kinds: Any) -> None:
    large = kinds.add_parser("history-large", help="checkpoint, restore and fork of rooms past one log entry")
    large.add_argument(
        "--mb", type=int, nargs="+", default=[24, 256], help="room sizes, MB (first: baseline)"
    )
    large.add_argument("--value", type=int, default=65536, help="bytes per value")
    large.add_argument("--json", action="store_true")


async def run(args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {"value_bytes": args.value, "rooms": []}
    with (
        tempfile.TemporaryDirectory(prefix="bench-history-large-") as root,
        serve_process(Path(root) / "data") as (proc, host, port),
    ):
        for mb in args.mb:
            figures = await _one_room(host, port, f"room-{mb}", mb * 1_000_000 // args.value, args.value)
            figures["server_peak_mb"] = _peak_mb(proc.pid)
            result["rooms"].append({"mb": mb, **figures})
    base = result["rooms"][0]
    for room in result["rooms"][1:]:  # seconds per MB against the baseline's
        room["per_mb_vs_baseline"] = {
            what: round((room[what] / room["mb"]) / (base[what] / base["mb"]), 2)
            for what in ("checkpoint_s", "restore_s", "fork_s")
        }
    return result


async def _one_room(host: str, port: int, room: str, keys: int, size: int) -> dict[str, Any]:
    names = [f"obj/{n:06d}" for n in range(keys)]
    per_frame = max(1, (32 * 1024 * 1024) // (size + 64))
    async with connect(host, port, name="bench", kind="bench") as ana:
        await ana.create_room(room, keep_open=True)
        await ana.join(room)

        async def fill() -> None:
            for start in range(0, keys, per_frame):
                await ana.batch([["set", key, os.urandom(size)] for key in names[start : start + per_frame]])

        await fill()
        original = dict(ana.state)
        started = time.perf_counter()
        made = await hc.checkpoint(ana, "bench")
        checkpoint_s = time.perf_counter() - started
        await fill()
        started = time.perf_counter()
        await hc.restore(ana, checkpoint=made["id"])
        restore_s = time.perf_counter() - started
        if dict(ana.state) != original:
            raise RuntimeError("the restore did not bring the checkpoint's state back")
        started = time.perf_counter()
        await hc.fork(ana, f"{room}-fork", checkpoint=made["id"])
        fork_s = time.perf_counter() - started
        restore_entries = len(await hc.checkpoints(ana))
    mb = keys * size / 1e6
    return {
        "keys": keys,
        "checkpoint_s": round(checkpoint_s, 2),
        "restore_s": round(restore_s, 2),
        "fork_s": round(fork_s, 2),
        "checkpoint_mb_per_s": round(mb / checkpoint_s, 1),
        "restore_mb_per_s": round(mb / restore_s, 1),
        "fork_mb_per_s": round(mb / fork_s, 1),
        "checkpoints_after": restore_entries,
    }


def _peak_mb(pid: int) -> float | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    found = re.search(r"VmHWM:\s+(\d+) kB", status)
    return round(int(found.group(1)) / 1024, 1) if found else None
