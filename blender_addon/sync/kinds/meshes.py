"""Meshes (kind ``mesh``): material list, geometry with every generic attribute, shape keys, settings
(mesh_settings.py)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import bpy

from .. import custom_props, derived, mesh_settings, rna, shape_keys, vertex_groups
from ..arrays import (
    fget,
    floats,
    fset,
    iget,
    iset,
    mesh_get,
    mesh_set,
    ragged_rows_of,
    read_attribute,
    rows_of,
    write_attribute,
)
from ..assign import set_materials
from ..attributes import remove_unlisted
from ..codec import pack_f32_chunked, pack_i32, pack_i32_chunked, packs_to
from ..context import ApplyContext, ReadContext
from ..replacing import carry_animation
from ..settings import apply_name
from .base import Kind

# ---------------------------------------------------------------- read


@contextlib.contextmanager
def _readable(me: bpy.types.Mesh, counts: tuple[int, int, int, int]) -> Iterator[bpy.types.Mesh]:
    """The mesh to read topology and attributes from: ``me``, or in edit mode, where a mesh's attributes
    are its edit mesh's (none of the built-in ones, the generic ones empty), a copy of its data as the
    last ``update_from_editmode`` left it: its object's ``to_mesh()`` (memory shared, ~0.1 ms for 200,000
    vertices), if it holds as many items."""
    ob = None
    if me.is_editmode:
        objects = getattr(bpy.context, "objects_in_mode_unique_data", None) or ()
        ob = next((ob for ob in objects if ob.data == me), None)
    if ob is None:
        yield me
        return
    try:
        copy = ob.to_mesh()
    except RuntimeError:
        yield me
        return
    try:
        same = (len(copy.vertices), len(copy.edges), len(copy.loops), len(copy.polygons)) == counts
        yield copy if same and not copy.is_editmode else me
    finally:
        ob.to_mesh_clear()


def serialise(me: bpy.types.Mesh, ctx: ReadContext) -> dict[str, object]:
    nv, ne, nl, npoly = counts = len(me.vertices), len(me.edges), len(me.loops), len(me.polygons)
    with _readable(me, counts) as src:
        attributes = []
        for attr in src.attributes:
            if attr.name.startswith(".") or attr.name == "position":
                continue
            data = read_attribute(attr)
            if data is None:
                continue
            attributes.append(
                {"name": attr.name, "domain": attr.domain, "type": attr.data_type, "data": data}
            )
        attributes.sort(key=lambda a: a["name"])
        uv = src.uv_layers
        colors = src.color_attributes
        # In edit mode the copy's positions are the mesh's (the original object's to_mesh() applies neither
        # modifiers nor shape keys): one copy of memory, where ``me.vertices`` is read item by item (~10 ms).
        # Each array is read into a reused buffer and packed (or found unchanged) before the next is read.
        positions = mesh_get(src, "position", nv, True) or fget(me.vertices, "co", nv, 3)
        geometry = {
            "vertices": pack_f32_chunked(ctx.masked_packed(me, "vertices", "co", positions, 3)),
            "edges": pack_i32_chunked(
                mesh_get(src, ".edge_verts", ne, True) or iget(src.edges, "vertices", ne, 2)
            ),
            "face_starts": pack_i32_chunked(iget(src.polygons, "loop_start", npoly, 1)),
            "corner_verts": pack_i32_chunked(
                mesh_get(src, ".corner_vert", nl, True) or iget(src.loops, "vertex_index", nl, 1)
            ),
            "corner_edges": pack_i32_chunked(
                mesh_get(src, ".corner_edge", nl, True) or iget(src.loops, "edge_index", nl, 1)
            ),
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
        "set": mesh_settings.read(me, ctx),
        "vgroup": vertex_groups.read(me, ctx),
        **shape_keys.read(me, ctx),
        "prop": custom_props.items(me, ctx),
    }


# ---------------------------------------------------------------- describe


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
    nv, ne, nl, npoly = len(me.vertices), len(me.edges), len(me.loops), len(me.polygons)
    # Read in bulk and listed in batches when hashed (arrays.Rows): the same rows as [floats(v.co) for v in
    # me.vertices], [list(e.vertices) ...] and [list(p.vertices) ...].
    faces = ragged_rows_of(
        iget(me.loops, "vertex_index", nl, 1),
        iget(me.polygons, "loop_start", npoly, 1),
        iget(me.polygons, "loop_total", npoly, 1),
    )
    return {
        "name": me.name,
        "vertices": rows_of(fget(me.vertices, "co", nv, 3), 3),
        "edges": rows_of(iget(me.edges, "vertices", ne, 2), 2),
        "faces": faces,
        "uv_layers": sorted(layer.name for layer in me.uv_layers),
        "attributes": attributes,
        "materials": [ctx.ref(m) for m in me.materials],
        "vertex_groups": vertex_groups.describe(me, ctx),
        **shape_keys.describe(me, ctx),
        "custom_props": custom_props.describe(me),
        "settings": mesh_settings.describe(me, ctx),
    }


# ---------------------------------------------------------------- apply


def create(uuid: str, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    return bpy.data.meshes.new(ctx.new_name(uuid))


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


def _same_topology(me: bpy.types.Mesh, doc: dict, counts: tuple[int, int, int, int]) -> bool:
    """Whether ``doc`` has the mesh's vertices, edges, faces and corners, connected alike."""
    nv, ne, nl, npoly = counts
    if (len(me.vertices), len(me.edges), len(me.loops), len(me.polygons)) != counts or not nv:
        return False
    if me.is_editmode:
        return False
    for name, count, packed in (
        (".edge_verts", ne, "edges"),
        (".corner_vert", nl, "corner_verts"),
        (".corner_edge", nl, "corner_edges"),
    ):
        ours = mesh_get(me, name, count, reuse=True)  # into a reused buffer, compared in place
        if count and (ours is None or not packs_to(ours, doc[packed])):
            return False
    return pack_i32(iget(me.polygons, "loop_start", npoly, 1)) == doc["face_starts"]


