"""Animation and rigs between artists (real Blender processes, a real ``blendsync serve``).

Blender writes animated, driven and constrained values back into the
datablocks on every frame change; those are derived, not edits. One artist
plays the timeline of an animated scene and the room does not move; a
keyframe edit made during playback travels (as the action's f-curve key)
and the other artist evaluates the same animation. A character rigged by one
artist is posed by another, and both evaluate the same deformed mesh.
"""

from __future__ import annotations

import pytest
from anim_builders import KIND_ANIMATED
from test_addon_multiprocess import artists, converge, server, start_room  # noqa: F401 - fixtures

pytestmark = [pytest.mark.blender, pytest.mark.timeout(180)]

BUILD = """
import sys
sys.path.insert(0, "tests/blender")
from scene_builders import build_animated
build_animated(count=5, frames=100)
"""

# A keyframe inserted during playback: Anim2's y at frame 60 becomes 20.
KEY_DURING_PLAYBACK = """
ob = bpy.data.objects["Anim2"]
ob.location.y = 20.0
ob.keyframe_insert("location", index=1, frame=60)
"""

ANIM2_Y_KEYS = (
    "[tuple(k.co) for k in bpy.data.objects['Anim2'].animation_data.action.layers[0].strips[0]"
    ".channelbag(bpy.data.objects['Anim2'].animation_data.action_slot).fcurves.find('location', index=1)"
    ".keyframe_points]"
)


def test_playing_writes_nothing_and_a_keyframe_edit_travels(server, artists):  # noqa: F811
    _, address = server
    ana, ben = artists("ana", "ben")
    ana.call("edit", script=BUILD)
    start_room(address, ana, [ben])
    before = converge([ana, ben])

    # Ana plays 100 frames (frame change, depsgraph flush, sync loop per frame): no room write at all.
    played = ana.call("play", start=1, end=100, timeout=60)
    assert played["batches"] == 0
    after = [ana.call("state"), ben.call("state")]
    assert [s["seq"] for s in after] == [s["seq"] for s in before]
    assert all(s["unacked"] == 0 for s in after)
    # Ben scrubs too: still nothing.
    assert ben.call("play", start=40, end=60, timeout=60)["batches"] == 0

    # A keyframe inserted at frame 50 of a second playback is the one write, and Ben evaluates it.
    played = ana.call("play", start=1, end=100, at={"50": KEY_DURING_PLAYBACK}, timeout=60)
    assert played["batches"] == 1
    ben.call("pump_until_idle", quiet=0.3)
    keys = ben.call("eval", expr=ANIM2_Y_KEYS)["value"]
    assert [60.0, 20.0] in keys, keys
    # Both on one frame (a local choice, sent to nobody): the same evaluated scene.
    for artist in (ana, ben):
        artist.call("edit", script="bpy.context.scene.frame_set(60)\n")
    states = converge([ana, ben])
    assert states[0]["seq"] == after[0]["seq"] + 1
    y = [a.call("eval", expr="bpy.data.objects['Anim2'].location.y")["value"] for a in (ana, ben)]
    assert y == [pytest.approx(20.0), pytest.approx(20.0)]


BUILD_RIG = """
import sys
sys.path.insert(0, "tests/blender")
from scene_builders import build_rig
build_rig()
"""

# Ben poses Ana's character: a bone rotation, the IK target, the IK/FK slider (which drives the IK
# constraint's influence) and a weight.
POSE = """
rig = bpy.data.objects["Char"]
rig.pose.bones["Upper"].rotation_euler = (0.6, 0.1, 0.0)
rig.pose.bones["Hand"]["ik_fk"] = 0.5
bpy.data.objects["HandTarget"].location = (0.5, 1.0, 1.8)
bpy.data.objects["Skin"].vertex_groups["Hand"].add([15], 0.9, "REPLACE")
"""

# Every vertex of the evaluated (deformed) skin, rounded, through the depsgraph.
EVALUATED_SKIN = (
    "[[round(c, 4) for c in v.co] for v in bpy.data.objects['Skin']"
    ".evaluated_get(bpy.context.evaluated_depsgraph_get()).to_mesh().vertices]"
)


def test_a_rig_made_by_one_artist_is_posed_by_another(server, artists):  # noqa: F811
    _, address = server
    ana, ben = artists("ana", "ben")
    ana.call("edit", script=BUILD_RIG)
    rest = ana.call("eval", expr=EVALUATED_SKIN)["value"]
    start_room(address, ana, [ben])
    converge([ana, ben])
    assert ben.call("eval", expr=EVALUATED_SKIN)["value"] == rest

    ben.call("edit", script=POSE)
    converge([ana, ben])
    posed = [a.call("eval", expr=EVALUATED_SKIN)["value"] for a in (ana, ben)]
    assert posed[0] == posed[1]
    assert posed[0] != rest  # the pose deforms the skin
    driven = "bpy.data.objects['Char'].pose.bones['Lower'].constraints['IK'].influence"
    assert [a.call("eval", expr=driven)["value"] for a in (ana, ben)] == [pytest.approx(0.5)] * 2


BUILD_DATA = """
import sys
sys.path.insert(0, "tests/blender")
from anim_builders import build_data_animation
build_data_animation(keyed=False)
"""

