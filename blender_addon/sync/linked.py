"""Links from local datablocks to datablocks linked from a library: ``[library uuid, collection, name]``.

A linked datablock has no uuid of its own (it travels as part of its
library's key, ``lib/<u>/meta``); a local datablock pointing at one names
it by its library's uuid, its ``bpy.data`` collection and its name (names
are unique inside one library).  A library of a library travels in its
parent's file, so the outermost library names it.  Every pointer that
travels as a uuid travels in this form when it points at a linked
datablock (``ReadContext.ref`` and ``ApplyContext.resolve`` call here).
"""

from __future__ import annotations

from typing import Protocol

import bpy

from . import ids


class ReadContext(Protocol):
    """What ``ref`` needs of context.ReadContext (which calls here: not imported, no import circle)."""

    def ref(self, id_data: bpy.types.ID | None) -> object: ...


class ApplyContext(Protocol):
    """What ``resolve`` needs of context.ApplyContext."""

    def resolve(self, uuid: object) -> bpy.types.ID | None: ...

    def report(self, message: str) -> None: ...

    def wait_for(self, part: str, uuid: str) -> None: ...


# ID type -> bpy.data collection, for datablocks linked from a library (a Blender without one of these
# collections, e.g. ``annotations`` before 4.3, links none of them).  Not linked on purpose: brushes,
# palettes, paint curves and workspaces (Blender links them from its own asset files), shape keys (they
# come with their mesh), screens, window managers and libraries.
LINKABLE: dict[str, str] = {
    "ACTION": "actions",
    "ARMATURE": "armatures",
    "CACHEFILE": "cache_files",
    "CAMERA": "cameras",
    "COLLECTION": "collections",
    "CURVE": "curves",
    "CURVES": "hair_curves",
    "FONT": "fonts",
    "GREASEPENCIL": "annotations",
    "GREASEPENCIL_V3": "grease_pencils",
    "IMAGE": "images",
    "LATTICE": "lattices",
    "LIGHT": "lights",
    "LIGHT_PROBE": "lightprobes",
    "LINESTYLE": "linestyles",
    "MASK": "masks",
    "MATERIAL": "materials",
    "MESH": "meshes",
    "META": "metaballs",
    "MOVIECLIP": "movieclips",
    "NODETREE": "node_groups",
    "OBJECT": "objects",
    "PARTICLE": "particles",
    "POINTCLOUD": "pointclouds",
    "SCENE": "scenes",
    "SOUND": "sounds",
    "SPEAKER": "speakers",
    "TEXT": "texts",
    "TEXTURE": "textures",
    "VOLUME": "volumes",
    "WORLD": "worlds",
}
_COLLECTIONS = frozenset(LINKABLE.values())


def outermost(lib: bpy.types.Library) -> bpy.types.Library:
    """The library whose file holds ``lib`` (itself, unless it is a library of a library)."""
    while lib.parent is not None:
        lib = lib.parent
    return lib


def is_ref(doc: object) -> bool:
    """Whether a value is a link in this form (a uuid is a string)."""
    return isinstance(doc, list) and len(doc) == 3 and all(isinstance(part, str) for part in doc)


def ref(id_data: bpy.types.ID | None, ctx: ReadContext) -> list[str] | None:
    """``[library uuid, collection, name]`` of a datablock linked from a library that travels, else None."""
    if id_data is None or id_data.library is None or id_data.id_type not in LINKABLE:
        return None
    lib_uuid = ctx.ref(outermost(id_data.library))
    return [lib_uuid, LINKABLE[id_data.id_type], id_data.name] if lib_uuid is not None else None


def known_ref(id_data: bpy.types.ID) -> list[str] | None:
    """:func:`ref` from the uuid the library already has (for comparing with a received value)."""
    if id_data.library is None or id_data.id_type not in LINKABLE:
        return None
    lib_uuid = ids.peek_uuid(outermost(id_data.library))
    return [lib_uuid, LINKABLE[id_data.id_type], id_data.name] if lib_uuid is not None else None


def resolve(doc: list[str], ctx: ApplyContext) -> bpy.types.ID | None:
    """The linked datablock ``doc`` names; while its library (or the link) is missing, None, recorded."""
    lib_uuid, collection, name = doc
    lib = ctx.resolve(lib_uuid)
    if lib is None:
        return None
    if collection not in _COLLECTIONS:
        ctx.report(f"a link into a library's {collection!r} is not synchronised here")
        return None
    ptr = lib.as_pointer()
    for id_data in getattr(bpy.data, collection, ()):  # a collection an older Blender lacks: nothing
        owner = id_data.library
        if owner is not None and outermost(owner).as_pointer() == ptr and id_data.name == name:
            return id_data
    ctx.wait_for("meta", lib_uuid)  # the library's key that links it has not been applied yet
    return None
