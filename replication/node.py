"""The trio driver of one replication node, and the public async API.

    async with open_node(NodeConfig(data_dir=...)) as node:
        result = await node.propose({"then": [{"op": "put", "path": ["a"], "payload": 1}]})
        props, payload = node.read_local(("a",))
        async with node.watch(("rooms", "r1", "**")) as events:
            async for event in events: ...

This module currently drives the embedded single-node configuration: a proposal is committed once it is
fsync'd in the log (a 1-node quorum). Proposals are batched (group commit): while one batch is being written,
the next accumulates.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from .storage import LogRecord, Storage, WriteBatch
from .tree import NodeProps, Tree, TreeError, WatchEvent, encode_envelope

Path_ = tuple[str, ...]
ENTRY_NORMAL = 0
log = logging.getLogger("blendsync.replication")


class ReplicationError(Exception):
    """A proposal or read could not be served (no leader, shutting down, timed out)."""


class NotLeader(ReplicationError):
    def __init__(self, leader: int | None):
        super().__init__(f"not the leader (leader: {leader})")
        self.leader = leader


@dataclass
class NodeConfig:
    data_dir: Path
    node_id: int = 1
    fsync: bool = True
    max_batch_entries: int = 4096
    max_batch_bytes: int = 64 * 1024 * 1024
    max_entry_bytes: int = 64 * 1024 * 1024 + 4096
    log_retain: int = 8192  # entries kept behind the applied index (for lagging followers)
    # The tree is persisted every this many applied entries, or after tree_flush_idle seconds without
    # writes: between two flushes the log holds the difference, so fewer pages are fsync'd per commit.
    tree_flush_entries: int = 1024
    tree_flush_idle: float = 1.0
    watch_backlog: int = 65536  # recent events kept so watch(after_index=...) can start in the past


@dataclass(eq=False)
class Proposal:
    data: bytes
    done: trio.Event = field(default_factory=trio.Event)
    result: dict[str, Any] | None = None
    error: BaseException | None = None
    index: int = 0  # the log index it was committed at
    callbacks: list[Callable[[Proposal], None]] = field(default_factory=list)

    def add_done_callback(self, callback: Callable[[Proposal], None]) -> None:
        """Run ``callback(self)`` when the proposal completes (cheaper than a task per write)."""
        if self.done.is_set():
            callback(self)
        else:
            self.callbacks.append(callback)

    def finish(self, result: dict[str, Any] | None = None, error: BaseException | None = None) -> None:
        self.result, self.error = result, error
        self.done.set()
        for callback in self.callbacks:
            callback(self)

    @property
    def duplicate(self) -> bool:
        """True when this was a retry: the result is the one cached from the first commit."""
        return self.result is not None and self.result.get("index") != self.index

    async def wait(self) -> dict[str, Any]:
        await self.done.wait()
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


class Subscription:
    """A synchronous listener on applied tree events matching a pattern (see Node.subscribe)."""

    def __init__(self, node: Node, pattern: Path_, callback: Callable[[WatchEvent], None]):
        self.pattern = pattern
        self.callback = callback
        self._node = node
        self.prefix = _literal_prefix(pattern)

    def close(self) -> None:
        self._node._unsubscribe(self)


def _literal_prefix(pattern: Path_) -> Path_:
    prefix: list[str] = []
    for element in pattern:
        if not isinstance(element, str) or element in ("*", "**"):
            break
        prefix.append(element)
    return tuple(prefix)


def pattern_matches(pattern: Path_, path: Path_) -> bool:
    """Literal elements, "*" (one element) and "**" (any number, including none)."""
    if not pattern:
        return not path
    head = pattern[0]
    if head == "**":
        return any(pattern_matches(pattern[1:], path[i:]) for i in range(len(path) + 1))
    if not path:
        return False
    if head == "*" or head == path[0]:
        return pattern_matches(pattern[1:], path[1:])
    return False


class Node:
    def __init__(self, config: NodeConfig, storage: Storage, tree: Tree):
        self.config = config
        self._storage = storage
        self.tree = tree
        self._term = 1
        self._last_index = max(storage.last_index(), tree.applied_index)
        self._persisted_applied = storage.applied()
        self._queue: deque[Proposal] = deque()
        self._wakeup = trio.Event()
        self._closed = False
        self._disk = trio.CapacityLimiter(1)
        self._subscriptions: dict[Path_, list[Subscription]] = {}
        self._backlog: deque[WatchEvent] = deque(maxlen=config.watch_backlog)
        self._applied_changed = trio.Event()
        self.stats = {"proposals": 0, "batches": 0, "fsync_seconds": 0.0}

    # ---- public API ---------------------------------------------------------------------------------

    async def propose(
        self, command: dict[str, Any], *, client: str | None = None, seq: int | None = None
    ) -> dict[str, Any]:
        """Commit a transaction; return its result in commit order. Raises TreeError for a bad command.

        With (client, seq), a retried proposal is applied once and its first result returned.
        If the caller is cancelled, the proposal may still commit.
        """
        return await self.submit(command, client=client, seq=seq).wait()

    def submit(
        self, command: dict[str, Any], *, client: str | None = None, seq: int | None = None
    ) -> Proposal:
        """Queue a proposal without waiting: proposals submitted in order commit in that order."""
        data = encode_envelope(command, client=client, seq=seq)  # validates; raises TreeError
        if len(data) > self.config.max_entry_bytes:
            raise TreeError(
                "too_large", f"command of {len(data)} bytes exceeds {self.config.max_entry_bytes}"
            )
        if self._closed:
            raise ReplicationError("node is shutting down")
        proposal = Proposal(data)
        self._queue.append(proposal)
        self._wakeup.set()
        return proposal

    def read_local(self, path: Path_) -> tuple[NodeProps, Any] | None:
        return self.tree.get(tuple(path))

    def match_local(self, pattern: Path_) -> Iterator[tuple[Path_, NodeProps, Any]]:
        return self.tree.match(tuple(pattern))

    async def read(self, path: Path_, consistency: str = "local") -> tuple[NodeProps, Any] | None:
        await self._barrier(consistency)
        return self.read_local(path)

    async def read_many(
        self, pattern: Path_, consistency: str = "local"
    ) -> list[tuple[Path_, NodeProps, Any]]:
        await self._barrier(consistency)
        return list(self.match_local(pattern))

    async def _barrier(self, consistency: str) -> None:
        if consistency not in ("local", "fence", "linearizable"):
            raise ValueError(f"unknown consistency {consistency!r}")
        # A single node is always the leader and applies before it acknowledges: local is already fresh.

    def subscribe(self, pattern: Path_, callback: Callable[[WatchEvent], None]) -> Subscription:
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
        self, pattern: Path_, *, after_index: int | None = None, buffer: int = 4096
    ) -> AsyncIterator[trio.MemoryReceiveChannel[WatchEvent]]:
        """Events under ``pattern`` in commit order, starting after ``after_index`` (default: now).

        A watcher that falls more than ``buffer`` events behind is closed with ReplicationError.
        """
        pattern = tuple(pattern)
        send, receive = trio.open_memory_channel[WatchEvent](math.inf)
        pending = 0
        overflow = False

        if after_index is not None and after_index < self.tree.applied_index:
            oldest = self._backlog[0].index if self._backlog else self.tree.applied_index + 1
            if after_index + 1 < oldest:
                raise ReplicationError(f"events after index {after_index} are no longer held")
            for event in self._backlog:
                if event.index > after_index and pattern_matches(pattern, event.path):
                    send.send_nowait(event)
                    pending += 1

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

    def status(self) -> dict[str, Any]:
        return {
            "id": self.config.node_id,
            "role": "leader",
            "term": self._term,
            "leader": self.config.node_id,
            "commit": self._last_index,
            "applied": self.tree.applied_index,
            "members": [self.config.node_id],
            "lag": {},
            "queued": len(self._queue),
            **self.stats,
        }

    async def wait_applied(self, index: int) -> None:
        while self.tree.applied_index < index:
            await self._applied_changed.wait()

    # ---- driver -------------------------------------------------------------------------------------

    async def run(self, task_status=trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        try:
            while True:
                with trio.move_on_after(self.config.tree_flush_idle) as idle:
                    await self._wakeup.wait()
                if idle.cancelled_caught:
                    await self.flush()
                    continue
                self._wakeup = trio.Event()
                while self._queue:
                    await self._commit_batch()
        finally:
            self._closed = True
            for proposal in self._queue:
                proposal.finish(error=ReplicationError("node is shutting down"))
            self._queue.clear()

    def _take_batch(self) -> list[Proposal]:
        batch: list[Proposal] = []
        size = 0
        while self._queue and len(batch) < self.config.max_batch_entries:
            size += len(self._queue[0].data)
            if batch and size > self.config.max_batch_bytes:
                break
            batch.append(self._queue.popleft())
        return batch

    async def _commit_batch(self) -> None:
        proposals = self._take_batch()
        records = []
        for proposal in proposals:
            self._last_index += 1
            records.append(LogRecord(self._last_index, self._term, ENTRY_NORMAL, proposal.data))
        write = WriteBatch(entries=records, hard_state=(self._term, self.config.node_id, self._last_index))
        if self.tree.applied_index - self._persisted_applied >= self.config.tree_flush_entries:
            self._add_tree_state(write)
        with trio.CancelScope(shield=True):  # a half-observed commit would leave futures unresolved
            started = trio.current_time()
            await trio.to_thread.run_sync(self._storage.commit, write, limiter=self._disk)
            self.stats["fsync_seconds"] += trio.current_time() - started
        self.stats["batches"] += 1
        self.stats["proposals"] += len(proposals)
        for proposal, record in zip(proposals, records, strict=True):
            proposal.index = record.index
            proposal.finish(self._apply(record.index, record.data))

    def _add_tree_state(self, write: WriteBatch) -> None:
        """Persist the tree as of the last apply alongside the next write (the log covers the gap)."""
        write.tree_records = self.tree.take_dirty()
        if write.tree_records or self.tree.applied_index != self._persisted_applied:
            write.applied = self.tree.applied_index
            self._persisted_applied = self.tree.applied_index
            compact_to = self.tree.applied_index - self.config.log_retain
            if compact_to > self._storage.first_index() + 1024:
                # The persisted tree covers everything up to the applied index: older entries can go.
                record = self._storage.entry(compact_to)
                if record is not None:
                    write.compact_to = compact_to
                    write.snapshot_meta = (compact_to, record.term, [self.config.node_id])

    def _apply(self, index: int, data: bytes) -> dict[str, Any]:
        result, events = self.tree.apply(index, data)
        for event in events:
            self._backlog.append(event)
            self._dispatch(event)
        self._applied_changed.set()
        self._applied_changed = trio.Event()
        return result

    def _dispatch(self, event: WatchEvent) -> None:
        path = event.path
        for length in range(len(path) + 1):
            listeners = self._subscriptions.get(path[:length])
            if listeners:
                for subscription in list(listeners):
                    if pattern_matches(subscription.pattern, path):
                        try:
                            subscription.callback(event)
                        except Exception:
                            # A broken listener must not stop the node from applying; it is dropped.
                            log.exception("watch callback for %s failed; unsubscribed", subscription.pattern)
                            subscription.close()

    def _replay_log(self) -> None:
        """Apply what the log holds beyond the persisted tree (the tail written after the last flush)."""
        for record in self._storage.entries(self.tree.applied_index + 1, self._last_index + 1):
            if record.data:
                self.tree.apply(record.index, record.data)

    async def flush(self) -> None:
        """Persist the tree as applied so far (a restart then has no log to replay)."""
        write = WriteBatch()
        self._add_tree_state(write)
        if write:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(self._storage.commit, write, limiter=self._disk)


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


@asynccontextmanager
async def open_node(config: NodeConfig) -> AsyncIterator[Node]:
    storage = Storage(config.data_dir, sync=config.fsync)
    try:
        tree = Tree.from_records(storage.tree_records(), storage.applied())
        node = Node(config, storage, tree)
        node._replay_log()
        async with trio.open_nursery() as nursery:
            await nursery.start(node.run)
            try:
                yield node
            finally:
                nursery.cancel_scope.cancel()
        with trio.CancelScope(shield=True):
            await node.flush()
    finally:
        storage.close()
