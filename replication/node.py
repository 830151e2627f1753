"""The trio driver of one replication node, and the public async API.

    async with open_node(NodeConfig(data_dir=...)) as node:
        result = await node.propose({"then": [{"op": "put", "path": ["a"], "payload": 1}]})
        props, payload = node.read_local(("a",))
        found = await node.read(("a",), consistency="linearizable")
        async with node.watch(("rooms", "r1", "**")) as events:
            async for event in events: ...

The node joins the pure Raft core (replication.core), the tree state machine (replication.tree), lmdb
storage (replication.storage) and the peer transport (replication.transport). A single node is simply a
one-voter cluster on the same code path: it elects itself at start and commits what it has fsync'd.

Each turn of the driver loop follows the core's contract: persist the Ready (one lmdb transaction, fsync'd,
on a worker thread so the event loop keeps serving), then send its messages, then apply its committed
entries, then advance. Proposals queued while a write is in flight form the next batch (group commit).
A proposal made on a follower is forwarded to the leader, in order, over the peer connection.
"""

from __future__ import annotations

import itertools
import logging
import math
import random
import secrets
import ssl
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from .apply_guard import apply_committed
from .core import (
    CompactedError,
    ConfChange,
    ConfChangeType,
    Config,
    Entry,
    EntryKind,
    HardState,
    NotLeaderError,
    ProposalDroppedError,
    RawNode,
    Ready,
    Role,
    Snapshot,
    SnapshotMeta,
    UnavailableError,
    message_from_wire,
    message_to_wire,
)
from .storage import LogRecord, Storage, WriteBatch
from .transport import Transport
from .tree import NodeProps, Tree, TreeError, WatchEvent, compile_pattern, encode_envelope, match_pattern

Path_ = tuple[str, ...]
log = logging.getLogger("blendsync.replication")


class ReplicationError(Exception):
    """A proposal or read could not be served (no leader, shutting down, timed out)."""


class NotLeader(ReplicationError):
    def __init__(self, leader: int | None):
        super().__init__(f"not the leader (leader: {leader})")
        self.leader = leader


class OutcomeUnknown(ReplicationError):
    """The proposal was sent but no answer came in time: it may or may not commit (retry with its seq)."""


@dataclass
class NodeConfig:
    data_dir: Path
    node_id: int = 1
    # Other initial voters: id -> "host:port". With join, the current members (addresses only).
    peers: dict[int, str] = field(default_factory=dict)
    raft_listen: str | None = None  # "host:port" for peers; needed with peers or join
    join: bool = False  # start as a non-voter waiting to be added (see add_member)
    cluster_secret: bytes | None = None
    server_ssl: ssl.SSLContext | None = None
    client_ssl: ssl.SSLContext | None = None
    tick_interval: float = 0.05
    election_ticks: int = 10  # 0.5 s to 1 s with the default tick
    heartbeat_ticks: int = 1
    fsync: bool = True
    request_timeout: float = 5.0  # forwarded proposals and reads give up after this
    max_batch_entries: int = 4096
    max_entry_bytes: int = 64 * 1024 * 1024 + 4096
    log_retain: int = 8192  # entries kept behind the applied index (for lagging followers)
    # The tree is persisted every this many applied entries, or after tree_flush_idle seconds without
    # writes: between two flushes the log holds the difference, so fewer pages are fsync'd per commit.
    tree_flush_entries: int = 1024
    tree_flush_idle: float = 1.0
    watch_backlog: int = 65536  # recent events kept so watch(after_index=...) can start in the past
    seed: int | None = None  # for the election timer; random when None


