"""Clusters of local processes on 127.0.0.1, for benchmarks and tests: one process per node id.

Each process announces that it is ready with its first line on stdout. Everything lives under one data
directory with a fresh cluster secret.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import trio


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalProcesses:
    """Base: subclasses say how to start node ``i`` (``command``) and what its ready line holds."""

    ready_marker = ""

    def __init__(self, size: int, root: Path | None = None, links: Any = None):
        self.dir = root if root is not None else Path(tempfile.mkdtemp(prefix="blendsync-local-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        self.secret = self.dir / "secret"
        self.secret.write_text(secrets.token_hex(32))
        self.ids = list(range(1, size + 1))
        self.raft = {i: f"127.0.0.1:{free_port()}" for i in self.ids}
        self.links = links  # optional per-link proxies (tests/faults/proxy.py), for real partitions
        self.procs: dict[int, subprocess.Popen[str]] = {}

    def command(self, node_id: int, **options: Any) -> list[str]:
        raise NotImplementedError

    def on_ready(self, node_id: int, line: str) -> None:
        """The process printed its ready line."""

    def peer_address(self, node_id: int, peer: int) -> str:
        """Where ``node_id`` reaches ``peer``'s cluster port (through a proxy when there are links)."""
        if self.links is None:
            return self.raft[peer]
        host, port = self.links.address(node_id, peer)
        return f"{host}:{port}"

    def start(self, node_id: int, **options: Any) -> None:
        if node_id not in self.raft:
            self.raft[node_id] = f"127.0.0.1:{free_port()}"
            self.ids.append(node_id)
        if self.links is not None:
            host, port = self.raft[node_id].rsplit(":", 1)
            self.links.set_target(node_id, host, int(port))
        proc = subprocess.Popen(self.command(node_id, **options), stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if self.ready_marker not in line:
            proc.kill()
            proc.wait()
            raise RuntimeError(f"node {node_id} did not start: {line!r}")
        self.on_ready(node_id, line)
        self.procs[node_id] = proc

    def signal(self, node_id: int, sig: int) -> None:
        os.kill(self.procs[node_id].pid, sig)
        if sig in (signal.SIGKILL, signal.SIGTERM):
            self.procs[node_id].wait(timeout=20)

    def kill(self, node_id: int) -> None:
        self.signal(node_id, signal.SIGKILL)

    def start_all(self) -> None:
        for node_id in list(self.ids):
            self.start(node_id)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGCONT)  # a paused process cannot die until it runs
                proc.kill()
            proc.wait(timeout=20)

    def __enter__(self) -> LocalProcesses:
        self.start_all()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()


class ReplicaCluster(LocalProcesses):
    """``python -m replication.replica`` processes (a node plus its KV service)."""

    ready_marker = "ready"

    def __init__(self, size: int, tick_ms: float = 50, election_ticks: int = 10, **kwargs: Any):
        super().__init__(size, **kwargs)
        self.size = size
        self.kv: dict[int, tuple[str, int]] = {}
        self.tick_ms, self.election_ticks = tick_ms, election_ticks

    def command(self, node_id: int, **options: Any) -> list[str]:
        peers = [f"--peer={j}={self.peer_address(node_id, j)}" for j in self.ids if j != node_id]
        return [sys.executable, "-m", "replication.replica", "--id", str(node_id),
                "--data-dir", str(self.dir / f"n{node_id}"), "--raft-listen", self.raft[node_id],
                "--cluster-secret-file", str(self.secret), "--tick-ms", str(self.tick_ms),
                "--election-ticks", str(self.election_ticks), *peers]  # fmt: skip

    def on_ready(self, node_id: int, line: str) -> None:
        host, port = line.split("kv=")[1].split()[0].rsplit(":", 1)
        self.kv[node_id] = (host, int(port))


class ServeCluster(LocalProcesses):
    """``blendsync serve`` processes forming one cluster (one process: the embedded single node)."""

    ready_marker = "listening"

    def __init__(self, size: int, tick_interval: float | None = None, extra_config: str = "", **kwargs: Any):
        super().__init__(size, **kwargs)
        self.ports = {i: free_port() for i in self.ids}
        self.tick_interval = tick_interval
        self.extra_config = extra_config  # TOML appended to every node's config file (e.g. TLS settings)

    def address(self, node_id: int) -> tuple[str, int]:
        return "127.0.0.1", self.ports[node_id]

    def addresses(self) -> list[str]:
        return [f"127.0.0.1:{self.ports[i]}" for i in self.ids]

    def command(self, node_id: int, join: bool = False, **options: Any) -> list[str]:
        if node_id not in self.ports:
            self.ports[node_id] = free_port()
        data_dir = self.dir / f"node{node_id}"
        command = [sys.executable, "-m", "broadcaster.cli", "--log-level", "warning", "serve",
                   "--port", str(self.ports[node_id]), "--data-dir", str(data_dir)]  # fmt: skip
        if len(self.ids) > 1 or join:
            peers = ",".join(f"{j}={self.peer_address(node_id, j)}" for j in self.ids if j != node_id)
            command += ["--node-id", str(node_id), "--raft-listen", self.raft[node_id], "--peers", peers,
                        "--cluster-secret-file", str(self.secret)]  # fmt: skip
        if join:
            command.append("--join")
        if self.tick_interval is not None or self.extra_config:
            config = self.dir / f"node{node_id}.toml"
            tick = (
                f"[cluster]\ntick_interval = {self.tick_interval}\n" if self.tick_interval is not None else ""
            )
            config.write_text(f"{self.extra_config}\n{tick}")
            command += ["--config", str(config)]
        return command

    async def status(self, node_id: int) -> dict[str, Any]:
        from .client import connect

        with trio.fail_after(5):
            async with connect(*self.address(node_id), name="status", kind="admin") as client:
                return await client.admin("status")

    async def leader(self, among: list[int] | None = None, timeout: float = 20.0) -> int:
        with trio.fail_after(timeout):
            while True:
                for node_id in among or self.ids:
                    if node_id not in self.procs or self.procs[node_id].poll() is not None:
                        continue
                    try:
                        if (await self.status(node_id))["role"] == "leader":
                            return node_id
                    except Exception:  # down or not answering yet
                        pass
                await trio.sleep(0.1)
