"""The room export file: one msgpack map, versioned (docs/operations.md, "Export and import").

Version 4 (written):
{"format": "blendsync-room", "version": 4, "room": str, "exported_at": str (ISO 8601, UTC),
 "meta": {"keep_open": bool, "password": map | nil, "created_by": str}, "seq": int,
 "items": [[key: str, value: bin], ...],
 "refs": [[key: str, [hash: bin, ...]], ...],   the blobs each referencing key's value names (tree roots)
 "blobs": [[hash: bin, data: bin], ...            every blob the refs name or hold through tree nodes, once;
           | [hash: bin, data: bin, [child: bin, ...]]],   a tree node with the blobs it holds (after them)
 "authors": [[key: str, seq: int, client_id: str, name: str, time: int], ...]}   who last changed each key
                                                 of items, as blame names it (at most "seq"; keys it does
                                                 not know are absent)

Version 3 (read): the same without "authors". Version 2 (read): that with [hash, data] blobs only.
Version 1 (read): without "refs" and "blobs".

Written and read a field at a time (``Packer``/``Unpacker``), so neither holds a second copy of the file.
"""

from __future__ import annotations

import datetime
import hashlib
import os
from pathlib import Path
from typing import Any, BinaryIO

import msgpack

from protocol.limits import BLOB_CHILDREN, BLOB_HASH_BYTES, KEY_AUTHORS, MAX_BLOB_BYTES, join_reason

FORMAT = "blendsync-room"
VERSION = 4
READS = (1, 2, 3, 4)
LISTS = ("items", "refs", "blobs", "authors")  # the long fields, read an element at a time
MAX_FIELD_BYTES = 256 * 1024 * 1024  # a value is at most one frame (128 MiB at most): any field fits


class RoomFileError(ValueError):
    pass


def make_document(
    room: str,
    meta: dict[str, Any],
    seq: int,
    items: list[list[Any]],
    refs: list[list[Any]] | None = None,
    blobs: list[list[Any]] | None = None,
    authors: list[list[Any]] | None = None,
) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "version": VERSION,
        "room": room,
        "exported_at": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "meta": meta,
        "seq": seq,
        "items": items,
        "refs": refs or [],
        "blobs": blobs or [],
        "authors": authors or [],
    }


