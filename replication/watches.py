"""Watches and subscriptions: applied tree events fanned out by pattern, in commit order."""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import trio

from .errors import ReplicationError
from .tree import Tree, TreePath, WatchEvent, compile_pattern, match_pattern

log = logging.getLogger("blendsync.replication")


class Subscription:
    """A synchronous listener on applied tree events matching a pattern (see Node.subscribe)."""

    def __init__(self, node: Watches, pattern: TreePath, callback: Callable[[WatchEvent], None]):
        self.pattern = pattern
        self.compiled = compile_pattern(pattern)  # checked once here; raises TreeError if malformed
        self.callback = callback
        self._node = node
        self.prefix = _literal_prefix(pattern)

    def close(self) -> None:
        self._node._unsubscribe(self)


def _literal_prefix(pattern: TreePath) -> TreePath:
    prefix: list[str] = []
    for element in pattern:
        if not isinstance(element, str) or element in ("*", "**"):
            break
        prefix.append(element)
    return tuple(prefix)


class Watches:
    """Subscriptions and watches on applied events (a part of :class:`~replication.node.Node`)."""

    # Provided by Node.
    tree: Tree

    def _init_watches(self, backlog: int) -> None:
        self._subscriptions: dict[TreePath, list[Subscription]] = {}
        self._backlog: deque[WatchEvent] = deque(maxlen=backlog)

    def subscribe(self, pattern: TreePath, callback: Callable[[WatchEvent], None]) -> Subscription:
        """Call ``callback`` synchronously, in commit order, for each applied event under ``pattern``.

        Registration takes effect before the next apply, so a caller that reads state and subscribes with
        no await in between sees every later event exactly once.
        """
        subscription = Subscription(self, tuple(pattern), callback)
        self._subscriptions.setdefault(subscription.prefix, []).append(subscription)
        return subscription

    def _unsubscribe(self, subscription: Subscription) -> None:
        listeners = self._subscriptions.get(subscription.prefix, [])
        if subscription in listeners:
            listeners.remove(subscription)
            if not listeners:
                del self._subscriptions[subscription.prefix]

    @asynccontextmanager
    async def watch(
        self, pattern: TreePath, *, after_index: int | None = None, buffer: int = 4096
    ) -> AsyncIterator[AsyncIterator[WatchEvent]]:
        """Events under ``pattern`` in commit order, starting after ``after_index`` (default: now).

        A watcher that falls more than ``buffer`` events behind is closed with ReplicationError.
        """
        pattern = tuple(pattern)
        compiled = compile_pattern(pattern)
        send, receive = trio.open_memory_channel[WatchEvent](math.inf)
        overflow = False

        if after_index is not None and after_index < self.tree.applied_index:
            oldest = self._backlog[0].index if self._backlog else self.tree.applied_index + 1
            if after_index + 1 < oldest:
                raise ReplicationError(f"events after index {after_index} are no longer held")
            for event in self._backlog:
                if event.index > after_index and match_pattern(compiled, event.path):
                    send.send_nowait(event)

        def deliver(event: WatchEvent) -> None:
            nonlocal overflow
            if receive.statistics().current_buffer_used >= buffer:
                overflow = True
                send.close()
                subscription.close()
                return
            send.send_nowait(event)

        subscription = self.subscribe(pattern, deliver)
        try:
            yield _OverflowAware(receive, lambda: overflow)
        finally:
            subscription.close()
            send.close()

    def _publish(self, events: list[WatchEvent]) -> None:
        for event in events:
            self._backlog.append(event)
            self._dispatch(event)

    def _dispatch(self, event: WatchEvent) -> None:
        path = event.path
        for length in range(len(path) + 1):
            listeners = self._subscriptions.get(path[:length])
            if listeners:
                for subscription in list(listeners):
                    if match_pattern(subscription.compiled, path):
                        try:
                            subscription.callback(event)
                        except Exception:
                            # A broken listener must not stop the node from applying; it is dropped.
                            log.exception("watch callback for %s failed; unsubscribed", subscription.pattern)
                            subscription.close()


class _OverflowAware:
    """A receive channel that raises ReplicationError when its watcher overflowed."""

    def __init__(self, receive: trio.MemoryReceiveChannel[WatchEvent], overflowed: Callable[[], bool]):
        self._receive = receive
        self._overflowed = overflowed

    def __aiter__(self) -> _OverflowAware:
        return self

    async def __anext__(self) -> WatchEvent:
        try:
            return await self._receive.receive()
        except trio.EndOfChannel:
            if self._overflowed():
                raise ReplicationError("watcher fell too far behind and was closed") from None
            raise StopAsyncIteration from None
