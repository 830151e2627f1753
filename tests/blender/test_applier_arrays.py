"""Values that make the applier add items to an array it holds pointers into: each pointer is taken again
after the array grows (a pointer taken before points at freed memory)."""

from __future__ import annotations

import pytest

bpy = pytest.importorskip("bpy", reason="bpy (Blender as a Python module) is not installed")

from scene_builders import link, reset_scene  # noqa: E402

from blender_addon import sync  # noqa: E402

pytestmark = pytest.mark.blender


def test_grease_pencil_frames_added_before_a_kept_frame_leave_it_edited():
    # A layer's frames live in a hash map that moves them all when it grows: the kept frame 50, looked up
    # before frames 1..20 were made, was written through a stale pointer (its new keyframe type was lost).
    gp = bpy.data.grease_pencils.new("Sketch")
    layer = gp.layers.new("Lines")
    layer.frames.new(50).drawing.add_strokes([2])
    link(bpy.data.objects.new("Sketch", gp))
    tracker = sync.ChangeTracker()
    tracker.scan()
    base = dict(tracker.values)
    for number in range(1, 21):
        layer.frames.new(number).drawing.add_strokes([1 + number % 3])
    kept = next(f for f in layer.frames if f.frame_number == 50)
    kept.keyframe_type = "BREAKDOWN"
    kept.drawing.add_strokes([3])
    changed, deleted = tracker.scan([gp])
    assert changed and not deleted
    edited_hash = sync.scene_hash()

    reset_scene()
    receiver = sync.ChangeTracker()
    applier = sync.apply_ops(list(base.items()), tracker=receiver)
    applier = sync.apply_ops(list(changed.items()), tracker=receiver, applier=applier)
    assert applier.errors == []
    frames = {f.frame_number: f for f in bpy.data.grease_pencils["Sketch"].layers["Lines"].frames}
    assert sorted(frames) == [*range(1, 21), 50]
    assert frames[50].keyframe_type == "BREAKDOWN"
    assert sync.scene_hash() == edited_hash
