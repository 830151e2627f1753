"""Helpers shared by the tests: real broadcasters on 127.0.0.1, ephemeral ports, real lmdb on disk."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import trio

from broadcaster.app import open_broadcaster
from broadcaster.client import Client, connect
from broadcaster.config import ServerConfig
from replication.node import Node, NodeConfig, open_node
from tools.cluster import ServeCluster, free_port

REPO = Path(__file__).resolve().parent.parent


@asynccontextmanager
async def running_broadcaster(data_dir: Path, **settings) -> AsyncIterator[tuple[str, int]]:
    config = ServerConfig(host="127.0.0.1", port=0, data_dir=data_dir)
    config.update(settings)
    async with open_broadcaster(config) as broadcaster:
        host, port = broadcaster.listen_addresses[0].rsplit(":", 1)
        yield host, int(port)


@asynccontextmanager
async def artists_in_a_room(
    address: tuple[str, int],
    names: tuple[str, ...],
    room: str,
    at: list[tuple[str, int]] | None = None,
) -> AsyncIterator[list[Client]]:
    """Clients named ``names`` connected to the broadcaster at ``address`` (or each to its own in ``at``:
    nodes of a cluster), all members of ``room`` (kept open), which the first one made."""
    async with AsyncExitStack() as stack:
        places = at or [address] * len(names)
        clients = [
            await stack.enter_async_context(connect(*place, name=name))
            for place, name in zip(places, names, strict=True)
        ]
        await clients[0].create_room(room, keep_open=True)
        for client in clients:
            await client.join(room)
        yield clients


@asynccontextmanager
async def ana_and_ben_in_a_room(
    address: tuple[str, int], room: str = "r", ben_at: tuple[str, int] | None = None
) -> AsyncIterator[tuple[Client, Client]]:
    """Ana and Ben connected to the broadcaster at ``address`` (Ben to ``ben_at`` if given: another node),
    both members of ``room``, which Ana made."""
    at = [address, ben_at] if ben_at is not None else None
    async with artists_in_a_room(address, ("ana", "ben"), room, at) as (ana, ben):
        yield ana, ben


class ServerProcess:
    """``blendsync serve`` as a child process, the way a self-hoster runs it."""

    def __init__(self, data_dir: Path, port: int = 0, extra: list[str] | None = None):
        self.data_dir = data_dir
        self.port = port
        self.extra = extra or []
        self.proc: subprocess.Popen[str] | None = None

    def start(self, timeout: float = 20.0) -> tuple[str, int]:
        command = [
            sys.executable,
            "-m",
            "broadcaster.cli",
            "--log-level",
            "warning",
            "serve",
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
            *self.extra,
        ]
        self.proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        match = re.search(r"listening on (\S+):(\d+)", line)
        if not match:
            self.kill()
            raise RuntimeError(f"server did not start: {line!r}")
        self.port = int(match.group(2))  # restarts reuse the port, as a real deployment would
        return match.group(1), self.port

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            self.proc.wait(timeout=20)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)


def blendsync_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``blendsync ARGS...`` from this checkout, as a user runs it."""
    command = [sys.executable, "-m", "broadcaster.cli", *args]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60)


def init_server(root: Path) -> tuple[Path, int]:
    """``blendsync init`` for a server on 127.0.0.1 and a free port; returns the directory and port."""
    port = free_port()
    http = str(free_port())
    done = blendsync_cli(
        "init", "--data-dir", str(root), "--host", "127.0.0.1", "--port", str(port), "--http-port", http
    )
    assert done.returncode == 0, done.stderr
    return root, port


async def outcomes(waiters, refusal: str = "") -> list[str]:
    """What each sent operation came to, in order: "ok", or the code of its error (whose message names
    ``refusal``)."""
    from broadcaster.client import ServerError

    out = []
    for waiter in waiters:
        try:
            await waiter.wait()
            out.append("ok")
        except ServerError as exc:
            assert refusal in exc.message, exc
            out.append(exc.code)
    return out


async def wait_for(predicate, timeout: float = 10.0, interval: float = 0.01) -> None:
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(interval)


# ---- replication clusters in one process --------------------------------------------------------------

SECRET = b"test-cluster-secret"


class LocalCluster:
    """Nodes as tasks: stop() cancels one (its store is closed as after a clean stop), start() reopens it."""

    def __init__(self, nursery: trio.Nursery, tmp_path: Path, size: int, **settings):
        self.nursery = nursery
        self.tmp_path = tmp_path
        self.addresses = {i: f"127.0.0.1:{free_port()}" for i in range(1, size + 1)}
        self.settings = {"tick_interval": 0.02, "election_ticks": 10, **settings}
        self.nodes: dict[int, Node] = {}
        self.scopes: dict[int, trio.CancelScope] = {}
        self.poll = self.settings["tick_interval"]  # poll at the cluster's own pace (virtual time too)

    def config(self, node_id: int, join: bool = False, peers: dict[int, str] | None = None) -> NodeConfig:
        if peers is None:
            peers = {i: a for i, a in self.addresses.items() if i != node_id}
        return NodeConfig(
            data_dir=self.tmp_path / f"n{node_id}",
            node_id=node_id,
            peers=peers,
            raft_listen=self.addresses[node_id],
            cluster_secret=SECRET,
            join=join,
            seed=node_id,
            **self.settings,
        )

    async def start(self, node_id: int, **kwargs) -> Node:
        async def run(task_status=trio.TASK_STATUS_IGNORED):
            with trio.CancelScope() as scope:
                self.scopes[node_id] = scope
                async with open_node(self.config(node_id, **kwargs)) as node:
                    self.nodes[node_id] = node
                    task_status.started(node)
                    await trio.sleep_forever()
            self.nodes.pop(node_id, None)

        return await self.nursery.start(run)

    async def stop(self, node_id: int) -> None:
        self.scopes[node_id].cancel()
        with trio.fail_after(10 * self.poll):
            while node_id in self.nodes:
                await trio.sleep(self.poll)

    async def leader(self, timeout: float = 10.0) -> Node:
        with trio.fail_after(timeout):
            while True:
                leaders = [n for n in self.nodes.values() if n.status()["role"] == "leader"]
                terms = {n.status()["term"] for n in leaders}
                if len(leaders) == 1 or (leaders and len(terms) > 1):
                    return max(leaders, key=lambda n: n.status()["term"])
                await trio.sleep(self.poll)


@asynccontextmanager
async def cluster(tmp_path: Path, size: int = 3, **settings):
    async with trio.open_nursery() as nursery:
        local = LocalCluster(nursery, tmp_path, size, **settings)
        for node_id in local.addresses:
            await local.start(node_id)
        try:
            yield local
        finally:
            nursery.cancel_scope.cancel()


# ---- broadcaster clusters as OS processes -------------------------------------------------------------


class BroadcasterCluster(ServeCluster):
    """``blendsync serve`` processes forming a cluster on 127.0.0.1, as docs/operations.md runs one."""

    def __init__(self, root: Path, size: int = 3, tick_interval: float = 0.05, links=None):
        super().__init__(size, root, links, tick_interval=tick_interval)
