"""Object and bone constraints, one key per constraint: ``obj/<u>/con/<name>`` and
``obj/<u>/pbcon/<bone>/<name>``, with the stack order a key of its own (``obj/<u>/conorder``,
``obj/<u>/pbconorder/<bone>``), like modifiers.

A document is ``{type, props}``: ``props`` every writable setting, targets
(``target``, ``pole_target``, ``space_object``, an action…) as uuids,
sub-targets (bone and vertex group names) as they are. Its influence, when
animated, is read as None (derived.py).
"""

from __future__ import annotations

import bpy

from . import ids, moves, order, pose_bones, rna
from .context import ApplyContext, ReadContext
from .items import Items

SKIP = ("type", "show_expanded", "active", "enabled", "is_override_data_editable")
LINKS_FIRST = ("target", "pole_target", "space_object")  # sub-targets are names inside these


def read(constraints, ctx: ReadContext, *outer: str) -> tuple[dict[tuple[str, ...], dict], list[str]]:
    """Items of a ``con`` part (``outer``: leading segments, e.g. the bone) and the names in stack order."""
    # A constraint keeps its struct when renamed (a removed one's may be reused: its type tells them apart).
    moves.note_names(
        constraints.id_data,
        "/".join(("constraints", *outer)),
        {(c.as_pointer(), c.type): c.name for c in constraints},
    )
    items = {
        (*outer, con.name): {"type": con.type, "props": ctx.props(con, skip=SKIP)} for con in constraints
    }
    return items, [con.name for con in constraints]


def describe(constraints, ctx: ReadContext) -> list:
    return [[con.name, con.type, ctx.props(con, skip=SKIP)] for con in constraints]


def _write(constraints, name: str, doc: dict | None, ctx: ApplyContext) -> None:
    con = constraints.get(name)
    if doc is None:
        if con is not None:
            constraints.remove(con)
        return
    if con is not None and con.type != doc["type"]:
        constraints.remove(con)
        con = None
    if con is None:
        try:
            con = constraints.new(doc["type"])
        except (TypeError, RuntimeError) as exc:
            ctx.report(f"constraint {name!r} of type {doc['type']!r}: {exc}")
            return
        con.name = name
    rna.write_props(con, doc["props"], ctx.resolve, first=LINKS_FIRST)


def _order(constraints, names: list[str], ctx: ApplyContext, uuid: str, part: str) -> None:
    """Put the stack in the listed order; constraints the list does not name follow, by name."""
    stack = order.plan([c.name for c in constraints], names)
    if stack.missing:
        ctx.wait_for(part, uuid)  # a listed constraint has not arrived: again once it has
    stack.move_each(lambda: [c.name for c in constraints], constraints.move)


def _apply_object(ob: bpy.types.Object, item: tuple[str, ...], doc: dict | None, ctx: ApplyContext):
    _write(ob.constraints, item[0], doc, ctx)
    return ob


def _apply_object_order(ob: bpy.types.Object, doc: list, ctx: ApplyContext) -> bpy.types.ID:
    _order(ob.constraints, doc, ctx, ids.get_uuid(ob), "con")
    return ob


def _apply_bone(ob: bpy.types.Object, item: tuple[str, ...], doc: dict | None, ctx: ApplyContext):
    bone, name = item
    if doc is None and (ob.pose is None or bone not in ob.pose.bones):
        return ob  # gone with its bone
    pb = pose_bones.find(ob, bone, ctx)
    if pb is not None:
        _write(pb.constraints, name, doc, ctx)
    return ob


def _apply_bone_order(ob: bpy.types.Object, item: tuple[str, ...], doc: list | None, ctx: ApplyContext):
    if doc is None:
        return ob
    pb = pose_bones.find(ob, item[0], ctx)
    if pb is not None:
        _order(pb.constraints, doc, ctx, ids.get_uuid(ob), "pbcon")
    return ob


def read_object(ob: bpy.types.Object, ctx: ReadContext) -> dict[str, object]:
    """The object's constraint parts: ``con``, ``conorder``, and for armatures ``pbcon``, ``pbconorder``."""
    items, order = read(ob.constraints, ctx)
    parts: dict[str, object] = {"con": items, "conorder": order}
    if ob.type == "ARMATURE" and ob.pose is not None:
        bone_items: dict[tuple[str, ...], dict] = {}
        bone_orders: dict[tuple[str, ...], list] = {}
        for pb in ob.pose.bones:
            if len(pb.constraints):
                one, bone_order = read(pb.constraints, ctx, pb.name)
                bone_items.update(one)
                bone_orders[(pb.name,)] = bone_order
        parts["pbcon"] = bone_items
        parts["pbconorder"] = bone_orders
    return parts


def describe_object(ob: bpy.types.Object, ctx: ReadContext) -> dict[str, object]:
    bones = {}
    if ob.type == "ARMATURE" and ob.pose is not None:
        bones = {pb.name: describe(pb.constraints, ctx) for pb in ob.pose.bones if len(pb.constraints)}
    return {"constraints": describe(ob.constraints, ctx), "bone_constraints": bones}


PARTS = {
    "con": Items(_apply_object),
    "conorder": _apply_object_order,
    "pbcon": Items(_apply_bone, depth=2),
    "pbconorder": Items(_apply_bone_order),
}
