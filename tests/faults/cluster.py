"""Real replica processes wired through partition proxies.

``Cluster`` runs ``python -m replication.replica`` once per node. Node ``i`` is told that peer ``j``
lives at the address of proxy ``(i, j)``, and each proxy forwards to the raft port node ``j``
printed, so every Raft connection crosses a proxy that the test can cut. Clients talk to the nodes'
KV ports directly.

Each node keeps its data in ``<tmp>/n<i>/data`` and writes its stdout and stderr to
``<tmp>/n<i>/stdout.log`` and ``stderr.log`` (appended to across restarts), which ``Cluster.logs``
returns for failure reports. A restarted node gets the raft and KV ports it printed the first time.
"""

from __future__ import annotations

import atexit
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio
from kvclient import KVClient, request_once
from proxy import Links, open_links

REPO = Path(__file__).resolve().parents[2]
READY = re.compile(r"ready id=(\d+) raft=(\S+):(\d+) kv=(\S+):(\d+)")


class ClusterError(Exception):
    pass


@dataclass
class NodeProcess:
    id: int
    root: Path
    proc: subprocess.Popen | None = None
    raft_port: int = 0
    kv_port: int = 0
    kv_host: str = "127.0.0.1"
    paused: bool = False
    starts: int = 0
    exit_codes: list[int] = field(default_factory=list)

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def stdout_path(self) -> Path:
        return self.root / "stdout.log"

    @property
    def stderr_path(self) -> Path:
        return self.root / "stderr.log"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def kv_address(self) -> str | None:
        return f"{self.kv_host}:{self.kv_port}" if self.kv_port else None