ANIMATE_DATA = """
import sys
sys.path.insert(0, "tests/blender")
from anim_builders import key_data_animation
key_data_animation()
"""

# What the data's own animation writes: a light's energy, a camera's lens, a material's value node and
# roughness, a world's colour and background strength.
DATA_VALUES = (
    "[round(v, 4) for v in (bpy.data.lights['Lamp'].energy, bpy.data.cameras['Zoom'].lens,"
    " bpy.data.materials['Glow'].node_tree.nodes['Amount'].outputs[0].default_value,"
    " bpy.data.materials['Glow'].roughness, *bpy.data.worlds['Sunset'].color,"
    " bpy.data.worlds['Sunset'].node_tree.nodes['Background'].inputs['Strength'].default_value)]"
)


def values_at(artist, frame: int) -> list[float]:
    artist.call("edit", script=f"bpy.context.scene.frame_set({frame})\n")
    return artist.call("eval", expr=DATA_VALUES)["value"]


def test_object_data_material_and_world_animation_plays_the_same_for_everyone(server, artists):  # noqa: F811
    _, address = server
    ana, ben, cleo = artists("ana", "ben", "cleo")
    ana.call("edit", script=BUILD_DATA)
    start_room(address, ana, [ben])
    converge([ana, ben])
    # Ben animates Ana's light, camera, material and world; Ana evaluates his animation.
    ben.call("edit", script=ANIMATE_DATA)
    converge([ana, ben])
    frames = (1, 25, 50, 75)
    expected = {frame: values_at(ben, frame) for frame in frames}
    assert expected[1] == [100.0, 20.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]
    assert expected[50] == [1000.0, 80.0, 1.0, 1.0, 1.0, 0.5, 0.25, 3.0]
    # The energy's Cycles modifier repeats frames 1-50; the lens holds its last key.
    assert 100.0 < expected[75][0] < 1000.0 and expected[75][1] == 80.0
    assert {frame: values_at(ana, frame) for frame in frames} == expected
    # Playing it writes nothing, on either side.
    assert ana.call("play", start=1, end=60, timeout=60)["batches"] == 0
    assert ben.call("play", start=1, end=60, timeout=60)["batches"] == 0
    # A late joiner plays the same (all on one frame first: the scene hash reads the animated values).
    for artist in (ana, ben):
        artist.call("edit", script="bpy.context.scene.frame_set(1)\n")
    cleo.call("connect", servers=address)
    cleo.call("join", room="shot")
    converge([ana, ben, cleo])
    assert {frame: values_at(cleo, frame) for frame in frames} == expected


BUILD_KINDS = """
import sys
sys.path.insert(0, "tests/blender")
from anim_builders import build_kind_animation
build_kind_animation()
"""

IMPORT_BUILDERS = 'import sys\nsys.path.insert(0, "tests/blender")\n'

# Ben keys the speaker's volume again on frame 30 (1.0 before) and the curve's bevel depth on frame 45.
KEY_KINDS = """
from anim_builders import key
key(bpy.data.speakers["Horn"], "volume", {30: 0.75})
key(bpy.data.curves["Tube"], "bevel_depth", {45: 0.8})
"""

KIND_VALUES = "__import__('anim_builders').kind_animation_values()"


def kind_values_at(artist, frame: int) -> list:
    artist.call("edit", script=f"bpy.context.scene.frame_set({frame})\n")
    return artist.call("eval", expr=KIND_VALUES)["value"]


def test_the_animation_of_every_kind_plays_the_same_for_everyone_and_playing_sends_nothing(server, artists):  # noqa: F811
    """Actions and NLA tracks of curves, armatures, speakers, the scene, metaballs, lattices, textures,
    particle settings, grease pencil, light probes, volumes, point clouds and hair curves (extras.given):
    made by Ana, evaluated the same by Ben; playing sends nothing on either side; Ben's keyframes travel."""
    _, address = server
    ana, ben = artists("ana", "ben")
    ana.call("edit", script=BUILD_KINDS)
    ben.call("edit", script=IMPORT_BUILDERS)
    start_room(address, ana, [ben])
    converge([ana, ben])
    frames = (1, 12, 30, 45)
    expected = {frame: kind_values_at(ana, frame) for frame in frames}
    assert all(a != b for a, b in zip(expected[1], expected[30], strict=True))  # every value moves
    assert {frame: kind_values_at(ben, frame) for frame in frames} == expected
    assert ana.call("play", start=1, end=60, timeout=60)["batches"] == 0
    assert ben.call("play", start=1, end=60, timeout=60)["batches"] == 0
    ben.call("edit", script=KEY_KINDS)
    converge([ana, ben])
    speaker = KIND_ANIMATED.index(("speakers", "Horn", "volume"))
    tube = KIND_ANIMATED.index(("curves", "Tube", "bevel_depth"))
    at_30, at_45 = kind_values_at(ana, 30), kind_values_at(ana, 45)
    assert at_30[speaker] == 0.75 and at_45[tube] == 0.8
    assert kind_values_at(ben, 30) == at_30 and kind_values_at(ben, 45) == at_45
