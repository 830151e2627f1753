"""Which datablocks are synchronised, of which kind, and the uuid -> datablock index."""

from __future__ import annotations

import array
from collections.abc import Iterable, Iterator

import bpy

from . import ids
from .kinds import BY_NAME, BY_RNA_TYPE, REGISTRY, Kind


def kind_of(id_data: bpy.types.ID) -> str | None:
    """The kind of a datablock's RNA type (or of the type it directly derives from), if synchronised."""
    rna = id_data.bl_rna
    kind = BY_RNA_TYPE.get(rna.identifier)
    if kind is None and rna.base is not None:
        kind = BY_RNA_TYPE.get(rna.base.identifier)
    return kind.name if kind is not None else None


def is_synced(id_data: bpy.types.ID) -> bool:
    """Whether a datablock belongs to the synchronised set."""
    if id_data is None or getattr(id_data, "library", None) is not None:
        return False
    if getattr(id_data, "is_embedded_data", False):
        return False
    kind = kind_of(id_data)
    return kind is not None and BY_NAME[kind].accepts(id_data)


def find(kind: str, uuid: str) -> bpy.types.ID | None:
    """The datablock of ``kind`` holding ``uuid`` here; None when none does or the kind is not one."""
    record = BY_NAME.get(kind)
    collection = getattr(bpy.data, record.collection) if record is not None else ()
    return next((id_data for id_data in collection if ids.peek_uuid(id_data) == uuid), None)


def iter_synced(kinds: Iterable[Kind] = REGISTRY) -> Iterator[tuple[str, bpy.types.ID]]:
    """Every synchronised datablock of ``kinds`` (default: all) with its kind, in registry order."""
    for kind in kinds:
        for id_data in getattr(bpy.data, kind.collection):
            if is_synced(id_data):
                yield kind.name, id_data


def index_all(assign: bool = True, kinds: Iterable[Kind] = REGISTRY) -> dict[str, tuple[str, bpy.types.ID]]:
    """Map uuid -> (kind, datablock) for every synchronised datablock (of ``kinds``, default all).

    With ``assign`` (the default) datablocks without a uuid get one, and a
    datablock whose uuid is already held by another one (a duplicate made by
    copying) gets a fresh uuid.  The datablock that owned the uuid before
    keeps it.
    """
    found: dict[str, list[tuple[str, bpy.types.ID]]] = {}
    fresh: list[tuple[str, bpy.types.ID]] = []
    for kind, id_data in iter_synced(kinds):
        value = ids.peek_uuid(id_data)
        if value is None:
            fresh.append((kind, id_data))
        else:
            found.setdefault(value, []).append((kind, id_data))
    index: dict[str, tuple[str, bpy.types.ID]] = {}
    for value, holders in found.items():
        if len(holders) == 1:
            index[value] = holders[0]
            continue
        owner_uid = ids.owner_of(value)
        keeper = next((h for h in holders if h[1].session_uid == owner_uid), holders[0])
        index[value] = keeper
        fresh.extend(h for h in holders if h is not keeper)
    for kind, id_data in fresh:
        if not assign:
            continue
        value = ids.new_uuid()
        ids.set_uuid(id_data, value)
        index[value] = (kind, id_data)
    return index


def census(kinds: Iterable[Kind] = REGISTRY) -> list[bytes]:
    """The ``session_uid`` of every datablock of ``kinds``' collections, in order: equal to a later census
    only if no datablock was added or removed in between (a session_uid is never given twice). Undo may
    re-read a datablock at another address under the same session_uid: that is told apart by the caller
    (the undo handlers). Read in C (``foreach_get``), without a Python object per datablock."""
    out = []
    for kind in kinds:
        coll = getattr(bpy.data, kind.collection)
        uids = array.array("q", bytes(8 * len(coll)))
        coll.foreach_get("session_uid", uids)
        out.append(uids.tobytes())
    return out


def key_subject(key: str) -> str:
    """Which datablock a key is about, for people: ``Object 'Pillar'`` (or the key, if that is gone)."""
    bits = key.split("/", 2)
    kind = BY_NAME.get(bits[0]) if len(bits) == 3 else None
    if kind is None:
        return key
    for id_data in getattr(bpy.data, kind.collection):
        if ids.peek_uuid(id_data) == bits[1]:
            return f"{id_data.bl_rna.name} {id_data.name!r}"
    return key
