"""Large byte strings of a value as content-addressed chunks (docs/protocol.md section 3a, docs/addon.md).

When a value document is encoded, every ``bytes`` longer than ``CHUNK_BYTES`` (vertex positions, UVs,
attributes, keyframes, packed image or sound files...) is cut into fixed-size chunks, each named by its
SHA-256 and kept in the local ``ChunkCache``. The chunks' hashes go into **list nodes** of at most ``FANOUT``
hashes (1 KiB), those nodes' hashes into nodes of the next level, until one node is left: the root. The value
holds only a msgpack extension ``CHUNK_TREE_EXT``: the total length (8 bytes big-endian), the chunk size (4),
the fan-out (2) and the root's hash (32). Fixed boundaries mean that moving one vertex changes one chunk and
one node per level: the next version of the value shares everything else, and only those are uploaded; a
set's ``refs`` name only roots (the server holds a tree through its root: docs/protocol.md section 3a).

Decoding turns the extension back into the joined bytes from the cache; a value whose tree is not all
cached raises ``MissingChunks`` naming what to fetch next. Values of the first format (``CHUNKED_EXT``: the
total length, then every chunk's hash, all of them in ``refs``) are still read.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import msgpack

CHUNKED_EXT = 7  # msgpack extension type of a flat chunked byte string (read, no longer written)
CHUNK_TREE_EXT = 8  # msgpack extension type of a byte string as a tree of chunks
CHUNK_BYTES = 32 * 1024  # one data chunk: an edit sends one, so well under the 64 KiB an edit may cost
FANOUT = 32  # hashes in one list node (1 KiB)
MAX_FANOUT = 256  # protocol.limits.MAX_BLOB_CHILDREN: a node's distinct children
MAX_DEPTH = 8  # node levels a decoder follows (32 KiB * 32**8 is far past any array)
MAX_CHUNK_BYTES = 1024 * 1024  # protocol.limits.MAX_BLOB_BYTES
# The longest byte string a tree may stand for: joining it allocates that much, and a few blobs repeated
# through the levels could otherwise claim any length (a 10,000,000-vertex mesh's arrays are well under).
MAX_TREE_BYTES = 4 * 1024**3
HASH_BYTES = 32
_TREE_HEAD = 8 + 4 + 2  # length, chunk size, fan-out; then the root hash
CACHE_BYTES = 1024 * 1024 * 1024  # chunks kept in memory (least recently used go first)


Upload = tuple[bytes, "list[bytes] | None"]  # a blob to put: its hash and, for a list node, its children


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


class Tree:
    """The shape a ``CHUNK_TREE_EXT`` describes (checked: a hostile value cannot make a reader loop long)."""

    __slots__ = ("chunk", "fanout", "length", "root", "widths")

    def __init__(self, ext_data: bytes):
        if len(ext_data) != _TREE_HEAD + HASH_BYTES:
            raise ValueError("a chunk tree's extension has the wrong size")
        self.length = int.from_bytes(ext_data[:8], "big")
        self.chunk = int.from_bytes(ext_data[8:12], "big")
        self.fanout = int.from_bytes(ext_data[12:14], "big")
        self.root = ext_data[_TREE_HEAD:]
        if not 1 <= self.chunk <= MAX_CHUNK_BYTES or not 2 <= self.fanout <= MAX_FANOUT:
            raise ValueError("a chunk tree's chunk size or fan-out is out of bounds")
        if self.length <= self.chunk:
            raise ValueError("a chunk tree of one chunk")
        if self.length > MAX_TREE_BYTES:
            raise ValueError(f"a chunk tree longer than {MAX_TREE_BYTES} bytes")
        # widths[0]: data chunks; widths[k]: nodes of level k; the last is the root (1)
        self.widths = [-(-self.length // self.chunk)]
        while self.widths[-1] > 1:
            if len(self.widths) > MAX_DEPTH:
                raise ValueError(f"a chunk tree deeper than {MAX_DEPTH} levels")
            self.widths.append(-(-self.widths[-1] // self.fanout))

    @property
    def depth(self) -> int:
        return len(self.widths) - 1


def node_hashes(data: bytes) -> list[bytes]:
    """The hashes a list node holds, in order."""
    return [data[i : i + HASH_BYTES] for i in range(0, len(data), HASH_BYTES)]


class _Recent:
    """Byte strings split lately, with their chunks' hashes, by length: a large array read again (a mesh
    in edit mode, one vertex moved) is compared with the last one of its length chunk by chunk, and an
    equal chunk keeps its hash (comparing costs a fraction of hashing: ~50 ms per copy of a
    199,809-vertex mesh)."""

    PER_LENGTH = 4  # a mesh's corner vertices and corner edges have one length
    MAX_BYTES = 256 * 1024 * 1024

    def __init__(self) -> None:
        self._by_length: OrderedDict[int, list[tuple[bytes, list[bytes]]]] = OrderedDict()
        self.bytes = 0

    def match(self, data: bytes) -> tuple[bytes, list[bytes]] | None:
        """An earlier byte string of this length and its hashes: one equal to ``data`` if there is one,
        else the newest whose first or last chunk is equal."""
        found = self._by_length.get(len(data))
        if not found:
            return None
        for old, hashes in reversed(found):
            if old == data:
                return old, hashes
        head, tail = slice(0, CHUNK_BYTES), slice(len(data) - CHUNK_BYTES, len(data))
        for old, hashes in reversed(found):
            if old[head] == data[head] or old[tail] == data[tail]:
                return old, hashes
        return None

    def equal(self, data: bytearray) -> bytes | None:
        """An earlier byte string equal to ``data``: an array read again and unchanged (a mesh's topology in
        edit mode) is neither copied nor compared chunk by chunk."""
        for old, _ in reversed(self._by_length.get(len(data), ())):
            if old == data:  # memcmp
                return old
        return None

    def remember(self, data: bytes, hashes: list[bytes]) -> None:
        found = self._by_length.setdefault(len(data), [])
        self._by_length.move_to_end(len(data))
        found[:] = [entry for entry in found if entry[0] is not data and entry[0] != data]
        found.append((data, hashes))
        self.bytes = sum(len(old) for entries in self._by_length.values() for old, _ in entries)
        while len(found) > self.PER_LENGTH:
            self.bytes -= len(found.pop(0)[0])
        while self.bytes > self.MAX_BYTES and self._by_length:
            _, entries = self._by_length.popitem(last=False)
            self.bytes -= sum(len(old) for old, _ in entries)

    def clear(self) -> None:
        self._by_length.clear()
        self.bytes = 0


_recent = _Recent()
REUSE_BYTES = 8 * CHUNK_BYTES  # shorter byte strings are hashed whole (few chunks: nothing to gain)
recent_equal = _recent.equal
# Byte strings a cache elsewhere holds for as long as they are pinned (the files of a clip or an image
# sequence, sync/file_sets.py: hundreds of files of one length, more than _Recent keeps), with their
# chunks' hashes once split: the same object split again is not hashed again.
_pinned: dict[int, tuple[bytes, list[bytes] | None]] = {}


def pin(data: bytes) -> None:
    """Remember ``data``'s chunk hashes (by identity) from its next split until :func:`unpin`."""
    _pinned.setdefault(id(data), (data, None))