class Cluster:
    def __init__(
        self,
        n: int,
        tmp_path: Path,
        links: Links,
        *,
        tick_ms: int = 20,
        election_ticks: int = 10,
        extra_args: Iterable[str] = (),
        env: dict[str, str] | None = None,
        module: str = "replication.replica",
    ):
        self.ids = list(range(1, n + 1))
        if sorted(links.ids) != self.ids:
            raise ValueError(f"links are for nodes {links.ids}, the cluster has {self.ids}")
        self.links = links
        self.root = Path(tmp_path)
        self.tick_ms = tick_ms
        self.election_ticks = election_ticks
        self.extra_args = list(extra_args)
        self.module = module
        self.env = {**os.environ, **(env or {})}
        self.env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), self.env.get("PYTHONPATH")]))
        self.secret_file = self.root / "cluster.secret"
        self.secret_file.write_text(secrets.token_hex(32))
        self.secret_file.chmod(0o600)
        self.nodes = {i: NodeProcess(i, self.root / f"n{i}") for i in self.ids}
        for node in self.nodes.values():
            node.data_dir.mkdir(parents=True, exist_ok=True)
        atexit.register(self.close)  # last resort, should the test runner be interrupted

    # ---- processes ----------------------------------------------------------------------------------

    @property
    def majority(self) -> int:
        return len(self.ids) // 2 + 1

    @property
    def election_timeout(self) -> float:
        """The longest randomized election timeout, in seconds."""
        return 2 * self.election_ticks * self.tick_ms / 1000

    def command(self, i: int) -> list[str]:
        node = self.nodes[i]
        command = [
            sys.executable,
            "-m",
            self.module,
            "--id",
            str(i),
            "--data-dir",
            str(node.data_dir),
            "--raft-listen",
            f"127.0.0.1:{node.raft_port}",
            "--kv-listen",
            f"127.0.0.1:{node.kv_port}",
            "--cluster-secret-file",
            str(self.secret_file),
            "--tick-ms",
            str(self.tick_ms),
            "--election-ticks",
            str(self.election_ticks),
        ]
        for j in self.ids:
            if j != i:
                host, port = self.links.address(i, j)
                command += ["--peer", f"{j}={host}:{port}"]
        return command + self.extra_args

    def spawn(self, i: int) -> int:
        """Launch node ``i`` without waiting; returns the stdout offset to look for its ready line after."""
        node = self.nodes[i]
        if node.running:
            raise ClusterError(f"node {i} is already running")
        offset = node.stdout_path.stat().st_size if node.stdout_path.exists() else 0
        with open(node.stdout_path, "ab") as out, open(node.stderr_path, "ab") as err:
            err.write(f"---- start {node.starts + 1} at {time.strftime('%H:%M:%S')} ----\n".encode())
            err.flush()
            node.proc = subprocess.Popen(
                self.command(i), cwd=REPO, env=self.env, stdin=subprocess.DEVNULL, stdout=out, stderr=err
            )
        node.paused = False
        node.starts += 1
        return offset

    async def wait_ready(self, i: int, offset: int, timeout: float = 30.0) -> None:
        node = self.nodes[i]
        with trio.fail_after(timeout):
            while True:
                with open(node.stdout_path, "rb") as out:
                    out.seek(offset)
                    text = out.read().decode(errors="replace")
                match = READY.search(text)
                if match:
                    break
                if not node.running:
                    raise ClusterError(f"node {i} exited before it was ready:\n{self.logs(i)}")
                await trio.sleep(0.02)
        if int(match.group(1)) != i:
            raise ClusterError(f"node {i} announced itself as {match.group(1)}")
        node.raft_port = int(match.group(3))
        node.kv_host = match.group(4)
        node.kv_port = int(match.group(5))
        self.links.set_target(i, match.group(2), node.raft_port)

    async def start(self, i: int, timeout: float = 30.0) -> None:
        await self.wait_ready(i, self.spawn(i), timeout)

    async def start_all(self, timeout: float = 30.0) -> None:
        offsets = {i: self.spawn(i) for i in self.ids if not self.nodes[i].running}
        async with trio.open_nursery() as nursery:
            for i, offset in offsets.items():
                nursery.start_soon(self.wait_ready, i, offset, timeout)

    def kill(self, i: int, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` and wait for the process to exit."""
        node = self.nodes[i]
        if not node.running:
            return
        assert node.proc is not None
        os.kill(node.proc.pid, sig)
        if node.paused and sig != signal.SIGKILL:
            os.kill(node.proc.pid, signal.SIGCONT)
        try:
            node.exit_codes.append(node.proc.wait(timeout=20))
        except subprocess.TimeoutExpired:
            os.kill(node.proc.pid, signal.SIGKILL)
            node.exit_codes.append(node.proc.wait(timeout=20))
        node.paused = False

    def kill_all(self, sig: int = signal.SIGKILL) -> None:
        """Signal every running node first, then wait for them all: they die at the same moment."""
        running = [i for i in self.ids if self.nodes[i].running]
        for i in running:
            proc = self.nodes[i].proc
            assert proc is not None
            os.kill(proc.pid, sig)
        for i in running:
            self.kill(i, sig)

    def stop(self, i: int) -> None:
        self.kill(i, signal.SIGTERM)

    def pause(self, i: int) -> None:
        node = self.nodes[i]
        if node.running and not node.paused:
            assert node.proc is not None
            os.kill(node.proc.pid, signal.SIGSTOP)
            node.paused = True

    def resume(self, i: int) -> None:
        node = self.nodes[i]
        if node.running and node.paused:
            assert node.proc is not None
            os.kill(node.proc.pid, signal.SIGCONT)
            node.paused = False

    async def restart(self, i: int, sig: int = signal.SIGKILL) -> None:
        self.kill(i, sig)
        await self.start(i)

    def running(self, i: int) -> bool:
        return self.nodes[i].running

    def live(self) -> list[int]:
        """Nodes that are running and not paused."""
        return [i for i in self.ids if self.nodes[i].running and not self.nodes[i].paused]

    def close(self) -> None:
        """Kill every process (idempotent)."""
        for node in self.nodes.values():
            if node.proc is not None and node.proc.poll() is None:
                try:
                    os.kill(node.proc.pid, signal.SIGKILL)
                    node.proc.wait(timeout=20)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    pass

    def logs(self, i: int, tail: int = 4000) -> str:
        node = self.nodes[i]
        parts = []
        for path in (node.stderr_path, node.stdout_path):
            if path.exists():
                data = path.read_bytes()[-tail:].decode(errors="replace")
                parts.append(f"--- node {i} {path.name} (last {tail} bytes) ---\n{data}")
        return "\n".join(parts)

    def all_logs(self, tail: int = 4000) -> str:
        return "\n".join(self.logs(i, tail) for i in self.ids)

    # ---- talking to the nodes -----------------------------------------------------------------------

    def kv_addresses(self) -> dict[int, str]:
        return {i: node.kv_address for i, node in self.nodes.items() if node.kv_address}

    def client(self, **kwargs: Any) -> KVClient:
        return KVClient(self.kv_addresses, **kwargs)

    async def status(self, i: int, timeout: float = 1.0) -> dict | None:
        address = self.nodes[i].kv_address
        if address is None or not self.nodes[i].running:
            return None
        response = await request_once(address, {"op": "status"}, timeout)
        if response is None or response.get("error") is not None:
            return None
        return response

    async def statuses(self, timeout: float = 1.0) -> dict[int, dict | None]:
        results: dict[int, dict | None] = {}

        async def one(i: int) -> None:
            results[i] = await self.status(i, timeout)

        async with trio.open_nursery() as nursery:
            for i in self.ids:
                nursery.start_soon(one, i)
        return results

    async def leader(self, timeout: float = 1.0) -> int | None:
        """The node a majority of the cluster currently follows, if that node agrees it leads."""
        statuses = await self.statuses(timeout)
        return leader_of(statuses, self.majority)

    async def wait_for_leader(self, timeout: float = 15.0, exclude: Iterable[int] = ()) -> int:
        excluded = set(exclude)
        last: dict = {}
        try:
            with trio.fail_after(timeout):
                while True:
                    last = await self.statuses(0.5)
                    leader = leader_of(last, self.majority)
                    if leader is not None and leader not in excluded:
                        return leader
                    await trio.sleep(0.05)
        except trio.TooSlowError:
            raise ClusterError(f"no leader within {timeout} s; statuses: {summarize(last)}") from None

    async def wait_converged(self, timeout: float = 15.0, nodes: Iterable[int] | None = None) -> dict:
        """Wait until there is a leader and every one of ``nodes`` (default: all running) has applied
        the leader's commit index. Returns the statuses."""
        last: dict = {}
        try:
            with trio.fail_after(timeout):
                while True:
                    last = await self.statuses(0.5)
                    leader = leader_of(last, self.majority)
                    wanted = list(nodes) if nodes is not None else [i for i in self.ids if self.running(i)]
                    if leader is not None:
                        commit = last[leader]["commit"]
                        if all(last.get(i) and last[i].get("applied", -1) >= commit for i in wanted):
                            return last
                    await trio.sleep(0.05)
        except trio.TooSlowError:
            raise ClusterError(f"no convergence within {timeout} s; statuses: {summarize(last)}") from None


def is_leader_role(status: dict | None) -> bool:
    return (
        bool(status)
        and str(status.get("role", "")).lower().endswith("leader")
        and not str(status.get("role", "")).lower().startswith("pre")
    )


def leader_of(statuses: dict[int, dict | None], majority: int) -> int | None:
    for i, status in statuses.items():
        if not is_leader_role(status):
            continue
        assert status is not None
        term = status.get("term")
        followers = sum(1 for s in statuses.values() if s and s.get("leader") == i and s.get("term") == term)
        if followers >= majority:
            return i
    return None


def summarize(statuses: dict[int, dict | None]) -> str:
    parts = []
    for i, s in sorted(statuses.items()):
        if not s:
            parts.append(f"{i}: -")
        else:
            role, term, leader = s.get("role"), s.get("term"), s.get("leader")
            parts.append(f"{i}: {role} t{term} L{leader} c{s.get('commit')} a{s.get('applied')}")
    return "; ".join(parts)


@asynccontextmanager
async def open_cluster(
    n: int, tmp_path: Path, *, start: bool = True, **kwargs: Any
) -> AsyncIterator[Cluster]:
    """Proxies for every link, then ``n`` replica processes; everything is killed on exit. If the
    block fails, the tail of every node's logs is printed (pytest shows it with the failure)."""
    async with open_links(range(1, n + 1)) as links:
        cluster = Cluster(n, tmp_path, links, **kwargs)
        try:
            if start:
                await cluster.start_all()
            yield cluster
        except BaseException:
            print(cluster.all_logs())
            raise
        finally:
            cluster.close()


async def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> None:
    """Poll an async or plain predicate until it is true."""
    with trio.fail_after(timeout):
        while True:
            result = predicate()
            if hasattr(result, "__await__"):
                result = await result
            if result:
                return
            await trio.sleep(interval)
