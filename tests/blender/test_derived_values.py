"""What animation writes does not travel; what an F-curve that writes nothing leaves in place does."""

from __future__ import annotations

import pytest

bpy = pytest.importorskip("bpy", reason="bpy (Blender as a Python module) is not installed")

from scene_builders import evaluate_scenes, link, reset_scene  # noqa: E402

from blender_addon import sync  # noqa: E402

pytestmark = pytest.mark.blender


def test_a_value_whose_f_curve_has_no_keyframes_travels():
    # Blender evaluates no F-curve without keyframes (nor a generating modifier): the location it animated
    # stays as it was, so it is the object's own value. It was read as animated and never sent, and the
    # receiver kept the location it had.
    ob = link(bpy.data.objects.new("Dancer", None))
    ob.location.x = 5.0
    ob.keyframe_insert("location", index=0, frame=1)
    (fc,) = ob.animation_data.action.layers[0].strips[0].channelbags[0].fcurves
    fc.keyframe_points.remove(fc.keyframe_points[0])
    evaluate_scenes()
    ob.location.x = 2.0
    evaluate_scenes()
    assert ob.location.x == 2.0
    before = sync.scene_hash()
    values = sync.serialise_scene()
    reset_scene()
    applier = sync.apply_ops(list(values.items()))
    assert applier.errors == []
    evaluate_scenes()
    assert bpy.data.objects["Dancer"].location.x == 2.0
    assert sync.scene_hash() == before
