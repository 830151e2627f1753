"""An object's own settings (viewport display, ray visibility, pass index, locks, an image empty's image...):
each its own key while it differs from what Blender gives a new object of its type (object_settings.py)."""

from __future__ import annotations

import pytest

bpy = pytest.importorskip("bpy", reason="bpy (Blender as a Python module) is not installed")

from mathutils import Matrix  # noqa: E402
from replicas import applied_one_at_a_time, concurrently, edit_batch, replica  # noqa: E402
from scene_builders import link, reset_scene, triangle_mesh  # noqa: E402

from blender_addon import sync  # noqa: E402
from blender_addon.sync.kinds import objects  # noqa: E402
from blender_addon.sync.kinds.base import NO_ACTION  # noqa: E402

pytestmark = pytest.mark.blender


def setting_keys(ob: bpy.types.Object) -> dict[str, object]:
    prefix = sync.make_key("obj", sync.get_uuid(ob), "set") + "/"
    return {
        key[len(prefix) :]: sync.decode_value(value)
        for key, value in sync.serialise_scene().items()
        if key.startswith(prefix)
    }


def test_a_new_object_of_every_type_holds_the_flags_that_are_not_keyed():
    """The first flags (hidden, how an empty and the object are drawn) are keyed only while they differ from
    what Blender gives a new object, the same for every type."""
    reset_scene()
    for kind in sync.kinds.REGISTRY:
        for object_type in kind.object_types:
            data = kind.stub(f"Data-{object_type}", object_type) if kind.stub is not None else None
            ob = link(bpy.data.objects.new(f"New-{object_type}", data))
            assert ob.type == object_type
            flags = {attr: getattr(ob, attr) for attr in objects.SETTINGS if attr != "hide"}
            assert flags == {k: v for k, v in objects.FLAGS_NEW.items() if k != "hide"}, object_type
            assert not ob.hide_get() and objects.FLAGS_NEW["hide"] is False
            assert setting_keys(ob) == {}, object_type


NEW_ARGS = {"textures": ("CLOUDS",), "node_groups": ("GeometryNodeTree",), "images": (4, 4)}
NEW_ARGS |= {"curves": ("CURVE",), "lights": ("POINT",), "lightprobes": ("SPHERE",)}


def test_a_new_datablock_of_every_kind_has_no_key_for_the_parts_every_new_one_holds():
    """``Kind.unkeyed`` names what a new datablock holds (no action, an empty modifier stack...): a new one of
    every kind has no key for those parts."""
    from scene_builders import alembic_file, image_sequence

    from blender_addon.sync.kinds.cache_files import open_cache_file

    reset_scene()
    open_cache_file(alembic_file())
    bpy.data.movieclips.load(image_sequence())
    painted = triangle_mesh()
    painted.materials.append(bpy.data.materials.new("Paint"))
    link(bpy.data.objects.new("Painted", painted))  # a slot, linked to the data as a new object's are
    for kind in sync.kinds.REGISTRY:
        for object_type in kind.object_types:
            link(
                bpy.data.objects.new(object_type, kind.stub(object_type, object_type) if kind.stub else None)
            )
        made = getattr(bpy.data, kind.collection)
        if kind.name != "obj" and hasattr(made, "new"):
            made.new(f"New {kind.name}", *NEW_ARGS.get(kind.collection, ()))
    keys = sync.serialise_scene()
    unkeyed = {kind.name: kind.unkeyed for kind in sync.kinds.REGISTRY if kind.unkeyed}
    held = {key.split("/")[0] for key in keys} & set(unkeyed)
    assert held == set(unkeyed)  # a datablock of every kind that has such parts
    assert [key for key in keys if key.split("/")[2] in unkeyed.get(key.split("/")[0], ())] == []
    assert not [key for key in keys if key.split("/")[2] == "slot"]
    assert sync.held_without_key(sync.make_key("obj", "0" * 32, "modorder")) == sync.encode_value([])
    assert sync.held_without_key(sync.make_key("light", "0" * 32, "anim")) == sync.encode_value(NO_ACTION)
    for keyed in ("obj/{u}/name", "obj/{u}/mod/Bevel", "obj/{u}", "nokind/{u}/anim", "obj/{u}/unknown"):
        assert sync.held_without_key(keyed.format(u="0" * 32)) is None, keyed


