"""Durable state of one replication node, in a single lmdb environment.

Sub-databases:
  log    8-byte big-endian index -> msgpack [term, kind, data], or [term, kind, deflated, blob]: the
         entry's command deflated against the bytes of the blob it carries (or nil)
         (replication.deflate), whichever is smaller
  meta   b"hard_state" -> [term, vote, commit]; b"applied" -> index; b"voters" -> [ids];
         b"snapshot" -> [index, term, voters]  (the log's compaction point); b"layout" -> LAYOUT
  tree   sha256(encoded path) -> 4-byte length + encoded path + node record (the record is owned by
         replication.tree; written with the applied index), deflated where that is smaller: a blob's
         node against the blob's bytes (replication.deflate)
  blobs      sha256 -> the blob's bytes, written once, in the transaction that appends the first entry
             carrying it (or installs a snapshot naming it); the log keeps that entry without them
             (replication.blob_entries)
  blob_log   8-byte index + sha256 -> b"" for each appended entry that carries a blob (what compaction
             of the log may set free; the last index carrying each blob is kept in memory from it)
  blob_deltas, blob_based   small blobs kept as deltas against similar ones, and who leans on whom
             (replication.blob_deltas: ``blobs`` and ``blob_deltas`` together are the blob table)

A blob's bytes go when the log is compacted past the last entry carrying it and the persisted tree has no
node /blobs/<hex>, in the transaction that makes that so (docs/decisions/0008).

lmdb keys are at most 511 bytes, so every key here has a fixed size: a path (up to 64 names of 1024 bytes)
lives in the value, which lmdb bounds only by 4 GiB. Layout 1 keyed tree records by the encoded path
itself; opening such a store rewrites its records in the current layout in one transaction. Layout 2 had
no blob table (its blobs are tree payloads, which the node still reads); opening it only marks it 5. Layout 4
may hold tree records of nine fields (a node's holds, docs/tree.md), which a layout-3 version cannot read.
Layout 5 may name a held path's hex names by their bytes in those records, which a layout-4 version cannot
read. Layout 6 may hold deflated log entries and tree records, which a layout-5 version cannot read.
Layout 7 may keep a blob as a delta, which a layout-6 version cannot read, and has no ``blob_last`` (each
blob's last entry is read from ``blob_log`` when the store opens). Opening a layout-3, -4, -5 or -6 store
marks it 7 and drops its ``blob_last``.

All writes of one step go in one transaction (group commit): entries, hard state, tree records and the
applied index land together or not at all, so a process killed at any instant reopens consistent.
Writes are blocking lmdb calls; the node runs them on a worker thread (see docs/decisions/0002).
"""

from __future__ import annotations

import hashlib
import struct
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import lmdb
import msgpack

from .blob_deltas import BlobTable, BlobTableError
from .blob_entries import (
    BLOB_ROOT,
    HASH_SIZE,
    entry_command,
    rejoin_blob_entry,
    split_for_storage,
    stored_blob,
)
from .deflate import (
    MAX_DEFLATED,
    MIN_DEFLATED,
    DeflateError,
    deflate,
    deflate_record,
    inflate,
    inflate_record,
)

_INDEX = struct.Struct(">Q")
_PATH_SIZE = struct.Struct(">I")
LAYOUT = 7  # a store without b"layout" in meta is layout 1
READABLE_LAYOUTS = (2, 3, 4, 5, 6, 7)  # what a backup may hold
DEFAULT_MAP_SIZE = 64 * 1024**3  # address space only; the file grows as needed
SEED_BLOBS = 4096  # the blobs of the log's last entries that a restart shows the blob table


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


def _blob_of(name: str) -> bytes:
    try:
        return bytes.fromhex(name)
    except ValueError:
        return b""  # not a blob's name: names nothing in the table


def _log_value(entry: LogRecord, stored: bytes, blob: bytes | None, content: bytes | memoryview) -> bytes:
    """An entry's stored log value: its command deflated against its blob's bytes if that is smaller (and
    the command MIN_DEFLATED to MAX_DEFLATED bytes)."""
    command = entry_command(stored) if blob is not None else stored
    if MIN_DEFLATED <= len(command) <= MAX_DEFLATED:
        deflated = deflate(command, content)
        if len(deflated) + (HASH_SIZE + 2 if blob is not None else 1) < len(stored):
            return msgpack.packb([entry.term, entry.kind, deflated, blob], use_bin_type=True)
    return msgpack.packb([entry.term, entry.kind, stored], use_bin_type=True)


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
    blobs: list[tuple[bytes, bytes]] = field(default_factory=list)  # (sha256, bytes) a snapshot names

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
            or bool(self.blobs)
        )


