"""An object's settings beyond its transform and the flags it placed with (``objects.SETTINGS``): viewport
display (colour, In Front, name, axes, wire, bounds), ray visibility, holdout, shadow catcher, pass index and
light group, transform locks, tracking axes, instancing options, an image empty's image, its image user and
how it is drawn, line art, light linking, a force field, rigid body settings (rigid_bodies.py), motion path
settings and the render engine's own object settings.

One key each, ``obj/<u>/set/<attr>`` as the first flags, so two artists changing two settings of one object
at the same moment keep both. A nested struct (``display``, ``lineart``, ``light_linking``, ``cycles``) is
one setting, as a camera's depth of field is. What animation writes reads as None (derived.py).

There are some sixty of them, and most objects keep Blender's values for most: a setting has a key only
while it differs from what Blender gives a new object of that type (:func:`baseline`), and a deleted key
puts that value back. Keyed always, the settings were three quarters of a scene's keys and made a join four
times slower.
"""

from __future__ import annotations

import bpy

from . import force_fields, ids, mesh_settings, rigid_bodies, rna, settings, structs
from .context import ApplyContext, ReadContext

_BASELINES: dict[str, dict[str, object]] = {}  # object type -> its settings on a new object

# Keys of their own (meta, name, parent, transform, instance, material slots...), the first flags, what
# Blender derives (matrices, dimensions) and each artist's working state (active slot, shape key, selection
# set; the shape key pinned or shown in edit mode while sculpting one).
SKIP = (
    "data",
    "parent",
    "parent_type",
    "parent_bone",
    "matrix_world",
    "matrix_local",
    "matrix_basis",
    "matrix_parent_inverse",
    "dimensions",
    "location",
    "rotation_mode",
    "rotation_euler",
    "rotation_quaternion",
    "rotation_axis_angle",
    "scale",
    "delta_location",
    "delta_rotation_euler",
    "delta_scale",
    "instance_type",
    "instance_collection",
    "active_material",
    "active_material_index",
    "active_shape_key_index",
    "active_selection_set",
    "show_only_shape_key",
    "use_shape_key_edit_mode",
    "hide_viewport",
    "hide_render",
    "hide_select",
    "empty_display_type",
    "empty_display_size",
    "display_type",
    # The mesh's symmetry, shown on its objects: keys of the mesh (mesh_settings.py)
    "use_mesh_mirror_x",
    "use_mesh_mirror_y",
    "use_mesh_mirror_z",
)
NESTED = ("display", "lineart", "light_linking", "cycles", "field", *rigid_bodies.OBJECT_ATTRS)
# A force field (``field``): Blender gives an object its settings only once one is added (the Force Field
# operator, or a physics modifier that needs them), so a field of type NONE reads as none, a receiver
# makes one with the operator, and a deleted key sets its type back to NONE.
FIELD = "field"
# The motion path settings (range, frames, what is shown), a struct inside a struct: one setting.
MOTION_PATHS = "motion_paths"
IMAGE = "data"  # an empty's image: its ``data``, an Image (the key of an empty only)
IMAGE_USER = "image_user"  # an image empty's frame settings (structs.py)


def _read_all(ob: bpy.types.Object, ctx: ReadContext) -> dict[str, object]:
    values = ctx.props(ob, skip=SKIP, nested=NESTED)
    values[MOTION_PATHS] = ctx.props(ob.animation_visualization.motion_path)
    force_fields.tidy(values, FIELD)
    values.update(structs.read(ob, ctx))  # an image empty's image user
    if ob.type == "EMPTY":
        image = ob.data if isinstance(ob.data, bpy.types.Image) else None
        ref = ctx.ref(image)
        if image is None or ref is not None:  # an image that does not travel: each keeps its own
            values[IMAGE] = ref
    return values


def baseline(ob: bpy.types.Object) -> dict[str, object]:
    """The settings Blender gives a new object of ``ob``'s type (read once per type from a throw-away
    object: they differ by type, a light's ray visibility or tracking axis from a mesh's, and RNA's
    defaults are not what a new object gets)."""
    return _baseline(ob.type, ob.data)