def test_a_part_put_back_as_a_new_datablock_holds_it_deletes_its_key_and_every_replica_puts_it_back():
    """An object's rotation, scale, parent, delta transform, action, instancing, modifier and constraint
    stacks' orders and a slot linked to it, a mesh's shape keys, and any datablock's action (a light's, a
    material node tree's) have no key while they are what a new datablock holds: set, they are keyed; put
    back, the key is deleted and a receiver puts them back."""
    reset_scene()
    link(bpy.data.objects.new("Holder", None))
    link(bpy.data.objects.new("Prop", triangle_mesh()))
    link(bpy.data.objects.new("Lamp", bpy.data.lights.new("Lamp", "POINT")))
    bpy.data.objects["Prop"].data.materials.append(bpy.data.materials.new("Skin"))
    bpy.data.actions.new("Walk").use_fake_user = True
    base = sync.serialise_scene()
    tracker = replica(base)

    def change() -> None:
        prop, holder = bpy.data.objects["Prop"], bpy.data.objects["Holder"]
        prop.parent = holder
        prop.rotation_euler, prop.scale = (0.0, 0.5, 0.0), (2.0, 2.0, 2.0)
        prop.delta_location = (0.0, 0.0, 2.0)
        prop.animation_data_create().action = bpy.data.actions["Walk"]
        holder.instance_type = "COLLECTION"
        prop.shape_key_add(name="Basis")
        prop.modifiers.new("Bevel", "BEVEL")
        holder.constraints.new("COPY_LOCATION")
        bpy.data.lights["Lamp"].animation_data_create().action = bpy.data.actions["Walk"]
        bpy.data.materials["Skin"].node_tree.animation_data_create().action = bpy.data.actions["Walk"]
        prop.material_slots[0].link = "OBJECT"
        prop.material_slots[0].material = bpy.data.materials["Skin"]

    changed = edit_batch(tracker, change)
    uuid, mesh = sync.get_uuid(bpy.data.objects["Prop"]), sync.get_uuid(bpy.data.meshes[0])
    parts = {(k.split("/")[0], k.split("/")[2]) for k, v in changed if v is not None}
    assert {
        ("obj", "parent"),
        ("obj", "delta"),
        ("obj", "anim"),
        ("obj", "instance"),
        ("mesh", "shapes"),
        ("obj", "modorder"),
        ("obj", "conorder"),
        ("light", "anim"),
        ("mat", "treeanim"),
        ("obj", "slot"),
        ("obj", "rotation"),
        ("obj", "scale"),
    } <= parts
    after_change = sync.serialise_scene()

    def put_back() -> None:
        prop, holder = bpy.data.objects["Prop"], bpy.data.objects["Holder"]
        prop.parent = None
        prop.rotation_euler, prop.scale = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
        prop.delta_location = (0.0, 0.0, 0.0)
        prop.animation_data.action = None
        holder.instance_type = "NONE"
        prop.shape_key_clear()
        prop.modifiers.clear()
        holder.constraints.clear()
        bpy.data.lights["Lamp"].animation_data.action = None
        bpy.data.materials["Skin"].node_tree.animation_data.action = None
        prop.material_slots[0].link = "DATA"

    batch = edit_batch(tracker, put_back)
    deleted = [k for k, v in batch if v is None]
    holder = sync.get_uuid(bpy.data.objects["Holder"])
    items = {
        tuple(k.split("/")[2:4]) for k in deleted if k.count("/") > 2
    }  # the modifier's, the constraint's
    assert items == {("mod", "Bevel"), ("modset", "Bevel"), ("con", "Copy Location"), ("slot", "0")}
    assert sorted(k for k in deleted if k.count("/") == 2) == sorted(
        [
            sync.make_key("obj", uuid, "parent"),
            sync.make_key("obj", uuid, "rotation"),
            sync.make_key("obj", uuid, "scale"),
            sync.make_key("obj", uuid, "delta"),
            sync.make_key("obj", uuid, "anim"),
            sync.make_key("obj", holder, "instance"),
            sync.make_key("mesh", mesh, "shapes"),
            sync.make_key("obj", uuid, "modorder"),
            sync.make_key("obj", holder, "conorder"),
            sync.make_key("light", sync.get_uuid(bpy.data.lights["Lamp"]), "anim"),
            sync.make_key("mat", sync.get_uuid(bpy.data.materials["Skin"]), "treeanim"),
        ]
    )
    after = sync.scene_hash()
    receiver = replica(after_change)
    prop = bpy.data.objects["Prop"]
    assert prop.parent is not None and prop.data.shape_keys is not None and prop.animation_data.action
    applier = sync.apply_ops(batch, tracker=receiver)
    assert applier.errors == []
    prop = bpy.data.objects["Prop"]
    assert prop.parent is None and tuple(prop.delta_location) == (0.0, 0.0, 0.0)
    assert prop.matrix_basis == Matrix.Identity(4)
    assert prop.animation_data.action is None and prop.data.shape_keys is None
    assert bpy.data.objects["Holder"].instance_type == "NONE" and "Walk" in bpy.data.actions
    assert not prop.modifiers and not bpy.data.objects["Holder"].constraints
    assert bpy.data.lights["Lamp"].animation_data.action is None
    assert bpy.data.materials["Skin"].node_tree.animation_data.action is None
    assert prop.material_slots[0].link == "DATA" and prop.material_slots[0].material.name == "Skin"
    assert sync.scene_hash() == after
    assert receiver.scan() == ({}, [])  # applying it echoes nothing


