"""Durable state of one replication node, in a single lmdb environment.

Sub-databases:
  log    8-byte big-endian index -> msgpack [term, kind, data]
  meta   b"hard_state" -> [term, vote, commit]; b"applied" -> index; b"voters" -> [ids];
         b"snapshot" -> [index, term, voters]  (the log's compaction point); b"layout" -> LAYOUT
  tree   sha256(encoded path) -> 4-byte length + encoded path + node record (the record is owned by
         replication.tree; written with the applied index)

lmdb keys are at most 511 bytes, so every key here has a fixed size: a path (up to 64 names of 1024 bytes)
lives in the value, which lmdb bounds only by 4 GiB. Layout 1 keyed tree records by the encoded path
itself; opening such a store rewrites its records in the current layout in one transaction.

All writes of one step go in one transaction (group commit): entries, hard state, tree records and the
applied index land together or not at all, so a process killed at any instant reopens consistent.
Writes are blocking lmdb calls; the node runs them on a worker thread (see docs/decisions/0002).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import lmdb
import msgpack

_INDEX = struct.Struct(">Q")
_PATH_SIZE = struct.Struct(">I")
LAYOUT = 2  # of the tree sub-database; a store without b"layout" in meta is layout 1
DEFAULT_MAP_SIZE = 64 * 1024**3  # address space only; the file grows as needed


def _key(index: int) -> bytes:
    return _INDEX.pack(index)


def encode_path(path: tuple) -> bytes:
    return msgpack.packb(list(path), use_bin_type=True)


def decode_path(raw: bytes) -> tuple:
    return tuple(msgpack.unpackb(raw, raw=False))


def tree_key(path: tuple) -> bytes:
    return hashlib.sha256(encode_path(path)).digest()


def tree_value(path: tuple, record: bytes) -> bytes:
    encoded = encode_path(path)
    return b"".join((_PATH_SIZE.pack(len(encoded)), encoded, record))


def split_tree_value(raw: bytes) -> tuple[tuple, bytes]:
    """(path, record) of a stored tree value."""
    (size,) = _PATH_SIZE.unpack_from(raw)
    end = _PATH_SIZE.size + size
    return decode_path(raw[_PATH_SIZE.size : end]), bytes(raw[end:])


class StorageError(Exception):
    """The store cannot be opened by this version."""


@dataclass(slots=True)
class LogRecord:
    index: int
    term: int
    kind: int
    data: bytes


@dataclass
class WriteBatch:
    """Everything one step persists, applied in one lmdb transaction."""

    entries: list[LogRecord] = field(default_factory=list)  # appended; a conflicting suffix is dropped first
    hard_state: tuple[int, int, int] | None = None  # term, vote, commit
    voters: list[int] | None = None
    tree_records: list[tuple[tuple, bytes | None]] = field(default_factory=list)
    tree_reset: bool = False  # replace the whole tree (snapshot install)
    applied: int | None = None
    compact_to: int | None = None  # drop log entries <= this index
    snapshot_meta: tuple[int, int, list[int]] | None = None
    addresses: dict[int, str] | None = None  # every member's address for peers

    def __bool__(self) -> bool:
        return bool(
            self.entries
            or self.hard_state is not None
            or self.voters is not None
            or self.tree_records
            or self.tree_reset
            or self.applied is not None
            or self.compact_to is not None
            or self.snapshot_meta is not None
            or self.addresses is not None
        )


class Storage:
    def __init__(self, path: str | Path, *, map_size: int = DEFAULT_MAP_SIZE, sync: bool = True):
        Path(path).mkdir(parents=True, exist_ok=True)
        self.path = Path(path)
        self.sync = sync
        # metasync/sync on: a committed write txn is on disk when commit() returns.
        self._env = lmdb.open(
            str(path), map_size=map_size, max_dbs=4, sync=sync, metasync=sync, subdir=True, lock=True
        )
        self._log = self._env.open_db(b"log")
        self._meta = self._env.open_db(b"meta")
        self._tree = self._env.open_db(b"tree")
        self._upgrade()

    @classmethod
    def open_readonly(cls, path: str | Path) -> Storage:
        """A store opened only to read it (a backup): no lock file, no upgrade, no writes."""
        self = cls.__new__(cls)
        self.path, self.sync = Path(path), False
        self._env = lmdb.open(str(path), max_dbs=4, readonly=True, lock=False, subdir=True)
        self._log = self._env.open_db(b"log", create=False)
        self._meta = self._env.open_db(b"meta", create=False)
        self._tree = self._env.open_db(b"tree", create=False)
        return self

    def close(self) -> None:
        self._env.close()

    def layout(self) -> int:
        return self._get_meta(b"layout") or 1

    def copy_to(self, destination: str | Path) -> None:
        """lmdb's consistent copy, compacted, into an empty directory (blocking; beside writes, which go on:
        the copy reads one snapshot of the store in its own read transaction)."""
        self._env.copy(str(destination), compact=True)

    def _upgrade(self) -> None:
        """Bring the store to LAYOUT; a layout-1 tree is rewritten in the same transaction, so a crash
        mid-way leaves the old layout to be upgraded again at the next open."""
        with self._env.begin(write=True) as txn:
            raw = txn.get(b"layout", db=self._meta)
            layout = 1 if raw is None else msgpack.unpackb(raw)
            if layout == LAYOUT:
                return
            if layout != 1:
                raise StorageError(f"{self.path} has storage layout {layout!r}; this version reads {LAYOUT}")
            old = [(decode_path(key), bytes(value)) for key, value in txn.cursor(db=self._tree)]
            txn.drop(self._tree, delete=False)
            for path, record in old:
                txn.put(tree_key(path), tree_value(path, record), db=self._tree)
            txn.put(b"layout", msgpack.packb(LAYOUT), db=self._meta)

    # ---- reads (any thread; each opens its own read transaction) ----------------------------------------

    def _get_meta(self, key: bytes):
        with self._env.begin(db=self._meta) as txn:
            raw = txn.get(key)
        return None if raw is None else msgpack.unpackb(raw, raw=False)

    def hard_state(self) -> tuple[int, int, int]:
        value = self._get_meta(b"hard_state")
        return tuple(value) if value else (0, 0, 0)  # type: ignore[return-value]

    def voters(self) -> list[int] | None:
        return self._get_meta(b"voters")

    def addresses(self) -> dict[int, str]:
        return {int(k): v for k, v in (self._get_meta(b"addresses") or {}).items()}

    def applied(self) -> int:
        return self._get_meta(b"applied") or 0

    def snapshot_meta(self) -> tuple[int, int, list[int]]:
        value = self._get_meta(b"snapshot")
        return tuple(value) if value else (0, 0, [])  # type: ignore[return-value]

    def first_index(self) -> int:
        return self.snapshot_meta()[0] + 1

    def last_index(self) -> int:
        with self._env.begin(db=self._log) as txn:
            cursor = txn.cursor()
            if cursor.last():
                return _INDEX.unpack(cursor.key())[0]
        return self.snapshot_meta()[0]

    def entry(self, index: int) -> LogRecord | None:
        with self._env.begin(db=self._log) as txn:
            raw = txn.get(_key(index))
        if raw is None:
            return None
        term, kind, data = msgpack.unpackb(raw, raw=False)
        return LogRecord(index, term, kind, data)

    def entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[LogRecord]:
        """Entries with lo <= index < hi (at least one if any exist, then up to max_bytes)."""
        out: list[LogRecord] = []
        size = 0
        with self._env.begin(db=self._log) as txn:
            cursor = txn.cursor()
            if not cursor.set_range(_key(lo)):
                return out
            for raw_key, raw in cursor:
                index = _INDEX.unpack(raw_key)[0]
                if index >= hi:
                    break
                size += len(raw)
                if out and max_bytes is not None and size > max_bytes:
                    break
                term, kind, data = msgpack.unpackb(raw, raw=False)
                out.append(LogRecord(index, term, kind, data))
        return out

    def tree_records(self) -> Iterator[tuple[tuple, bytes]]:
        with self._env.begin(db=self._tree) as txn:
            for raw in txn.cursor().iternext(keys=False, values=True):
                yield split_tree_value(raw)

    # ---- writes (blocking: the node calls this on its storage thread) -----------------------------------

    def commit(self, batch: WriteBatch) -> None:
        with self._env.begin(write=True) as txn:
            if batch.tree_reset:
                txn.drop(self._tree, delete=False)
            if batch.snapshot_meta is not None:
                index, term, voters = batch.snapshot_meta
                txn.put(b"snapshot", msgpack.packb([index, term, voters]), db=self._meta)
            if batch.compact_to is not None:
                self._delete_log_range(txn, 0, batch.compact_to + 1)
            if batch.entries:
                first = batch.entries[0].index
                self._delete_log_range(txn, first, None)  # a new leader may overwrite an uncommitted suffix
                cursor = txn.cursor(db=self._log)
                cursor.putmulti(
                    (
                        (_key(e.index), msgpack.packb([e.term, e.kind, e.data], use_bin_type=True))
                        for e in batch.entries
                    ),
                    append=True,
                )
            if batch.hard_state is not None:
                txn.put(b"hard_state", msgpack.packb(list(batch.hard_state)), db=self._meta)
            if batch.voters is not None:
                txn.put(b"voters", msgpack.packb(sorted(batch.voters)), db=self._meta)
            for path, record in batch.tree_records:
                if record is None:
                    txn.delete(tree_key(path), db=self._tree)
                else:
                    txn.put(tree_key(path), tree_value(path, record), db=self._tree)
            if batch.applied is not None:
                txn.put(b"applied", msgpack.packb(batch.applied), db=self._meta)
            if batch.addresses is not None:
                addresses = {str(k): v for k, v in batch.addresses.items()}
                txn.put(b"addresses", msgpack.packb(addresses), db=self._meta)

    def _delete_log_range(self, txn: lmdb.Transaction, lo: int, hi: int | None) -> None:
        cursor = txn.cursor(db=self._log)
        if not cursor.set_range(_key(lo)):
            return
        # delete() moves to the next record; past the last one the key reads empty.
        while (key := cursor.key()) and (hi is None or _INDEX.unpack(key)[0] < hi):
            cursor.delete()

    def reset_tree(self, records: Iterable[tuple[tuple, bytes]]) -> None:
        """Replace the stored tree (used only when installing a snapshot)."""
        self.commit(WriteBatch(tree_reset=True, tree_records=list(records)))
