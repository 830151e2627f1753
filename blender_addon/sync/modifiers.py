"""Object modifiers as one key per modifier, per setting and per geometry-nodes input.

Shared by the object kind.  A modifier is named by its name (unique on its
object); its key holds its type and display toggles, the stack order is a
key of its own (a list of names), each writable RNA setting has a key of its
own (a falloff curve too, structs.py), and a geometry
nodes modifier's group inputs (ID properties named after interface socket
identifiers, which Blender numbers with a counter and so differ between
replicas) are named ``#<position>`` among the group's input sockets.
"""

from __future__ import annotations

import bpy

from . import assign, dynamic_paint, ids, linked, moves, order, particles, rna, structs
from .context import ApplyContext, ReadContext

MODIFIER_SKIP = ("show_viewport", "show_render", "show_in_editmode", "show_on_cage", "type")
# Settings whose writing makes Blender compute another one again: (modifier type, setting) -> that one. A
# hook's target resets its inverse matrix, which travels on a key of its own (applied before or after).
RESETS = {
    ("HOOK", "object"): "matrix_inverse",
    ("HOOK", "subtarget"): "matrix_inverse",
    # read_data and use_vertex_interpolation are bits of one field: writing the first clears the second
    ("MESH_SEQUENCE_CACHE", "read_data"): "use_vertex_interpolation",
}
# Physics modifiers keep their settings in structs (read-only pointers): each struct is one setting of the
# modifier, read whole with the structs nested in it: struct -> (nested structs, what stays each artist's).
# A cache's file, name and disk use stay each artist's (caches are baked on each machine); its frame range
# travels. A cloth's rest shape key (a pointer to a shape key, not a datablock) travels as its name in the
# settings' document (``REST_SHAPE``). Fluid does not travel (docs/addon.md, "Not synchronised yet").
REST_SHAPE = "rest_shape_key"
CACHE_SKIP = ("index", "name", "filepath", "use_disk_cache", "use_external", "use_library_path")
PHYSICS: dict[str, dict[str, tuple[tuple[str, ...], tuple[str, ...]]]] = {
    "CLOTH": {
        "settings": (("effector_weights",), ()),
        "collision_settings": ((), ()),
        "point_cache": ((), CACHE_SKIP),
    },
    "SOFT_BODY": {"settings": (("effector_weights",), ()), "point_cache": ((), CACHE_SKIP)},
    "COLLISION": {"settings": ((), ())},
}
# Interface socket types whose modifier input holds a datablock (travels as its uuid).
ID_SOCKETS = frozenset(
    {"NodeSocketObject", "NodeSocketCollection", "NodeSocketMaterial", "NodeSocketImage", "NodeSocketTexture"}
)


def group_inputs(group: bpy.types.NodeTree | None) -> list:
    """The input sockets of a node group's interface, in interface order."""
    if group is None:
        return []
    return [i for i in group.interface.items_tree if i.item_type == "SOCKET" and i.in_out == "INPUT"]


def _input_value(value, ctx: ReadContext) -> object:
    if isinstance(value, bpy.types.ID):
        return ctx.ref(value)
    if hasattr(value, "to_list"):
        return value.to_list()
    return rna.plain(value)


def read_inputs(mod: bpy.types.Modifier, ctx: ReadContext) -> dict[str, dict[str, object]]:
    """``#<position>`` -> ``{value, use_attribute, attribute_name}`` for a geometry nodes modifier."""
    if mod.type != "NODES":
        return {}
    out = {}
    given = group_inputs(mod.node_group)
    moves.note(mod.id_data, mod.name, {"modin": tuple(item.identifier for item in given)})
    for position, item in enumerate(given):
        ident = item.identifier
        if ident not in mod:
            continue  # geometry inputs hold no value
        out[f"#{position}"] = {
            "value": _input_value(mod[ident], ctx),
            "use_attribute": bool(mod.get(ident + "_use_attribute", False)),
            "attribute_name": str(mod.get(ident + "_attribute_name", "")),
        }
    return out


def _names_none(ob: bpy.types.Object, prop: str, value: object) -> bool:
    """Whether a modifier's vertex group or UV map name names none of the object's. Blender keeps the name
    when the group or map is removed, but refuses it on an object without one: it is read as no name, which
    is how the modifier acts (read as it was, the receiver waited for a group that never came)."""
    if not isinstance(value, str) or not value:
        return False
    if "vertex_group" in prop:
        return value not in ob.vertex_groups
    if "uv" in prop and isinstance(ob.data, bpy.types.Mesh):
        return value not in ob.data.uv_layers
    return False