def _baseline(ob_type: str, data: bpy.types.ID | None) -> dict[str, object]:
    found = _BASELINES.get(ob_type)
    if found is None:
        probe = bpy.data.objects.new("blendsync-baseline", None if ob_type == "EMPTY" else data)
        if ob_type == "EMPTY":
            probe.empty_display_type = "IMAGE"  # gives it an image user (a flag of its own, not here)
        found = _BASELINES[ob_type] = settings.new_values(probe, _read_all, bpy.data.objects.remove)
    return found


def prepare() -> None:
    """Learn now what a new mesh object, a new empty and a new mesh hold (:func:`baseline`,
    :func:`.mesh_settings.baseline`). Making and removing a datablock makes Blender rebuild every depsgraph's
    relations, which costs what the scene holds: a joiner learns them on its emptied scene, not while the
    room's objects fill it in (two rebuilds: ~0.25 s of a 2,000-object join)."""
    mesh_settings.baseline()
    _baseline("EMPTY", None)
    if "MESH" not in _BASELINES:
        mesh = bpy.data.meshes.new("blendsync-baseline")
        try:
            _baseline("MESH", mesh)
        finally:
            bpy.data.meshes.remove(mesh)


def read(ob: bpy.types.Object, ctx: ReadContext) -> dict[tuple[str, ...], object]:
    """The settings that differ from :func:`baseline`, as items of the ``set`` part."""
    return settings.differing_items(_read_all(ob, ctx), baseline(ob))


def describe(ob: bpy.types.Object, ctx: ReadContext) -> dict[str, object]:
    return _read_all(ob, ctx)


def apply(ob: bpy.types.Object, attr: str, doc: object, ctx: ApplyContext) -> bpy.types.ID:
    """One setting; a deleted key puts back the value of a new object (:func:`baseline`)."""
    if attr == FIELD:
        return _apply_field(ob, None if ctx.deleting else doc, ctx)
    if attr in rigid_bodies.OBJECT_ATTRS:
        return rigid_bodies.apply_object(ob, attr, None if ctx.deleting else doc, ctx)
    if attr == MOTION_PATHS:
        doc = baseline(ob)[MOTION_PATHS] if ctx.deleting else doc
        if isinstance(doc, dict):
            rna.write_changed(ob.animation_visualization.motion_path, doc, ctx.resolve)
        return ob
    if ctx.deleting:
        base = baseline(ob)
        if attr not in base or attr == IMAGE_USER:  # Blender drops the image user with the image's display
            return ob
        doc = base[attr]
    if attr == IMAGE:
        if ob.type != "EMPTY":
            return ob
        image = ctx.resolve(doc) if doc else None
        if doc and image is None:
            return ob  # applied again once the image has arrived
        if image is not None and not isinstance(image, bpy.types.Image):
            raise ValueError(f"an empty's image is a {type(image).__name__}")
        if ob.data != image:
            ob.data = image
        return ob
    if ob.bl_rna.properties.get(attr) is None:
        return ob  # a setting of another Blender version, or of a render engine not registered here
    if attr == IMAGE_USER and ob.image_user is None:
        # Blender gives an empty an image user only while it is drawn as an image, and makes a new one each
        # time it is: applied again once its flag (another setting) has arrived.
        ctx.wait_for("set", ids.get_uuid(ob))
        return ob
    if not structs.write(ob, attr, doc):
        rna.write_changed(ob, {attr: doc}, ctx.resolve)
    if attr in NESTED:
        ob.update_tag()  # written through a nested struct: Blender's API tags nothing
    return ob


def _apply_field(ob: bpy.types.Object, doc: object, ctx: ApplyContext) -> bpy.types.ID:
    if doc is None and ob.field is None:
        return ob  # deleted: no force field, and none here
    if isinstance(doc, dict) and ob.field is None:
        with bpy.context.temp_override(object=ob, active_object=ob):
            bpy.ops.object.forcefield_toggle()  # the only way to give an empty its settings
        if ob.field is None:
            raise ValueError(f"Blender gave {ob.name!r} no force field settings")
    force_fields.write(ob.field, doc, ctx.resolve)
    ob.update_tag()
    return ob
