"""A room's export and import through a client (docs/operations.md, "Export and import").

Export receives the room's keys, the blobs they reference (and every blob their tree nodes hold, each node
with its children) and its meta as one consistent state. Import uploads the blobs the server lacks
(``blob_query`` first, a tree level at a time: a node the server holds already holds its subtree; a rerun
after an interruption sends only the rest while the server still holds the earlier uploads,
``pin_grace``), children before the nodes that name them, then creates the room in parts; each part holds
the blobs its keys reference and records their author (the file's, else the importing admin) in the
transaction that writes them, so the room appears, when its last part commits, with every blob it needs
and every key's author, or not at all.
"""

from __future__ import annotations

from typing import Any

import trio

from protocol import Admin, AdminResult, Event, ExportBlob, ExportItems
from protocol.limits import MAX_BLOB_QUERY

from .client import Client
from .roomfile import check_document, make_document

IMPORT_CHUNK_BYTES = 8 * 1024 * 1024  # keys and values per import transaction (and half a frame at most)
REF_COST = 480  # bytes a reference adds to an import transaction: its condition, hold and pin release
AUTHOR_COST = 120  # bytes a key's author record adds to it besides the key: its path, seq, author, time
UPLOADS_IN_FLIGHT = 8  # blob_puts sent before the first is answered


async def export_room(client: Client, room: str) -> dict[str, Any]:
    """A room's state as an export document (broadcaster/roomfile.py): keys, refs, blobs, who last changed
    each key, meta, seq."""
    items: list[list[Any]] = []
    refs: list[list[Any]] = []
    blobs: list[list[Any]] = []
    authors: list[list[Any]] = []

    def take(event: Event) -> None:
        if isinstance(event, ExportItems):
            items.extend(event.items)
            refs.extend(event.refs)
            authors.extend(event.authors or ())
        elif isinstance(event, ExportBlob):  # checked against its hash when decoded
            blobs.append(
                [event.hash, event.data, event.children] if event.children else [event.hash, event.data]
            )

    args = {"room": room, "authors": True}  # a server that does not know the field sends none
    ref, request = client.session.request(lambda ref: Admin(action="export", args=args, ref=ref))
    client.exports[ref] = take
    try:
        reply: AdminResult = await client._request(ref, request)
    finally:
        client.exports.pop(ref, None)
    result = reply.result
    return make_document(result["room"], result["meta"], result["seq"], items, refs, blobs, authors)


async def import_room(
    client: Client,
    document: dict[str, Any],
    *,
    name: str | None = None,
    chunk_bytes: int = IMPORT_CHUNK_BYTES,
) -> dict[str, Any]:
    """Create a room from an export document: the blobs the server lacks first, then its keys in parts of
    about ``chunk_bytes`` (one transaction each; the room appears, whole, when the last commits)."""
    check_document(document)  # a damaged document is refused before anything reaches the server
    room = name or document["room"]
    refs = {key: blobs for key, blobs in document.get("refs", []) if blobs}
    authors = {row[0]: row for row in document.get("authors", [])}
    uploaded = await upload_blobs(
        client, document.get("blobs", []), {b for found in refs.values() for b in found}
    )
    if client.welcome is not None and client.welcome.max_frame_size:
        chunk_bytes = min(chunk_bytes, client.welcome.max_frame_size // 2)
    parts: list[tuple[list[list[Any]], list[list[Any]], list[list[Any]]]] = [([], [], [])]
    size = 0
    for key, value in document["items"]:
        item_size = 2 * len(key) + len(value) + 16 + AUTHOR_COST + REF_COST * len(refs.get(key, ()))
        row = authors.get(key)
        if row is not None:  # sent in the part and stored as its record
            item_size += 2 * (len(key) + len(row[2]) + len(row[3]))
        if parts[-1][0] and size + item_size > chunk_bytes:
            parts.append(([], [], []))
            size = 0
        parts[-1][0].append([key, value])
        if key in refs:
            parts[-1][1].append([key, refs[key]])
        if row is not None:
            parts[-1][2].append(row)
        size += item_size
    result: dict[str, Any] = {}
    for i, (items, part_refs, part_authors) in enumerate(parts):
        args: dict[str, Any] = {"room": room, "items": items, "more": i < len(parts) - 1}
        if part_refs:
            args["refs"] = part_refs
        if part_authors:
            args["authors"] = part_authors
        if i == 0:
            args["meta"] = document["meta"]
            args["seq"] = document["seq"]
        result = await client.admin("import", **args)
    return {**result, "blobs_uploaded": uploaded}


async def upload_blobs(client: Client, blobs: list[list[Any]], wanted: set[bytes]) -> int:
    """Store the ``wanted`` blobs of ``blobs`` ([hash, data] or [hash, data, children]) and every blob their
    tree nodes hold, where the server lacks them; returns how many were uploaded."""
    data = {blob[0]: blob[1] for blob in blobs}
    children = {blob[0]: blob[2] for blob in blobs if len(blob) == 3}
    missing: list[bytes] = []
    level = sorted(wanted & data.keys())
    seen = set(level)
    while level:  # a level's nodes the server lacks name the next level; a held node holds its subtree
        found: list[bytes] = []
        for start in range(0, len(level), MAX_BLOB_QUERY):
            found += await client.missing_blobs(level[start : start + MAX_BLOB_QUERY])
        missing += found
        level = sorted({c for blob in found for c in children.get(blob, ()) if c not in seen})
        seen.update(level)
    in_flight = trio.Semaphore(UPLOADS_IN_FLIGHT)

    async def put(blob: bytes) -> None:
        try:
            await client.put_blob(data[blob], children.get(blob))
        finally:
            in_flight.release()

    for wave in _children_first(missing, children):
        async with trio.open_nursery() as nursery:  # a wave is stored before the next names its blobs
            for blob in wave:
                await in_flight.acquire()
                nursery.start_soon(put, blob)
    return len(missing)


def _children_first(blobs: list[bytes], children: dict[bytes, list[bytes]]) -> list[list[bytes]]:
    """``blobs`` in waves by height among themselves: a blob comes a wave after the last of its children
    in ``blobs`` (the others are stored already). The document is checked: its trees have no cycle."""
    todo = set(blobs)
    height: dict[bytes, int] = {}
    for top in blobs:
        stack = [top]
        while stack:
            blob = stack[-1]
            if blob in height:
                stack.pop()
                continue
            below = [c for c in children.get(blob, ()) if c in todo and c not in height]
            if below:
                stack.extend(below)
                continue
            stack.pop()
            height[blob] = 1 + max((height[c] for c in children.get(blob, ()) if c in todo), default=-1)
    waves: list[list[bytes]] = [[] for _ in range(1 + max(height.values(), default=-1))]
    for blob in blobs:
        waves[height[blob]].append(blob)
    return waves
