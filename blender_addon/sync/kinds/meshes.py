"""Meshes (kind ``mesh``): material list, geometry with every generic attribute, shape keys."""

from __future__ import annotations

from collections.abc import Callable

import bpy

from .. import animation, custom_props, derived, drivers, ids, nla, rna, vertex_groups
from ..arrays import fget, floats, fset, iget, iset, read_attribute, write_attribute
from ..assign import rename, set_changed, set_materials
from ..codec import pack_f32, pack_i32
from ..context import ApplyContext, ReadContext
from ..replacing import carry_animation
from ..settings import apply_name, placeholder_name
from .base import Kind

SHAPE_KEY_PROPS = ("slider_min", "slider_max", "value", "vertex_group", "interpolation", "mute", "lock_shape")


# ---------------------------------------------------------------- read


def read_shape_keys(key: bpy.types.Key | None, ctx: ReadContext) -> dict[str, object] | None:
    """Shape keys of a mesh: settings per key block, coordinates as packed f32 x3; values that the Key's
    animation or drivers write are None (derived.py)."""
    if key is None or not len(key.key_blocks):
        return None
    blocks = []
    for kb in key.key_blocks:
        doc: dict[str, object] = {"name": kb.name}
        doc.update({attr: ctx.masked(kb, attr, rna.plain(getattr(kb, attr))) for attr in SHAPE_KEY_PROPS})
        doc["relative_key"] = kb.relative_key.name if kb.relative_key is not None else None
        doc["co"] = pack_f32(fget(kb.data, "co", len(kb.data), 3))
        blocks.append(doc)
    return {
        "use_relative": key.use_relative,
        "eval_time": ctx.masked(key, "eval_time", float(key.eval_time)),
        "blocks": blocks,
    }


def serialise(me: bpy.types.Mesh, ctx: ReadContext) -> dict[str, object]:
    nv, ne, nl, npoly = len(me.vertices), len(me.edges), len(me.loops), len(me.polygons)
    attributes = []
    for attr in me.attributes:
        if attr.name.startswith(".") or attr.name == "position":
            continue
        data = read_attribute(attr)
        if data is None:
            continue
        attributes.append({"name": attr.name, "domain": attr.domain, "type": attr.data_type, "data": data})
    attributes.sort(key=lambda a: a["name"])
    uv = me.uv_layers
    colors = me.color_attributes
    geometry = {
        "vertices": pack_f32(ctx.masked_packed(me, "vertices", "co", fget(me.vertices, "co", nv, 3), 3)),
        "edges": pack_i32(iget(me.edges, "vertices", ne, 2)),
        "face_starts": pack_i32(iget(me.polygons, "loop_start", npoly, 1)),
        "corner_verts": pack_i32(iget(me.loops, "vertex_index", nl, 1)),
        "corner_edges": pack_i32(iget(me.loops, "edge_index", nl, 1)),
        "attributes": attributes,
        "active_uv": uv.active.name if uv.active is not None else None,
        "render_uv": next((layer.name for layer in uv if layer.active_render), None),
        "active_color": colors.active_color_name or None,
        "default_color": colors.default_color_name or None,
    }
    meta = {"materials": [ctx.ref(m) for m in me.materials]}
    return {
        "meta": meta,
        "name": me.name,
        "geometry": geometry,
        "shapes": read_shape_keys(me.shape_keys, ctx),
        "vgroup": vertex_groups.read(me, ctx),
        "shapeanim": animation.read(me.shape_keys, ctx),
        **nla.read(me.shape_keys, ctx, "shapenla"),
        "shapedriver": drivers.items(me.shape_keys, ctx),
        "prop": custom_props.items(me, ctx),
    }


# ---------------------------------------------------------------- describe


def _describe_shapes(key: bpy.types.Key | None) -> dict | None:
    if key is None or not len(key.key_blocks):
        return None
    blocks = [
        [
            kb.name,
            [rna.plain(getattr(kb, attr)) for attr in SHAPE_KEY_PROPS],
            kb.relative_key.name if kb.relative_key is not None else None,
            [floats(d.co) for d in kb.data],
        ]
        for kb in key.key_blocks
    ]
    return {"use_relative": key.use_relative, "eval_time": key.eval_time, "blocks": blocks}