class Storage:
    def __init__(self, path: str | Path, *, map_size: int = DEFAULT_MAP_SIZE, sync: bool = True):
        Path(path).mkdir(parents=True, exist_ok=True)
        self.path = Path(path)
        self.sync = sync
        # metasync/sync on: a committed write txn is on disk when commit() returns.
        self._env = lmdb.open(
            str(path), map_size=map_size, max_dbs=10, sync=sync, metasync=sync, subdir=True, lock=True
        )
        self._log = self._env.open_db(b"log")
        self._meta = self._env.open_db(b"meta")
        self._tree = self._env.open_db(b"tree")
        self._blobs: lmdb._Database | None = self._env.open_db(b"blobs")
        self._blob_log = self._env.open_db(b"blob_log")
        deltas, based = self._env.open_db(b"blob_deltas"), self._env.open_db(b"blob_based")
        self._table = BlobTable(self._blobs, deltas, based)
        self._upgrade()
        # blob -> the last index of a retained (blob_log) entry carrying it: while it is past the log's
        # compaction point, the blob's bytes stay. Only the storage thread reads and changes it.
        self._last_carrying: dict[bytes, int] = {}
        self._read_blob_log()

    def _read_blob_log(self) -> None:
        """One pass over blob_log, in index order: each blob's last carrying entry, and the blobs of the last
        SEED_BLOBS entries shown to the blob table, so that the first edit of a tree node after a restart
        is kept as a delta against the node it replaces."""
        newest: deque[bytes] = deque(maxlen=SEED_BLOBS)
        with self._env.begin(buffers=True) as txn:
            for row in txn.cursor(db=self._blob_log).iternext(keys=True, values=False):
                blob = bytes(row[_INDEX.size :])
                self._last_carrying[blob] = _INDEX.unpack_from(row)[0]
                newest.append(blob)
            try:
                self._table.seed(txn, newest)
            except BlobTableError:
                pass  # a damaged blob is reported where it is read; here it only teaches nothing

    @classmethod
    def open_readonly(cls, path: str | Path) -> Storage:
        """A store opened only to read it (a backup): no lock file, no upgrade, no writes."""
        self = cls.__new__(cls)
        self.path, self.sync = Path(path), False
        self._env = lmdb.open(str(path), max_dbs=10, readonly=True, lock=False, subdir=True)
        self._log = self._env.open_db(b"log", create=False)
        self._meta = self._env.open_db(b"meta", create=False)
        self._tree = self._env.open_db(b"tree", create=False)
        try:
            self._blobs = self._env.open_db(b"blobs", create=False)
        except lmdb.NotFoundError:
            self._blobs = None  # layout 2: no blob table
        deltas = based = None
        if self._blobs is not None and self.layout() >= 7:
            deltas = self._env.open_db(b"blob_deltas", create=False)
            based = self._env.open_db(b"blob_based", create=False)
        self._table = BlobTable(self._blobs, deltas, based)
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
        try:  # layouts 3 to 6 kept each blob's last entry on disk; it is read from blob_log now
            blob_last = self._env.open_db(b"blob_last", create=False)
        except lmdb.NotFoundError:
            blob_last = None
        with self._env.begin(write=True) as txn:
            raw = txn.get(b"layout", db=self._meta)
            layout = 1 if raw is None else msgpack.unpackb(raw)
            if layout == LAYOUT:
                return
            if layout not in (1, 2, 3, 4, 5, 6):
                raise StorageError(f"{self.path} has storage layout {layout!r}; this version reads {LAYOUT}")
            if blob_last is not None:
                txn.drop(blob_last, delete=True)
            if layout == 1:
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

    def term(self, index: int) -> int | None:
        """The term of the entry at ``index``, or None if the log holds no such entry."""
        with self._env.begin(db=self._log) as txn:
            raw = txn.get(_key(index))
        return None if raw is None else msgpack.unpackb(raw, raw=False)[0]

    def entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[LogRecord]:
        """Entries with lo <= index < hi (at least one if any exist, then up to max_bytes), whole: a blob
        an entry carries is read back from the blob table."""
        out: list[LogRecord] = []
        size = 0
        with self._env.begin() as txn:
            cursor = txn.cursor(db=self._log)
            if not cursor.set_range(_key(lo)):
                return out
            for raw_key, raw in cursor:
                index = _INDEX.unpack(raw_key)[0]
                if index >= hi:
                    break
                term, kind, data = self._entry_data(txn, index, msgpack.unpackb(raw, raw=False))
                size += len(data)
                if out and max_bytes is not None and size > max_bytes:
                    break
                out.append(LogRecord(index, term, kind, data))
        return out

    def entry_sizes(self, after: int) -> list[tuple[int, int]]:
        """(index, bytes) of each entry past ``after``: its stored value and the blob it carries (read for
        their lengths only), about what its full data takes."""
        sizes: dict[int, int] = {}
        with self._env.begin(buffers=True) as txn:
            cursor = txn.cursor(db=self._log)
            if cursor.set_range(_key(after + 1)):
                for raw_key, raw in cursor:
                    sizes[_INDEX.unpack(raw_key)[0]] = len(raw)
            if self._blobs is not None:
                rows = txn.cursor(db=self._blob_log)
                if rows.set_range(_key(after + 1)):
                    for row in rows.iternext(keys=True, values=False):
                        index = _INDEX.unpack_from(row)[0]
                        size = self._table.size(txn, bytes(row[_INDEX.size :]))
                        if index in sizes and size is not None:
                            sizes[index] += size
        return sorted(sizes.items())

    def _entry_data(self, txn: lmdb.Transaction, index: int, stored: list) -> tuple[int, int, bytes]:
        """(term, kind, full entry data) of a stored log value: deflated or not, a blob joined back."""
        if len(stored) == 4:
            term, kind, deflated, blob = stored
            content = b"" if blob is None else self._blob_in(txn, blob, index)
            try:
                command = inflate(deflated, content)
            except DeflateError as exc:
                raise StorageError(f"{self.path}: entry {index}: {exc}") from None
            return term, kind, command if blob is None else rejoin_blob_entry(blob, command, content)
        term, kind, data = stored
        blob = stored_blob(data)
        return term, kind, data if blob is None else data + self._blob_in(txn, blob, index)

    def _blob_in(self, txn: lmdb.Transaction, blob: bytes, index: int) -> bytes:
        content = self._table_get(txn, blob)
        if content is None:
            raise StorageError(f"{self.path}: entry {index}'s blob {blob.hex()} is named but not stored")
        return bytes(content)

    def _table_get(self, txn: lmdb.Transaction, blob: bytes) -> bytes | memoryview | None:
        try:
            return self._table.get(txn, blob)
        except BlobTableError as exc:
            raise StorageError(f"{self.path}: {exc}") from None

    def blob(self, blob: bytes) -> bytes | None:
        """A blob's bytes from the blob table, or None."""
        with self._env.begin() as txn:
            content = self._table_get(txn, blob)
        return None if content is None else bytes(content)

    def blob_hashes(self) -> list[bytes]:
        """Every blob the table holds (for checks and tests)."""
        with self._env.begin() as txn:
            return self._table.hashes(txn)

    def tree_records(self) -> Iterator[tuple[tuple, bytes]]:
        with self._env.begin(db=self._tree, buffers=True) as txn:  # a blob is read only for its first bytes
            for raw in txn.cursor().iternext(keys=False, values=True):
                path, stored = split_tree_value(raw)
                try:
                    yield path, inflate_record(stored, partial(self._node_blob, txn, path))
                except DeflateError as exc:
                    raise StorageError(f"{self.path}: the tree record of {path!r}: {exc}") from None

    def _node_blob(self, txn: lmdb.Transaction, path: tuple) -> bytes | memoryview | None:
        """The bytes of the blob a tree node /blobs/<hex> names, if the table holds them."""
        if self._blobs is None or len(path) != 2 or path[0] != BLOB_ROOT:
            return None
        blob = _blob_of(path[1])
        return self._table_get(txn, blob) if blob else None

    # ---- writes (blocking: the node calls this on its storage thread) -----------------------------------

    def commit(self, batch: WriteBatch) -> None:
        # buffers: what is read is a view into the map, valid until the next write (a blob is read only for
        # the first bytes a record is deflated against), so nothing read is kept past one.
        carrying: dict[bytes, int] = {}  # the last index of this batch's entries carrying each blob
        with self._env.begin(write=True, buffers=True) as txn:
            # Blobs whose bytes may have lost their last holder in this batch (checked at the end).
            candidates: set[bytes] = set()
            if batch.tree_reset:
                txn.drop(self._tree, delete=False)
                candidates.update(self._table.hashes(txn))
            if batch.snapshot_meta is not None:
                index, term, voters = batch.snapshot_meta
                txn.put(b"snapshot", msgpack.packb([index, term, voters]), db=self._meta)
            raw = txn.get(b"snapshot", db=self._meta)
            compacted = msgpack.unpackb(raw)[0] if raw is not None else 0  # the log holds what is after
            if batch.compact_to is not None:
                self._delete_log_range(txn, 0, batch.compact_to + 1)
                candidates.update(self._forget_blob_entries(txn, compacted))
            for blob, content in batch.blobs:
                self._table.put(txn, blob, content)
            if batch.entries:
                first = batch.entries[0].index
                self._delete_log_range(txn, first, None)  # a new leader may overwrite an uncommitted suffix
                stored = self._store_blobs(txn, batch.entries, carrying)
                records = [(_key(e.index), value) for e, value in stored]
                txn.cursor(db=self._log).putmulti(records, append=True)
            if batch.hard_state is not None:
                txn.put(b"hard_state", msgpack.packb(list(batch.hard_state)), db=self._meta)
            if batch.voters is not None:
                txn.put(b"voters", msgpack.packb(sorted(batch.voters)), db=self._meta)
            for path, record in batch.tree_records:
                if record is None:
                    txn.delete(tree_key(path), db=self._tree)
                    if len(path) == 2 and path[0] == BLOB_ROOT:
                        candidates.add(_blob_of(path[1]))
                else:
                    stored = deflate_record(record, self._node_blob(txn, path))
                    txn.put(tree_key(path), tree_value(path, stored), db=self._tree)
            if batch.applied is not None:
                txn.put(b"applied", msgpack.packb(batch.applied), db=self._meta)
            if batch.addresses is not None:
                addresses = {str(k): v for k, v in batch.addresses.items()}
                txn.put(b"addresses", msgpack.packb(addresses), db=self._meta)
            if candidates:
                self._drop_unheld_blobs(txn, candidates, compacted, carrying)
        # Committed: only now does memory follow what the transaction wrote.
        if batch.tree_reset or batch.compact_to is not None:
            for blob in [b for b, index in self._last_carrying.items() if index <= compacted]:
                del self._last_carrying[blob]
        self._last_carrying.update(carrying)

    def _store_blobs(
        self, txn: lmdb.Transaction, entries: list[LogRecord], carrying: dict[bytes, int]
    ) -> Iterator[tuple[LogRecord, bytes]]:
        """Each entry with its stored log value; the bytes of a blob it carries go to the table (once), and
        ``carrying`` gets the entry's index."""
        for entry in entries:
            stored, blob, content = split_for_storage(entry.data)
            if blob is not None:
                self._table.put(txn, blob, content)  # already there: nothing written
                txn.put(_key(entry.index) + blob, b"", db=self._blob_log)
                carrying[blob] = entry.index
            yield entry, _log_value(entry, stored, blob, content)

    def _forget_blob_entries(self, txn: lmdb.Transaction, compact_to: int) -> set[bytes]:
        """Drop the blob_log rows of compacted entries; return the blobs they carried."""
        blobs: set[bytes] = set()
        cursor = txn.cursor(db=self._blob_log)
        if not cursor.first():
            return blobs
        while (key := cursor.key()) and _INDEX.unpack_from(key)[0] <= compact_to:
            blobs.add(bytes(key[_INDEX.size :]))
            cursor.delete()
        return blobs

    def _drop_unheld_blobs(
        self, txn: lmdb.Transaction, candidates: set[bytes], compacted: int, carrying: dict[bytes, int]
    ) -> None:
        """Drop the bytes of each candidate that no tree record and no retained entry (after ``compacted``)
        names: a retained entry carrying it is at most the last index carrying it (an entry of this batch's
        or an earlier one's, overwritten or not), so that is after ``compacted``."""
        unheld = []
        for blob in sorted(candidates):
            if txn.get(tree_key((BLOB_ROOT, blob.hex())), db=self._tree) is not None:
                continue
            if max(carrying.get(blob, 0), self._last_carrying.get(blob, 0)) > compacted:
                continue
            unheld.append(blob)
        try:
            self._table.drop(txn, unheld)
        except BlobTableError as exc:
            raise StorageError(f"{self.path}: {exc}") from None

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
