"""A node's blob table, where a small blob may be kept as a delta against a similar one (storage layout 7,
docs/decisions/0013).

An edit of a large value puts one new chunk and one new tree node per level (docs/decisions/0009), and
each new node is its predecessor with one 32-byte hash changed: kept whole, the nodes cost more than
everything else an edit writes beside its chunk. So a blob of at most ``MAX_DELTA_BLOB`` bytes that is a
run of 32-byte pieces (a tree node's form) is kept deflated with a stored blob that lists some of the same
pieces as the preset dictionary: a few dozen bytes instead of up to 8 KiB. Which blob that is is this
node's own choice (``BaseFinder``, in memory: the last blob stored that listed one of the pieces); only the
stored form changes: what a blob reads as, on this node and on the wire, is its bytes.

Sub-databases (``replication.lmdb_store`` opens them):
  blobs        sha256 -> the blob's bytes (kept whole)
  blob_deltas  sha256 -> base sha256 (32) + u16 size + the bytes raw-deflated against the base's bytes
  blob_based   the base's first 8 bytes + sha256 -> b"" for each delta (who must move when a base goes)

A blob is in exactly one of ``blobs`` and ``blob_deltas``. A delta's base is either, up to ``MAX_DEPTH``
deltas deep; chains cannot close (a blob's base was stored before it, and dropping a base moves each of
its deltas onto the base's own base, which is older still). Dropping a blob that deltas lean on keeps
their bytes: each is kept again against the nearest base that stays, or whole.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from typing import Final

import lmdb

PIECE: Final = 32
# A tree node of up to 256 children (protocol.limits.MAX_BLOB_CHILDREN); larger blobs are data.
MAX_DELTA_BLOB: Final = 256 * PIECE
MIN_DELTA_BLOB: Final = 2 * PIECE
# A read walks at most this many deltas down to a whole blob (each a lookup and an inflate of <= 8 KiB).
MAX_DEPTH: Final = 16
# A delta is kept only when it saves at least this much beside its own rows (base, size, index row).
MIN_SAVING: Final = 64
RECENT_PIECES: Final = 1 << 16  # pieces BaseFinder remembers: ~2,000 nodes of 32, ~10 MB
_SIZE: Final = struct.Struct(">H")
_HEAD: Final = PIECE + _SIZE.size
_PREFIX: Final = 8  # of the base's hash in a blob_based key: its own 32 bytes would add 24 per delta
_LEVEL: Final = 9
_WBITS: Final = -15  # raw deflate: the blob's hash checks what it inflates to


class BlobTableError(ValueError):
    """A delta that does not inflate to the blob its key names (a damaged store)."""


def _deflate(content: bytes | memoryview, base: bytes) -> bytes:
    packer = zlib.compressobj(_LEVEL, zlib.DEFLATED, _WBITS, 9, zlib.Z_DEFAULT_STRATEGY, base)
    return packer.compress(content) + packer.flush()


def _inflate(deflated: memoryview, base: bytes, size: int, blob: bytes) -> bytes:
    try:
        content = zlib.decompressobj(_WBITS, base).decompress(deflated)
    except zlib.error as exc:
        raise BlobTableError(f"blob {blob.hex()}: its delta does not inflate: {exc}") from None
    if len(content) != size:
        raise BlobTableError(f"blob {blob.hex()}: its delta inflates to {len(content)} bytes, not {size}")
    return content


def _pieces(content: bytes | memoryview) -> Iterator[bytes]:
    return (bytes(content[at : at + PIECE]) for at in range(0, len(content), PIECE))


def delta_shaped(size: int) -> bool:
    """Whether a blob of ``size`` bytes may be kept as a delta: a run of 32-byte pieces, small (a tree
    node's form)."""
    return MIN_DELTA_BLOB <= size <= MAX_DELTA_BLOB and size % PIECE == 0


class BaseFinder:
    """Which stored blob a new one most likely resembles: for each piece of the last ``RECENT_PIECES`` seen,
    the last delta-shaped blob that listed it. In memory only: a store that opens shows it the blobs of
    the log's last entries (``BlobTable.seed``)."""

    def __init__(self, limit: int = RECENT_PIECES):
        self._limit = limit
        self._by_piece: OrderedDict[bytes, bytes] = OrderedDict()

    def candidates(self, content: bytes | memoryview) -> list[bytes]:
        """Blobs that listed pieces of ``content``, most pieces shared first."""
        shared: dict[bytes, int] = {}
        for piece in _pieces(content):
            blob = self._by_piece.get(piece)
            if blob is not None:
                shared[blob] = shared.get(blob, 0) + 1
        return sorted(shared, key=lambda blob: -shared[blob])

    def remember(self, blob: bytes, content: bytes | memoryview) -> None:
        by_piece = self._by_piece
        for piece in _pieces(content):
            by_piece[piece] = blob
            by_piece.move_to_end(piece)
        while len(by_piece) > self._limit:
            by_piece.popitem(last=False)


class BlobTable:
    """The blob table's reads and writes inside a caller's lmdb transaction."""

    def __init__(
        self, whole: lmdb._Database | None, deltas: lmdb._Database | None, based: lmdb._Database | None
    ):
        self._whole, self._deltas, self._based = whole, deltas, based
        self.finder = BaseFinder()

    # ---- reads ------------------------------------------------------------------------------------------

    def get(self, txn: lmdb.Transaction, blob: bytes) -> bytes | memoryview | None:
        """A blob's bytes (a view into the map if it is kept whole), or None."""
        if self._whole is None:
            return None
        content = txn.get(blob, db=self._whole)
        if content is not None or self._deltas is None:
            return content
        return self._from_delta(txn, blob)

    def _from_delta(self, txn: lmdb.Transaction, blob: bytes) -> bytes | None:
        """A delta's bytes: its chain is walked down to a whole blob, then inflated back up (only the last
        bytes are checked against their hash: a damaged link on the way makes them other bytes)."""
        assert self._whole is not None and self._deltas is not None
        rows: list[memoryview] = []
        name = blob
        while (content := txn.get(name, db=self._whole)) is None:
            row = txn.get(name, db=self._deltas)
            if row is None:
                if rows:
                    raise BlobTableError(f"blob {blob.hex()}: its base {name.hex()} is not stored")
                return None
            if len(rows) == MAX_DEPTH or len(row) < _HEAD:
                raise BlobTableError(f"blob {blob.hex()}: a delta chain too deep or a short row")
            rows.append(memoryview(row))
            name = bytes(row[:PIECE])
        data = bytes(content)
        for row in reversed(rows):
            data = _inflate(row[_HEAD:], data, _SIZE.unpack_from(row, PIECE)[0], blob)
        if hashlib.sha256(data).digest() != blob:
            raise BlobTableError(f"blob {blob.hex()}: its delta inflates to other bytes")
        return data

    def size(self, txn: lmdb.Transaction, blob: bytes) -> int | None:
        """A blob's size, without reading a delta's base."""
        if self._whole is None:
            return None
        content = txn.get(blob, db=self._whole)
        if content is not None:
            return len(content)
        row = None if self._deltas is None else txn.get(blob, db=self._deltas)
        return None if row is None else _SIZE.unpack_from(row, PIECE)[0]

    def has(self, txn: lmdb.Transaction, blob: bytes) -> bool:
        return self._whole is not None and (
            txn.get(blob, db=self._whole) is not None
            or (self._deltas is not None and txn.get(blob, db=self._deltas) is not None)
        )

    def hashes(self, txn: lmdb.Transaction) -> list[bytes]:
        """Every blob kept, in hash order."""
        tables = [db for db in (self._whole, self._deltas) if db is not None]
        return sorted(bytes(k) for db in tables for k in txn.cursor(db=db).iternext(keys=True, values=False))

    def _depth(self, txn: lmdb.Transaction, blob: bytes) -> int | None:
        """How many deltas deep a kept blob is (0: whole), None if it is not kept."""
        assert self._whole is not None and self._deltas is not None
        for depth in range(MAX_DEPTH + 1):
            if txn.get(blob, db=self._whole) is not None:
                return depth
            row = txn.get(blob, db=self._deltas)
            if row is None:
                return None
            blob = bytes(row[:PIECE])
        return MAX_DEPTH + 1

    def _base_of(self, txn: lmdb.Transaction, blob: bytes) -> bytes | None:
        assert self._deltas is not None
        row = txn.get(blob, db=self._deltas)
        return None if row is None else bytes(row[:PIECE])

    def seed(self, txn: lmdb.Transaction, blobs: Iterable[bytes]) -> None:
        """Teach ``finder`` the delta-shaped ones of ``blobs`` (oldest first: the newest wins a piece)."""
        for blob in blobs:
            size = self.size(txn, blob)
            if size is not None and delta_shaped(size):
                content = self.get(txn, blob)
                if content is not None:
                    self.finder.remember(blob, content)

    # ---- writes -----------------------------------------------------------------------------------------

    def put(self, txn: lmdb.Transaction, blob: bytes, content: bytes | memoryview) -> None:
        """Keep a blob's bytes (nothing is written if it is kept already): as a delta if a similar blob is
        kept and that saves enough, else whole."""
        assert self._whole is not None and self._deltas is not None
        if self.has(txn, blob):
            return
        if delta_shaped(len(content)):
            for base in self.finder.candidates(content)[:4]:
                depth = self._depth(txn, base)  # None for one no longer kept (this blob itself, dropped)
                if depth is not None and depth < MAX_DEPTH and self._put_delta(txn, blob, content, base):
                    break
            else:
                txn.put(blob, content, db=self._whole)
            self.finder.remember(blob, content)
            return
        txn.put(blob, content, db=self._whole)

    def _put_delta(
        self,
        txn: lmdb.Transaction,
        blob: bytes,
        content: bytes | memoryview,
        base: bytes,
        base_bytes: bytes | memoryview | None = None,
    ) -> bool:
        assert self._deltas is not None and self._based is not None
        if base_bytes is None:
            base_bytes = self.get(txn, base)
            if base_bytes is None:
                return False
        deflated = _deflate(content, bytes(base_bytes))
        if _HEAD + len(deflated) + _PREFIX + PIECE + MIN_SAVING > len(content):
            return False
        txn.put(blob, b"".join((base, _SIZE.pack(len(content)), deflated)), db=self._deltas)
        txn.put(base[:_PREFIX] + blob, b"", db=self._based)
        return True

    def drop(self, txn: lmdb.Transaction, blobs: Iterable[bytes]) -> None:
        """Drop these blobs' bytes. A kept delta whose base goes is kept again, its bytes unchanged, against
        the nearest base that stays (or whole)."""
        assert self._whole is not None and self._deltas is not None and self._based is not None
        dropping = set(blobs)
        # (delta, its bytes, its new base and that base's bytes), all read while every base is still there:
        # a new base may itself be a delta that moves (its own base going too).
        moved: list[tuple[bytes, bytes, bytes | None, bytes | None]] = []
        for blob in sorted(dropping):
            for dependent in self._dependents(txn, blob):
                if dependent in dropping:
                    continue
                base: bytes | None = blob
                while base is not None and base in dropping:
                    base = self._base_of(txn, base)
                content = self.get(txn, dependent)
                base_bytes = None if base is None else self.get(txn, base)
                assert content is not None and (base is None or base_bytes is not None)
                moved.append(
                    (dependent, bytes(content), base, None if base_bytes is None else bytes(base_bytes))
                )
        for blob in dropping:
            txn.delete(blob, db=self._whole)
            base = self._base_of(txn, blob)
            if base is not None:
                txn.delete(blob, db=self._deltas)
                txn.delete(base[:_PREFIX] + blob, db=self._based)
        for dependent, content, base, base_bytes in moved:
            old = self._base_of(txn, dependent)
            assert old is not None
            txn.delete(dependent, db=self._deltas)
            txn.delete(old[:_PREFIX] + dependent, db=self._based)
            if base is None or not self._put_delta(txn, dependent, content, base, base_bytes):
                txn.put(dependent, content, db=self._whole)

    def _dependents(self, txn: lmdb.Transaction, base: bytes) -> list[bytes]:
        """The deltas kept against ``base`` (the index's prefix may name others: each is checked)."""
        assert self._based is not None
        found = []
        cursor = txn.cursor(db=self._based)
        if cursor.set_range(base[:_PREFIX]):
            for key in cursor.iternext(keys=True, values=False):
                if bytes(key[:_PREFIX]) != base[:_PREFIX]:
                    break
                dependent = bytes(key[_PREFIX:])
                if self._base_of(txn, dependent) == base:
                    found.append(dependent)
        return found