def describe(me: bpy.types.Mesh, ctx: ReadContext) -> dict:
    attributes = {}
    for attr in me.attributes:
        if attr.name.startswith(".") or attr.name == "position":
            continue
        if attr.data_type in ("FLOAT_VECTOR", "FLOAT2"):
            values = [floats(d.vector) for d in attr.data]
        elif attr.data_type in ("FLOAT_COLOR", "BYTE_COLOR"):
            values = [floats(d.color) for d in attr.data]
        elif attr.data_type == "STRING":
            continue
        else:
            values = [rna.plain(d.value) for d in attr.data]
        attributes[attr.name] = [attr.domain, attr.data_type, values]
    return {
        "name": me.name,
        "vertices": [floats(v.co) for v in me.vertices],
        "edges": [list(e.vertices) for e in me.edges],
        "faces": [list(p.vertices) for p in me.polygons],
        "uv_layers": sorted(layer.name for layer in me.uv_layers),
        "attributes": attributes,
        "materials": [ctx.ref(m) for m in me.materials],
        "shapes": _describe_shapes(me.shape_keys),
        "vertex_groups": vertex_groups.describe(me, ctx),
        "shapeanim": animation.describe(me.shape_keys, ctx),
        "shape_nla": nla.describe(me.shape_keys),
        "shape_drivers": drivers.describe(me.shape_keys),
        "custom_props": custom_props.describe(me),
    }


# ---------------------------------------------------------------- apply


