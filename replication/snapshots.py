"""Snapshots, compaction and blob reads: the part of the node that meets the persisted tree and blob table.

A follower behind the leader's compacted log gets a snapshot: the tree's dump and the bytes of every blob it
names (docs/decisions/0008). The tree is persisted every ``tree_flush_entries`` applied entries or when idle,
and the log compacted behind it; :class:`Snapshots` is that part of :class:`~replication.node.Node`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

from .blob_entries import BLOB_ROOT, blob_tree_path, named_blobs, pack_snapshot, unpack_snapshot
from .config import NodeConfig
from .core import Snapshot, SnapshotMeta
from .lmdb_store import Storage, WriteBatch
from .log_storage import RaftLogStorage
from .tree import Tree

log = logging.getLogger("blendsync.replication")


class Snapshots:
    """The node's snapshots, tree persistence and blob reads (a part of :class:`~replication.node.Node`)."""

    # Provided by Node.
    config: NodeConfig
    tree: Tree
    voters: frozenset[int]
    node_id: int
    _storage: Storage
    _log: RaftLogStorage
    _persisted_applied: int
    _backlog: Any
    _release_awaiting: Callable[[], None]
    _write: Callable[[WriteBatch], Any]

    def _init_snapshots(self) -> None:
        self._snapshot_cache: Snapshot | None = None
        # The blobs of a snapshot being installed: its tree is the node's before the write that stores them.
        self._installing_blobs: dict[bytes, bytes] = {}

    def read_blob(self, blob: bytes) -> bytes | None:
        """The bytes of a blob the tree names (/blobs/<hex>), or None (a blocking lmdb read: it is mapped)."""
        found = self.tree.get(blob_tree_path(blob))
        if found is None:
            return None
        if isinstance(found[1], bytes):
            return found[1]  # stored by a version that kept blobs in the tree (storage layout 2)
        return self._installing_blobs.get(blob) or self._storage.blob(blob)

    def _make_snapshot(self) -> Snapshot:
        """The tree as applied now: what a follower that fell behind the compacted log receives."""
        index = self.tree.applied_index
        cached = self._snapshot_cache
        if cached is not None and cached.meta.index == index:
            return cached
        term = self._log.term(index) if index else 0
        data = pack_snapshot(self.tree.dump(), self._named_blobs())
        snapshot = Snapshot(SnapshotMeta(index, term, frozenset(self.voters)), data)
        self._snapshot_cache = snapshot
        return snapshot

    def _named_blobs(self) -> Iterator[tuple[bytes, bytes]]:
        """(sha256, bytes) of every blob in the table the tree names: a snapshot carries them."""
        for blob, content in named_blobs(self.tree.children_items((BLOB_ROOT,)), self._storage.blob):
            if content is None:
                log.error("node %d: the tree names blob %s, which is not stored", self.node_id, blob.hex())
            else:
                yield blob, content

    def _restore_snapshot(self, snapshot: Snapshot, write: WriteBatch) -> None:
        tree_dump, write.blobs = unpack_snapshot(snapshot.data)
        self._installing_blobs = dict(write.blobs)
        tree = Tree.load(tree_dump)
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
        applied = self.tree.applied_index
        if write.tree_records or applied != self._persisted_applied:
            write.applied = self._persisted_applied = applied
            compact_to = applied - self.config.log_retain
            if compact_to <= self._log.first_index() + 1024:
                compact_to = 0  # a few entries past the count: not worth a compaction yet
            compact_to = max(
                compact_to, self._log.compact_point_for_bytes(applied, self.config.log_retain_bytes)
            )
            if compact_to >= self._log.first_index() and write.compact_to is None:
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