def unpin(data: bytes) -> None:
    _pinned.pop(id(data), None)


def split(data: bytes, store: ChunkCache = cache) -> msgpack.ExtType:
    """``data`` as chunks and list nodes put in ``store``; returns the extension that names the root."""
    view = memoryview(data)
    level = []
    pinned = _pinned.get(id(data))
    if pinned is not None and pinned[1] is not None:
        earlier: tuple[bytes, list[bytes]] | None = (data, pinned[1])
    else:
        earlier = _recent.match(data) if len(data) >= REUSE_BYTES else None
    old, hashes = earlier if earlier is not None else (b"", [])
    same = old == data
    for index, start in enumerate(range(0, len(data), CHUNK_BYTES)):
        end = start + CHUNK_BYTES
        if same or (old and old[start:end] == data[start:end]):  # bytes: compared with memcmp
            blob = hashes[index]
            if blob not in store:  # evicted since: put back
                store.put(blob, bytes(view[start:end]))
            else:
                store.get(blob)  # used again: kept longest
        else:
            piece = bytes(view[start:end])
            blob = hashlib.sha256(piece).digest()
            store.put(blob, piece)
        level.append(blob)
    if pinned is not None:
        _pinned[id(data)] = (data, level)
    elif len(data) >= REUSE_BYTES:
        _recent.remember(data, level)
    while len(level) > 1:
        nodes = []
        for start in range(0, len(level), FANOUT):
            node = b"".join(level[start : start + FANOUT])
            blob = hashlib.sha256(node).digest()
            store.put(blob, node)
            nodes.append(blob)
        level = nodes
    head = len(data).to_bytes(8, "big") + CHUNK_BYTES.to_bytes(4, "big") + FANOUT.to_bytes(2, "big")
    return msgpack.ExtType(CHUNK_TREE_EXT, head + level[0])


