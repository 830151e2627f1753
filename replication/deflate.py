"""Deflate for what the store writes: a log entry's command and a tree record (storage layout 6,
docs/decisions/0012).

What a command spells is mostly the tree's few words and the hashes of blobs. A new tree node's command
names each of its children by hash, and those hashes are the node's own bytes, which the store keeps in its
blob table anyway. So a command is deflated with a preset dictionary made of the first ``CONTEXT_BYTES`` of
the bytes of the blob its entry carries (all of a node of up to 128 children) and the tree's vocabulary;
when the store reads the entry back it has both. A tree record of a blob's node (``/blobs/<hex>``) is
deflated the same way against that blob's bytes: the record of a tree node lists its children too (its
holds). Only the stored form changes: the wire, the state machine and the entry a follower receives are
the same bytes as before.

zlib's format (in the standard library): its header names the dictionary by checksum and its trailer
checks the data, so bytes inflated against another dictionary, or damaged, are an error rather than other
bytes (10 bytes an entry). ``VOCABULARY`` is frozen: stores hold commands deflated against it (a test pins
its hash).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Final

import msgpack

CONTEXT_BYTES: Final = 4096
# A larger command or record is stored as it is: its bulk is values (deflating 1 MB of vertex floats took
# 32 ms for a tenth less), and deflating sits on the path of every commit, so of every acknowledgement.
MAX_DEFLATED: Final = 64 * 1024
# So does a shorter one: deflating a 91-byte put took ~4 us to save ~10 bytes, and tripled what a commit
# costs a small entry (2 to 6-9 us; the Raft benchmark lost a fifth of its commits/s).
MIN_DEFLATED: Final = 128
LEVEL: Final = 6
_WBITS: Final = 15  # zlib's format, 32 KiB window

# Map keys and words of the tree's commands and their envelope (replication.tree.commands), least used
# first: the distances back to the end of the dictionary are the shortest.
_WORDS: Final = (
    "else", "holds", "cap", "seq_of", "created_index", "payload_equals", "exists", "append", "delete",
    "compare", "client", "seq", "cmd", "add_holds", "child_count", ">", "keep_while", "payload", "path",
    "put", "op", "then", "blobs",
)  # fmt: skip
VOCABULARY: Final = b"".join(msgpack.packb(word) for word in _WORDS)


# A stored tree record that starts with RECORD_MARK (which msgpack never uses, so no plain record does) is
# deflated; the next byte says against what.
RECORD_MARK: Final = 0xC1
_AGAINST_VOCABULARY: Final = 0
_AGAINST_BLOB: Final = 1


class DeflateError(ValueError):
    """Stored bytes that do not inflate against their dictionary (a damaged store)."""


def _dictionary(context: bytes | memoryview) -> bytes:
    return bytes(context[:CONTEXT_BYTES]) + VOCABULARY


def deflate(data: bytes | memoryview, context: bytes | memoryview = b"") -> bytes:
    packer = zlib.compressobj(LEVEL, zlib.DEFLATED, _WBITS, 9, zlib.Z_DEFAULT_STRATEGY, _dictionary(context))
    return packer.compress(data) + packer.flush()


def inflate(packed: bytes | memoryview, context: bytes | memoryview = b"") -> bytes:
    """The bytes ``deflate(data, context)`` made, given the same ``context``."""
    unpacker = zlib.decompressobj(_WBITS, _dictionary(context))
    try:
        data = unpacker.decompress(packed) + unpacker.flush()
    except zlib.error as exc:
        raise DeflateError(f"stored bytes do not inflate: {exc}") from None
    if not unpacker.eof or unpacker.unused_data:
        raise DeflateError("stored deflated bytes are cut short or run on")
    return data


def deflate_record(record: bytes, blob: bytes | memoryview | None) -> bytes:
    """A tree record's stored form: deflated against ``blob`` (the bytes of the blob its node names, if the
    store holds them) when that is smaller, else the record itself."""
    if not MIN_DEFLATED <= len(record) <= MAX_DEFLATED:
        return record
    deflated = deflate(record, blob or b"")
    if len(deflated) + 2 >= len(record):
        return record
    return bytes((RECORD_MARK, _AGAINST_BLOB if blob else _AGAINST_VOCABULARY)) + deflated


def inflate_record(stored: bytes, blob: Callable[[], bytes | memoryview | None]) -> bytes:
    """The record ``deflate_record`` stored; ``blob()`` gives the bytes of the blob the node names."""
    if not stored or stored[0] != RECORD_MARK:
        return stored
    context: bytes | memoryview | None = b""
    if stored[1:2] == bytes((_AGAINST_BLOB,)):
        context = blob()
        if not context:
            raise DeflateError("the record was deflated against a blob the store does not hold")
    elif stored[1:2] != bytes((_AGAINST_VOCABULARY,)):
        raise DeflateError("a deflated record of an unknown kind")
    return inflate(memoryview(stored)[2:], context)
