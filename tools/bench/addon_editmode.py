"""``python tools/bench/addon.py editmode``: how soon others see a vertex moved in edit mode.

One Blender process (Ana) builds ``--objects`` small meshes and one ``--grid`` x ``--grid`` vertex grid
and publishes them; a second one (Ben) joins. Ana enters edit mode on the grid (and holds its lease), then
``--samples`` times moves one vertex of the edit mesh (``bmesh``, a different vertex and height each time)
at a random moment between two of her timer calls, as an operator would, while both run their timers the
way Blender runs them. Measured per sample: from the edit to the moment Ben's mesh shows the new height
(wall clock, same machine), Ana still in edit mode; p50, p99 and max, and Ana's slowest timer call.
``--profile PREFIX``: cProfile of both processes' timer calls during the samples.
"""

from __future__ import annotations

import argparse
import random
import secrets
import time
from pathlib import Path
from typing import Any


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def bench_editmode(args: argparse.Namespace, Server: Any, Worker: Any) -> dict[str, Any]:
    """``Server`` and ``Worker``: addon.py's (this module is loaded by its ``main``)."""
    room = f"bench-editmode-{secrets.token_hex(4)}"
    total = time.perf_counter()
    phases = random.Random(12)  # the moment of each edit between two timer calls: same in every run
    samples: list[float] = []
    timer_max: list[float] = []
    with Server() as server:
        ana = Worker("ana")
        ben = None
        try:
            built = ana("build", objects=args.objects, grid=args.grid)
            ana("connect", servers=server.address)
            ana("publish", room=room, timeout=300)
            ben = Worker("ben")
            ben("connect", servers=server.address)
            ben("join", room=room, timeout=300)
            for worker in (ana, ben):  # both done with their scans after publishing or joining
                worker.send("settle", seconds=args.settle)
            for worker in (ana, ben):
                worker.call_reply(None, timeout=args.settle + 120)
            entered = ana("edit_mode_enter", object="Terrain")
            vertices = entered["vertices"]
            if args.profile:
                for worker in (ana, ben):
                    worker("profile")
            for i in range(args.samples):
                index, z = (1 + i * 7919) % vertices, round(1.0 + 0.25 * i, 4)
                expr = f'round(bpy.data.meshes["Terrain"].vertices[{index}].co.z, 4)'
                ben.send("watch_expr", expr=expr, expected=z, timeout=60)
                after = phases.uniform(0.0, 0.3)
                moved = ana("edit_mode_move", object="Terrain", index=index, z=z, after=after)
                seen = ben.call_reply(None, timeout=70)
                assert moved["mode"] == "EDIT"
                samples.append(round(seen["seen_at"] - moved["edit_at"], 4))
                timer_max.append(moved["timer_max_ms"])
            if args.profile:
                for worker, who in ((ana, "ana"), (ben, "ben")):
                    worker("profile", path=str(Path(f"{args.profile}-{who}.prof").resolve()))
            ana("edit_mode_leave", object="Terrain")
            ben("settle", seconds=0.5)
            ana_state, ben_state = ana("state"), ben("state")
        finally:
            for worker in (ben, ana):
                if worker is not None:
                    worker.close()
    ms = [s * 1000 for s in samples]
    return {
        "bench": "addon-editmode",
        "addon_root": Worker.addon_root or "",
        "objects": built["objects"],
        "vertices": vertices,
        "samples": len(ms),
        "seen_ms": [round(m, 1) for m in ms],
        "seen_p50_ms": round(_percentile(ms, 0.5), 1),
        "seen_p99_ms": round(_percentile(ms, 0.99), 1),
        "seen_max_ms": round(max(ms), 1),
        "editor_timer_max_ms": round(max(timer_max), 1),
        "hash_equal": ana_state["hash"] == ben_state["hash"],
        "wall_seconds": round(time.perf_counter() - total, 1),
    }


def add_parser(kinds: Any) -> argparse.ArgumentParser:
    sub = kinds.add_parser("editmode", help="how soon others see a vertex moved in edit mode")
    sub.add_argument("--objects", type=int, default=500, help="small mesh objects besides the grid")
    sub.add_argument("--grid", type=int, default=447, help="grid of N x N vertices (447: 199,809)")
    sub.add_argument("--samples", type=int, default=20)
    sub.add_argument("--settle", type=float, default=2.0, help="seconds of timer before the first edit")
    sub.add_argument(
        "--profile",
        default=None,
        help="write cProfile stats of the samples' timer calls to PROFILE-ana.prof and PROFILE-ben.prof",
    )
    sub.add_argument("--json", action="store_true")
    return sub
