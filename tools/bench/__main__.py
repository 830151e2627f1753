"""``python -m tools.bench KIND ...``: parse, run one benchmark, print its figures (``--json``: one line)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import trio

from . import (
    blame,
    cluster,
    guessing,
    history_large,
    history_storage,
    raft,
    server,
    storage,
    tree_log,
    viewers,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tools.bench", description=__doc__)
    kinds = parser.add_subparsers(dest="bench", required=True)
    server.add_arguments(kinds)
    raft.add_arguments(kinds)
    cluster.add_arguments(kinds)
    guessing.add_arguments(kinds)
    viewers.add_arguments(kinds)
    storage.add_arguments(kinds)
    history_storage.add_arguments(kinds)
    history_large.add_arguments(kinds)
    tree_log.add_arguments(kinds)
    blame.add_arguments(kinds)
    return parser


async def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.bench in ("raft", "failover"):
        return await raft.run(args)
    if args.bench in ("viewers", "viewer-load"):
        return await viewers.run(args)
    if args.bench == "storage":
        return await storage.run(args)
    if args.bench == "history-storage":
        return await history_storage.run(args)
    if args.bench == "history-large":
        return await history_large.run(args)
    if args.bench == "tree-log":
        return tree_log.run(args)
    if args.bench == "blame":
        return blame.run(args)
    if args.bench == "guessing":
        return await guessing.run(args)
    if args.bench == "client-failover":
        return await cluster.client_failover(args)
    if args.bench == "large-writes":
        return await cluster.large_writes(args)
    if args.bench == "fanout" and args.cluster:
        return await cluster.cluster_fanout(args)
    return await server.run(args)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.bench == "relay":
        trio.run(server.run_relay, args.host, args.port)
        return 0
    result = trio.run(run, args)
    if args.json:
        print(json.dumps(result, sort_keys=True))
    else:
        for key, value in result.items():
            print(f"{key:>28}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