def _build_topology(me: bpy.types.Mesh, doc: dict, counts: tuple[int, int, int, int]) -> None:
    """Fill a cleared mesh with ``doc``'s vertices, edges, corners and faces."""
    nv, ne, nl, npoly = counts
    me.vertices.add(nv)
    if not mesh_set(me, "position", nv, doc["vertices"]):
        fset(me.vertices, "co", doc["vertices"])
    me.edges.add(ne)
    if not mesh_set(me, ".edge_verts", ne, doc["edges"]):
        iset(me.edges, "vertices", doc["edges"])
    me.loops.add(nl)
    if not mesh_set(me, ".corner_vert", nl, doc["corner_verts"]):
        iset(me.loops, "vertex_index", doc["corner_verts"])
    if not mesh_set(me, ".corner_edge", nl, doc["corner_edges"]):
        iset(me.loops, "edge_index", doc["corner_edges"])
    me.polygons.add(npoly)
    iset(me.polygons, "loop_start", doc["face_starts"])


def apply_geometry(me: bpy.types.Mesh, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    if me.override_library is not None:
        # A library override's geometry is its library's: Blender neither edits nor keeps it (and the
        # override refuses the arrays), so the receiver's copy of the library gives the same.
        return me
    nv = len(doc["vertices"]) // 12
    ne = len(doc["edges"]) // 8
    npoly = len(doc["face_starts"]) // 4
    nl = len(doc["corner_verts"]) // 4
    kept: vertex_groups.Kept = []
    if _same_topology(me, doc, (nv, ne, nl, npoly)):
        # Only the shape (or attributes) changed, as in a live edit-mode session: the mesh is not rebuilt,
        # so what it holds beside the geometry key (vertex groups, shape keys' data) stays as it is.
        if not mesh_set(me, "position", nv, doc["vertices"]):
            fset(me.vertices, "co", doc["vertices"])
    else:
        kept = vertex_groups.keep(me, ctx)
        _clear_geometry(me)
        _build_topology(me, doc, (nv, ne, nl, npoly))
    remove_unlisted(me.attributes, {a["name"] for a in doc["attributes"]})
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
    elif not doc["default_color"] and colors.default_color_name:
        colors.default_color_name = ""  # Blender makes the first colour attribute added the render one
    vertex_groups.put_back(me, kept, ctx)
    me.update()
    derived.reanimate(me)  # keyed vertices (derived.py) read as 0.0: the animation writes them again
    return me


KIND = Kind(
    name="mesh",
    collection="meshes",
    rna_type="Mesh",
    parts={
        "meta": apply_meta,
        "name": apply_name,
        "geometry": apply_geometry,
        "set": mesh_settings.PART,
        "vgroup": vertex_groups.PART,
        **shape_keys.parts("geometry"),
        "prop": custom_props.PART,
    },
    create=create,
    serialise=serialise,
    describe=describe,
    stub=stub,
    object_types=("MESH",),
    unkeyed={"shapes": None},  # no shape keys (and no actions: extras.ACTION_PARTS)
)
