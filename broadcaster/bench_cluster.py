"""Cluster benchmarks: ``blendsync bench fanout --cluster N`` and ``blendsync bench client-failover``.

Both start their own ``blendsync serve`` processes on 127.0.0.1 (fresh data, fsync on) and compare with a
single node started in the same run.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import trio

from .bench_raft import _free_port


class ServeCluster:
    """N ``blendsync serve`` processes forming one cluster (N = 1: the embedded single node)."""

    def __init__(self, size: int):
        self.dir = Path(tempfile.mkdtemp(prefix="blendsync-bench-cluster-"))
        (self.dir / "secret").write_text(secrets.token_hex(32))
        self.ids = list(range(1, size + 1))
        self.ports = {i: _free_port() for i in self.ids}
        self.raft = {i: f"127.0.0.1:{_free_port()}" for i in self.ids}
        self.procs: dict[int, subprocess.Popen[str]] = {}

    def start(self, node_id: int) -> None:
        command = [
            sys.executable,
            "-m",
            "broadcaster.cli",
            "--log-level",
            "warning",
            "serve",
            "--port",
            str(self.ports[node_id]),
            "--data-dir",
            str(self.dir / f"n{node_id}"),
        ]
        if len(self.ids) > 1:
            peers = ",".join(f"{j}={a}" for j, a in self.raft.items() if j != node_id)
            command += [
                "--node-id",
                str(node_id),
                "--raft-listen",
                self.raft[node_id],
                "--peers",
                peers,
                "--cluster-secret-file",
                str(self.dir / "secret"),
            ]
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        if "listening" not in proc.stdout.readline():
            proc.kill()
            raise RuntimeError(f"node {node_id} did not start")
        self.procs[node_id] = proc

    def addresses(self) -> list[str]:
        return [f"127.0.0.1:{self.ports[i]}" for i in self.ids]

    def __enter__(self) -> ServeCluster:
        for node_id in self.ids:
            self.start(node_id)
        return self

    def __exit__(self, *exc: object) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
            proc.wait()

    async def leader(self) -> int:
        from .client import connect

        with trio.fail_after(20):
            while True:
                for node_id in self.ids:
                    if self.procs[node_id].poll() is not None:
                        continue
                    try:
                        async with connect("127.0.0.1", self.ports[node_id], name="bench", kind="admin") as c:
                            if (await c.admin("status"))["role"] == "leader":
                                return node_id
                    except Exception:
                        pass
                await trio.sleep(0.1)


async def cluster_fanout(args: argparse.Namespace) -> dict[str, Any]:
    from .bench import fanout

    results: dict[str, Any] = {"bench": "fanout-cluster", "nodes": args.cluster}
    for label, size in (("cluster", args.cluster), ("single_node", 1)):
        with ServeCluster(size) as cluster:
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


async def client_failover(args: argparse.Namespace) -> dict[str, Any]:
    """A client writing through the leader; kill -9 the leader; the gap between acks around the kill."""
    from .client import ConnectionLost, ServerError, connect

    rounds = []
    with ServeCluster(args.nodes) as cluster:
        for _ in range(args.rounds):
            leader = await cluster.leader()
            async with connect(
                "127.0.0.1", cluster.ports[leader], name="w", failover=True, addresses=cluster.addresses()
            ) as client:
                room = f"failover-{secrets.token_hex(3)}"
                await client.create_room(room, keep_open=True)
                await client.join(room)
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
                        os.kill(cluster.procs[leader].pid, signal.SIGKILL)
                        cluster.procs[leader].wait()
                        killed_at = trio.current_time()
                    await trio.sleep(0.002)
                before = max(t for t in acks if t <= killed_at)
                after = min(t for t in acks if t > killed_at)
                rounds.append({"gap_s": round(after - before, 3), "reconnects": client.reconnects})
            cluster.start(leader)
            await trio.sleep(1.0)
    return {
        "bench": "client-failover",
        "nodes": args.nodes,
        "rounds": rounds,
        "max_gap_s": max(r["gap_s"] for r in rounds),
    }


def add_arguments(kinds: Any) -> None:
    failover = kinds.add_parser("client-failover", help="the gap a writing client sees when the leader dies")
    failover.add_argument("--nodes", type=int, choices=[3, 5], default=3)
    failover.add_argument("--rounds", type=int, default=3)
    failover.add_argument("--json", action="store_true")
