"""Attributes a value no longer lists are removed on the receiving side, every one of them."""

from __future__ import annotations

import pytest

bpy = pytest.importorskip("bpy", reason="bpy (Blender as a Python module) is not installed")

from scene_builders import link, reset_scene  # noqa: E402

from blender_addon import sync  # noqa: E402
from blender_addon.sync.kinds.pointclouds import new_pointcloud  # noqa: E402

pytestmark = pytest.mark.blender

NAMES = ["a", "b", "c", "d", "e", "f"]


def _quad_mesh() -> bpy.types.Mesh:
    me = bpy.data.meshes.new("Quad")
    me.from_pydata([(0, 0, 0), (1, 0, 0), (1, 1, 0), (0, 1, 0)], [], [(0, 1, 2, 3)])
    return me


def _pointcloud() -> bpy.types.PointCloud:
    return new_pointcloud(3)


def _hair() -> bpy.types.Curves:
    curves = bpy.data.hair_curves.new("Hair")
    curves.add_curves([2, 3])
    return curves


@pytest.mark.parametrize("make", [_quad_mesh, _pointcloud, _hair], ids=["mesh", "pointcloud", "hair"])
def test_every_attribute_dropped_from_a_value_is_removed(make):
    # A mesh's attributes are one array that each remove shifts: removing from a list taken before the first
    # remove took every other attribute away (and read freed memory once the array shrank).
    reset_scene()
    data = make()
    for name in NAMES:
        data.attributes.new(name, "FLOAT", "POINT")
    link(bpy.data.objects.new("Holder", data))
    bpy.context.view_layer.update()
    tracker = sync.ChangeTracker()
    tracker.scan()
    with_attributes = dict(tracker.values)
    for name in NAMES:
        data.attributes.remove(data.attributes[name])
    changed, deleted = tracker.scan([data])
    assert changed and not deleted

    reset_scene()
    receiver = sync.ChangeTracker()
    applier = sync.apply_ops(list(with_attributes.items()), tracker=receiver)
    assert applier.errors == []
    (replica,) = [d for d in (*bpy.data.meshes, *bpy.data.pointclouds, *bpy.data.hair_curves) if d.users]
    assert {a.name for a in replica.attributes} >= set(NAMES)
    applier = sync.apply_ops(list(changed.items()), tracker=receiver)
    assert applier.errors == []
    assert [a.name for a in replica.attributes if a.name in NAMES] == []


def test_a_colour_attribute_that_is_not_the_render_one_stays_so_on_a_receiver():
    """Blender makes the first colour attribute added the render (default) one; a mesh whose colour
    attribute was made without being the render one (dynamic paint's output) keeps none."""
    reset_scene()
    me = bpy.data.meshes.new("Painted")
    me.from_pydata([(0, 0, 0), (1, 0, 0), (0, 1, 0)], [], [(0, 1, 2)])
    me.color_attributes.new("wet", "BYTE_COLOR", "CORNER")
    me.color_attributes.default_color_name = ""
    link(bpy.data.objects.new("Painted", me))
    values = sync.serialise_scene()
    before = sync.scene_hash()
    reset_scene()
    assert sync.apply_ops(list(values.items())).errors == []
    colors = bpy.data.meshes["Painted"].color_attributes
    assert colors.default_color_name == "" and colors.active_color_name == "wet"
    assert sync.serialise_scene() == values and sync.scene_hash() == before