def test_an_object_made_by_blender_has_no_key_for_a_setting_it_keeps():
    """A new object of each type, made through the API or an operator, keys no setting but what it was made
    with (an image empty's display type): the values Blender gives it differ by type (a light's ray
    visibility and tracking axis) and from RNA's defaults, and keying all sixty settings of every object made
    a join four times slower."""
    reset_scene()
    link(bpy.data.objects.new("Empty", None))
    link(bpy.data.objects.new("Mesh", triangle_mesh()))
    link(bpy.data.objects.new("Lamp", bpy.data.lights.new("Lamp", "SPOT")))
    link(bpy.data.objects.new("Cam", bpy.data.cameras.new("Cam")))
    bpy.ops.mesh.primitive_cube_add()
    bpy.ops.object.light_add(type="AREA")
    bpy.ops.object.camera_add()
    bpy.ops.object.armature_add()
    bpy.ops.curve.primitive_bezier_curve_add()
    bpy.ops.object.empty_add(type="IMAGE")
    assert len(bpy.data.objects) == 10
    for ob in bpy.data.objects:
        image = ob.type == "EMPTY" and ob.empty_display_type == "IMAGE"  # the operator made it so
        assert setting_keys(ob) == ({"empty_display_type": "IMAGE"} if image else {}), ob.name


def settings_scene() -> None:
    """``Prop`` (a mesh) with settings of every sort changed; ``Ref``, an image empty showing ``Plan``."""
    reset_scene()
    lit = bpy.data.collections.new("Lit")
    bpy.context.scene.collection.children.link(lit)
    prop = link(bpy.data.objects.new("Prop", triangle_mesh()), lit)
    prop.color = (0.5, 0.25, 0.125, 0.75)
    prop.show_in_front = prop.show_name = prop.show_axis = prop.show_wire = prop.show_bounds = True
    prop.display_bounds_type = "SPHERE"
    prop.pass_index = 7
    prop.lightgroup = "Key/Fill *"  # pattern characters are data
    prop.is_holdout = True
    prop.visible_camera = prop.visible_shadow = False
    prop.hide_render = prop.hide_select = True
    prop.display_type = "WIRE"
    prop.hide_set(True)  # in the view layer
    prop.hide_probe_volume = True
    prop.lock_location = (True, False, True)
    prop.lock_rotation_w = True
    prop.lock_scale = (False, True, False)
    prop.track_axis, prop.up_axis = "NEG_Z", "Y"
    prop.delta_rotation_quaternion = (0.5, 0.5, 0.5, 0.5)
    prop.shadow_terminator_normal_offset = 0.25
    prop.display.show_shadows = False
    prop.lineart.usage = "EXCLUDE"
    prop.light_linking.receiver_collection = lit
    if getattr(prop, "cycles", None) is not None:
        prop.cycles.use_motion_blur = False
    paths = prop.animation_visualization.motion_path
    paths.type, paths.frame_before, paths.show_frame_numbers = "CURRENT_FRAME", 25, True
    plan = bpy.data.images.new("Plan", 4, 4)
    plan.generated_color = (0.2, 0.4, 0.6, 1.0)
    ref = link(bpy.data.objects.new("Ref", None))
    ref.empty_display_type = "IMAGE"
    ref.data = plan
    ref.empty_image_offset = (-0.25, -0.75)
    ref.use_empty_image_alpha = True
    ref.empty_image_side = "FRONT"
    ref.show_empty_image_orthographic = False
    ref.image_user.frame_offset = 3