@dataclass(eq=False)
class Proposal:
    data: bytes
    done: trio.Event = field(default_factory=trio.Event)
    result: dict[str, Any] | None = None
    error: BaseException | None = None
    index: int = 0  # the log index it was committed at
    submitted_at: float = field(default_factory=trio.current_time)
    callbacks: list[Callable[[Proposal], None]] = field(default_factory=list)

    @property
    def duplicate(self) -> bool:
        """True when this was a retry: the result is the one cached from the first commit."""
        return self.result is not None and self.result.get("index") != self.index

    def add_done_callback(self, callback: Callable[[Proposal], None]) -> None:
        """Run ``callback(self)`` when the proposal completes (cheaper than a task per write)."""
        if self.done.is_set():
            callback(self)
        else:
            self.callbacks.append(callback)

    def finish(self, result: dict[str, Any] | None = None, error: BaseException | None = None) -> None:
        if self.done.is_set():
            return
        self.result, self.error = result, error
        self.done.set()
        for callback in self.callbacks:
            callback(self)

    async def wait(self) -> dict[str, Any]:
        await self.done.wait()
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


@dataclass(eq=False)
class _RemoteProposal:
    """A proposal forwarded to us (the leader) by a follower: answered over the transport."""

    peer: int
    request: int


class Subscription:
    """A synchronous listener on applied tree events matching a pattern (see Node.subscribe)."""

    def __init__(self, node: Node, pattern: Path_, callback: Callable[[WatchEvent], None]):
        self.pattern = pattern
        self.compiled = compile_pattern(pattern)  # checked once here; raises TreeError if malformed
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


class RaftLogStorage:
    """The core's read view of the durable log (``LogStorage``), over lmdb with a cache of recent terms."""

    def __init__(self, storage: Storage, bootstrap_voters: frozenset[int], snapshot: Callable[[], Snapshot]):
        self._storage = storage
        self._bootstrap_voters = bootstrap_voters
        self._snapshot = snapshot
        self._terms: dict[int, int] = {}
        self._last_index = storage.last_index()
        self.snap_index, self.snap_term, _ = storage.snapshot_meta()

    def initial_state(self) -> tuple[HardState, frozenset[int]]:
        term, vote, commit = self._storage.hard_state()
        voters = self._storage.voters()
        return HardState(term, vote, commit), frozenset(
            voters if voters is not None else self._bootstrap_voters
        )

    def first_index(self) -> int:
        return self.snap_index + 1

    def last_index(self) -> int:
        return self._last_index

    def term(self, index: int) -> int:
        if index == self.snap_index:
            return self.snap_term
        if index < self.snap_index:
            raise CompactedError(f"entry {index} is compacted")
        if index > self._last_index:
            raise UnavailableError(f"entry {index} is not in the log yet")
        term = self._terms.get(index)
        if term is None:
            record = self._storage.entry(index)
            if record is None:
                raise UnavailableError(f"entry {index} is missing")
            term = record.term
        return term

    def entries(self, lo: int, hi: int, max_bytes: int) -> list[Entry]:
        if lo <= self.snap_index:
            raise CompactedError(f"entry {lo} is compacted")
        if hi > self._last_index + 1:
            raise UnavailableError(f"entries up to {hi - 1} are not in the log")
        return [
            Entry(r.term, r.index, EntryKind(r.kind), r.data)
            for r in self._storage.entries(lo, hi, max_bytes)
        ]

    def snapshot(self) -> Snapshot:
        return self._snapshot()

    # The driver tells the cache what it persisted.
    def note_appended(self, entries: list[Entry]) -> None:
        if not entries:
            return
        first = entries[0].index
        if first <= self._last_index:
            for index in [i for i in self._terms if i >= first]:
                del self._terms[index]
        for entry in entries:
            self._terms[entry.index] = entry.term
        self._last_index = entries[-1].index
        if len(self._terms) > 65536:
            for index in sorted(self._terms)[: len(self._terms) - 32768]:
                del self._terms[index]

    def note_compacted(self, index: int, term: int) -> None:
        self.snap_index, self.snap_term = index, term
        for i in [i for i in self._terms if i <= index]:
            del self._terms[i]
        self._last_index = max(self._last_index, index)

    def note_snapshot_installed(self, index: int, term: int) -> None:
        self._terms.clear()
        self.snap_index, self.snap_term = index, term
        self._last_index = index