def walk(tree: Tree, store: ChunkCache = cache) -> tuple[list[bytes], list[bytes]]:
    """(the data chunks' hashes in order, or [] when not all nodes are here; the missing nodes or chunks
    whose parents are here: what to fetch next)."""
    level, missing = [tree.root], []
    for depth in range(tree.depth, 0, -1):
        below: list[bytes] = []
        for node in level:
            data = store.get(node)
            if data is None:
                missing.append(node)
                continue
            if not data or len(data) % HASH_BYTES or len(data) > tree.fanout * HASH_BYTES:
                raise ValueError("a chunk tree's list node is malformed")
            below += node_hashes(data)
        if missing:
            return [], missing
        if len(below) != tree.widths[depth - 1]:
            raise ValueError("a chunk tree's nodes do not hold its chunks")
        level = below
    return level, [blob for blob in dict.fromkeys(level) if blob not in store]


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
        if code == CHUNK_TREE_EXT:
            tree = Tree(data)
            hashes, missing = walk(tree, store)
            if missing:
                raise MissingChunks(missing)
            length = tree.length
        elif code == CHUNKED_EXT:
            hashes, length = _hashes(data), int.from_bytes(data[:8], "big")
        else:
            return msgpack.ExtType(code, data)
        pieces = [store.get(blob) for blob in hashes]
        if any(piece is None for piece in pieces):
            raise MissingChunks([blob for blob, piece in zip(hashes, pieces, strict=True) if piece is None])
        joined = b"".join(pieces)  # type: ignore[arg-type]
        if len(joined) != length:
            raise ValueError("a chunked value's length does not match its chunks")
        return joined

    return hook


def _extensions(value: bytes | None) -> list[tuple[int, bytes]]:
    """The chunk extensions of a value, in order (cheap: a chunked value is small)."""
    if not value or len(value) < _TREE_HEAD + HASH_BYTES or not holds_chunks(value):  # it holds none
        return []  # (every value a join receives is looked at twice: a search, not a decoding, for most)
    found: list[tuple[int, bytes]] = []

    def hook(code: int, data: bytes) -> Any:
        if code in (CHUNKED_EXT, CHUNK_TREE_EXT):
            found.append((code, data))
        return None

    msgpack.unpackb(value, raw=False, strict_map_key=True, ext_hook=hook)
    return found


def refs_of(value: bytes | None) -> list[bytes]:
    """The distinct blobs a value names, in first-seen order: its trees' roots (and every chunk of a flat
    value of the first format). These are a set's ``refs``."""
    found: dict[bytes, None] = {}
    for code, data in _extensions(value):
        found.update(dict.fromkeys([Tree(data).root] if code == CHUNK_TREE_EXT else _hashes(data)))
    return list(found)


def trees_of(value: bytes | None) -> list[Tree]:
    return [Tree(data) for code, data in _extensions(value) if code == CHUNK_TREE_EXT]


def wanted(value: bytes | None, store: ChunkCache = cache) -> list[bytes]:
    """What to fetch next for a value: the missing blobs whose parents are here (each once)."""
    found: dict[bytes, None] = {}
    for code, data in _extensions(value):
        if code == CHUNK_TREE_EXT:
            found.update(dict.fromkeys(walk(Tree(data), store)[1]))
        else:
            found.update(dict.fromkeys(blob for blob in _hashes(data) if blob not in store))
    return list(found)


def uploads(value: bytes | None, known: Callable[[bytes], bool], store: ChunkCache = cache) -> list[Upload]:
    """The blobs of a value the server may lack, children before their nodes (the order it needs): each
    as (hash, children or None for a chunk). A blob ``known`` to be there is skipped with its subtree."""
    out: list[Upload] = []
    seen: set[bytes] = set()

    def visit(blob: bytes, depth: int) -> None:
        if blob in seen or known(blob):
            return
        seen.add(blob)
        if depth == 0:
            out.append((blob, None))
            return
        data = store.get(blob)
        if data is None:
            return  # evicted: the server refuses what names it, and the next scan sends it anew
        children = list(dict.fromkeys(node_hashes(data)))
        for child in children:
            visit(child, depth - 1)
        out.append((blob, children))

    for code, data in _extensions(value):
        if code == CHUNK_TREE_EXT:
            tree = Tree(data)
            visit(tree.root, tree.depth)
        else:
            for blob in _hashes(data):
                visit(blob, 0)
    return out


def tree_blobs(value: bytes | None, store: ChunkCache = cache) -> list[bytes]:
    """Every blob of a value that the cache can name (its roots, the nodes here and their children)."""
    return [blob for blob, _ in uploads(value, lambda _: False, store)] + refs_of(value)


# ext 8/16/32 headers of CHUNKED_EXT or CHUNK_TREE_EXT
_EXT_HEADER = re.compile(rb"\xc7.[\x07\x08]|\xc8..[\x07\x08]|\xc9....[\x07\x08]", re.DOTALL)


def holds_chunks(value: bytes) -> bool:
    """Whether a value may name chunks (no decoding; a false yes is possible, a false no is not)."""
    return _EXT_HEADER.search(value) is not None
