"""Freestyle line styles (kind ``linestyle``): how a view layer's line sets draw their strokes.

``meta``: whether the line style has a node tree; ``name``; ``set/<setting>``: one setting each (colour,
alpha, thickness and its position, chaining, splitting, sorting, caps, dashes and gaps, texture flags,
``use_nodes``); ``mod/<stack>/<name>``: one modifier of the colour, alpha, thickness or geometry stack
(``{type, props, structs}``: its colour ramp or curve mapping as structs.py documents, a Distance from
Object's target as a uuid); ``modorder/<stack>``: the stack's modifier names in order, like an object's
``modorder``; ``texslot/<index>``: one filled texture slot's settings (its texture as a uuid); the node
tree (node_trees.py), used while ``use_nodes`` is on.

Blender's API moves no line style modifier: putting a stack in order removes the modifiers from the first
misplaced one on and makes them again with the settings they had.
"""

from __future__ import annotations

import bpy

from .. import ids, order, rna, structs, texture_slots
from ..context import ApplyContext, ReadContext
from ..items import Items
from ..node_trees import describe_node_tree, read_tree, tree_parts
from ..settings import apply_name, setting_items, settings_part
from .base import Kind

STACKS = ("color", "alpha", "thickness", "geometry")  # FreestyleLineStyle.<stack>_modifiers
# The properties panel's tab and the active slot are each artist's; slots travel on their own keys.
LINESTYLE_SKIP = ("panel", "active_texture", "active_texture_index", "node_tree")
MODIFIER_SKIP = ("type", "expanded")


def _stack(ls: bpy.types.FreestyleLineStyle, stack: str):
    return getattr(ls, f"{stack}_modifiers") if stack in STACKS else None


def _settings(ls: bpy.types.FreestyleLineStyle, ctx: ReadContext) -> dict[str, object]:
    # use_nodes is left out of every other datablock's settings (materials and worlds always use theirs)
    return {**ctx.props(ls, skip=LINESTYLE_SKIP), "use_nodes": ls.use_nodes}


def _modifier(mod, ctx: ReadContext, describing: bool = False) -> dict[str, object]:
    return {
        "type": mod.type,
        "props": ctx.props(mod, skip=MODIFIER_SKIP),
        "structs": structs.read(mod, None if describing else ctx),  # a colour ramp, a curve mapping
    }


def serialise(ls: bpy.types.FreestyleLineStyle, ctx: ReadContext) -> dict[str, object]:
    mods: dict[tuple[str, ...], object] = {}
    order: dict[tuple[str, ...], object] = {}
    for stack in STACKS:
        coll = _stack(ls, stack)
        for mod in coll:
            mods[(stack, mod.name)] = _modifier(mod, ctx)
        order[(stack,)] = [mod.name for mod in coll]
    parts: dict[str, object] = {
        "meta": {"node_tree": ls.node_tree is not None},
        "name": ls.name,
        "set": setting_items(_settings(ls, ctx)),
        "mod": mods,
        "modorder": order,
        texture_slots.PART: texture_slots.read(ls, ctx),
    }
    tree = read_tree(ls.node_tree, ctx)
    del tree["items"]  # line style trees' nodes have no item lists (tree_parts below)
    parts.update(tree)
    return parts


def describe(ls: bpy.types.FreestyleLineStyle, ctx: ReadContext) -> dict:
    return {
        "name": ls.name,
        "props": _settings(ls, ctx),
        "modifiers": {
            stack: [[mod.name, _modifier(mod, ctx, describing=True)] for mod in _stack(ls, stack)]
            for stack in STACKS
        },
        "slots": texture_slots.describe(ls, ctx),
        "tree": describe_node_tree(ls.node_tree, ctx),
    }


