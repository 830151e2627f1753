"""Scene builders for animation beyond an object's own action (kept apart from scene_builders.py, which
lists them): NLA tracks and strips."""

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
