"""TCP proxies that stand for the network links between replicas, so tests can cut and heal them.

One ``LinkProxy`` carries one directed link: the connections node ``i`` opens towards node ``j``.
Both byte directions of such a connection go through it, so cutting link (i, j) kills whatever
node ``i`` dialled to reach ``j``; ``Links.isolate`` and ``Links.partition`` cut both directions.

A cut link closes every connection it carries and then accepts new connections only to close them
at once, which looks to the dialling node like a peer that keeps hanging up. ``heal`` lets new
connections through again. ``hold_back`` keeps what the target sends in the proxy (the other direction
flows on) until ``release_back``: a reply held in flight, for as long as a test needs.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

import trio

CHUNK = 65536


class LinkProxy:
    """Forwards TCP connections accepted on 127.0.0.1:<ephemeral> to a target address."""

    def __init__(self, name: str = "link"):
        self.name = name
        self.target: tuple[str, int] | None = None
        self.is_cut = False
        self.chunk_delay = 0.0
        self.port: int | None = None
        self.accepted = 0  # connections accepted (including refused ones)
        self.forwarded = 0  # connections forwarded to the target
        self.bytes = 0  # bytes forwarded, both directions
        self._back_gate: trio.Event | None = None  # set by hold_back: target -> dialler bytes wait for it
        self._scopes: set[trio.CancelScope] = set()
        self._listen_scope: trio.CancelScope | None = None

    @property
    def address(self) -> tuple[str, int]:
        if self.port is None:
            raise RuntimeError(f"proxy {self.name} is not started")
        return "127.0.0.1", self.port

    @property
    def active(self) -> int:
        """Connections currently being forwarded."""
        return len(self._scopes)

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        with trio.CancelScope() as scope:
            self._listen_scope = scope
            async with trio.open_nursery() as nursery:
                await nursery.start(trio.serve_listeners, self._handle, listeners)
                task_status.started(self.port)
        self._close_all()

    def close(self) -> None:
        self._close_all()
        if self._listen_scope is not None:
            self._listen_scope.cancel()

    def set_target(self, host: str, port: int) -> None:
        """Where new connections go. Changing it drops the connections to the old target."""
        if self.target is not None and self.target != (host, port):
            self._close_all()
        self.target = (host, port)

    def cut(self) -> None:
        self.is_cut = True
        self._close_all()

    def heal(self) -> None:
        self.is_cut = False

    def delay(self, seconds: float) -> None:
        """Hold every forwarded chunk for ``seconds`` (0 turns the delay off)."""
        self.chunk_delay = max(0.0, seconds)

    def hold_back(self) -> None:
        """Stop forwarding what the target sends (bytes already forwarded are not recalled)."""
        if self._back_gate is None:
            self._back_gate = trio.Event()

    def release_back(self) -> None:
        gate, self._back_gate = self._back_gate, None
        if gate is not None:
            gate.set()

    def _close_all(self) -> None:
        for scope in list(self._scopes):
            scope.cancel()

    async def _handle(self, client: trio.SocketStream) -> None:
        self.accepted += 1
        async with client:
            target = self.target
            if self.is_cut or target is None:
                return
            with trio.CancelScope() as scope:
                self._scopes.add(scope)
                try:
                    try:
                        upstream = await trio.open_tcp_stream(*target)
                    except OSError:
                        return
                    if self.is_cut:
                        await upstream.aclose()
                        return
                    self.forwarded += 1
                    async with upstream, trio.open_nursery() as nursery:
                        nursery.start_soon(self._pump, client, upstream, nursery.cancel_scope, False)
                        nursery.start_soon(self._pump, upstream, client, nursery.cancel_scope, True)
                finally:
                    self._scopes.discard(scope)

    async def _pump(
        self, source: trio.SocketStream, sink: trio.SocketStream, done: trio.CancelScope, back: bool
    ) -> None:
        try:
            while True:
                data = await source.receive_some(CHUNK)
                if not data:
                    break
                while back and self._back_gate is not None:
                    await self._back_gate.wait()
                if self.chunk_delay:
                    await trio.sleep(self.chunk_delay)
                await sink.send_all(data)
                self.bytes += len(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
        # Either side closing ends the whole connection: the replicas treat it as one link.
        done.cancel()


class Links:
    """A proxy for every ordered pair of node ids: node ``i`` reaches peer ``j`` through ``(i, j)``."""

    def __init__(self, ids: Iterable[int]):
        self.ids = sorted(ids)
        self.proxies = {(i, j): LinkProxy(f"{i}->{j}") for i, j in itertools.permutations(self.ids, 2)}

    def proxy(self, i: int, j: int) -> LinkProxy:
        return self.proxies[(i, j)]

    def address(self, i: int, j: int) -> tuple[str, int]:
        """The address node ``i`` must use to reach node ``j``."""
        return self.proxies[(i, j)].address

    def set_target(self, j: int, host: str, port: int) -> None:
        """Node ``j`` listens at ``host:port``: route every link towards it there."""
        for i in self.ids:
            if i != j:
                self.proxies[(i, j)].set_target(host, port)

    def cut(self, i: int, j: int, *, both: bool = True) -> None:
        self.proxies[(i, j)].cut()
        if both:
            self.proxies[(j, i)].cut()

    def heal(self, i: int, j: int, *, both: bool = True) -> None:
        self.proxies[(i, j)].heal()
        if both:
            self.proxies[(j, i)].heal()

    def isolate(self, node: int) -> None:
        """Cut every link to and from ``node``."""
        for j in self.ids:
            if j != node:
                self.cut(node, j)

    def partition(self, groups: Iterable[Iterable[int]]) -> None:
        """Only nodes of the same group can talk. Nodes listed in no group form a group of their own
        each. Links inside a group are healed; every other link is cut."""
        group_of: dict[int, int] = {}
        for n, group in enumerate(groups):
            for node in group:
                group_of[node] = n
        for node in self.ids:
            group_of.setdefault(node, -1 - node)
        for (i, j), proxy in self.proxies.items():
            if group_of[i] == group_of[j]:
                proxy.heal()
            else:
                proxy.cut()

    def heal_all(self) -> None:
        for proxy in self.proxies.values():
            proxy.heal()

    def delay(self, i: int, j: int, seconds: float, *, both: bool = True) -> None:
        self.proxies[(i, j)].delay(seconds)
        if both:
            self.proxies[(j, i)].delay(seconds)

    def cut_links(self) -> list[tuple[int, int]]:
        return sorted(pair for pair, proxy in self.proxies.items() if proxy.is_cut)

    def close(self) -> None:
        for proxy in self.proxies.values():
            proxy.close()


@asynccontextmanager
async def open_links(ids: Iterable[int]) -> AsyncIterator[Links]:
    """Start a proxy per ordered pair of ``ids``; all of them stop when the block exits."""
    links = Links(ids)
    async with trio.open_nursery() as nursery:
        for proxy in links.proxies.values():
            await nursery.start(proxy.run)
        try:
            yield links
        finally:
            links.close()
            nursery.cancel_scope.cancel()


@asynccontextmanager
async def open_proxy(target: tuple[str, int] | None = None, name: str = "link") -> AsyncIterator[LinkProxy]:
    """A single proxy, for tests of the proxy itself."""
    proxy = LinkProxy(name)
    if target is not None:
        proxy.set_target(*target)
    async with trio.open_nursery() as nursery:
        await nursery.start(proxy.run)
        try:
            yield proxy
        finally:
            proxy.close()
            nursery.cancel_scope.cancel()
