"""Cluster benchmarks: ``python -m tools.bench fanout --cluster N``, ``... client-failover`` and
``... large-writes``.

Each starts its own ``blendsync serve`` processes on 127.0.0.1 (fresh data, fsync on); ``fanout``
compares with a single node started in the same run, ``large-writes`` with the server of another checkout
(``--server-root``).
"""

from __future__ import annotations

import argparse
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio

from broadcaster.client import Client, ConnectionLost, ServerError, connect
from tools.cluster import ServeCluster, longest_writes

from .server import fanout


async def cluster_fanout(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"bench": "fanout-cluster", "nodes": args.cluster}
    for label, size in (("cluster", args.cluster), ("single_node", 1)):
        async with ServeCluster(size) as cluster:
            await cluster.leader()
            addresses = cluster.addresses()
            await trio.sleep(0.5)  # let every node register its client address
            results[label] = await fanout(
                "127.0.0.1",
                cluster.ports[1],
                args.clients,
                args.messages,
                args.size,
                args.rate,
                receiver_addresses=addresses,
            )
    results["ratio_deliveries"] = round(
        results["cluster"]["deliveries_per_s"] / results["single_node"]["deliveries_per_s"], 3
    )
    return results


@asynccontextmanager
async def _writer_in_room(cluster: ServeCluster, leader: int, prefix: str) -> AsyncIterator[Client]:
    """A client of the leader that fails over, as the add-on's does, joined to a new room of its own."""
    async with connect(
        "127.0.0.1", cluster.ports[leader], name="w", failover=True, addresses=cluster.addresses()
    ) as client:
        room = f"{prefix}-{secrets.token_hex(3)}"
        await client.create_room(room, keep_open=True)
        await client.join(room)
        yield client


async def client_failover(args: argparse.Namespace) -> dict[str, Any]:
    """A client writing through the leader; kill -9 the leader; the gap between acks around the kill."""
    rounds = []
    async with ServeCluster(args.nodes) as cluster:
        for _ in range(args.rounds):
            leader = await cluster.leader()
            async with _writer_in_room(cluster, leader, "failover") as client:
                acks: list[float] = []
                killed_at = 0.0
                i = 0
                while not (killed_at and acks and acks[-1] > killed_at + 1.0):
                    i += 1
                    try:
                        await client.set(f"k{i}", b"x")
                    except (ServerError, ConnectionLost):
                        continue
                    acks.append(trio.current_time())
                    if i == 200:
                        cluster.kill(leader)
                        killed_at = trio.current_time()
                    await trio.sleep(0.002)
                before = max(t for t in acks if t <= killed_at)
                after = min(t for t in acks if t > killed_at)
                rounds.append({"gap_s": round(after - before, 3), "reconnects": client.reconnects})
            await cluster.start(leader)
            await trio.sleep(1.0)
    return {
        "bench": "client-failover",
        "nodes": args.nodes,
        "rounds": rounds,
        "max_gap_s": max(r["gap_s"] for r in rounds),
    }


async def large_writes(args: argparse.Namespace) -> dict[str, Any]:
    """Values of ``--mb`` MB set one after the other through a cluster's leader: how long each took, whether
    it failed, and whether the leader and the term held (each node's longest durable write beside)."""
    results: dict[str, Any] = {"bench": "large-writes", "nodes": args.nodes, "mb": args.mb}
    roots = {"this": None, **({"other": Path(args.server_root).resolve()} if args.server_root else {})}
    for label, code in roots.items():
        async with ServeCluster(args.nodes, code=code) as cluster:
            leader = await cluster.leader()
            term = (await cluster.status(leader))["term"]
            writes = []
            async with _writer_in_room(cluster, leader, "large") as client:
                for i in range(args.writes):
                    value = os.urandom(int(args.mb * 1024 * 1024))
                    started = trio.current_time()
                    try:
                        await client.set(f"large/{i}", value)
                        error = None
                    except (ServerError, ConnectionLost) as exc:
                        error = str(exc)
                    writes.append({"seconds": round(trio.current_time() - started, 3), "error": error})
            statuses = {i: await cluster.status(i) for i in cluster.ids}
        results[label] = {
            "server_root": str(code or "this checkout"),
            "writes": writes,
            "failed": sum(1 for w in writes if w["error"]),
            "seconds_max": max(w["seconds"] for w in writes),
            "terms_added": max(s["term"] for s in statuses.values()) - term,
            "leader_kept": statuses[leader]["role"] == "leader",
            "fsync_seconds_max": longest_writes(statuses),
        }
    return results


def add_arguments(kinds: Any) -> None:
    failover = kinds.add_parser("client-failover", help="the gap a writing client sees when the leader dies")
    failover.add_argument("--nodes", type=int, choices=[3, 5], default=3)
    failover.add_argument("--rounds", type=int, default=3)
    failover.add_argument("--json", action="store_true")
    large = kinds.add_parser("large-writes", help="large values set through a cluster: latency and elections")
    large.add_argument("--nodes", type=int, choices=[3, 5], default=3)
    large.add_argument("--mb", type=float, default=60.0, help="size of each value (under max_frame_size)")
    large.add_argument("--writes", type=int, default=4)
    large.add_argument("--server-root", help="another checkout's server to run after this one (A/B)")
    large.add_argument("--json", action="store_true")
