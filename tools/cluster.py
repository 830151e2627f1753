"""Clusters of local processes on 127.0.0.1, one per node id, for tests and benchmarks alike.

``ReplicaCluster`` runs ``python -m tools.replica`` (a node plus its KV service) once per node;
``ServeCluster`` runs ``blendsync serve`` (``python -m broadcaster.cli serve``). Both share one fresh
cluster secret under one root folder.

With ``links`` (``tools.proxy.Links``), node ``i`` is told that peer ``j`` lives at the address of proxy
``(i, j)``, and each proxy forwards to node ``j``'s raft port, so every Raft connection crosses a proxy that a
test can cut. Clients talk to the nodes directly.

Each node keeps its data in ``<root>/n<i>/data`` and writes its stdout and stderr to
``<root>/n<i>/stdout.log`` and ``stderr.log`` (appended to across restarts), which ``logs`` returns for
failure reports. A node is started when its ready line appears in its stdout; a restarted node gets the
ports it had the first time.
"""

from __future__ import annotations

import atexit
import os
import random
import re
import secrets
import signal as signals
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from .kvclient import KVClient, request_once
from .proxy import Links, open_links

REPO = Path(__file__).resolve().parents[1]


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_EPHEMERAL_LOW = _ephemeral_low()
_handed_out: set[int] = set()


def free_port() -> int:
    """A port on 127.0.0.1 that nothing is bound to now, for a process started later to listen on.

    Taken below the kernel's ephemeral range: a port from bind(0) is an ephemeral one, which any outgoing
    connection (a client, a peer) can take as its local port between this pick and the listener's bind
    (a cluster node then failed to start with "Address already in use"). Never the same port twice in a
    process.
    """
    low = 10_000
    high = max(low + 1000, _EPHEMERAL_LOW - 1)
    for _ in range(1000):
        port = random.randint(low, high)
        if port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    with socket.socket() as sock:  # the range is full: an ephemeral one, as before
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
    client_port: int = 0
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


