"""An armature's bone collections, one key each: ``arm/<u>/bcoll/<name>`` = ``{parent, position, props,
bones}`` (``props``: visibility, solo, expanded state in the UI is left out; ``bones``: sorted names of
the bones assigned to it). Two artists editing two collections keep both."""

from __future__ import annotations

import bpy

from . import ids
from .context import ApplyContext, ReadContext
from .items import Items

SKIP = ("is_expanded", "child_number", "is_solo")


def read(arm: bpy.types.Armature, ctx: ReadContext, bones=None) -> dict[tuple[str, ...], dict]:
    """Each collection's key; its members from ``bones`` (the edit bones in edit mode: the bones' own
    assignments are stale until the artist leaves it), the armature's bones by default."""
    members: dict[str, list[str]] = {}
    for bone in arm.bones if bones is None else bones:
        for coll in bone.collections:
            members.setdefault(coll.name, []).append(bone.name)
    out = {}
    for coll in arm.collections_all:
        out[(coll.name,)] = {
            "parent": coll.parent.name if coll.parent is not None else None,
            "position": coll.child_number,
            "props": ctx.props(coll, skip=SKIP),
            "bones": sorted(members.get(coll.name, ())),
        }
    return out


def describe(arm: bpy.types.Armature, ctx: ReadContext) -> dict:
    return {name: doc for (name,), doc in read(arm, ctx).items()}


def _apply(arm: bpy.types.Armature, item: tuple[str, ...], doc: dict | None, ctx: ApplyContext):
    (name,) = item
    colls = arm.collections
    coll = arm.collections_all.get(name)
    if doc is None:
        if coll is not None:
            colls.remove(coll)
        return arm
    parent = arm.collections_all.get(doc["parent"]) if doc["parent"] else None
    if doc["parent"] and parent is None:
        ctx.wait_for("bcoll", ids.get_uuid(arm))  # its parent collection has not arrived
        return arm
    if coll is None:
        coll = colls.new(name, parent=parent)
    elif coll.parent != parent:
        coll.parent = parent
    if coll.child_number != doc["position"]:
        coll.child_number = doc["position"]
    for attr, value in doc["props"].items():
        if getattr(coll, attr, value) != value:
            setattr(coll, attr, value)
    wanted = set(doc["bones"])
    # While this artist edits the armature, its edit bones: leaving edit mode writes them back.
    bones = arm.edit_bones if arm.is_editmode else arm.bones
    if any(bone not in bones for bone in wanted):
        ctx.wait_for("bones", ids.get_uuid(arm))
    for bone in bones:
        member = any(c.name == name for c in bone.collections)
        if bone.name in wanted and not member:
            coll.assign(bone)
        elif bone.name not in wanted and member:
            coll.unassign(bone)
    return arm


PART = Items(_apply)
