"""Instancing of an object (``obj/<u>/instance``): what it instances and the collection it places.

An empty placing an asset instances a collection, often one linked from a
library.  A local collection travels as its uuid; a linked one as
``[library uuid, collection name]`` (names are unique inside one library, and
the library's key links the collection on every replica).  Type and
collection are one key: placing an asset sets both together.
"""

from __future__ import annotations

import bpy

from .assign import set_changed
from .context import ApplyContext, ReadContext

# Object.instance_type values that make instances (NONE makes none).
INSTANCE_TYPES = ("NONE", "VERTS", "FACES", "COLLECTION")


def linked_ref(coll: bpy.types.Collection, ctx: ReadContext) -> list[str] | None:
    """``[library uuid, name]`` of a collection linked from a synchronised library, else None."""
    lib = coll.library
    lib_uuid = ctx.ref(lib) if lib is not None else None
    return [lib_uuid, coll.name] if lib_uuid is not None else None


def read(ob: bpy.types.Object, ctx: ReadContext) -> dict[str, object]:
    coll = ob.instance_collection
    local = linked = None
    if coll is not None:
        if coll.library is None:
            local = ctx.ref(coll)
        else:
            linked = linked_ref(coll, ctx)
    return {"type": ob.instance_type, "collection": local, "linked": linked}


def describe(ob: bpy.types.Object, ctx: ReadContext) -> list[object] | None:
    doc = read(ob, ctx)
    if doc["type"] == "NONE" and doc["collection"] is None and doc["linked"] is None:
        return None
    return [doc["type"], doc["collection"], doc["linked"]]


def find_linked(lib: bpy.types.Library, name: str) -> bpy.types.Collection | None:
    return next((c for c in bpy.data.collections if c.library == lib and c.name == name), None)


def apply(ob: bpy.types.Object, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    coll = None
    if doc["collection"] is not None:
        coll = ctx.resolve(doc["collection"])
    elif doc["linked"] is not None:
        lib_uuid, name = doc["linked"]
        lib = ctx.resolve(lib_uuid)
        if lib is not None:
            coll = find_linked(lib, name)
            if coll is None:  # the library's key that links it has not been applied yet
                ctx.wait_for("meta", lib_uuid)
    if ob.instance_collection != coll:
        ob.instance_collection = coll
    if doc["type"] in INSTANCE_TYPES:
        set_changed(ob, "instance_type", doc["type"])
    else:
        ctx.report(f"instance type {doc['type']!r} does not exist here")
    return ob