def _settings(
    ob: bpy.types.Object, mod: bpy.types.Modifier, ctx: ReadContext, skip: tuple[str, ...] = ()
) -> dict[str, object]:
    props = ctx.props(mod, skip=skip)
    return {prop: "" if _names_none(ob, prop, value) else value for prop, value in props.items()}


def _physics(mod: bpy.types.Modifier, ctx: ReadContext) -> dict[str, object]:
    """A physics modifier's settings structs (``PHYSICS``), each a document."""
    structs = {
        prop: ctx.props(getattr(mod, prop), skip=skip, nested=nested)
        for prop, (nested, skip) in PHYSICS.get(mod.type, {}).items()
    }
    if mod.type == "CLOTH":
        rest = mod.settings.rest_shape_key
        structs["settings"][REST_SHAPE] = None if rest is None else rest.name
    return structs


def read(ob: bpy.types.Object, ctx: ReadContext) -> tuple[dict, list, dict, dict]:
    """Items of the ``mod`` part, the ``modorder`` list, items of the ``modset`` and ``modin`` parts."""
    mods, settings, inputs = {}, {}, {}
    # Told apart across a rename by its persistent uid (its struct and type where Blender has no uid).
    moves.note_names(
        ob,
        "modifiers",
        {getattr(m, "persistent_uid", None) or (m.as_pointer(), m.type): m.name for m in ob.modifiers},
    )
    for mod in ob.modifiers:
        mods[(mod.name,)] = {
            "type": mod.type,
            "show_viewport": mod.show_viewport,
            "show_render": mod.show_render,
        }
        for prop, value in _settings(ob, mod, ctx, MODIFIER_SKIP).items():
            settings[(mod.name, prop)] = value
        for prop, value in structs.read(mod, ctx).items():  # a falloff curve...
            settings[(mod.name, prop)] = value
        for prop, value in _physics(mod, ctx).items():
            settings[(mod.name, prop)] = value
        for prop, value in dynamic_paint.read(mod, ctx).items():
            settings[(mod.name, prop)] = value
        if mod.type == "HOOK":  # the vertices assigned in edit mode: read-only, set by vertex_indices_set
            settings[(mod.name, "vertex_indices")] = list(mod.vertex_indices)
        for position, doc in read_inputs(mod, ctx).items():
            inputs[(mod.name, position)] = doc
    return mods, [mod.name for mod in ob.modifiers], settings, inputs


def apply_order(ob: bpy.types.Object, doc: list, ctx: ApplyContext) -> bpy.types.ID:
    """Put the stack in the listed order; modifiers the list does not name follow, by name.

    A modifier made by its own key is appended; the order key that comes with
    it (an artist adding a modifier changes the order too) then moves it.
    """
    stack = order.plan([m.name for m in ob.modifiers], doc)
    if stack.missing:
        ctx.wait_for("mod", ids.get_uuid(ob))  # a listed modifier has not arrived: again once it has
    stack.move_each(lambda: [m.name for m in ob.modifiers], ob.modifiers.move)
    return ob


def apply_modifier(ob: bpy.types.Object, item: tuple[str, ...], doc: dict | None, ctx: ApplyContext):
    mod = assign.typed_member(ob.modifiers, item[0], doc, "modifier", f"a {ob.type} object", ctx.report)
    if mod is not None and mod.type == "PARTICLE_SYSTEM":
        particles.mark_made_with(mod)
    return ob


