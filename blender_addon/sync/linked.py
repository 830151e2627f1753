"""Links from local datablocks to datablocks linked from a library: ``[library uuid, collection, name]``.

A linked datablock has no uuid of its own (it travels as part of its
library's key, ``lib/<u>/meta``); a local datablock pointing at one names
it by its library's uuid, its ``bpy.data`` collection and its name (names
are unique inside one library).  A library of a library travels in its
parent's file, so the outermost library names it.
"""

from __future__ import annotations

import bpy

from .context import ApplyContext, ReadContext

# ID type -> bpy.data collection, for datablocks linked from a library
LINKABLE: dict[str, str] = {
    "OBJECT": "objects",
    "COLLECTION": "collections",
    "MESH": "meshes",
    "MATERIAL": "materials",
    "NODETREE": "node_groups",
    "ACTION": "actions",
    "IMAGE": "images",
    "WORLD": "worlds",
    "CURVE": "curves",
    "ARMATURE": "armatures",
    "LIGHT": "lights",
    "CAMERA": "cameras",
    "TEXTURE": "textures",
    "TEXT": "texts",
    "SCENE": "scenes",
}


def ref(id_data: bpy.types.ID | None, ctx: ReadContext) -> list[str] | None:
    """``[library uuid, collection, name]`` of a datablock linked from a library that travels, else None."""
    if id_data is None or id_data.library is None or id_data.id_type not in LINKABLE:
        return None
    lib = id_data.library
    while lib.parent is not None:
        lib = lib.parent
    lib_uuid = ctx.ref(lib)
    return [lib_uuid, LINKABLE[id_data.id_type], id_data.name] if lib_uuid is not None else None


def resolve(doc: list[str], ctx: ApplyContext) -> bpy.types.ID | None:
    """The linked datablock ``doc`` names; while its library (or the link) is missing, None, recorded."""
    lib_uuid, collection, name = doc
    lib = ctx.resolve(lib_uuid)
    if lib is None or collection not in LINKABLE.values():
        return None
    ptr = lib.as_pointer()
    for id_data in getattr(bpy.data, collection):
        owner = id_data.library
        while owner is not None and owner.parent is not None:
            owner = owner.parent
        if owner is not None and owner.as_pointer() == ptr and id_data.name == name:
            return id_data
    ctx.wait_for("meta", lib_uuid)  # the library's key that links it has not been applied yet
    return None
