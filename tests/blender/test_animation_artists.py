"""Animation between artists (real Blender processes, a real ``blendsync serve``): playing writes nothing.

Blender writes animated, driven and constrained values back into the
datablocks on every frame change; those are derived, not edits. One artist
plays the timeline of an animated scene and the room does not move; a
keyframe edit made during playback travels (as the action's f-curve key)
and the other artist evaluates the same animation.
"""

from __future__ import annotations

import pytest
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
