"""The trio driver of one replication node, and the public async API.

    async with open_node(NodeConfig(data_dir=...)) as node:
        result = await node.propose({"then": [{"op": "put", "path": ["a"], "payload": 1}]})
        props, payload = node.read_local(("a",))
        found = await node.read(("a",), consistency="linearizable")
        async with node.watch(("rooms", "r1", "**")) as events:
            async for event in events: ...

The node joins the pure Raft core (replication.core), the tree state machine (replication.tree), lmdb
storage (replication.lmdb_store) and the peer transport (replication.transport). A single node is simply a
one-voter cluster on the same code path: it elects itself at start and commits what it has fsync'd.

Each turn of the driver loop follows the core's contract: persist the Ready (one lmdb transaction, fsync'd,
on a worker thread so the event loop keeps serving), then send its messages, then apply its committed
entries, then advance. Proposals queued while a write is in flight form the next batch (group commit).
Heartbeats and their answers go out as soon as the core makes them (after each tick and each message
stepped), even while a write is in flight: they promise nothing unpersisted.
A proposal made on a follower is forwarded to the leader, in order, over the peer connection.

This module keeps the loop and the handling of each Ready; the node's other concerns are parts of
:class:`Node` in their own modules: where each proposal is until answered (``proposals``), subscriptions and
watches (``watches``), snapshots, compaction and blob reads (``snapshots``), the frames peers exchange
(``peer_protocol``) and the core's view of the lmdb log (``log_storage``).
"""

from __future__ import annotations

import logging
import random
import secrets
from bisect import bisect_left
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio

from .apply_guard import apply_committed
from .backup import StorePoint, copy_store, store_point
from .blob_entries import (
    BlobEntryError,
    pack_blob_entry,
)
from .config import NodeConfig
from .core import (
    ConfChange,
    ConfChangeType,
    Config,
    Entry,
    EntryKind,
    NotLeaderError,
    ProposalDroppedError,
    RawNode,
    Ready,
    Role,
    message_to_wire,
)
from .errors import NotLeader, OutcomeUnknown, ReplicationError
from .lmdb_store import LogRecord, Storage, WriteBatch
from .log_storage import RaftLogStorage
from .peer_protocol import PeerProtocol
from .proposals import Proposal, ProposalTracking
from .snapshots import Snapshots
from .transport import Transport
from .tree import NodeProps, Tree, TreeError, TreePath, encode_envelope
from .tree.errors import E_PAYLOAD
from .watches import Subscription, Watches

__all__ = [
    "Node",
    "NodeConfig",
    "NotLeader",
    "OutcomeUnknown",
    "Proposal",
    "ReplicationError",
    "Subscription",
    "open_node",
]

log = logging.getLogger("blendsync.replication")


