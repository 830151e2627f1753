"""``python -m tools.bench tree-log``: the tree's CPU cost of one room write against the length of its log.

In one process, no server: a tree whose room log holds ``--retained`` entries (the retention cap) applies
``--writes`` commands shaped like a room write (a key put and a capped log append, so each one also trims
the oldest entry), and reports the CPU microseconds per write. What a write costs should not depend on how
much history the room keeps; compare e.g. ``--retained 10000`` with ``--retained 1000000``.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

from replication.tree import Tree, encode_envelope

FILL_BATCH = 1000  # log entries appended per command while filling


def add_arguments(kinds: Any) -> None:
    tree_log = kinds.add_parser("tree-log", help="tree CPU per room write vs the retained log's length")
    tree_log.add_argument("--retained", type=int, default=10_000, help="log entries kept (the cap)")
    tree_log.add_argument("--writes", type=int, default=20_000, help="capped writes timed")
    tree_log.add_argument("--keys", type=int, default=1000)
    tree_log.add_argument("--size", type=int, default=100, help="value bytes")
    tree_log.add_argument(
        "--authors", action="store_true", help="each write also records its key's author (seq_of)"
    )
    tree_log.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.retained < 1 or args.writes < 1:
        raise SystemExit("--retained and --writes must be at least 1")
    tree = Tree()
    index = 0
    entry = {"c": "bench", "o": 0, "ops": [], "u": "bench", "t": 0}
    fill_started = time.process_time()
    for first in range(0, args.retained, FILL_BATCH):
        count = min(FILL_BATCH, args.retained - first)
        append = {"op": "append", "path": ["rooms", "r", "log"], "payload": entry}
        index += 1
        tree.apply(index, encode_envelope({"then": [append] * count}))
    fill_seconds = time.process_time() - fill_started
    pad = os.urandom(max(0, args.size - 8))
    commands = []
    for i in range(args.writes):
        value = (i.to_bytes(8, "little") + pad)[: args.size]
        key = f"k/{i % args.keys}"
        op_entry = {"c": "bench", "o": i, "ops": [["set", key, value]], "u": "bench", "t": 0}
        record = {"op": "put", "path": ["rooms", "r", "authors", key], "payload": ["bench", "bench", 0]}
        author = [{**record, "seq_of": ["rooms", "r", "log"]}] if args.authors else []
        commands.append(
            encode_envelope(
                {
                    "compare": [{"exists": ["rooms", "r"]}],
                    "then": [
                        {"op": "put", "path": ["rooms", "r", "keys", key], "payload": value},
                        *author,
                        {
                            "op": "append",
                            "path": ["rooms", "r", "log"],
                            "payload": op_entry,
                            "cap": args.retained,
                        },
                    ],
                }
            )
        )
    started = time.process_time()
    for data in commands:
        index += 1
        result, _ = tree.apply(index, data)
    seconds = time.process_time() - started
    assert result["ok"] and result["results"][-1]["trimmed"] == 1, result
    return {
        "authors": args.authors,
        "retained": args.retained,
        "writes": args.writes,
        "cpu_us_per_write": round(seconds / args.writes * 1e6, 1),
        "fill_cpu_seconds": round(fill_seconds, 1),
    }
