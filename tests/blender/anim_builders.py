"""Scene builders for animation beyond an object's own action (kept apart from scene_builders.py, which
lists them): NLA tracks and strips, animation of object data, materials and worlds, drivers' own
F-curves."""

from __future__ import annotations

import bpy


def keyed_action(name: str, id_type: str, slot_name: str, data_path: str, points: list[float]):
    """An action with one slot and one F-curve on ``data_path`` (index 0) through ``points`` (frame,
    value, ...); returns the action."""
    action = bpy.data.actions.new(name)
    slot = action.slots.new(id_type=id_type, name=slot_name)
    bag = action.layers.new("Layer").strips.new(type="KEYFRAME").channelbag(slot, ensure=True)
    curve = bag.fcurves.new(data_path, index=0)
    curve.keyframe_points.add(len(points) // 2)
    curve.keyframe_points.foreach_set("co", points)
    return action


def build_nla() -> None:
    """NLA: an object with two tracks (one muted) of action strips (repeat, scale, blending, a reversed
    strip) and no active action, and shape keys with a track of their own."""
    ob = bpy.data.objects.new("Dancer", None)
    bpy.context.scene.collection.objects.link(ob)
    walk = keyed_action("Walk", "OBJECT", "Dancer", "location", [1.0, 3.0, 10.0, 2.0])
    wave = walk.copy()
    wave.name = "Wave"
    ad = ob.animation_data_create()
    base = ad.nla_tracks.new()
    base.name = "Base"
    first = base.strips.new("Walk", 1, walk)
    first.repeat = 2.0
    first.blend_out = 2.0
    later = base.strips.new("Walk back", 40, walk)
    later.use_reverse = True
    later.scale = 0.5
    top = ad.nla_tracks.new(prev=base)
    top.name = "Layer on top"
    top.mute = True
    added = top.strips.new("Wave", 5, wave)
    added.blend_type = "ADD"
    added.influence = 0.5
    added.extrapolation = "HOLD_FORWARD"
    me = bpy.data.meshes.new("Mouth")
    me.from_pydata([(0, 0, 0), (1, 0, 0), (0, 1, 0)], [], [(0, 1, 2)])
    bpy.context.scene.collection.objects.link(bpy.data.objects.new("Mouth", me))
    bpy.data.objects["Mouth"].shape_key_add(name="Basis")
    smile = bpy.data.objects["Mouth"].shape_key_add(name="Smile", from_mix=False)
    smile.data[2].co = (0.0, 1.5, 0.0)
    anim = keyed_action("SmileAnim", "KEY", "Key", 'key_blocks["Smile"].value', [1.0, 0.6, 20.0, 1.0])
    me.shape_keys.animation_data_create().nla_tracks.new().strips.new("Smile", 1, anim)


def key(struct, attr: str, frames: dict[int, object]) -> None:
    """Keyframes of ``struct.attr`` as an artist sets them: go to the frame, set the value, insert a key
    (Blender makes the datablock's action and slot); back to the frame the scene was on, which evaluates
    the animation there."""
    scene = bpy.context.scene
    start = scene.frame_current
    for frame, value in frames.items():
        scene.frame_set(frame)
        setattr(struct, attr, value)
        struct.keyframe_insert(attr, frame=frame)
    scene.frame_set(start)


def build_data_animation(keyed: bool = True) -> None:
    """Object data with animation of its own: a light's energy, a camera's lens, a material's colour and
    a value node in its tree, a world's colour and its background strength (``keyed=False``: the same
    scene without keyframes)."""
    scene = bpy.context.scene
    light = bpy.data.lights.new("Lamp", "POINT")
    light.energy = 100.0
    scene.collection.objects.link(bpy.data.objects.new("Lamp", light))
    cam = bpy.data.cameras.new("Zoom")
    scene.collection.objects.link(bpy.data.objects.new("Zoom", cam))
    mat = bpy.data.materials.new("Glow")
    amount = mat.node_tree.nodes.new("ShaderNodeValue")
    amount.name = "Amount"
    mat.node_tree.links.new(amount.outputs[0], mat.node_tree.nodes["Principled BSDF"].inputs["Alpha"])
    me = bpy.data.meshes.new("Lit")
    me.from_pydata([(0, 0, 0), (1, 0, 0), (0, 1, 0)], [], [(0, 1, 2)])
    me.materials.append(mat)
    scene.collection.objects.link(bpy.data.objects.new("Lit", me))
    world = bpy.data.worlds.new("Sunset")
    scene.world = world
    if keyed:
        key_data_animation()


def key_data_animation() -> None:
    """The keyframes of :func:`build_data_animation` (frames 1 and 50; the energy cycles after 50)."""
    light = bpy.data.lights["Lamp"]
    key(light, "energy", {1: 100.0, 50: 1000.0})
    action = light.animation_data.action
    bag = action.layers[0].strips[0].channelbag(light.animation_data.action_slot)
    bag.fcurves.find("energy").modifiers.new("CYCLES")
    action.update_tag()  # as the graph editor does: evaluated with its new modifier
    key(bpy.data.cameras["Zoom"], "lens", {1: 20.0, 50: 80.0})
    mat = bpy.data.materials["Glow"]
    key(mat.node_tree.nodes["Amount"].outputs[0], "default_value", {1: 0.0, 50: 1.0})
    key(mat, "roughness", {1: 0.0, 50: 1.0})
    world = bpy.data.worlds["Sunset"]
    key(world, "color", {1: (0.0, 0.0, 0.0), 50: (1.0, 0.5, 0.25)})
    key(world.node_tree.nodes["Background"].inputs["Strength"], "default_value", {1: 1.0, 50: 3.0})


def build_driver_curves() -> None:
    """Drivers whose own F-curve maps their value: one through keyframes (0 -> 0, 1 -> 10, constant
    beyond), one through a Generator modifier (1 + 2x + 3x^2) beside a Noise modifier restricted to a
    range; both read the custom property ``amount`` (0.5) of the object they drive."""
    ob = bpy.data.objects.new("Mapped", None)
    bpy.context.scene.collection.objects.link(ob)
    ob["amount"] = 0.5
    for index in (0, 1):
        fc = ob.driver_add("location", index)
        fc.driver.type = "SUM"
        var = fc.driver.variables.new()
        var.name = "amount"
        var.targets[0].id = ob
        var.targets[0].data_path = '["amount"]'
    keyed = ob.animation_data.drivers.find("location", index=0)
    keyed.keyframe_points.clear()
    keyed.keyframe_points.add(2)
    keyed.keyframe_points.foreach_set("co", [0.0, 0.0, 1.0, 10.0])
    for point in keyed.keyframe_points:
        point.interpolation = "LINEAR"
    keyed.extrapolation = "CONSTANT"
    generated = ob.animation_data.drivers.find("location", index=1)
    generated.keyframe_points.clear()
    generator = generated.modifiers.new("GENERATOR")
    generator.poly_order = 2
    generator.coefficients = (1.0, 2.0, 3.0)
    noise = generated.modifiers.new("NOISE")
    noise.use_restricted_range = True
    noise.frame_start, noise.frame_end = 500.0, 600.0
    noise.strength = 0.25