class Node(ProposalTracking, Watches, PeerProtocol, Snapshots):
    """One replication node: open it with :func:`open_node`."""

    def __init__(self, config: NodeConfig, storage: Storage, tree: Tree):
        self.config = config
        self._storage = storage
        self.tree = tree
        self._closed = False
        self._disk = trio.CapacityLimiter(1)
        self._wakeup = trio.Event()
        self._init_proposal_tracking()
        self._reads: dict[bytes, tuple[trio.Event, list[int]]] = {}
        self._init_watches(config.watch_backlog)
        self._applied_changed = trio.Event()
        self._persisted_applied = storage.applied()
        self._init_snapshots()
        self.stats: dict[str, Any] = {
            "proposals": 0,
            "batches": 0,
            "fsync_seconds": 0.0,
            "fsyncs": 0,
            "fsync_seconds_max": 0.0,  # the longest one: a leader stalled this long sends no heartbeat
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
        self,
        command: dict[str, Any],
        *,
        client: str | None = None,
        seq: int | None = None,
        blob: tuple[bytes, bytes] | None = None,
    ) -> Proposal:
        """Queue a proposal without waiting: proposals submitted in order commit in that order.

        ``blob`` = (sha256, bytes): the entry carries them to every node's blob table, where they stay while
        the node /blobs/<hex> exists (which ``command`` should create: its payload is no place for them).
        """
        data = encode_envelope(command, client=client, seq=seq)  # validates; raises TreeError
        if blob is not None:
            try:
                data = pack_blob_entry(blob[0], blob[1], data)
            except BlobEntryError as exc:
                raise TreeError(E_PAYLOAD, str(exc)) from None
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

    def read_local(self, path: TreePath) -> tuple[NodeProps, Any] | None:
        return self.tree.get(tuple(path))

    def holds_local(self, path: TreePath) -> tuple[TreePath, ...]:
        """The paths the literal ``path`` holds (docs/tree.md, holds)."""
        return self.tree.holds_of(tuple(path))

    def match_local(self, pattern: TreePath) -> Iterator[tuple[TreePath, NodeProps, Any]]:
        """Nodes matching a pattern: for constant shapes only; a user string in it would be a pattern."""
        return self.tree.match(tuple(pattern))

    def list_local(self, path: TreePath) -> list[tuple[str, NodeProps, Any]]:
        """(name, props, payload) of the children of the literal ``path``, sorted by name."""
        return self.tree.children_items(path)

    def list_prefixed_local(
        self, path: TreePath, prefix: str, limit: int | None = None
    ) -> list[tuple[str, Any]]:
        """(name, payload) of the first ``limit`` children of the literal ``path`` whose names start with
        ``prefix`` (data, not a pattern), sorted by name: only the names are sorted, and only those children
        read."""
        return prefixed_children(self.tree, path, prefix, limit)

    def seq_children_local(
        self, path: TreePath, after: int = 0, limit: int | None = None
    ) -> list[tuple[int, NodeProps, Any]]:
        """(number, props, payload) of the sequential children of the literal ``path`` after ``after``."""
        return self.tree.seq_children(path, after, limit)

    async def read(self, path: TreePath, consistency: str = "local") -> tuple[NodeProps, Any] | None:
        await self.barrier(consistency)
        return self.read_local(path)

    async def read_many(
        self, pattern: TreePath, consistency: str = "local"
    ) -> list[tuple[TreePath, NodeProps, Any]]:
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

    async def backup(self, destination: Path) -> StorePoint:
        """A consistent copy of this node's store into the empty directory ``destination``, taken while the
        node goes on serving (lmdb's copy, on a worker thread: docs/decisions/0002); says where it ends."""
        await trio.to_thread.run_sync(copy_store, self._storage, destination)
        return store_point(destination)

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
            self._fail_outstanding()

    async def _ticker(self) -> None:
        while True:
            await trio.sleep(self.config.tick_interval)
            self._raw.tick()
            self._send_heartbeats()
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
            self._installing_blobs = {}
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
        self.stats["fsync_seconds_max"] = max(self.stats["fsync_seconds_max"], elapsed)
        window = self.config.tick_interval * self.config.election_ticks
        if elapsed >= window:
            # Heartbeats flow meanwhile (``_send_heartbeats``), but appends and acknowledgements wait
            # for the write: every write of the cluster waits this long. Say why it is slow.
            log.warning(
                "node %d: a durable write took %.2f s, longer than the election timeout (%.2f s): "
                "writes wait for it; is the disk slow?",
                self.node_id,
                elapsed,
                window,
            )
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
            self._forget_forwarded_to(previous_leader)
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

    def _apply(self, index: int, data: bytes) -> dict[str, Any]:
        result, events, failed = apply_committed(self.tree, index, data, self.node_id)
        self.stats["apply_failures"] += failed
        self._publish(events)
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


def prefixed_children(
    tree: Tree, path: TreePath, prefix: str, limit: int | None = None
) -> list[tuple[str, Any]]:
    names = tree.children(path)
    found: list[tuple[str, Any]] = []
    for name in names[bisect_left(names, prefix) :]:
        if not name.startswith(prefix) or len(found) == limit:
            break
        child = tree.get((*path, name))
        assert child is not None
        found.append((name, child[1]))
    return found