def create(uuid: str, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    ls = bpy.data.linestyles.new(ctx.new_name(uuid))
    for stack in STACKS:  # a new line style comes with a Sampling modifier: the room's arrive as keys
        coll = _stack(ls, stack)
        for mod in list(coll):
            coll.remove(mod)
    return ls


def _use_nodes(ls: bpy.types.FreestyleLineStyle, use: bool) -> None:
    """Set ``use_nodes`` without its side effect: the first time, Blender makes a tree with default nodes
    (the room's nodes travel as keys)."""
    had_tree = ls.node_tree is not None
    ls.use_nodes = use
    if not had_tree and ls.node_tree is not None:
        ls.node_tree.nodes.clear()


def apply_meta(ls: bpy.types.FreestyleLineStyle, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    if doc.get("node_tree") and ls.node_tree is None:
        # Blender's API makes a line style's node tree only by turning use_nodes on.
        use = ls.use_nodes
        _use_nodes(ls, True)
        _use_nodes(ls, use)
    return ls


_SETTINGS = settings_part()


def apply_setting(ls: bpy.types.FreestyleLineStyle, item: tuple[str, ...], doc: object, ctx: ApplyContext):
    if item == ("use_nodes",) and isinstance(doc, bool):
        if ls.use_nodes != doc:
            _use_nodes(ls, doc)
        return ls
    return _SETTINGS.apply(ls, item, doc, ctx)


def _write_modifier(mod, doc: dict, ctx: ApplyContext) -> None:
    rna.write_props(mod, doc["props"], ctx.resolve)
    for ident, held in doc.get("structs", {}).items():
        structs.write(mod, ident, held)


def apply_modifier(
    ls: bpy.types.FreestyleLineStyle, item: tuple[str, ...], doc: dict | None, ctx: ApplyContext
):
    stack, name = item
    coll = _stack(ls, stack)
    if coll is None:
        ctx.report(f"line style {ls.name!r} has no {stack!r} modifier stack")
        return ls
    mod = coll.get(name)
    if doc is None:
        if mod is not None:
            coll.remove(mod)
        return ls
    if mod is not None and mod.type != doc["type"]:
        coll.remove(mod)
        mod = None
    if mod is None:
        try:
            mod = coll.new(name, doc["type"])
        except (TypeError, RuntimeError) as exc:
            ctx.report(f"{stack} modifier {name!r} of type {doc['type']!r}: {exc}")
            return ls
    _write_modifier(mod, doc, ctx)
    ls.update_tag()
    return ls


def _copy(mod) -> tuple[str, dict[str, object], dict[str, dict]]:
    """What a modifier holds, to make it again elsewhere in its stack (pointers kept as datablocks)."""
    values = {}
    for prop in mod.bl_rna.properties:
        ident = prop.identifier
        if (
            prop.is_readonly
            or prop.type == "COLLECTION"
            or ident in rna.COMMON_SKIP
            or ident in MODIFIER_SKIP
        ):
            continue
        value = getattr(mod, ident)
        values[ident] = value if prop.type == "POINTER" else rna.plain(value)
    return mod.type, values, structs.read(mod, None)


def apply_order(ls: bpy.types.FreestyleLineStyle, item: tuple[str, ...], doc: list | None, ctx: ApplyContext):
    """Put a stack in the listed order; modifiers the list does not name follow, by name.

    A modifier made by its own key is appended; the order key that comes with it moves it.
    """
    coll = _stack(ls, item[0])
    if coll is None or doc is None:
        return ls  # an order key goes away only with its line style
    stack = order.plan([m.name for m in coll], doc)
    if stack.missing:
        ctx.wait_for("mod", ids.get_uuid(ls))  # a listed modifier has not arrived: again once it has
    first = stack.first
    if first is None:
        return ls
    moved = {m.name: _copy(m) for m in list(coll)[first:]}
    for mod in list(coll)[first:]:
        coll.remove(mod)
    for name in stack.wanted[first:]:
        kind, values, held = moved[name]
        mod = coll.new(name, kind)
        for ident, value in values.items():
            try:
                if getattr(mod, ident) != value:
                    setattr(mod, ident, value)
            except (AttributeError, TypeError, ValueError):
                continue
        for ident, doc_held in held.items():
            structs.write(mod, ident, doc_held)
    ls.update_tag()
    return ls


KIND = Kind(
    name="linestyle",
    collection="linestyles",
    rna_type="FreestyleLineStyle",
    parts={
        "meta": apply_meta,
        "name": apply_name,
        "set": Items(apply_setting),
        "mod": Items(apply_modifier, depth=2),
        "modorder": Items(apply_order),
        **texture_slots.PARTS,
        **tree_parts(lambda ls: ls.node_tree, items=False),  # line style nodes have no item lists
    },
    create=create,
    serialise=serialise,
    describe=describe,
    embedded=("node_tree",),
)