def check_settings() -> None:
    prop, ref = bpy.data.objects["Prop"], bpy.data.objects["Ref"]
    assert tuple(prop.color) == (0.5, 0.25, 0.125, 0.75)
    assert prop.show_in_front and prop.show_name and prop.show_axis and prop.show_wire and prop.show_bounds
    assert prop.display_bounds_type == "SPHERE" and prop.pass_index == 7 and prop.lightgroup == "Key/Fill *"
    assert prop.is_holdout and not prop.visible_camera and not prop.visible_shadow and prop.visible_glossy
    assert prop.hide_probe_volume and not prop.hide_probe_sphere
    assert prop.hide_render and prop.hide_select and prop.display_type == "WIRE" and not prop.hide_viewport
    assert prop.hide_get()
    assert tuple(prop.lock_location) == (True, False, True) and prop.lock_rotation_w
    assert tuple(prop.lock_scale) == (False, True, False)
    assert (prop.track_axis, prop.up_axis) == ("NEG_Z", "Y")
    assert tuple(prop.delta_rotation_quaternion) == (0.5, 0.5, 0.5, 0.5)
    assert prop.shadow_terminator_normal_offset == 0.25
    assert not prop.display.show_shadows and prop.lineart.usage == "EXCLUDE"
    assert prop.light_linking.receiver_collection == bpy.data.collections["Lit"]
    if getattr(prop, "cycles", None) is not None:
        assert not prop.cycles.use_motion_blur
    paths = prop.animation_visualization.motion_path
    assert (paths.type, paths.frame_before, paths.show_frame_numbers) == ("CURRENT_FRAME", 25, True)
    assert ref.data == bpy.data.images["Plan"] and ref.empty_display_type == "IMAGE"
    assert tuple(ref.empty_image_offset) == (-0.25, -0.75) and ref.use_empty_image_alpha
    assert ref.empty_image_side == "FRONT" and not ref.show_empty_image_orthographic
    assert ref.image_user.frame_offset == 3


def test_every_sort_of_setting_reaches_a_joiner_in_any_arrival_order():
    settings_scene()
    before = sync.scene_hash()
    ops = list(sync.serialise_scene().items())
    keyed = setting_keys(bpy.data.objects["Prop"])
    assert keyed["pass_index"] == 7 and keyed["light_linking"]["receiver_collection"] is not None
    assert "visible_glossy" not in keyed  # kept at a new object's value: no key
    for order in (ops, ops[::-1]):  # the image and the collection after the objects that use them
        applied_one_at_a_time(order)
        check_settings()
        assert sync.scene_hash() == before