def apply_setting(ob: bpy.types.Object, item: tuple[str, ...], doc: object, ctx: ApplyContext):
    name, prop = item
    mod = ob.modifiers.get(name)
    if prop in dynamic_paint.PROPS and mod is not None:  # a deleted key removes them, the modifier stays
        dynamic_paint.apply(ob, mod, prop, doc, ctx)
        return ob
    if doc is None:
        return ob  # a setting's key goes away with its modifier
    if mod is None:
        ctx.wait_for("mod", ids.get_uuid(ob))
        return ob
    if structs.write(mod, prop, doc):  # a falloff curve...
        return ob
    if mod.type == "HOOK" and prop == "vertex_indices":
        mod.vertex_indices_set(doc)
        ob.update_tag()
        return ob
    if mod.type == "CLOTH" and isinstance(doc, dict) and REST_SHAPE in doc:
        doc = {**doc}  # the value is the applier's: its rest shape is a name, written apart
        _write_rest_shape(ob, mod, doc.pop(REST_SHAPE), ctx)
    kept = RESETS.get((mod.type, prop))
    saved = getattr(mod, kept) if kept else None
    saved = saved.copy() if hasattr(saved, "copy") else saved  # a matrix is a view of the modifier
    rna.write_props(mod, {prop: doc}, ctx.resolve)
    if kept:
        setattr(mod, kept, saved)
    if isinstance(doc, str) and doc and getattr(mod, prop) != doc:
        _wait_for_name(ob, prop, ctx)
    elif isinstance(doc, dict):  # a physics struct: a cloth's pin group...
        sub = getattr(mod, prop, None)
        for name, value in doc.items():
            if (
                "vertex_group" in name
                and isinstance(value, str)
                and value
                and getattr(sub, name, "") != value
            ):
                _wait_for_name(ob, name, ctx)
                break
    return ob


def _write_rest_shape(ob: bpy.types.Object, mod: bpy.types.Modifier, name: object, ctx: ApplyContext) -> None:
    """A cloth's rest shape: the shape key of that name of the object's data (applied again once its shape
    keys arrive), or none."""
    keys = getattr(ob.data, "shape_keys", None)
    block = keys.key_blocks.get(name) if keys is not None and isinstance(name, str) else None
    if name is not None and block is None:
        uuid = ids.peek_uuid(ob.data) if ob.data is not None else None
        if uuid is not None:
            ctx.wait_for("shapes", uuid)
        return
    if mod.settings.rest_shape_key != block:
        mod.settings.rest_shape_key = block


def _wait_for_name(ob: bpy.types.Object, prop: str, ctx: ApplyContext) -> None:
    """Blender takes a modifier's vertex group or UV map name only once the object has one by that name:
    apply the setting again when the mesh's vertex groups (or its geometry, with the UV maps) arrive."""
    part = "vgroup" if "vertex_group" in prop else "geometry" if "uv" in prop else None
    uuid = ids.peek_uuid(ob.data) if isinstance(ob.data, bpy.types.Mesh) else None
    if part is not None and uuid is not None:
        ctx.wait_for(part, uuid)


def apply_input(ob: bpy.types.Object, item: tuple[str, ...], doc: dict | None, ctx: ApplyContext):
    name, position = item
    if doc is None:
        return ob
    mod = ob.modifiers.get(name)
    if mod is None:
        ctx.wait_for("mod", ids.get_uuid(ob))
        return ob
    inputs = group_inputs(mod.node_group)
    index = int(position[1:]) if position[1:].isdigit() else -1
    if index < 0 or index >= len(inputs):
        # The group (or its interface) has not arrived: apply again once it has.
        if mod.node_group is not None and ids.peek_uuid(mod.node_group) is not None:
            ctx.wait_for("iface", ids.peek_uuid(mod.node_group))
        else:
            ctx.wait_for("modset", ids.get_uuid(ob))
        return ob
    ident = inputs[index].identifier
    value = doc["value"]
    if (isinstance(value, str) or linked.is_ref(value)) and inputs[index].socket_type in ID_SOCKETS:
        value = ctx.resolve(value)
    try:
        mod[ident] = value
        mod[ident + "_use_attribute"] = doc["use_attribute"]
        mod[ident + "_attribute_name"] = doc["attribute_name"]
    except (TypeError, ValueError) as exc:
        ctx.report(f"modifier {name!r} input {inputs[index].name!r}: {exc}")
        return ob
    ob.update_tag()
    return ob


def describe(mod: bpy.types.Modifier, ctx: ReadContext) -> list:
    inputs = read_inputs(mod, ctx)
    return [
        mod.name,
        mod.type,
        _settings(mod.id_data, mod, ctx),
        structs.read(mod, None),
        list(mod.vertex_indices) if mod.type == "HOOK" else None,
        [[k, inputs[k]] for k in sorted(inputs)],
        _physics(mod, ctx),
        dynamic_paint.read(mod, ctx),
    ]