class LocalProcesses:
    """Base: a subclass says how to start node ``i`` (``command``) and what its ready line is (``ready``)."""

    ready: re.Pattern[str]

    def __init__(
        self,
        n: int,
        root: Path | None = None,
        links: Links | None = None,
        *,
        env: dict[str, str] | None = None,
        code: Path | None = None,
    ):
        self.code = Path(code) if code is not None else REPO  # the checkout the processes run
        self.ids = list(range(1, n + 1))
        if links is not None and sorted(links.ids) != self.ids:
            raise ValueError(f"links are for nodes {links.ids}, the cluster has {self.ids}")
        self.links = links
        self.root = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix="blendsync-cluster-"))
        self.root.mkdir(parents=True, exist_ok=True)
        self.env = {**os.environ, **(env or {})}
        self.env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(self.code), self.env.get("PYTHONPATH")]))
        self.secret_file = self.root / "cluster.secret"
        self.secret_file.write_text(secrets.token_hex(32))
        self.secret_file.chmod(0o600)
        self.nodes: dict[int, NodeProcess] = {}
        for i in self.ids:
            self.add_node(i)
        atexit.register(self.close)  # last resort, should the test runner or the bench be interrupted

    def add_node(self, i: int) -> NodeProcess:
        node = NodeProcess(i, self.root / f"n{i}")
        node.data_dir.mkdir(parents=True, exist_ok=True)
        self.nodes[i] = node
        if i not in self.ids:
            self.ids.append(i)
        return node

    def command(self, i: int, **options: Any) -> list[str]:
        raise NotImplementedError

    def on_ready(self, i: int, match: re.Match[str]) -> None:
        """Node ``i`` printed its ready line."""

    def peer_address(self, i: int, j: int) -> str:
        """Where node ``i`` reaches node ``j``'s raft port: through proxy (i, j) when there are links."""
        if self.links is None:
            return f"127.0.0.1:{self.nodes[j].raft_port}"
        host, port = self.links.address(i, j)
        return f"{host}:{port}"

    # ---- processes ----------------------------------------------------------------------------------

    def spawn(self, i: int, **options: Any) -> int:
        """Launch node ``i`` without waiting; returns the stdout offset to look for its ready line after."""
        node = self.nodes.get(i) or self.add_node(i)
        if node.running:
            raise ClusterError(f"node {i} is already running")
        if self.links is not None and node.raft_port:
            self.links.set_target(i, "127.0.0.1", node.raft_port)
        offset = node.stdout_path.stat().st_size if node.stdout_path.exists() else 0
        with open(node.stdout_path, "ab") as out, open(node.stderr_path, "ab") as err:
            err.write(f"---- start {node.starts + 1} at {time.strftime('%H:%M:%S')} ----\n".encode())
            err.flush()
            node.proc = subprocess.Popen(
                self.command(i, **options),
                cwd=self.code,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
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
                match = self.ready.search(text)
                if match:
                    break
                if not node.running:
                    raise ClusterError(f"node {i} exited before it was ready:\n{self.logs(i)}")
                await trio.sleep(0.02)
        self.on_ready(i, match)

    async def start(self, i: int, timeout: float = 30.0, **options: Any) -> None:
        await self.wait_ready(i, self.spawn(i, **options), timeout)

    async def start_all(self, timeout: float = 30.0) -> None:
        offsets = {i: self.spawn(i) for i in self.ids if not self.nodes[i].running}
        async with trio.open_nursery() as nursery:
            for i, offset in offsets.items():
                nursery.start_soon(self.wait_ready, i, offset, timeout)

    def kill(self, i: int, sig: int = signals.SIGKILL) -> None:
        """Send ``sig`` and wait for the process to exit."""
        node = self.nodes[i]
        if not node.running:
            return
        assert node.proc is not None
        os.kill(node.proc.pid, sig)
        if node.paused and sig != signals.SIGKILL:
            os.kill(node.proc.pid, signals.SIGCONT)
        try:
            node.exit_codes.append(node.proc.wait(timeout=20))
        except subprocess.TimeoutExpired:
            os.kill(node.proc.pid, signals.SIGKILL)
            node.exit_codes.append(node.proc.wait(timeout=20))
        node.paused = False

    def kill_all(self, sig: int = signals.SIGKILL) -> None:
        """Signal every running node first, then wait for them all: they die at the same moment."""
        running = [i for i in self.ids if self.nodes[i].running]
        for i in running:
            proc = self.nodes[i].proc
            assert proc is not None
            os.kill(proc.pid, sig)
        for i in running:
            self.kill(i, sig)

    def stop(self, i: int) -> None:
        self.kill(i, signals.SIGTERM)

    def pause(self, i: int) -> None:
        node = self.nodes[i]
        if node.running and not node.paused:
            assert node.proc is not None
            os.kill(node.proc.pid, signals.SIGSTOP)
            node.paused = True

    def resume(self, i: int) -> None:
        node = self.nodes[i]
        if node.running and node.paused:
            assert node.proc is not None
            os.kill(node.proc.pid, signals.SIGCONT)
            node.paused = False

    def signal(self, i: int, sig: int) -> None:
        """SIGSTOP pauses, SIGCONT resumes; any other signal is sent and the process awaited."""
        if sig == signals.SIGSTOP:
            self.pause(i)
        elif sig == signals.SIGCONT:
            self.resume(i)
        else:
            self.kill(i, sig)

    async def restart(self, i: int, sig: int = signals.SIGKILL) -> None:
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
                    os.kill(node.proc.pid, signals.SIGKILL)
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

    async def __aenter__(self) -> Any:
        try:
            await self.start_all()
        except BaseException:
            self.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


class ReplicaCluster(LocalProcesses):
    """``python -m tools.replica`` processes: a node plus its KV service each."""

    ready = re.compile(r"ready id=(\d+) raft=(?:(\S+):(\d+)|-) kv=(\S+):(\d+)")  # "-": a lone node

    def __init__(
        self,
        n: int,
        root: Path | None = None,
        links: Links | None = None,
        *,
        tick_ms: float = 20,
        election_ticks: int = 10,
        extra_args: Iterable[str] = (),
        env: dict[str, str] | None = None,
        module: str = "tools.replica",
    ):
        self.tick_ms = tick_ms
        self.election_ticks = election_ticks
        self.extra_args = list(extra_args)
        self.module = module
        super().__init__(n, root, links, env=env)

    def add_node(self, i: int) -> NodeProcess:
        node = super().add_node(i)
        if self.links is None:  # peers dial it directly, so its raft port is chosen before it starts
            node.raft_port = free_port()
        return node

    @property
    def majority(self) -> int:
        return len(self.ids) // 2 + 1

    @property
    def election_timeout(self) -> float:
        """The longest randomized election timeout, in seconds."""
        return 2 * self.election_ticks * self.tick_ms / 1000

    def command(self, i: int, **options: Any) -> list[str]:
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
        command += ["--stall-file", str(self.stall_path(i))]
        for j in self.ids:
            if j != i:
                command += ["--peer", f"{j}={self.peer_address(i, j)}"]
        return command + self.extra_args

    def stall_path(self, i: int) -> Path:
        return self.nodes[i].root / "stall"

    def stall_disk(self, i: int, seconds: float) -> None:
        """Make each durable write of node ``i`` take ``seconds`` longer (0: as before)."""
        path = self.stall_path(i)
        if seconds > 0:
            path.write_text(str(seconds))
        else:
            path.unlink(missing_ok=True)

    def on_ready(self, i: int, match: re.Match[str]) -> None:
        if int(match.group(1)) != i:
            raise ClusterError(f"node {i} announced itself as {match.group(1)}")
        node = self.nodes[i]
        node.kv_host = match.group(4)
        node.kv_port = int(match.group(5))
        if match.group(3) is None:
            return
        node.raft_port = int(match.group(3))
        if self.links is not None:
            self.links.set_target(i, match.group(2), node.raft_port)

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


def longest_writes(statuses: dict[int, dict | None]) -> dict[int, float]:
    """Each answering node's longest durable write so far, in seconds (``fsync_seconds_max``)."""
    return {i: round(s["fsync_seconds_max"], 3) for i, s in statuses.items() if s}


def summarize(statuses: dict[int, dict | None]) -> str:
    parts = []
    for i, s in sorted(statuses.items()):
        if not s:
            parts.append(f"{i}: -")
        else:
            role, term, leader = s.get("role"), s.get("term"), s.get("leader")
            parts.append(f"{i}: {role} t{term} L{leader} c{s.get('commit')} a{s.get('applied')}")
    return "; ".join(parts)


class ServeCluster(LocalProcesses):
    """``blendsync serve`` processes forming one cluster (one process: the embedded single node). Client and
    raft ports are chosen before the start, so clients and peers know them, and kept across restarts."""

    ready = re.compile(r"listening on (\S+):(\d+)")

    def __init__(
        self,
        n: int,
        root: Path | None = None,
        links: Links | None = None,
        *,
        tick_interval: float | None = None,
        extra_config: str = "",
        env: dict[str, str] | None = None,
        code: Path | None = None,
    ):
        self.tick_interval = tick_interval
        self.extra_config = extra_config  # TOML appended to every node's config file (e.g. TLS settings)
        super().__init__(n, root, links, env=env, code=code)

    def add_node(self, i: int) -> NodeProcess:
        node = super().add_node(i)
        node.raft_port, node.client_port = free_port(), free_port()
        return node

    @property
    def ports(self) -> dict[int, int]:
        return {i: node.client_port for i, node in self.nodes.items()}

    @property
    def raft(self) -> dict[int, str]:
        return {i: f"127.0.0.1:{node.raft_port}" for i, node in self.nodes.items()}

    def address(self, i: int) -> tuple[str, int]:
        return "127.0.0.1", self.nodes[i].client_port

    def addresses(self) -> list[str]:
        return [f"127.0.0.1:{self.nodes[i].client_port}" for i in self.ids]

    def command(self, i: int, join: bool = False, **options: Any) -> list[str]:
        node = self.nodes[i]
        command = [sys.executable, "-m", "broadcaster.cli", "--log-level", "warning", "serve",
                   "--port", str(node.client_port), "--data-dir", str(node.data_dir)]  # fmt: skip
        if len(self.ids) > 1 or join:
            peers = ",".join(f"{j}={self.peer_address(i, j)}" for j in self.ids if j != i)
            command += ["--node-id", str(i), "--raft-listen", f"127.0.0.1:{node.raft_port}", "--peers", peers,
                        "--cluster-secret-file", str(self.secret_file)]  # fmt: skip
        if join:
            command.append("--join")
        if self.tick_interval is not None or self.extra_config:
            config = node.root / "node.toml"
            tick = (
                f"[cluster]\ntick_interval = {self.tick_interval}\n" if self.tick_interval is not None else ""
            )
            config.write_text(f"{self.extra_config}\n{tick}")
            command += ["--config", str(config)]
        return command

    async def status(self, i: int) -> dict[str, Any]:
        from broadcaster.client import connect

        with trio.fail_after(5):
            async with connect(*self.address(i), name="status", kind="admin") as client:
                return await client.admin("status")

    async def leader(self, among: list[int] | None = None, timeout: float = 20.0) -> int:
        with trio.fail_after(timeout):
            while True:
                for i in among or self.ids:
                    if not self.nodes[i].running:
                        continue
                    try:
                        if (await self.status(i))["role"] == "leader":
                            return i
                    except Exception:  # down or not answering yet
                        pass
                await trio.sleep(0.1)


@asynccontextmanager
async def open_cluster(
    n: int, tmp_path: Path, *, start: bool = True, **kwargs: Any
) -> AsyncIterator[ReplicaCluster]:
    """Proxies for every link, then ``n`` replica processes; everything is killed on exit. If the
    block fails, the tail of every node's logs is printed (pytest shows it with the failure)."""
    async with open_links(range(1, n + 1)) as links:
        cluster = ReplicaCluster(n, tmp_path, links, **kwargs)
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