def test_a_setting_put_back_deletes_its_key_and_every_replica_puts_it_back():
    settings_scene()
    base = sync.serialise_scene()
    tracker = replica(base)

    def put_back() -> None:
        prop = bpy.data.objects["Prop"]
        prop.pass_index = 0
        prop.hide_render = False
        prop.display_type = "TEXTURED"
        prop.hide_set(False)
        prop.light_linking.receiver_collection = None
        prop.animation_visualization.motion_path.type = "RANGE"
        prop.animation_visualization.motion_path.frame_before = 10
        prop.animation_visualization.motion_path.show_frame_numbers = False
        bpy.data.objects["Ref"].data = None

    batch = edit_batch(tracker, put_back)
    prop_set = sync.make_key("obj", sync.get_uuid(bpy.data.objects["Prop"]), "set")
    ref_set = sync.make_key("obj", sync.get_uuid(bpy.data.objects["Ref"]), "set")
    assert sorted(batch) == sorted(
        [
            (f"{prop_set}/display_type", None),
            (f"{prop_set}/hide", None),
            (f"{prop_set}/hide_render", None),
            (f"{prop_set}/light_linking", None),
            (f"{prop_set}/motion_paths", None),
            (f"{prop_set}/pass_index", None),
            (f"{ref_set}/data", None),
        ]
    )
    after = sync.scene_hash()
    receiver = replica(base)
    applier = sync.apply_ops(batch, tracker=receiver)
    assert applier.errors == []
    prop = bpy.data.objects["Prop"]
    assert prop.pass_index == 0 and prop.light_linking.receiver_collection is None
    assert not prop.hide_render and prop.display_type == "TEXTURED" and prop.hide_select
    assert not prop.hide_get()
    assert prop.animation_visualization.motion_path.frame_before == 10
    assert bpy.data.objects["Ref"].data is None and prop.is_holdout  # the rest stays
    assert sync.scene_hash() == after
    assert receiver.scan() == ({}, [])  # applying it echoes nothing


def test_two_settings_of_one_object_changed_at_the_same_moment_both_stay():
    def build() -> None:
        link(bpy.data.objects.new("Prop", triangle_mesh()))

    def edit_a() -> None:
        bpy.data.objects["Prop"].color = (1.0, 0.0, 0.0, 1.0)

    def edit_b() -> None:
        bpy.data.objects["Prop"].show_in_front = True
        bpy.data.objects["Prop"].pass_index = 2

    def check() -> None:
        prop = bpy.data.objects["Prop"]
        assert tuple(prop.color) == (1.0, 0.0, 0.0, 1.0) and prop.show_in_front and prop.pass_index == 2

    concurrently(build, edit_a, edit_b, check)


def test_an_image_empty_waits_for_its_image_and_refuses_another_kind():
    settings_scene()
    ops = dict(sync.serialise_scene())
    plan_meta = sync.make_key("img", sync.get_uuid(bpy.data.images["Plan"]), "meta")
    ref_image = sync.make_key("obj", sync.get_uuid(bpy.data.objects["Ref"]), "set", "data")
    lit = sync.get_uuid(bpy.data.collections["Lit"])
    reset_scene()
    applier = sync.Applier()
    applier.apply([(k, v) for k, v in ops.items() if not k.startswith("img/")])
    assert bpy.data.objects["Ref"].data is None and applier.pending_links  # waits for the image
    applier.apply([(k, v) for k, v in ops.items() if k.startswith("img/")])
    assert bpy.data.objects["Ref"].data == bpy.data.images["Plan"] and applier.pending_links == {}
    assert plan_meta in ops
    applier.apply([(ref_image, sync.encode_value(lit))])  # a collection's uuid for the image
    assert bpy.data.objects["Ref"].data == bpy.data.images["Plan"]
    assert [key for key, _ in applier.errors] == [ref_image]


def test_the_largest_integers_and_wrong_types_in_a_setting_are_refused_without_stopping_the_batch():
    """What the wire can carry at its extremes, a string with NUL, a string for a colour: each value is
    Blender's to refuse or keep in range, nothing raises, and the other keys of the batch apply."""
    reset_scene()
    ob = link(bpy.data.objects.new("Prop", None))
    sync.serialise_scene()
    setting = sync.make_key("obj", sync.get_uuid(ob), "set")
    ops = [
        (f"{setting}/pass_index", 2**64 - 1),
        (f"{setting}/instance_faces_scale", -(2**63)),
        (f"{setting}/color", "red"),
        (f"{setting}/lightgroup", "Key\x00Fill"),
        (f"{setting}/track_axis", "NOT_AN_AXIS"),
        (f"{setting}/light_linking", {"receiver_collection": 2**63 - 1}),
        (f"{setting}/show_in_front", True),  # the rest of the batch
    ]
    applier = sync.apply_ops([(key, sync.encode_value(value)) for key, value in ops])
    assert applier.errors == [] and applier.pending_links == {}
    assert ob.show_in_front and tuple(ob.color) == (1.0, 1.0, 1.0, 1.0) and ob.track_axis == "POS_Y"
    assert 0 <= ob.pass_index < 2**31 and ob.lightgroup in ("", "Key")