def write_room_file(path: str | Path, document: dict[str, Any]) -> None:
    """Write atomically: a crash leaves the old file or the new one, never half of it."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    packer = msgpack.Packer(use_bin_type=True)
    with open(tmp, "wb") as f:
        f.write(packer.pack_map_header(len(document)))
        for name, value in document.items():
            f.write(packer.pack(name))
            if isinstance(value, list):  # the long ones: an element at a time
                f.write(packer.pack_array_header(len(value)))
                for element in value:
                    f.write(packer.pack(element))
            else:
                f.write(packer.pack(value))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_room_file(path: str | Path) -> dict[str, Any]:
    """The checked document of a room file (any version in ``READS``); RoomFileError says what is wrong."""
    with open(path, "rb") as f:
        try:
            document = _read(f)
        except (ValueError, msgpack.OutOfData, msgpack.FormatError, msgpack.StackError) as exc:
            reason = "it ends early (truncated)" if isinstance(exc, msgpack.OutOfData) else str(exc)
            raise RoomFileError(f"{path} is not a whole room export: {reason}") from None
    check_document(document, str(path))
    return document


def _read(f: BinaryIO) -> Any:
    unpacker = msgpack.Unpacker(
        f, raw=False, strict_map_key=True, max_buffer_size=MAX_FIELD_BYTES, read_size=1024 * 1024
    )
    document: dict[str, Any] = {}
    for _ in range(unpacker.read_map_header()):
        name = unpacker.unpack()
        if name in LISTS:
            document[name] = [unpacker.unpack() for _ in range(unpacker.read_array_header())]
        else:
            document[name] = unpacker.unpack()
    try:
        unpacker.unpack()
    except msgpack.OutOfData:
        return document
    raise ValueError("it has bytes after the room")


def check_document(document: Any, where: str = "document") -> None:
    """Refuse a document that is not a whole room: its shape, and (version 2 on) every blob a key references
    present once, with bytes whose SHA-256 is its name; (version 3) every tree node's children present,
    distinct, 1 to MAX_BLOB_CHILDREN, never itself, and no node below itself; (version 4) each author row
    for a key of items, once, changed at most at the file's seq."""
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise RoomFileError(f"{where} is not a {FORMAT} file")
    version = document.get("version")
    if version not in READS:
        raise RoomFileError(
            f"{where} has version {version!r}; this blendsync reads {', '.join(map(str, READS))}"
        )
    if not isinstance(document.get("room"), str) or not isinstance(document.get("meta"), dict):
        raise RoomFileError(f"{where}: 'room' must be a string and 'meta' a map")
    if type(document.get("seq")) is not int or document["seq"] < 0:
        raise RoomFileError(f"{where}: 'seq' must be a non-negative integer")
    items = document.get("items")
    if not isinstance(items, list) or not all(
        isinstance(i, list) and len(i) == 2 and isinstance(i[0], str) and isinstance(i[1], bytes)
        for i in items
    ):
        raise RoomFileError(f"{where}: 'items' must be a list of [key: str, value: bin]")
    keys = {key for key, _ in items}
    if len(keys) != len(items):
        raise RoomFileError(f"{where}: 'items' names a key twice")
    if version == 1:
        return
    refs, blobs = document.get("refs"), document.get("blobs")
    if not isinstance(refs, list) or not isinstance(blobs, list):
        raise RoomFileError(f"{where}: 'refs' and 'blobs' must be lists")
    stored: set[bytes] = set()
    nodes: dict[bytes, list[bytes]] = {}
    for i, blob in enumerate(blobs):
        if not (
            isinstance(blob, list)
            and len(blob) in ((2, 3) if version >= 3 else (2,))
            and _is_hash(blob[0])
            and isinstance(blob[1], bytes)
        ):
            shape = ", data: bin" + (", [child: bin, ...]?" if version >= 3 else "")
            raise RoomFileError(f"{where}: blobs[{i}] must be [hash: {BLOB_HASH_BYTES} bytes{shape}]")
        if len(blob) == 3:
            reason = BLOB_CHILDREN.reason(blob[2])
            if reason is None and blob[0] in blob[2]:
                reason = "must not name the blob itself"
            if reason is not None:
                raise RoomFileError(f"{where}: the children of blob {blob[0].hex()} {reason}")
            nodes[blob[0]] = blob[2]
        if not 1 <= len(blob[1]) <= MAX_BLOB_BYTES:
            raise RoomFileError(
                f"{where}: blob {blob[0].hex()} has {len(blob[1])} bytes, not 1 to {MAX_BLOB_BYTES}"
            )
        if hashlib.sha256(blob[1]).digest() != blob[0]:
            raise RoomFileError(
                f"{where}: blob {blob[0].hex()} is damaged: its bytes do not have that SHA-256"
            )
        if blob[0] in stored:
            raise RoomFileError(f"{where}: blob {blob[0].hex()} is in the file twice")
        stored.add(blob[0])
    referencing: set[str] = set()
    for i, pair in enumerate(refs):
        if not (
            isinstance(pair, list)
            and len(pair) == 2
            and isinstance(pair[0], str)
            and isinstance(pair[1], list)
            and all(_is_hash(h) for h in pair[1])
        ):
            raise RoomFileError(f"{where}: refs[{i}] must be [key: str, [hash: bin, ...]]")
        key = pair[0]
        if key not in keys or key in referencing:
            raise RoomFileError(f"{where}: refs[{i}] names key {key!r} twice or not in 'items'")
        referencing.add(key)
        for blob in pair[1]:
            if blob not in stored:
                raise RoomFileError(
                    f"{where}: key {key!r} references blob {blob.hex()}, which the file lacks"
                )
    _check_trees(nodes, stored, where)
    if version >= 4:
        _check_authors(document.get("authors"), keys, document["seq"], where)


def _check_authors(rows: Any, keys: set[str], seq: int, where: str) -> None:
    if not isinstance(rows, list):
        raise RoomFileError(f"{where}: 'authors' must be a list")
    reason = KEY_AUTHORS.reason(rows)
    if reason is not None:
        raise RoomFileError(f"{where}: 'authors'{join_reason(reason)}")
    named: set[str] = set()
    for i, row in enumerate(rows):
        if row[0] not in keys or row[0] in named:
            raise RoomFileError(f"{where}: authors[{i}] names key {row[0]!r} twice or not in 'items'")
        if row[1] > seq:
            raise RoomFileError(f"{where}: authors[{i}] has seq {row[1]}, after the file's {seq}")
        named.add(row[0])


def _check_trees(nodes: dict[bytes, list[bytes]], stored: set[bytes], where: str) -> None:
    """Each node's children in the file, and no node below itself: hashes cannot form a cycle, but a
    file can claim one (an import would wait forever for a child stored after its parent)."""
    for node, children in nodes.items():
        for child in children:
            if child not in stored:
                raise RoomFileError(
                    f"{where}: blob {node.hex()} holds blob {child.hex()}, which the file lacks"
                )
    done: set[bytes] = set()  # nodes whose subtrees are checked
    for top in nodes:
        if top in done:
            continue
        path = {top}  # the nodes on the way down to the current one
        stack = [(top, 0)]
        while stack:
            node, next_child = stack.pop()
            children = nodes.get(node, [])
            if next_child == len(children):
                path.discard(node)
                done.add(node)
                continue
            stack.append((node, next_child + 1))
            child = children[next_child]
            if child in path:
                raise RoomFileError(
                    f"{where}: blob {child.hex()} holds itself through its children (a cycle)"
                )
            if child in nodes and child not in done:
                path.add(child)
                stack.append((child, 0))


def _is_hash(value: Any) -> bool:
    return isinstance(value, bytes) and len(value) == BLOB_HASH_BYTES
