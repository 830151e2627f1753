"""Large byte strings of a value as content-addressed chunks (docs/protocol.md section 3a, docs/addon.md).

When a value document is encoded, every ``bytes`` longer than ``CHUNK_BYTES`` (vertex positions, UVs,
attributes, keyframes, packed image or sound files...) is cut into fixed-size chunks; each chunk is named
by its SHA-256 and kept in the local ``ChunkCache``, and the value holds only a msgpack extension
(``CHUNKED_EXT``: the total length, 8 bytes big-endian, then the 32-byte hashes). Fixed boundaries mean that
moving one vertex changes one chunk of one array: the next version of the value shares every other chunk,
and only that one is uploaded.

Decoding turns the extension back into the joined bytes from the cache; a value whose chunks are not all
cached raises ``MissingChunks`` (the session fetches them first: ``ChunkGate``).
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

import msgpack

CHUNKED_EXT = 7  # msgpack extension type of a chunked byte string
CHUNK_BYTES = 64 * 1024  # the chunk size of arrays up to MAX_CHUNKS_PER_ARRAY * CHUNK_BYTES (64 MiB)
MAX_CHUNKS_PER_ARRAY = 1024  # a larger array gets larger chunks (still fixed within the array)
MAX_CHUNK_BYTES = 1024 * 1024  # protocol.limits.MAX_BLOB_BYTES
HASH_BYTES = 32
CACHE_BYTES = 1024 * 1024 * 1024  # chunks kept in memory (least recently used go first)


class MissingChunks(KeyError):
    """A value names chunks the cache does not hold (yet)."""

    def __init__(self, hashes: list[bytes]):
        super().__init__(f"{len(hashes)} chunks not here yet")
        self.hashes = hashes


class ChunkCache:
    """Chunks by hash, bounded in bytes; also which of them the server is known to hold."""

    def __init__(self, max_bytes: int = CACHE_BYTES):
        self.max_bytes = max_bytes
        self._chunks: OrderedDict[bytes, bytes] = OrderedDict()
        self.bytes = 0
        self.on_server: set[bytes] = set()  # stored there (blob_stored, or referenced by a value we got)

    def __contains__(self, blob: bytes) -> bool:
        return blob in self._chunks

    def __len__(self) -> int:
        return len(self._chunks)

    def get(self, blob: bytes) -> bytes | None:
        data = self._chunks.get(blob)
        if data is not None:
            self._chunks.move_to_end(blob)
        return data

    def put(self, blob: bytes, data: bytes) -> None:
        if blob in self._chunks:
            self._chunks.move_to_end(blob)
            return
        self._chunks[blob] = data
        self.bytes += len(data)
        while self.bytes > self.max_bytes and len(self._chunks) > 1:
            _, old = self._chunks.popitem(last=False)
            self.bytes -= len(old)

    def clear(self) -> None:
        self._chunks.clear()
        self.bytes = 0
        self.on_server.clear()


cache = ChunkCache()  # one Blender process, one cache (shared by every value and session)


def chunk_size(length: int) -> int:
    """Fixed chunk size for an array of ``length`` bytes: CHUNK_BYTES, or more for a very long one."""
    size = CHUNK_BYTES
    while length > size * MAX_CHUNKS_PER_ARRAY and size < MAX_CHUNK_BYTES:
        size *= 2
    return size


def split(data: bytes, store: ChunkCache = cache) -> msgpack.ExtType:
    """``data`` as chunks put in ``store``; returns the extension that names them."""
    size = chunk_size(len(data))
    view = memoryview(data)
    hashes = []
    for start in range(0, len(data), size):
        piece = bytes(view[start : start + size])
        blob = hashlib.sha256(piece).digest()
        store.put(blob, piece)
        hashes.append(blob)
    return msgpack.ExtType(CHUNKED_EXT, len(data).to_bytes(8, "big") + b"".join(hashes))


def _hashes(ext_data: bytes) -> list[bytes]:
    return [ext_data[i : i + HASH_BYTES] for i in range(8, len(ext_data), HASH_BYTES)]


def chunked(doc: Any, store: ChunkCache = cache) -> Any:
    """``doc`` with every ``bytes`` longer than CHUNK_BYTES replaced by its chunk extension."""
    if type(doc) is bytes:
        return split(doc, store) if len(doc) > CHUNK_BYTES else doc
    if type(doc) is dict:
        return {k: chunked(v, store) for k, v in doc.items()}
    if type(doc) is list:
        return [chunked(v, store) for v in doc]
    return doc


def join_hook(store: ChunkCache = cache) -> Callable[[int, bytes], Any]:
    """A msgpack ``ext_hook`` that joins chunked byte strings from ``store``."""

    def hook(code: int, data: bytes) -> Any:
        if code != CHUNKED_EXT:
            return msgpack.ExtType(code, data)
        hashes = _hashes(data)
        pieces = [store.get(blob) for blob in hashes]
        if any(piece is None for piece in pieces):
            raise MissingChunks([blob for blob, piece in zip(hashes, pieces, strict=True) if piece is None])
        joined = b"".join(pieces)  # type: ignore[arg-type]
        if len(joined) != int.from_bytes(data[:8], "big"):
            raise ValueError("a chunked value's length does not match its chunks")
        return joined

    return hook


def refs_of(value: bytes | None) -> list[bytes]:
    """The distinct chunk hashes a value names, in first-seen order (cheap: a chunked value is small)."""
    if not value or len(value) < 8 + 2 * HASH_BYTES:  # too short to hold a chunked byte string
        return []
    found: dict[bytes, None] = {}

    def hook(code: int, data: bytes) -> Any:
        if code == CHUNKED_EXT:
            found.update(dict.fromkeys(_hashes(data)))
        return None

    msgpack.unpackb(value, raw=False, strict_map_key=True, ext_hook=hook)
    return list(found)


_EXT_HEADER = re.compile(rb"\xc7.\x07|\xc8..\x07|\xc9....\x07", re.DOTALL)  # ext 8/16/32 of CHUNKED_EXT


def holds_chunks(value: bytes) -> bool:
    """Whether a value may name chunks (no decoding; a false yes is possible, a false no is not)."""
    return _EXT_HEADER.search(value) is not None


def missing(refs: Iterable[bytes], store: ChunkCache = cache) -> list[bytes]:
    return [blob for blob in refs if blob not in store]
