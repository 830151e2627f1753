"""A room's export and import through a client (docs/operations.md, "Export and import").

Export receives the room's keys, the blobs they reference and its meta as one consistent state. Import
uploads the blobs the server lacks (``blob_query`` first: a rerun after an interruption sends only the rest
while the server still holds the earlier uploads, ``pin_grace``), then creates the room in parts; each part
holds the blobs its keys reference in the transaction that writes them, so the room appears, when its last
part commits, with every blob it needs, or not at all.
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
UPLOADS_IN_FLIGHT = 8  # blob_puts sent before the first is answered


async def export_room(client: Client, room: str) -> dict[str, Any]:
    """A room's state as an export document (broadcaster/roomfile.py): keys, refs, blobs, meta, seq."""
    items: list[list[Any]] = []
    refs: list[list[Any]] = []
    blobs: list[list[Any]] = []

    def take(event: Event) -> None:
        if isinstance(event, ExportItems):
            items.extend(event.items)
            refs.extend(event.refs)
        elif isinstance(event, ExportBlob):  # checked against its hash when decoded
            blobs.append([event.hash, event.data])

    ref, request = client.session.request(lambda ref: Admin(action="export", args={"room": room}, ref=ref))
    client.exports[ref] = take
    try:
        reply: AdminResult = await client._request(ref, request)
    finally:
        client.exports.pop(ref, None)
    result = reply.result
    return make_document(result["room"], result["meta"], result["seq"], items, refs, blobs)


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
    uploaded = await upload_blobs(
        client, document.get("blobs", []), {b for found in refs.values() for b in found}
    )
    if client.welcome is not None and client.welcome.max_frame_size:
        chunk_bytes = min(chunk_bytes, client.welcome.max_frame_size // 2)
    parts: list[tuple[list[list[Any]], list[list[Any]]]] = [([], [])]
    size = 0
    for key, value in document["items"]:
        item_size = len(key) + len(value) + 16 + REF_COST * len(refs.get(key, ()))
        if parts[-1][0] and size + item_size > chunk_bytes:
            parts.append(([], []))
            size = 0
        parts[-1][0].append([key, value])
        if key in refs:
            parts[-1][1].append([key, refs[key]])
        size += item_size
    result: dict[str, Any] = {}
    for i, (items, part_refs) in enumerate(parts):
        args: dict[str, Any] = {"room": room, "items": items, "more": i < len(parts) - 1}
        if part_refs:
            args["refs"] = part_refs
        if i == 0:
            args["meta"] = document["meta"]
            args["seq"] = document["seq"]
        result = await client.admin("import", **args)
    return {**result, "blobs_uploaded": uploaded}


async def upload_blobs(client: Client, blobs: list[list[Any]], wanted: set[bytes]) -> int:
    """Store the ``wanted`` blobs of ``blobs`` ([hash, data]) that the server lacks; returns how many."""
    data = {blob: content for blob, content in blobs if blob in wanted}
    hashes = sorted(data)
    missing: list[bytes] = []
    for start in range(0, len(hashes), MAX_BLOB_QUERY):
        missing += await client.missing_blobs(hashes[start : start + MAX_BLOB_QUERY])
    in_flight = trio.Semaphore(UPLOADS_IN_FLIGHT)

    async def put(blob: bytes) -> None:
        try:
            await client.put_blob(data[blob])
        finally:
            in_flight.release()

    async with trio.open_nursery() as nursery:
        for blob in missing:
            await in_flight.acquire()
            nursery.start_soon(put, blob)
    return len(missing)
