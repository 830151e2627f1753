"""Log entries and snapshots that carry a blob's bytes beside the command (docs/decisions/0008).

A blob (immutable bytes named by their SHA-256) rides in the log entry that stores it, so a follower gets
it with the entry, in order, and it is durable on a majority when that entry commits. On disk each node
keeps the bytes once, in its blob table (``replication.lmdb_store``), and the log entry without them: the
stored form is a prefix of the full one, which the store rebuilds when it reads the entry back (to send it
to a follower that lags). The tree names a stored blob by the node ``/blobs/<sha256 hex>`` (``BLOB_ROOT``),
whose payload is small (the broadcaster puts the size there): the state machine never sees the bytes.

Full form (in memory, on the wire):  MARK | sha256 (32) | u32 command size | command | blob bytes
Stored form (the lmdb log):          the same without the blob bytes

``MARK`` is 0xc1, which msgpack never uses, so no plain command (a msgpack map) starts with it. Entry data
that starts with it but is too short for its header carries no blob: it is stored whole and fails to apply
like any other bytes that are no command, alike on every node. The hash is checked where the entry is made
(``pack_blob_entry``, from ``Node.submit``), as commands are validated before they are proposed.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Final

import msgpack

BLOB_ROOT: Final = "blobs"  # the tree node BLOB_ROOT/<hex> names a blob the table keeps
MARK: Final = 0xC1
_HEAD: Final = struct.Struct(">B32sI")
HASH_SIZE: Final = 32


class BlobEntryError(ValueError):
    """Entry data that claims to carry a blob but is not well formed, or bytes that are not their hash."""


def blob_tree_path(blob: bytes) -> tuple[str, str]:
    return (BLOB_ROOT, blob.hex())


def carries_blob(data: bytes | memoryview) -> bool:
    return len(data) > 0 and data[0] == MARK


def pack_blob_entry(blob: bytes, content: bytes, command: bytes) -> bytes:
    """The full entry data of ``command`` carrying ``content`` (whose SHA-256 must be ``blob``)."""
    if len(blob) != HASH_SIZE or hashlib.sha256(content).digest() != blob:
        raise BlobEntryError("the blob's bytes do not match its hash")
    return rejoin_blob_entry(blob, command, content)


def rejoin_blob_entry(blob: bytes, command: bytes, content: bytes) -> bytes:
    """The full entry data of a stored command and the blob bytes kept for it (checked when stored)."""
    return b"".join((_HEAD.pack(MARK, blob, len(command)), command, content))


def _head(data: bytes | memoryview) -> tuple[bytes, int] | None:
    """(blob hash, end of the command) of a blob entry; None if the data carries no blob."""
    if not carries_blob(data) or len(data) < _HEAD.size:
        return None
    _, blob, size = _HEAD.unpack_from(data)
    end = _HEAD.size + size
    return None if end > len(data) else (blob, end)


def entry_command(data: bytes | memoryview) -> bytes | memoryview:
    """The command of entry data (all of it unless the entry carries a blob)."""
    head = _head(data)
    return data if head is None else bytes(data[_HEAD.size : head[1]])


def split_for_storage(data: bytes) -> tuple[bytes, bytes | None, bytes | memoryview]:
    """(stored form, blob hash or None, blob bytes) of full entry data."""
    head = _head(data)
    if head is None:
        return data, None, b""
    blob, end = head
    view = memoryview(data)
    return bytes(view[:end]), blob, view[end:]


def stored_blob(stored: bytes | memoryview) -> bytes | None:
    """The hash a stored entry's bytes are kept under, or None."""
    head = _head(stored)
    return None if head is None else head[0]


def named_blobs(
    children: Iterable[tuple[str, Any, Any]], read: Callable[[bytes], bytes | None]
) -> Iterator[tuple[bytes, bytes | None]]:
    """(sha256, bytes or None if the table lacks them) of each blob kept in a table that the children
    of /blobs (``Tree.children_items``) name; a payload of bytes is a blob kept in the tree (layout 2)."""
    for name, _, payload in children:
        if isinstance(payload, bytes):
            continue
        try:
            blob = bytes.fromhex(name)
        except ValueError:
            continue
        yield blob, read(blob)


# ---- snapshots: the tree's dump and the bytes of the blobs it names -----------------------------------


def pack_snapshot(tree_dump: bytes, blobs: Iterable[tuple[bytes, bytes]]) -> bytes:
    return msgpack.packb([tree_dump, [[blob, content] for blob, content in blobs]], use_bin_type=True)


def unpack_snapshot(data: bytes) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    try:
        tree_dump, raw_blobs = msgpack.unpackb(data, raw=False, use_list=True)
        blobs = [(bytes(blob), bytes(content)) for blob, content in raw_blobs]
    except Exception as exc:  # msgpack raises many types for garbage; all mean the same here
        raise BlobEntryError(f"malformed snapshot: {exc}") from None
    for blob, content in blobs:
        if hashlib.sha256(content).digest() != blob:
            raise BlobEntryError("a snapshot's blob does not match its hash")
    return tree_dump, blobs
