"""``python -m tools.bench blame``: what one blame request costs against a room's retained log.

In one process, no server: a tree holding one room whose log retains ``--retained`` writes (built with the
server's own write command, so each write records its keys' author) over ``--keys`` keys, then the time of
``history.blame`` (``--limit`` rows at most) for the whole room and for a prefix of about ``--narrow``
keys, three ways: from the author records (now), from the retained log for keys without a record (a room
written before records existed: all of its keys), and the way blame read before records existed (the
whole retained log, newest first). The room's size, not its history, should set what a request costs.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from broadcaster import history
from broadcaster.roomstore import authors_path, log_path, write_command
from replication.node import prefixed_children
from replication.tree import Tree, encode_envelope

FILL_BATCH = 500  # writes applied per command while filling (one command each would take minutes for 1M)


class TreeReads:
    """The reads blame makes of a node's copy, on a bare tree."""

    def __init__(self, tree: Tree):
        self.tree = tree

    def read_local(self, path: tuple[str, ...]) -> Any:
        return self.tree.get(path)

    def list_local(self, path: tuple[str, ...]) -> Any:
        return self.tree.children_items(path)

    def list_prefixed_local(self, path: tuple[str, ...], prefix: str, limit: int | None = None) -> Any:
        return prefixed_children(self.tree, path, prefix, limit)

    def seq_children_local(self, path: tuple[str, ...], after: int = 0, limit: int | None = None) -> Any:
        return self.tree.seq_children(path, after, limit)


def add_arguments(kinds: Any) -> None:
    blame = kinds.add_parser("blame", help="time of one blame request vs the retained log's length")
    blame.add_argument("--retained", type=int, default=100_000, help="log entries kept")
    blame.add_argument("--keys", type=int, default=1000)
    blame.add_argument("--narrow", type=int, default=10, help="keys under the narrow prefix (about)")
    blame.add_argument("--limit", type=int, default=1000, help="the request's limit (the protocol's default)")
    blame.add_argument("--repeat", type=int, default=5, help="requests timed (the best is reported)")
    blame.add_argument("--json", action="store_true")


def scan_blame(node: TreeReads, room: str, prefix: str) -> list[list[Any]]:
    """Blame as it was read before keys had author records: the whole retained log, newest first."""
    found: dict[str, list[Any]] = {}
    for name, _, entry in reversed(node.list_local(log_path(room))):
        for op in entry["ops"]:
            if op[1].startswith(prefix) and op[1] not in found:
                found[op[1]] = [op[1], int(name), entry["c"], entry.get("u", ""), entry.get("t", 0)]
    return sorted(found.values())


def _best_ms(call: Any, repeat: int) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        out = call()
        best = min(best, time.perf_counter() - started)
    return round(best * 1000, 3), out


def run(args: argparse.Namespace) -> dict[str, Any]:
    if min(args.retained, args.keys, args.narrow, args.limit, args.repeat) < 1:
        raise SystemExit("--retained, --keys, --narrow, --limit and --repeat must be at least 1")
    tree, room, index = Tree(), "r", 1
    tree.apply(
        index, encode_envelope({"then": [{"op": "put", "path": ["rooms", room, "meta"], "payload": {}}]})
    )
    width = len(str(args.keys - 1))
    fill_started = time.process_time()
    for first in range(0, args.retained, FILL_BATCH):
        then: list[dict[str, Any]] = []
        for i in range(first, min(first + FILL_BATCH, args.retained)):
            ops = [["set", f"obj/{i % args.keys:0{width}}", i.to_bytes(8, "little")]]
            then += write_command(room, f"c{i % 3}", i + 1, ops, None, author=f"artist{i % 3}", now=i)["then"]
        index += 1
        tree.apply(index, encode_envelope({"then": then}))
    fill_seconds = time.process_time() - fill_started
    node = TreeReads(tree)
    narrow = "obj/" + "0" * max(0, width - len(str(args.narrow)) + 1)  # obj/00: 10 of 1000 keys
    out: dict[str, Any] = {
        "retained": args.retained,
        "keys": args.keys,
        "fill_cpu_seconds": round(fill_seconds, 1),
    }
    for label, prefix in (("all", ""), ("narrow", narrow)):
        ms, rows = _best_ms(lambda p=prefix: history.blame(node, room, 0, p, None, args.limit), args.repeat)
        scan_ms, scanned = _best_ms(lambda p=prefix: scan_blame(node, room, p), min(args.repeat, 2))
        assert rows[0] == scanned[: args.limit], "records and log disagree"
        out[f"{label}_rows"] = len(rows[0])
        out[f"{label}_records_ms"] = ms
        out[f"{label}_log_scan_before_ms"] = scan_ms
    index += 1
    tree.apply(index, encode_envelope({"then": [{"op": "delete", "path": list(authors_path(room))}]}))
    for label, prefix in (("all", ""), ("narrow", narrow)):
        ms, _ = _best_ms(lambda p=prefix: history.blame(node, room, 0, p, None, args.limit), args.repeat)
        out[f"{label}_no_records_ms"] = ms
    return out
