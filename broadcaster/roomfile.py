"""The room export file: one msgpack map, versioned (docs/operations.md, "Export and import").

{"format": "blendsync-room", "version": 1, "room": str, "exported_at": str (ISO 8601, UTC),
 "meta": {"keep_open": bool, "password": map | nil, "created_by": str}, "seq": int,
 "items": [[key: str, value: bin], ...]}
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path
from typing import Any

import msgpack

FORMAT = "blendsync-room"
VERSION = 1


class RoomFileError(ValueError):
    pass


def make_document(room: str, meta: dict[str, Any], seq: int, items: list[list[Any]]) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "version": VERSION,
        "room": room,
        "exported_at": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "meta": meta,
        "seq": seq,
        "items": items,
    }


def write_room_file(path: str | Path, document: dict[str, Any]) -> None:
    """Write atomically: a crash leaves the old file or the new one, never half of it."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        msgpack.pack(document, f, use_bin_type=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_room_file(path: str | Path) -> dict[str, Any]:
    with open(path, "rb") as f:
        data = f.read()
    try:
        document = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise RoomFileError(f"{path} is not a room export: {exc}") from None
    check_document(document, str(path))
    return document


def check_document(document: Any, where: str = "document") -> None:
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise RoomFileError(f"{where} is not a {FORMAT} file")
    if document.get("version") != VERSION:
        raise RoomFileError(
            f"{where} has version {document.get('version')!r}; this blendsync reads {VERSION}"
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
