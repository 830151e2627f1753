"""Collections (kind ``coll``): name, settings, and their parents (one key per parent, on the child side)."""

from __future__ import annotations

import bpy

from .. import ids, overrides, rna
from ..assign import rename, set_changed
from ..context import ApplyContext, ReadContext
from .base import Items, Kind

# How Line Art draws the collection.
LINEART = (
    "lineart_usage",
    "lineart_use_intersection_mask",
    "lineart_intersection_mask",
    "use_lineart_intersection_priority",
    "lineart_intersection_priority",
)
# instance_offset: where the collection's origin is when an object instances it.
SETTINGS = ("hide_viewport", "hide_render", "hide_select", "color_tag", "instance_offset", *LINEART)


def serialise(coll: bpy.types.Collection, ctx: ReadContext) -> dict[str, object]:
    return {
        "meta": {"override": overrides.read(coll, ctx)},
        "name": coll.name,
        "in": {(ref,): True for ref in ctx.collection_parents(coll)},
        "set": {(attr,): rna.plain(getattr(coll, attr)) for attr in SETTINGS},
    }


def describe(coll: bpy.types.Collection, ctx: ReadContext) -> dict:
    return {
        "name": coll.name,
        "children": sorted(ctx.ref(c) for c in coll.children if ctx.is_synced(c)),
        "objects": sorted(ctx.ref(o) for o in coll.objects if ctx.is_synced(o)),
        "flags": [coll.hide_viewport, coll.hide_render, coll.hide_select],
        "color_tag": coll.color_tag,
        "instance_offset": rna.plain(coll.instance_offset),
        "lineart": [rna.plain(getattr(coll, attr)) for attr in LINEART],
        "override": overrides.read(coll, ctx),
    }


def create(uuid: str, doc: dict, ctx: ApplyContext) -> bpy.types.ID | None:
    # A library override is made by the applier (overrides.take_over). The name is a key of its own
    # (coll/<u>/name), applied right after this one: made with it if queued.
    return bpy.data.collections.new(ctx.new_name(uuid))


def apply_meta(coll: bpy.types.Collection, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    return coll


def apply_name(coll: bpy.types.Collection, doc: str, ctx: ApplyContext) -> bpy.types.ID:
    rename(coll, doc)
    return coll


def _linked(parent: bpy.types.Collection, coll: bpy.types.Collection) -> bool:
    ptr = coll.as_pointer()
    return any(c.as_pointer() == ptr for c in parent.children)


def apply_parent(coll: bpy.types.Collection, item: tuple[str, ...], doc: object, ctx: ApplyContext):
    """``coll/<u>/in/<parent collection or scene uuid>``: present links it there, deleted unlinks it."""
    (ref,) = item
    if doc is None:
        target = ctx.lookup(ref)
        parent = target.collection if isinstance(target, bpy.types.Scene) else target
        if isinstance(parent, bpy.types.Collection) and _linked(parent, coll):
            parent.children.unlink(coll)
            _touch_scenes(ctx)
        return coll
    parent = ctx.resolve_collection(ref)
    if parent is not None and not _linked(parent, coll):
        try:
            parent.children.link(coll)
        except RuntimeError as exc:  # the link would make a cycle
            ctx.report(f"collection {coll.name!r} cannot be linked under {parent.name!r}: {exc}")
        _touch_scenes(ctx)
    return coll


def _touch_scenes(ctx: ApplyContext) -> None:
    # The scenes' view layers gain or lose the collection's flags (view_layers.py), as Blender sets them.
    for scene in bpy.data.scenes:
        uuid = ids.peek_uuid(scene)
        if uuid is not None:
            ctx.touch(uuid, scene)


def apply_setting(coll: bpy.types.Collection, item: tuple[str, ...], doc: object, ctx: ApplyContext):
    (attr,) = item
    if doc is not None and attr in SETTINGS:
        set_changed(coll, attr, doc)
    return coll


KIND = Kind(
    name="coll",
    collection="collections",
    rna_type="Collection",
    parts={"meta": apply_meta, "name": apply_name, "in": Items(apply_parent), "set": Items(apply_setting)},
    create=create,
    serialise=serialise,
    describe=describe,
    members=lambda coll: coll,
)
