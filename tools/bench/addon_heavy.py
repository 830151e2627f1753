"""Heavy scenes for ``python tools/bench/addon.py``: ``vertex`` and ``huge``.

``vertex``: one Blender process publishes a ``--grid`` x ``--grid`` vertex grid
and a second one joins; the first then moves one vertex ``--edits`` times (a
different one each time), each time waiting for the ack. Measured per edit:
the bytes the add-on wrote to its socket, the chunks it uploaded, and the
bytes the server process wrote to storage (``write_bytes`` of
``/proc/<pid>/io``: the lmdb log entry, the tree records and their pages,
all fsync'd before the ack). Both scenes' hashes must be equal at the end.

``huge``: one Blender process builds a ``--grid`` x ``--grid`` vertex grid
(3163: 10,004,569 vertices) and a packed image file of ``--image-mb`` MB of
random bytes, publishes them, and a second one joins. Measured: publish and
join time and bytes, each process's peak memory; both scenes' hashes must be
equal. Minutes and gigabytes: a run by hand, not a test.
"""

from __future__ import annotations

import argparse
import secrets
import time
from pathlib import Path
from typing import Any


def _written_bytes(pid: int) -> int:
    """Bytes a process caused to be written to storage so far (Linux)."""
    with open(f"/proc/{pid}/io") as io:
        return next(int(line.split()[1]) for line in io if line.startswith("write_bytes:"))


def bench_vertex(args: argparse.Namespace, Server: Any, Worker: Any) -> dict[str, Any]:
    """``Server`` and ``Worker``: addon.py's (this module is loaded by its ``main``)."""
    room = f"bench-vertex-{secrets.token_hex(4)}"
    total = time.perf_counter()
    with Server() as server:
        publisher = Worker("publisher")
        joiner = None
        try:
            built = publisher("build", objects=0, grid=args.grid)
            publisher("connect", servers=server.address)
            published = publisher("publish", room=room, timeout=300)
            joiner = Worker("joiner")
            joiner("connect", servers=server.address)
            joiner("join", room=room, timeout=300)
            edits = []
            for i in range(args.edits):
                written = _written_bytes(server.proc.pid)
                edit = publisher("move_vertex", index=1 + i * 7919)
                edit["server_written_bytes"] = _written_bytes(server.proc.pid) - written
                edits.append(edit)
            joiner("settle", seconds=1.0)
            pub_state, join_state = publisher("state"), joiner("state")
        finally:
            for worker in (joiner, publisher):
                if worker is not None:
                    worker.close()
    return {
        "bench": "addon-vertex",
        "addon_root": Worker.addon_root or str(Path(__file__).resolve().parents[2]),
        "vertices": built["vertices"],
        "publish_bytes_sent": published["bytes_sent"],
        "edits": edits,
        "bytes_sent_per_edit": sorted(e["bytes_sent"] for e in edits)[len(edits) // 2],
        "server_written_bytes_per_edit": sorted(e["server_written_bytes"] for e in edits)[len(edits) // 2],
        "hash_equal": pub_state["hash"] == join_state["hash"],
        "wall_seconds": round(time.perf_counter() - total, 1),
    }


def _peak_rss(pid: int) -> int:
    """A process's peak resident memory so far, in bytes (Linux)."""
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))


def bench_huge(args: argparse.Namespace, Server: Any, Worker: Any) -> dict[str, Any]:
    room = f"bench-huge-{secrets.token_hex(4)}"
    phases: dict[str, int] = {}  # peak resident memory of the build, the publish, the join (not the hashes)
    total = time.perf_counter()
    with Server() as server:
        publisher = Worker("publisher")
        joiner = None
        try:
            built = publisher("build", objects=0, grid=args.grid, timeout=args.timeout)
            packed = publisher("pack_image", megabytes=args.image_mb, timeout=args.timeout)
            publisher("connect", servers=server.address)
            built_rss = publisher("memory", reset=True)  # the scene built: its own memory, not the add-on's
            phases["build"] = built_rss["peak"]
            published = publisher("publish", room=room, timeout=args.timeout)
            phases["publish"] = publisher("memory")["peak"]
            pub_state = publisher("state", timeout=args.timeout)
            joiner = Worker("joiner")
            joiner("connect", servers=server.address)
            join_rss = joiner("memory", reset=True)
            joined = joiner("join", room=room, timeout=args.timeout)
            phases["join"] = joiner("memory")["peak"]
            join_state = joiner("state", timeout=args.timeout)
            # (the publisher's peak was reset after the build: the larger of the two)
            rss = {"publisher": max(_peak_rss(publisher.proc.pid), phases["build"])}
            rss["joiner"] = _peak_rss(joiner.proc.pid)
            rss["server"] = _peak_rss(server.proc.pid)
        finally:
            for worker in (joiner, publisher):
                if worker is not None:
                    worker.close()
    return {
        "bench": "addon-huge",
        "vertices": built["vertices"],
        "image_bytes": packed["image_bytes"],
        "publish_seconds": published["seconds"],
        "publish_bytes_sent": published["bytes_sent"],
        "join_seconds": joined["seconds"],
        "join_bytes_received": joined["bytes_received"],
        "peak_rss_mb": {name: round(value / 2**20) for name, value in rss.items()},
        "before_rss_mb": {
            "publisher": round(built_rss["rss"] / 2**20),
            "joiner": round(join_rss["rss"] / 2**20),
        },
        "phase_peak_rss_mb": {name: round(value / 2**20) for name, value in phases.items()},
        "hash_equal": pub_state["hash"] == join_state["hash"],
        "apply_errors": join_state["errors"],
        "messages": {"publisher": pub_state["messages"], "joiner": join_state["messages"]},
        "wall_seconds": round(time.perf_counter() - total, 1),
    }
