"""The sidebar's "Not synchronised here" box: what in the current scene does not travel, and why."""

from __future__ import annotations

import os

import pytest

bpy = pytest.importorskip("bpy", reason="bpy (Blender as a Python module) is not installed")

from scene_builders import (  # noqa: E402
    build_everything,
    edit_mode,
    image_sequence,
    link,
    triangle_mesh,
    write_library,
)
from test_addon_ui import FakeLayout  # noqa: E402

from blender_addon.sync.untravelled import UntravelledReport, find  # noqa: E402

pytestmark = pytest.mark.blender


def _lines() -> list[tuple[str, str, str]]:
    return [(u.subject, u.what, u.why) for u in find(bpy.context.scene)]


def test_a_scene_that_travels_whole_lists_nothing():
    build_everything()
    assert _lines() == []


def test_what_does_not_travel_is_listed_with_its_datablock_and_why():
    fog = bpy.data.volumes.new("Fog")
    fog.is_sequence = True
    link(bpy.data.objects.new("Fog", fog))
    editing = link(bpy.data.objects.new("Editing", triangle_mesh("Editing")))
    path = write_library()
    with bpy.data.libraries.load(path, link=True) as (_source, target):
        target.meshes = ["Rock"]
        target.collections = ["Props"]
    link(bpy.data.objects.new("LocalRock", target.meshes[0]))
    placer = link(bpy.data.objects.new("Placer", None))
    placer.instance_type = "COLLECTION"
    placer.instance_collection = target.collections[0]
    # Pointers into the library: a material slot and a modifier's object.
    with bpy.data.libraries.load(path, link=True) as (_source, target):
        target.materials = ["Stone"]
        target.objects = ["Tree"]
    slotted = link(bpy.data.objects.new("Slotted", triangle_mesh("Slotted")))
    slotted.data.materials.append(target.materials[0])
    slotted.modifiers.new("Array", "ARRAY").offset_object = target.objects[0]
    assert [line[0] for line in _lines()] == ["Volume 'Fog'"]  # the library travels, and so what uses it
    os.remove(path)  # the library's file is gone: it cannot travel any more
    with edit_mode(editing):
        lines = _lines()
    assert ("Volume 'Fog'", "the other files of its sequence", "only the current file travels") in lines
    assert ("Object 'Editing'", "edit mode changes", "they travel when you leave edit mode") in lines
    why = "linked from assets.blend, whose file is missing or too large to send"
    assert ("Object 'LocalRock'", "its linked data", why) in lines
    assert ("Object 'Placer'", "the instanced collection 'Props'", why) in lines
    why = "'Stone' is linked from assets.blend, whose file is missing or too large to send"
    assert ("Object 'Slotted'", "material slot 1", why) in lines
    why = "'Tree' is linked from assets.blend, whose file is missing or too large to send"
    assert ("Object 'Slotted'", "modifier 'Array' offset_object", why) in lines
    assert len(lines) == 6, lines


def test_an_image_that_does_not_travel_is_listed_with_the_material_using_it():
    frames = bpy.data.images.load(image_sequence(count=2), check_existing=False)
    frames.name = "Frames"
    frames.source = "SEQUENCE"
    mat = bpy.data.materials.new("Flicker")
    node = mat.node_tree.nodes.new("ShaderNodeTexImage")
    node.image = frames
    for name in ("Screen", "Other screen"):  # one material, two objects: listed once
        me = triangle_mesh(name)
        me.materials.append(mat)
        link(bpy.data.objects.new(name, me))
    why = "an image sequence does not travel, only single-file and generated images"
    assert _lines() == [("Material 'Flicker'", "image 'Frames' of node 'Image Texture'", why)]
    frames.source = "FILE"
    assert _lines() == []


def test_the_report_walks_again_only_after_its_interval():
    now = [100.0]
    report = UntravelledReport(interval=2.0, clock=lambda: now[0])
    scene = bpy.context.scene
    assert report.get(scene) == [] and report.walks == 1
    fog = bpy.data.volumes.new("Fog")
    fog.is_sequence = True
    link(bpy.data.objects.new("Fog", fog))
    now[0] += 1.0
    assert report.get(scene) == [] and report.walks == 1  # redraws within the interval reuse the answer
    now[0] += 1.0
    assert [u.subject for u in report.get(scene)] == ["Volume 'Fog'"] and report.walks == 2
    other = bpy.data.scenes.new("Other")
    assert report.get(other) == [] and report.walks == 3  # another scene is walked at once


def test_the_box_draws_in_the_sidebar(monkeypatch):
    from blender_addon import ui_untravelled

    monkeypatch.setattr(ui_untravelled, "REPORT", UntravelledReport())
    layout = FakeLayout([])
    ui_untravelled.draw_untravelled(layout, bpy.context)
    assert layout.calls == []
    for i in range(6):
        fog = bpy.data.volumes.new(f"Fog{i}")
        fog.is_sequence = True
        link(bpy.data.objects.new(f"Fog{i}", fog))
    monkeypatch.setattr(ui_untravelled, "REPORT", UntravelledReport())
    layout = FakeLayout([])
    ui_untravelled.draw_untravelled(layout, bpy.context)
    texts = [text for text in layout.texts() if text]  # the box itself has no text
    assert texts[0] == "Not synchronised here (6)"
    assert texts[1] == "Volume 'Fog0': the other files of its sequence (only the current file travels)"
    assert len(texts) == 1 + ui_untravelled.SHOWN
