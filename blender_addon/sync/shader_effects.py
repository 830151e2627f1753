"""A grease pencil object's visual effects (``Object.shader_effects``: blur, colorize, flip, glow, pixelate,
rim, shadow, swirl, wave) as modifiers are (modifiers.py): one key per effect (its type and toggles), one
per setting (an object pointer as a uuid), and the stack order as a key of its own (a list of names).

Shared by the object kind. Blender's API moves no effect: the order is put in place with its Move to Index
operator on the object.
"""

from __future__ import annotations

import bpy

from . import assign, ids, moves, order, rna
from .context import ApplyContext, ReadContext

EFFECT_SKIP = ("name", "type", "show_viewport", "show_render", "show_in_editmode", "show_expanded")


def read(ob: bpy.types.Object, ctx: ReadContext) -> tuple[dict, list, dict]:
    """Items of the ``fx`` part, the ``fxorder`` list and items of the ``fxset`` part."""
    effects, settings = {}, {}
    moves.note_names(ob, "effects", {(fx.as_pointer(), fx.type): fx.name for fx in ob.shader_effects})
    for fx in ob.shader_effects:
        effects[(fx.name,)] = {
            "type": fx.type,
            "show_viewport": fx.show_viewport,
            "show_render": fx.show_render,
        }
        for prop, value in ctx.props(fx, skip=EFFECT_SKIP).items():
            settings[(fx.name, prop)] = value
    return effects, [fx.name for fx in ob.shader_effects], settings


def describe(ob: bpy.types.Object, ctx: ReadContext) -> list:
    return [
        [fx.name, fx.type, fx.show_viewport, fx.show_render, ctx.props(fx, skip=EFFECT_SKIP)]
        for fx in ob.shader_effects
    ]


def apply_effect(ob: bpy.types.Object, item: tuple[str, ...], doc: dict | None, ctx: ApplyContext):
    assign.typed_member(ob.shader_effects, item[0], doc, "effect", f"a {ob.type} object", ctx.report)
    return ob


def apply_order(ob: bpy.types.Object, doc: list, ctx: ApplyContext) -> bpy.types.ID:
    """Put the effects in the listed order (those it does not name follow, by name). The key exists only
    while the object has effects (a deleted whole-part key is not applied)."""
    stack = order.plan([fx.name for fx in ob.shader_effects], doc)
    if stack.missing:
        ctx.wait_for("fx", ids.get_uuid(ob))  # a listed effect has not arrived: again once it has

    def move(current: int, target: int) -> None:
        with bpy.context.temp_override(object=ob, active_object=ob):
            bpy.ops.object.shaderfx_move_to_index(shaderfx=ob.shader_effects[current].name, index=target)

    stack.move_each(lambda: [fx.name for fx in ob.shader_effects], move)
    return ob


def apply_setting(ob: bpy.types.Object, item: tuple[str, ...], doc: object, ctx: ApplyContext):
    name, prop = item
    if doc is None:
        return ob  # a setting's key goes away with its effect
    fx = ob.shader_effects.get(name)
    if fx is None:
        ctx.wait_for("fx", ids.get_uuid(ob))
        return ob
    rna.write_props(fx, {prop: doc}, ctx.resolve)
    ob.update_tag()
    return ob
