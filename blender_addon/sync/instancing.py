"""Instancing of an object (``obj/<u>/instance``): what it instances and the collection it places.

An empty placing an asset instances a collection, often one linked from a
library.  A local collection travels as its uuid; a linked one as
``[library uuid, collection name]`` (names are unique inside one library, and
the library's key links the collection on every replica).  Type and
collection are one key: placing an asset sets both together.
"""

from __future__ import annotations

import bpy

from . import linked
from .assign import set_changed
from .context import ApplyContext, ReadContext

# Object.instance_type values that make instances (NONE makes none).
INSTANCE_TYPES = ("NONE", "VERTS", "FACES", "COLLECTION")


def read(ob: bpy.types.Object, ctx: ReadContext) -> dict[str, object]:
    coll = ob.instance_collection
    local = coll is not None and coll.library is None
    return {
        "type": ob.instance_type,
        "collection": ctx.ref(coll) if local else None,
        "linked": None if local else linked.ref(coll, ctx),
    }


def describe(ob: bpy.types.Object, ctx: ReadContext) -> list[object] | None:
    doc = read(ob, ctx)
    if doc["type"] == "NONE" and doc["collection"] is None and doc["linked"] is None:
        return None
    return [doc["type"], doc["collection"], doc["linked"]]


def apply(ob: bpy.types.Object, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    coll = None
    if doc["collection"] is not None:
        coll = ctx.resolve(doc["collection"])
    elif doc["linked"] is not None:
        coll = linked.resolve(doc["linked"], ctx)
    if ob.instance_collection != coll:
        ob.instance_collection = coll
    if doc["type"] in INSTANCE_TYPES:
        set_changed(ob, "instance_type", doc["type"])
    else:
        ctx.report(f"instance type {doc['type']!r} does not exist here")
    return ob