def create(uuid: str, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    return bpy.data.meshes.new(placeholder_name(uuid))


def stub(name: str, object_type: str) -> bpy.types.ID:
    return bpy.data.meshes.new(name)


def apply_meta(me: bpy.types.Mesh, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    set_materials(me.materials, [ctx.resolve(u) for u in doc["materials"]])
    return me


def _clear_geometry(me: bpy.types.Mesh) -> None:
    """``Mesh.clear_geometry`` frees the mesh's animation data too (its action, NLA tracks and drivers, which
    travel on keys of their own): kept across it on a throw-away mesh."""
    if me.animation_data is None:
        me.clear_geometry()
        return
    holder = bpy.data.meshes.new("blendsync-temp")
    try:
        carry_animation(me, holder)
        me.clear_geometry()
        carry_animation(holder, me)
    finally:
        bpy.data.meshes.remove(holder)


def apply_geometry(me: bpy.types.Mesh, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    if me.override_library is not None:
        # A library override's geometry is its library's: Blender neither edits nor keeps it (and the
        # override refuses the arrays), so the receiver's copy of the library gives the same.
        return me
    _clear_geometry(me)
    nv = len(doc["vertices"]) // 12
    ne = len(doc["edges"]) // 8
    npoly = len(doc["face_starts"]) // 4
    nl = len(doc["corner_verts"]) // 4
    me.vertices.add(nv)
    fset(me.vertices, "co", doc["vertices"])
    me.edges.add(ne)
    iset(me.edges, "vertices", doc["edges"])
    me.loops.add(nl)
    iset(me.loops, "vertex_index", doc["corner_verts"])
    iset(me.loops, "edge_index", doc["corner_edges"])
    me.polygons.add(npoly)
    iset(me.polygons, "loop_start", doc["face_starts"])
    wanted = {a["name"] for a in doc["attributes"]}
    for attr in list(me.attributes):
        if not attr.name.startswith(".") and attr.name != "position" and attr.name not in wanted:
            me.attributes.remove(attr)
    for spec in doc["attributes"]:
        attr = me.attributes.get(spec["name"])
        if attr is not None and (attr.domain != spec["domain"] or attr.data_type != spec["type"]):
            me.attributes.remove(attr)
            attr = None
        if attr is None:
            try:
                attr = me.attributes.new(spec["name"], spec["type"], spec["domain"])
            except (TypeError, RuntimeError):
                continue
        write_attribute(attr, spec["data"])
    uv = me.uv_layers
    if doc["active_uv"] and doc["active_uv"] in uv:
        uv.active = uv[doc["active_uv"]]
    if doc["render_uv"] and doc["render_uv"] in uv:
        uv[doc["render_uv"]].active_render = True
    colors = me.color_attributes
    if doc["active_color"] and doc["active_color"] in colors:
        colors.active_color_name = doc["active_color"]
    if doc["default_color"] and doc["default_color"] in colors:
        colors.default_color_name = doc["default_color"]
    me.update()
    derived.reanimate(me)  # keyed vertices (derived.py) read as 0.0: the animation writes them again
    return me


def _with_temp_object(data: bpy.types.ID, action: Callable[[bpy.types.Object], None]) -> None:
    """Run ``action`` on a throw-away object using ``data`` (shape key operations live on objects)."""
    ob = bpy.data.objects.new("blendsync-temp", data)
    try:
        action(ob)
    finally:
        bpy.data.objects.remove(ob)


def _make_shape_keys(names: list[str]) -> Callable[[bpy.types.Object], None]:
    def make(ob: bpy.types.Object) -> None:
        ob.shape_key_clear()
        for name in names:
            kb = ob.shape_key_add(name=name, from_mix=False)
            rename(kb, name)

    return make


def apply_shapes(me: bpy.types.Mesh, doc: dict | None, ctx: ApplyContext) -> bpy.types.ID:
    if doc is None:
        if me.shape_keys is not None:
            _with_temp_object(me, lambda ob: ob.shape_key_clear())
        return me
    nv = len(me.vertices)
    blocks = doc["blocks"]
    if any(len(b["co"]) != 12 * nv for b in blocks):
        # The geometry with this many vertices has not arrived yet: apply again once it has.
        ctx.wait_for("geometry", ids.get_uuid(me))
        return me
    key = me.shape_keys
    current = [(kb.name, len(kb.data)) for kb in key.key_blocks] if key is not None else []
    if current != [(b["name"], nv) for b in blocks]:
        _with_temp_object(me, _make_shape_keys([b["name"] for b in blocks]))
        key = me.shape_keys
    set_changed(key, "use_relative", doc["use_relative"])
    set_changed(key, "eval_time", doc["eval_time"])
    for kb, b in zip(key.key_blocks, blocks, strict=True):
        for attr in SHAPE_KEY_PROPS:
            set_changed(kb, attr, b[attr])
        if kb.slider_min != b["slider_min"]:  # refused while above the old maximum
            set_changed(kb, "slider_min", b["slider_min"])
        set_changed(kb, "value", b["value"])
        relative = key.key_blocks.get(b["relative_key"]) if b["relative_key"] else None
        if relative is not None and kb.relative_key != relative:
            kb.relative_key = relative
        fset(kb.data, "co", b["co"])
    return me


def apply_shape_anim(me: bpy.types.Mesh, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    """``mesh/<u>/shapeanim``: the action animating the shape keys (their ``Key``)."""
    if me.shape_keys is None:
        if doc["action"] is not None:
            ctx.wait_for("shapes", ids.get_uuid(me))
        return me
    animation.apply(me.shape_keys, doc, ctx)
    return me


KIND = Kind(
    name="mesh",
    collection="meshes",
    rna_type="Mesh",
    parts={
        "meta": apply_meta,
        "name": apply_name,
        "geometry": apply_geometry,
        "vgroup": vertex_groups.PART,
        "shapes": apply_shapes,
        "shapeanim": apply_shape_anim,
        **nla.parts("shapenla", lambda me: me.shape_keys, after="shapes"),
        "shapedriver": drivers.part(lambda me: me.shape_keys, after="shapes"),
        "prop": custom_props.PART,
    },
    create=create,
    serialise=serialise,
    describe=describe,
    stub=stub,
    object_types=("MESH",),
)