class Node:
    def __init__(self, config: NodeConfig, storage: Storage, tree: Tree):
        self.config = config
        self._storage = storage
        self.tree = tree
        self._closed = False
        self._disk = trio.CapacityLimiter(1)
        self._wakeup = trio.Event()
        self._queue: deque[Proposal] = deque()  # submitted, not yet handed to the core or forwarded
        # index -> (term, proposal, deadline); in index order, which is also deadline order
        self._pending: dict[int, tuple[int, Proposal | _RemoteProposal, float]] = {}
        self._forwarded: dict[
            int, tuple[Proposal, float, int]
        ] = {}  # request -> (proposal, deadline, leader)
        self._request_ids = itertools.count(1)
        self._awaiting_apply: dict[int, list[tuple[Proposal, dict[str, Any]]]] = {}
        self._reads: dict[bytes, tuple[trio.Event, list[int]]] = {}
        self._subscriptions: dict[Path_, list[Subscription]] = {}
        self._backlog: deque[WatchEvent] = deque(maxlen=config.watch_backlog)
        self._applied_changed = trio.Event()
        self._persisted_applied = storage.applied()
        self._snapshot_cache: Snapshot | None = None
        self.stats: dict[str, Any] = {
            "proposals": 0,
            "batches": 0,
            "fsync_seconds": 0.0,
            "fsyncs": 0,
            "readies": 0,
            "entries_persisted": 0,
            "messages_sent": 0,
            "messages_received": 0,
            "apply_failures": 0,  # entries recorded as internal errors (see replication.apply_guard)
        }
        # Called with the seconds each durable write took (e.g. a metrics histogram's observe).
        self.on_fsync: Callable[[float], None] | None = None

        self.addresses: dict[int, str] = {**storage.addresses()}
        if not self.addresses:
            # With join, the peers are only where to reach the cluster: they do not make us a voter.
            self.addresses = {**config.peers}
            if config.raft_listen:
                self.addresses[config.node_id] = config.raft_listen
        bootstrap = frozenset() if config.join else frozenset({config.node_id, *config.peers})
        self._log = RaftLogStorage(storage, bootstrap, self._make_snapshot)
        _, voters = self._log.initial_state()
        self.voters = voters
        applied = max(tree.applied_index, self._log.snap_index)
        seed = config.seed if config.seed is not None else random.SystemRandom().randrange(2**63)
        self._raw = RawNode(
            Config(
                node_id=config.node_id,
                election_tick=config.election_ticks,
                heartbeat_tick=config.heartbeat_ticks,
                seed=seed,
                applied=applied,
            ),
            self._log,
        )
        self._role = Role.FOLLOWER
        self._leader: int | None = None
        self._leader_changed = trio.Event()
        # Messages between nodes that are not Raft's (e.g. presence): best effort, never persisted.
        self.on_app_message: Callable[[int, Any], None] | None = None
        self._transport: Transport | None = None
        if config.peers or config.join or len(voters) > 1:
            if not config.cluster_secret:
                raise ValueError("a node with peers needs a cluster secret")
            if not config.raft_listen:
                raise ValueError("a node with peers needs raft_listen")
            self._transport = Transport(
                config.node_id,
                config.cluster_secret,
                self._on_frame,
                self._on_unreachable,
                server_ssl=config.server_ssl,
                client_ssl=config.client_ssl,
            )
            for peer_id, address in self.addresses.items():
                if peer_id != config.node_id:
                    self._transport.set_peer(peer_id, address)
        self._first_write = WriteBatch(
            voters=sorted(voters) if storage.voters() is None else None,
            addresses=dict(self.addresses) if self.addresses != storage.addresses() else None,
        )

    # ---- public API ---------------------------------------------------------------------------------

    @property
    def node_id(self) -> int:
        return self.config.node_id

    @property
    def leader(self) -> int | None:
        """The leader this node knows of (None during an election)."""
        return self._leader

    @property
    def raft_address(self) -> str | None:
        return self._transport.listen_address if self._transport else None

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
        """Nodes matching a pattern: for constant shapes only; a user string in it would be a pattern."""
        return self.tree.match(tuple(pattern))

    def list_local(self, path: Path_) -> list[tuple[str, NodeProps, Any]]:
        """(name, props, payload) of the children of the literal ``path``, sorted by name."""
        return self.tree.children_items(path)

    async def read(self, path: Path_, consistency: str = "local") -> tuple[NodeProps, Any] | None:
        await self.barrier(consistency)
        return self.read_local(path)

    async def read_many(
        self, pattern: Path_, consistency: str = "local"
    ) -> list[tuple[Path_, NodeProps, Any]]:
        await self.barrier(consistency)
        return list(self.match_local(pattern))

    async def barrier(self, consistency: str) -> None:
        """Wait until a read at ``consistency`` may be served from the local tree.

        local: at once (possibly stale). fence and linearizable: a ReadIndex round confirms the leader
        still leads and gives the commit index at that moment; we then wait until it is applied here.
        Both give read-your-writes and never return state older than the read's start.
        """
        if consistency == "local":
            return
        if consistency not in ("fence", "linearizable"):
            raise ValueError(f"unknown consistency {consistency!r}")
        deadline = trio.current_time() + self.config.request_timeout
        while True:
            context = secrets.token_bytes(16)
            answered = trio.Event()
            box: list[int] = []
            self._reads[context] = (answered, box)
            leader_changed = self._leader_changed
            try:
                with trio.move_on_at(deadline):
                    try:
                        self._raw.read_index(context)
                        self._wakeup.set()
                    except NotLeaderError:
                        pass  # no leader known yet: wait for one
                    async with trio.open_nursery() as nursery:
                        # The core drops a pending read when leadership moves: ask again then.
                        async def on_change(changed: trio.Event = leader_changed) -> None:
                            await changed.wait()
                            nursery.cancel_scope.cancel()

                        nursery.start_soon(on_change)
                        await answered.wait()
                        nursery.cancel_scope.cancel()
                    if box:
                        await self.wait_applied(box[0])
                        return
            finally:
                self._reads.pop(context, None)
            if trio.current_time() >= deadline:
                raise ReplicationError("read timed out (no quorum?)")

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

    def status(self) -> dict[str, Any]:
        raw = self._raw.status()
        status = {
            "id": self.node_id,
            "role": raw["role"].value if isinstance(raw["role"], Role) else str(raw["role"]),
            "term": raw["term"],
            "leader": raw["leader"] or None,
            "commit": raw["commit"],
            "applied": self.tree.applied_index,
            "persisted_applied": self._persisted_applied,  # the tree on disk is this recent
            "last_index": raw.get("last_index", self._log.last_index()),
            "members": sorted(raw["voters"]),
            "addresses": {str(k): v for k, v in sorted(self.addresses.items())},
            "lag": {},
            "queued": len(self._queue),
            **self.stats,
        }
        for peer, progress in (raw.get("progress") or {}).items():
            if peer != self.node_id:
                status["lag"][str(peer)] = max(0, raw.get("last_index", 0) - progress["match"])
        if self._transport is not None:
            status["connected"] = {str(p): self._transport.is_connected(p) for p in self._transport.peers()}
            status["rejected_connections"] = self._transport.rejected_connections
        return status

    def send_app_message(self, message: Any, to: int | None = None) -> None:
        """Send a msgpack-able message to one peer or all: best effort (dropped if a peer is down)."""
        if self._transport is None:
            return
        for peer in [to] if to is not None else list(self._transport.peers()):
            if self._transport.is_connected(peer):
                self._transport.send(peer, ["app", message])

    async def wait_applied(self, index: int) -> None:
        while self.tree.applied_index < index:
            await self._applied_changed.wait()

    async def wait_for_leader(self, timeout: float = 10.0) -> int:
        with trio.fail_after(timeout):
            while self._leader is None:
                await trio.sleep(self.config.tick_interval)
        assert self._leader is not None
        return self._leader

    async def add_member(self, node_id: int, address: str) -> None:
        """Add a voter (one at a time). Start the new node with join=True first."""
        await self._change_membership(ConfChange(ConfChangeType.ADD_NODE, node_id, address.encode()))

    async def remove_member(self, node_id: int) -> None:
        await self._change_membership(ConfChange(ConfChangeType.REMOVE_NODE, node_id))

    async def transfer_leadership(self, to: int) -> None:
        try:
            self._raw.transfer_leader(to)
        except (NotLeaderError, ProposalDroppedError) as exc:
            raise ReplicationError(str(exc)) from None
        self._wakeup.set()

    async def _change_membership(self, change: ConfChange) -> None:
        with trio.move_on_after(self.config.request_timeout) as scope:
            while True:
                try:
                    index = self._raw.propose_conf_change(change)
                    break
                except NotLeaderError as exc:
                    raise NotLeader(exc.leader) from None
                except ProposalDroppedError:
                    await trio.sleep(self.config.tick_interval)  # e.g. a change still pending
            self._wakeup.set()
            await self.wait_applied(index)
        if scope.cancelled_caught:
            raise ReplicationError("membership change timed out")

    # ---- driver -------------------------------------------------------------------------------------

    async def run(self, task_status=trio.TASK_STATUS_IGNORED) -> None:
        try:
            async with trio.open_nursery() as nursery:
                if self._transport is not None:
                    assert self.config.raft_listen is not None
                    await nursery.start(self._transport.run, self.config.raft_listen)
                if self._first_write:
                    await self._write(self._first_write)
                if self.voters == {self.node_id}:
                    self._raw.campaign()  # a single voter leads at once
                # Catch up before serving: re-apply what the log holds beyond the persisted tree, so a
                # reader right after a restart sees every write that was acknowledged before it.
                while self._raw.has_ready():
                    await self._handle_ready(self._raw.ready())
                nursery.start_soon(self._ticker)
                task_status.started()
                await self._loop()
        finally:
            self._closed = True
            error = ReplicationError("node is shutting down")
            for proposal in self._queue:
                proposal.finish(error=error)
            for _, waiter, _ in self._pending.values():
                if isinstance(waiter, Proposal):
                    waiter.finish(error=OutcomeUnknown("node shut down before the outcome was known"))
            for proposal, _, _ in self._forwarded.values():
                proposal.finish(error=OutcomeUnknown("node shut down before the outcome was known"))

    async def _ticker(self) -> None:
        while True:
            await trio.sleep(self.config.tick_interval)
            self._raw.tick()
            self._expire_forwarded()
            self._wakeup.set()

    async def _loop(self) -> None:
        idle_since = trio.current_time()
        while True:
            with trio.move_on_after(self.config.tree_flush_idle):
                await self._wakeup.wait()
            self._wakeup = trio.Event()
            self._hand_proposals_to_core()
            worked = False
            while self._raw.has_ready():
                await self._handle_ready(self._raw.ready())
                self._hand_proposals_to_core()
                worked = True
            if worked:
                idle_since = trio.current_time()
            elif trio.current_time() - idle_since >= self.config.tree_flush_idle:
                await self.flush()
                idle_since = trio.current_time()

    def _hand_proposals_to_core(self) -> None:
        """Proposals go to the core on the leader, to the leader elsewhere; in submission order.

        On the leader the whole queue goes in one call, so followers get one append for the batch.
        """
        if not self._queue:
            return
        if self._role is Role.LEADER:
            batch = [
                self._queue.popleft() for _ in range(min(len(self._queue), self.config.max_batch_entries))
            ]
            try:
                term = self._raw.raft.term
                last = self._raw.propose_many([proposal.data for proposal in batch])
            except (ProposalDroppedError, NotLeaderError):
                self._queue.extendleft(reversed(batch))  # e.g. a leadership transfer: try again next turn
                return
            deadline = trio.current_time() + self.config.request_timeout
            first = last - len(batch) + 1
            for offset, proposal in enumerate(batch):
                self._pending[first + offset] = (term, proposal, deadline)
            self.stats["proposals"] += len(batch)
        elif self._leader is not None and self._transport is not None:
            deadline = trio.current_time() + self.config.request_timeout
            frames = []
            while self._queue:
                proposal = self._queue.popleft()
                request = next(self._request_ids)
                self._forwarded[request] = (proposal, deadline, self._leader)
                frames.append([request, proposal.data])
            # One frame for the lot: they stay in order and cost one message.
            self._transport.send(self._leader, ["fwd", frames])
            self.stats["proposals"] += len(frames)
        # else: no leader yet; the ticker fails what waits past the request timeout

    def _expire_forwarded(self) -> None:
        now = trio.current_time()
        for request, (proposal, deadline, _) in list(self._forwarded.items()):
            if now >= deadline:
                del self._forwarded[request]
                proposal.finish(error=OutcomeUnknown("no answer from the leader in time"))
        # Entries in our log that did not commit in time (e.g. we lost the quorum): the outcome is unknown.
        while self._pending:
            index = next(iter(self._pending))
            _, waiter, deadline = self._pending[index]
            if now < deadline:
                break
            del self._pending[index]
            if isinstance(waiter, Proposal):
                waiter.finish(error=OutcomeUnknown("not committed in time (no quorum?)"))
        # Waiting for a leader is bounded too: nothing was sent yet, so these surely did not commit.
        while self._queue and now - self._queue[0].submitted_at >= self.config.request_timeout:
            self._queue.popleft().finish(
                error=ReplicationError("no leader to take the proposal (no quorum?)")
            )

    async def _handle_ready(self, rd: Ready) -> None:
        self.stats["readies"] += 1
        self.stats["entries_persisted"] += len(rd.entries)
        self.stats["messages_sent"] += len(rd.messages)
        if rd.soft_state is not None:
            self._on_soft_state(rd.soft_state.role, rd.soft_state.leader)
        write = WriteBatch()
        if rd.snapshot is not None and not rd.snapshot.is_empty():
            self._restore_snapshot(rd.snapshot, write)
        if rd.entries:
            write.entries = [LogRecord(e.index, e.term, int(e.kind), e.data) for e in rd.entries]
        if rd.hard_state is not None:
            hs = rd.hard_state
            write.hard_state = (hs.term, hs.vote, hs.commit)
        if write:
            if self.tree.applied_index - self._persisted_applied >= self.config.tree_flush_entries:
                self._add_tree_state(write)
            await self._write(write)
            self._log.note_appended(list(rd.entries))
        if self._transport is not None:
            for message in rd.messages:
                self._transport.send(message.dst, ["r", message_to_wire(message)])
        for entry in rd.committed_entries:
            self._apply_entry(entry)
        for read_state in rd.read_states:
            waiter = self._reads.get(read_state.ctx)
            if waiter is not None:
                waiter[1].append(read_state.index)
                waiter[0].set()
        self._raw.advance(rd)

    async def _write(self, write: WriteBatch) -> None:
        with trio.CancelScope(shield=True):  # a half-observed commit would leave the core confused
            started = trio.current_time()
            await trio.to_thread.run_sync(self._storage.commit, write, limiter=self._disk)
            elapsed = trio.current_time() - started
        self.stats["fsync_seconds"] += elapsed
        self.stats["fsyncs"] += 1
        self.stats["batches"] += 1
        if self.on_fsync is not None:
            self.on_fsync(elapsed)

    def _on_soft_state(self, role: Role, leader: int) -> None:
        # A deposed leader's uncommitted entries may still commit under the next leader or be overwritten:
        # their waiters stay pending and learn which when that index is applied (the term tells).
        previous_leader = self._leader
        self._role, self._leader = role, (leader or None)
        if self._leader != previous_leader:
            self._leader_changed.set()
            self._leader_changed = trio.Event()
        log.info("node %d is %s (leader %s)", self.node_id, role.value, self._leader)
        if previous_leader is not None and self._leader != previous_leader:
            # Whatever we forwarded to the old leader may never be answered: let callers retry now
            # rather than at their timeout (a retry with the same session seq applies at most once).
            for request, (proposal, _, sent_to) in list(self._forwarded.items()):
                if sent_to == previous_leader:
                    del self._forwarded[request]
                    proposal.finish(
                        error=OutcomeUnknown(f"leader {previous_leader} changed before answering")
                    )
        self._wakeup.set()

    def _apply_entry(self, entry: Entry) -> None:
        index = entry.index
        if index <= self.tree.applied_index:
            return  # already in the tree (replayed after a restart)
        result: dict[str, Any] | None = None
        if entry.kind is EntryKind.CONF_CHANGE:
            self._apply_conf_change(ConfChange.from_bytes(entry.data))
            self.tree.advance(index)
        elif not entry.data:
            self.tree.advance(index)  # a new leader's empty entry
        else:
            result = self._apply(index, entry.data)
        pending = self._pending.pop(index, None)
        if pending is not None:
            term, waiter, _ = pending
            if term != entry.term:
                error = ReplicationError("leadership changed before the proposal committed; retry")
                self._answer(waiter, index, None, error)
            else:
                self._answer(
                    waiter, index, result if result is not None else {"ok": True, "index": index}, None
                )
        self._release_awaiting()
        self._applied_changed.set()
        self._applied_changed = trio.Event()

    def _release_awaiting(self) -> None:
        """Finish forwarded proposals whose index this node has now applied (or skipped by a snapshot)."""
        if self._awaiting_apply:
            for index in [i for i in self._awaiting_apply if i <= self.tree.applied_index]:
                for proposal, answer in self._awaiting_apply.pop(index):
                    proposal.finish(answer)

    def _answer(
        self,
        waiter: Proposal | _RemoteProposal,
        index: int,
        result: dict[str, Any] | None,
        error: Exception | None,
    ) -> None:
        if isinstance(waiter, Proposal):
            waiter.index = index
            waiter.finish(result, error)
        elif self._transport is not None:
            if error is None:
                self._transport.send(waiter.peer, ["fwd_ok", waiter.request, result, index])
            else:
                self._transport.send(waiter.peer, ["fwd_err", waiter.request, str(error)])

    def _apply(self, index: int, data: bytes) -> dict[str, Any]:
        result, events, failed = apply_committed(self.tree, index, data, self.node_id)
        self.stats["apply_failures"] += failed
        for event in events:
            self._backlog.append(event)
            self._dispatch(event)
        return result

    def _apply_conf_change(self, change: ConfChange) -> None:
        self.voters = self._raw.apply_conf_change(change)
        if change.type is ConfChangeType.ADD_NODE and change.context:
            self.addresses[change.node_id] = change.context.decode()
            if self._transport is not None and change.node_id != self.node_id:
                self._transport.set_peer(change.node_id, self.addresses[change.node_id])
        elif change.type is ConfChangeType.REMOVE_NODE:
            self.addresses.pop(change.node_id, None)
            if self._transport is not None:
                self._transport.remove_peer(change.node_id)
        # Rare, so a blocking commit on the loop is fine; replaying the entry after a restart is harmless.
        self._storage.commit(WriteBatch(voters=sorted(self.voters), addresses=dict(self.addresses)))
        log.info("node %d: voters are now %s", self.node_id, sorted(self.voters))

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

    # ---- snapshots and compaction -------------------------------------------------------------------

    def _make_snapshot(self) -> Snapshot:
        """The tree as applied now: what a follower that fell behind the compacted log receives."""
        index = self.tree.applied_index
        cached = self._snapshot_cache
        if cached is not None and cached.meta.index == index:
            return cached
        term = self._log.term(index) if index else 0
        snapshot = Snapshot(SnapshotMeta(index, term, frozenset(self.voters)), self.tree.dump())
        self._snapshot_cache = snapshot
        return snapshot

    def _restore_snapshot(self, snapshot: Snapshot, write: WriteBatch) -> None:
        tree = Tree.load(snapshot.data)
        self.tree = tree
        self._backlog.clear()
        meta = snapshot.meta
        self.voters = frozenset(meta.voters)
        write.tree_reset = True
        write.tree_records = tree.records()
        tree.take_dirty()
        write.applied = meta.index
        write.compact_to = max(self._log.last_index(), meta.index)
        write.snapshot_meta = (meta.index, meta.term, sorted(meta.voters))
        write.voters = sorted(meta.voters)
        self._persisted_applied = meta.index
        self._log.note_snapshot_installed(meta.index, meta.term)
        self._release_awaiting()
        log.info("node %d installed a snapshot at index %d", self.node_id, meta.index)

    def _add_tree_state(self, write: WriteBatch) -> None:
        """Persist the tree as of the last apply alongside the next write (the log covers the gap)."""
        write.tree_records = self.tree.take_dirty()
        if write.tree_records or self.tree.applied_index != self._persisted_applied:
            write.applied = self.tree.applied_index
            self._persisted_applied = self.tree.applied_index
            compact_to = self.tree.applied_index - self.config.log_retain
            if compact_to > self._log.first_index() + 1024 and write.compact_to is None:
                # The persisted tree covers everything up to the applied index: older entries can go.
                term = self._log.term(compact_to)
                write.compact_to = compact_to
                write.snapshot_meta = (compact_to, term, sorted(self.voters))
                self._log.note_compacted(compact_to, term)

    async def flush(self) -> None:
        """Persist the tree as applied so far (a restart then has less log to replay)."""
        write = WriteBatch()
        self._add_tree_state(write)
        if write:
            await self._write(write)

    # ---- transport ----------------------------------------------------------------------------------

    def _on_frame(self, peer: int, frame: Any) -> None:
        try:
            kind = frame[0]
            if kind == "r":
                self.stats["messages_received"] += 1
                message = message_from_wire(frame[1])
                if message.src != peer or message.dst != self.node_id:
                    raise ValueError(f"message from {message.src} to {message.dst} on node {peer}'s link")
                self._raw.step(message)
            elif kind == "fwd":
                self._on_forwarded(peer, [(int(request), bytes(data)) for request, data in frame[1]])
            elif kind == "app":
                if self.on_app_message is not None:
                    try:
                        self.on_app_message(peer, frame[1])
                    except Exception:
                        log.exception("node %d: a message from node %d was not handled", self.node_id, peer)
                return
            elif kind == "fwd_ok":
                entry = self._forwarded.pop(int(frame[1]), None)
                if entry is not None:
                    proposal = entry[0]
                    if not isinstance(frame[2], dict):
                        raise ValueError("malformed result")
                    proposal.index = int(frame[3])
                    if self.tree.applied_index >= proposal.index:
                        proposal.finish(frame[2])
                    else:
                        # Read-your-writes on this node: answer once our own tree has applied it too.
                        self._awaiting_apply.setdefault(proposal.index, []).append((proposal, frame[2]))
            elif kind == "fwd_err":
                entry = self._forwarded.pop(int(frame[1]), None)
                if entry is not None:
                    entry[0].finish(error=ReplicationError(str(frame[2])))
            else:
                raise ValueError(f"unknown frame kind {kind!r}")
        except (ValueError, TypeError, IndexError, KeyError, AttributeError) as exc:
            log.warning("dropped a malformed frame from node %d: %s", peer, exc)
            return
        self._wakeup.set()

    def _on_forwarded(self, peer: int, requests: list[tuple[int, bytes]]) -> None:
        assert self._transport is not None
        if not requests:
            return
        try:
            if self._role is not Role.LEADER:
                raise NotLeaderError(self._leader)
            term = self._raw.raft.term
            last = self._raw.propose_many([data for _, data in requests])
        except (NotLeaderError, ProposalDroppedError) as exc:
            for request, _ in requests:
                self._transport.send(peer, ["fwd_err", request, f"not accepted: {exc}"])
            return
        deadline = trio.current_time() + self.config.request_timeout
        first = last - len(requests) + 1
        for offset, (request, _) in enumerate(requests):
            self._pending[first + offset] = (term, _RemoteProposal(peer, request), deadline)

    def _on_unreachable(self, peer: int) -> None:
        try:
            self._raw.report_unreachable(peer)
        except Exception:  # an unknown peer: nothing to report
            pass


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
