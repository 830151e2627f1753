"""``blendsync bench raft`` and ``blendsync bench failover``: real replica processes on 127.0.0.1.

raft: C clients each do put after put (fsync'd, replicated) for T seconds; commits/s and latency.
failover: kill -9 the leader of a 3-node cluster; time to a new leader and to the first acknowledged write.
The baseline in the same run is a one-node cluster (every commit fsync'd, nothing to replicate).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any

import trio

from replication import FrameStream

from .local_cluster import ReplicaCluster


def add_arguments(kinds: Any) -> None:
    raft = kinds.add_parser("raft", help="replicated commits per second (fsync on)")
    raft.add_argument("--nodes", type=int, choices=[1, 3, 5], default=3)
    raft.add_argument("--clients", type=int, default=64)
    raft.add_argument("--seconds", type=float, default=5.0)
    raft.add_argument("--size", type=int, default=64, help="value bytes")
    raft.add_argument("--pipeline", type=int, default=1, help="requests each client keeps in flight")
    raft.add_argument("--no-baseline", action="store_true")
    raft.add_argument("--json", action="store_true")
    failover = kinds.add_parser("failover", help="kill -9 the leader; time to the next acknowledged write")
    failover.add_argument("--nodes", type=int, choices=[3, 5], default=3)
    failover.add_argument("--rounds", type=int, default=3)
    failover.add_argument("--json", action="store_true")


class KV:
    """One connection, one request at a time."""

    def __init__(self, address: tuple[str, int]):
        self.address = address
        self.frames: FrameStream | None = None
        self.ids = 0

    async def request(self, timeout: float = 5.0, **request: Any) -> dict[str, Any]:
        with trio.fail_after(timeout):
            if self.frames is None:
                self.frames = FrameStream(await trio.open_tcp_stream(*self.address))
            self.ids += 1
            await self.frames.send({"id": self.ids, **request})
            return await self.frames.receive()

    async def close(self) -> None:
        if self.frames is not None:
            await self.frames.stream.aclose()


async def leader_of(cluster: ReplicaCluster, alive: list[int]) -> int:
    with trio.fail_after(20):
        while True:
            for node_id in alive:
                kv = KV(cluster.kv[node_id])
                try:
                    status = await kv.request(op="status", timeout=1)
                    if status.get("role") == "leader":
                        return node_id
                except (OSError, trio.TooSlowError, Exception):
                    pass
                finally:
                    await kv.close()
            await trio.sleep(0.05)


async def commit_rate(
    cluster: ReplicaCluster, clients: int, seconds: float, size: int, pipeline: int = 1
) -> dict[str, Any]:
    leader = await leader_of(cluster, list(cluster.raft))
    value = os.urandom(size)
    latencies: list[float] = []
    errors = 0

    async def client(index: int) -> None:
        nonlocal errors
        frames = FrameStream(await trio.open_tcp_stream(*cluster.kv[leader]))
        window = trio.Semaphore(pipeline)
        sent: dict[int, float] = {}
        seq = 0

        async def receive() -> None:
            nonlocal errors
            while sent or time.perf_counter() < deadline:
                reply = await frames.receive()
                started = sent.pop(reply["id"])
                if reply.get("ok"):
                    latencies.append(time.perf_counter() - started)
                else:
                    errors += 1
                window.release()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(receive)
            while time.perf_counter() < deadline:
                await window.acquire()
                seq += 1
                sent[seq] = time.perf_counter()
                await frames.send(
                    {
                        "id": seq,
                        "op": "put",
                        "key": f"k{index}-{seq % 64}",
                        "value": value,
                        "client": f"bench-{index}",
                        "seq": seq,
                    }
                )
        await frames.stream.aclose()

    start = time.perf_counter()
    deadline = start + seconds
    async with trio.open_nursery() as nursery:
        for index in range(clients):
            nursery.start_soon(client, index)
    elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "nodes": cluster.size,
        "clients": clients,
        "seconds": round(elapsed, 3),
        "commits": len(latencies),
        "commits_per_s": round(len(latencies) / elapsed, 1),
        "errors": errors,
        "p50_ms": round(statistics.median(latencies) * 1000, 3) if latencies else None,
        "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 3) if latencies else None,
    }


async def failover_round(cluster: ReplicaCluster) -> dict[str, float]:
    alive = [i for i, p in cluster.procs.items() if p.poll() is None]
    leader = await leader_of(cluster, alive)
    others = [i for i in alive if i != leader]
    kv = KV(cluster.kv[others[0]])
    await kv.request(op="put", key="before", value=b"x", client="failover", seq=int(time.time() * 1000))
    cluster.kill(leader)
    killed = time.perf_counter()
    election = None
    seq = int(time.time() * 1000) + 1
    while True:
        if election is None:
            status = await KV(cluster.kv[others[0]]).request(op="status")
            if status.get("leader") not in (None, leader):
                election = time.perf_counter() - killed
        try:
            reply = await kv.request(op="put", key="after", value=b"y", client="failover", seq=seq, timeout=3)
            if reply.get("ok"):
                break
        except trio.TooSlowError:
            pass
        seq += 1
        await trio.sleep(0.01)
    first_write = time.perf_counter() - killed
    await kv.close()
    cluster.start(leader)  # back for the next round
    return {
        "election_s": round(election if election is not None else first_write, 3),
        "first_write_s": round(first_write, 3),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.bench == "raft":
        with ReplicaCluster(args.nodes) as cluster:
            measured = await commit_rate(cluster, args.clients, args.seconds, args.size, args.pipeline)
            result = {"bench": "raft", **measured}
        if not args.no_baseline and args.nodes > 1:
            with ReplicaCluster(1) as single:
                base = await commit_rate(single, args.clients, args.seconds, args.size, args.pipeline)
            result["baseline_1_node"] = base
            result["ratio_commits"] = round(result["commits_per_s"] / base["commits_per_s"], 3)
        return result
    rounds = []
    with ReplicaCluster(args.nodes) as cluster:
        for _ in range(args.rounds):
            rounds.append(await failover_round(cluster))
            await trio.sleep(1.0)
    return {
        "bench": "failover",
        "nodes": args.nodes,
        "rounds": rounds,
        "election_s": max(r["election_s"] for r in rounds),
        "first_write_s": max(r["first_write_s"] for r in rounds),
        "median_first_write_s": statistics.median(r["first_write_s"] for r in rounds),
    }
