"""Online backups of a node's store, their check, and a new store seeded from one.

``copy_store`` is lmdb's consistent copy (one read transaction, compacted): it runs beside the node's
writes, on a worker thread (``Node.backup``), and holds every entry the node had made durable when it
began, so every operation acknowledged before then; ``store_point`` says which. ``check_store`` opens a
copy read-only and replays its log onto its tree, which proves both readable and says what state it holds
(the CPU for that is the checker's, not the serving node's). ``seed_store`` writes
that state as a fresh one-voter store (docs/operations.md, "Backups").
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import lmdb

from .apply_guard import apply_committed
from .blob_entries import BLOB_ROOT, named_blobs
from .core import EntryKind
from .lmdb_store import LAYOUT, READABLE_LAYOUTS, Storage, StorageError, WriteBatch
from .tree import Tree

STORE_FILE = "data.mdb"


class BackupError(Exception):
    """A backup that cannot be read, or a seed that would overwrite a store."""


@dataclass(frozen=True)
class StorePoint:
    index: int  # the last entry a copy holds (every entry up to it is in it)
    term: int


@dataclass(frozen=True)
class StoreSummary:
    applied: int  # every entry up to here is in the tree the store holds
    term: int  # the term of the last entry
    entries: int  # log entries replayed after the persisted tree
    state_hash: str  # the tree's SHA-256 (Tree.state_hash)


def copy_store(storage: Storage, destination: Path) -> None:
    """A consistent, compacted copy of ``storage`` into the empty directory ``destination`` (blocking)."""
    destination.mkdir(parents=True, exist_ok=True)
    if any(destination.iterdir()):
        raise BackupError(f"{destination} is not empty")
    storage.copy_to(destination)


def store_point(path: Path) -> StorePoint:
    """The last entry of a copy, read from its log without replaying it (blocking, cheap)."""
    storage = Storage.open_readonly(path)
    try:
        index = storage.last_index()
        term = storage.term(index)
        term = term if term is not None else storage.snapshot_meta()[1]
        return StorePoint(max(index, storage.applied()), term)
    finally:
        storage.close()


def _replayed(path: Path) -> tuple[Tree, int, list[tuple[bytes, bytes]]]:
    """The store's tree with every entry of its log applied (blocking), the term of the last one, and the
    blobs of its table the tree names."""
    if not (path / STORE_FILE).is_file():
        raise BackupError(f"{path} holds no {STORE_FILE}")
    try:
        storage = Storage.open_readonly(path)
    except lmdb.Error as exc:
        raise BackupError(f"{path / STORE_FILE} is not a store: {exc}") from None
    try:
        if storage.layout() not in READABLE_LAYOUTS:
            raise BackupError(f"{path} has store layout {storage.layout()}; this blendsync reads {LAYOUT}")
        tree = Tree.from_records(storage.tree_records(), storage.applied())
        term = storage.snapshot_meta()[1]
        index = max(tree.applied_index, storage.snapshot_meta()[0])
        while True:
            batch = storage.entries(index + 1, index + 1025)
            if not batch:
                break
            for record in batch:
                if record.index != index + 1:
                    raise BackupError(f"{path}: the log jumps from {index} to {record.index}")
                index, term = record.index, record.term
                if record.index <= tree.applied_index:
                    continue
                if record.kind == EntryKind.NORMAL and record.data:
                    apply_committed(tree, record.index, record.data, 0)
                else:
                    tree.advance(record.index)
        blobs = []
        for blob, content in named_blobs(tree.children_items((BLOB_ROOT,)), storage.blob):
            if content is None:
                raise BackupError(f"{path} is damaged: blob {blob.hex()} is named but not stored")
            blobs.append((blob, content))
        return tree, term, blobs
    except (
        lmdb.Error,
        ValueError,
        KeyError,
        StorageError,
    ) as exc:  # StorageError: a log entry's blob is gone
        raise BackupError(f"{path} is damaged: {exc}") from None
    finally:
        storage.close()


def check_store(path: Path) -> StoreSummary:
    """Open a copy read-only and replay it; raises BackupError if it is not a whole, readable store."""
    tree, term, _ = _replayed(path)
    persisted = Storage.open_readonly(path)
    try:
        replayed = tree.applied_index - max(persisted.applied(), persisted.snapshot_meta()[0])
    finally:
        persisted.close()
    return StoreSummary(tree.applied_index, term, replayed, tree.state_hash())


def seed_store(backup: Path, data_dir: Path, node_id: int) -> StoreSummary:
    """A new store in ``data_dir`` (which must hold none) with the backup's state: its tree with every
    logged entry applied, an empty log after it, and ``node_id`` as the only voter (blocking)."""
    if (data_dir / STORE_FILE).exists():
        raise BackupError(f"{data_dir} already holds a store: restore into a fresh directory")
    tree, term, blobs = _replayed(backup)
    storage = Storage(data_dir)
    try:
        applied = tree.applied_index
        storage.commit(
            WriteBatch(
                snapshot_meta=(applied, term, [node_id]),
                hard_state=(term, 0, applied),
                voters=[node_id],
                tree_records=tree.records(),
                applied=applied,
                addresses={},
                blobs=blobs,
            )
        )
    finally:
        storage.close()
    return StoreSummary(applied, term, 0, tree.state_hash())
