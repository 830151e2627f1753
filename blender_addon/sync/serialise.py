"""Datablock -> key/value serialisation (each kind's ``serialise``, encoded under its keys).

Documents are plain Python data with a fixed key order, so that serialising
an unchanged datablock always gives the same bytes.
"""

from __future__ import annotations

import bpy

from . import ids, overrides
from .codec import MAX_KEY_BYTES, encode_value
from .context import ReadContext
from .index import index_all, is_synced, kind_of
from .items import Items
from .keys import make_key, split_key
from .kinds import BY_NAME, LINK_TYPES


def read_context(masked: bool = True) -> ReadContext:
    """Lookups for one pass of reading datablocks: serialising (``masked``: what animation writes is
    read as None, derived.py) or describing (the values as they are)."""
    return ReadContext(is_synced, LINK_TYPES, masked)


def serialise_parts(kind: str, id_data: bpy.types.ID, ctx: ReadContext) -> dict[str, bytes]:
    """Every key of one datablock: one per whole part, one per item of an item part."""
    uuid = ids.get_uuid(id_data)
    record = BY_NAME[kind]
    # An override is made from what it overrides, which need not hold what a new datablock holds.
    unkeyed = record.unkeyed if record.unkeyed and id_data.override_library is None else {}
    out: dict[str, bytes] = {}
    for part, doc in record.serialise(id_data, ctx).items():
        if part == record.primary:
            doc = overrides.with_override(doc, id_data, ctx)
        if isinstance(record.parts[part], Items):
            for item, item_doc in doc.items():
                key = make_key(kind, uuid, part, *item)
                if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
                    # Item names (escaped) can make a key the server refuses, and a refused batch would
                    # take the datablock's other keys with it: this one item stays local instead.
                    ctx.unsent.append(key)
                    continue
                out[key] = encode_value(item_doc)
        else:
            value = encode_value(doc)
            if part in unkeyed and value == unkeyed_value(kind, part):
                continue  # what a new datablock holds: no key (Kind.unkeyed)
            out[make_key(kind, uuid, part)] = value
    return out


_UNKEYED: dict[tuple[str, str], bytes] = {}


def unkeyed_value(kind: str, part: str) -> bytes:
    """The encoded document of a part that has no key while it holds it (``Kind.unkeyed``)."""
    found = _UNKEYED.get((kind, part))
    if found is None:
        found = _UNKEYED[kind, part] = encode_value(BY_NAME[kind].unkeyed[part])
    return found


def held_without_key(key: str) -> bytes | None:
    """What ``key`` holds while it has no key: a part keyed only while it differs from a new datablock's
    holds that datablock's document (``Kind.unkeyed``); None for every other key."""
    split = split_key(key)
    if split is None or split[3] or split[2] not in BY_NAME[split[0]].unkeyed:
        return None
    return unkeyed_value(split[0], split[2])


def serialise_datablock(id_data: bpy.types.ID, ctx: ReadContext | None = None) -> dict[str, bytes]:
    """All keys of one datablock (empty if its kind is not synchronised)."""
    if not is_synced(id_data):
        return {}
    kind = kind_of(id_data)
    return serialise_parts(kind, id_data, ctx or read_context())


def serialise_scene() -> dict[str, bytes]:
    """Every key of every synchronised datablock in ``bpy.data``."""
    index = index_all()
    ctx = read_context()
    out: dict[str, bytes] = {}
    for _uuid, (kind, id_data) in sorted(index.items()):
        out.update(serialise_parts(kind, id_data, ctx))
    return out
