"""Collections (kind ``coll``): name, visibility, colour tag, and their parents (links on the child side)."""

from __future__ import annotations

import contextlib

import bpy

from .. import ids
from ..assign import rename, set_changed
from ..context import ApplyContext, ReadContext
from .base import Kind


def serialise(coll: bpy.types.Collection, ctx: ReadContext) -> dict[str, object]:
    return {
        "meta": {
            "name": coll.name,
            "parents": ctx.collection_parents(coll),
            "hide_viewport": coll.hide_viewport,
            "hide_render": coll.hide_render,
            "hide_select": coll.hide_select,
            "color_tag": coll.color_tag,
        }
    }


def describe(coll: bpy.types.Collection, ctx: ReadContext) -> dict:
    return {
        "name": coll.name,
        "children": sorted(ctx.ref(c) for c in coll.children if ctx.is_synced(c)),
        "objects": sorted(ctx.ref(o) for o in coll.objects if ctx.is_synced(o)),
        "flags": [coll.hide_viewport, coll.hide_render, coll.hide_select],
    }


def create(uuid: str, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    return bpy.data.collections.new(doc["name"])


def apply_meta(coll: bpy.types.Collection, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    rename(coll, doc["name"])
    for attr in ("hide_viewport", "hide_render", "hide_select", "color_tag"):
        set_changed(coll, attr, doc[attr])
    wanted = {}
    for ref in doc["parents"]:
        parent = ctx.resolve_collection(ref)
        if parent is not None:
            wanted[parent.as_pointer()] = parent
    ptr = coll.as_pointer()
    current = {}
    for scene in bpy.data.scenes:
        if ids.peek_uuid(scene) is not None:
            current[scene.collection.as_pointer()] = scene.collection
    for other in bpy.data.collections:
        if ids.peek_uuid(other) is not None:
            current[other.as_pointer()] = other
    for parent_ptr, parent in current.items():
        linked = any(c.as_pointer() == ptr for c in parent.children)
        if linked and parent_ptr not in wanted:
            parent.children.unlink(coll)
        elif not linked and parent_ptr in wanted:
            with contextlib.suppress(RuntimeError):  # RuntimeError: the link would make a cycle
                parent.children.link(coll)
    return coll


KIND = Kind(
    name="coll",
    collection="collections",
    rna_type="Collection",
    parts={"meta": apply_meta},
    create=create,
    serialise=serialise,
    describe=describe,
    members=lambda coll: coll,
)
