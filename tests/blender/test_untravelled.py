"""The sidebar's "Not synchronised here" box: what in the current scene does not travel, and why."""

from __future__ import annotations

import os

import pytest

bpy = pytest.importorskip("bpy", reason="bpy (Blender as a Python module) is not installed")

from detail_builders import build_dynamic_paint, build_physics, build_rigid_bodies, build_udim_image  # noqa: E402
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
    """An image sequence travels (test_image_files.py) until its files are gone."""
    first = image_sequence(count=2)
    frames = bpy.data.images.load(first, check_existing=False)
    frames.name = "Frames"
    frames.source = "SEQUENCE"
    mat = bpy.data.materials.new("Flicker")
    node = mat.node_tree.nodes.new("ShaderNodeTexImage")
    node.image = frames
    for name in ("Screen", "Other screen"):  # one material, two objects: listed once
        me = triangle_mesh(name)
        me.materials.append(mat)
        link(bpy.data.objects.new(name, me))
    assert _lines() == []
    folder = os.path.dirname(first)
    for name in os.listdir(folder):
        os.remove(os.path.join(folder, name))
    why = "an image sequence whose files are missing or over 512 MiB"
    assert _lines() == [("Material 'Flicker'", "image 'Frames' of node 'Image Texture'", why)]


def test_pixels_painted_into_a_tiled_image_are_listed_until_it_is_saved():
    """A single-file image's unsaved pixels travel (test_painted_images.py); a tiled image's do not."""
    build_udim_image()  # in material Head
    skin, mat = bpy.data.images["Skin"], bpy.data.materials["Head"]
    flat = bpy.data.images.new("Flat", 4, 4)
    mat.node_tree.nodes.new("ShaderNodeTexImage").image = flat
    flat.pixels[0] = 0.5  # painted: travels
    assert _lines() == []
    skin.pixels[0] = 0.5  # the first tile painted
    assert skin.is_dirty
    why = "pixels painted into a tiled (UDIM) image: they travel once it is saved"
    assert _lines() == [("Material 'Head'", "image 'Skin' of node 'Image Texture'", why)]
    skin.pack()  # saved into the file: its tiles travel
    assert not skin.is_dirty and _lines() == []


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


def _transition_between(track) -> None:
    """A transition strip between the track's two strips: only the NLA editor's operator makes one."""
    for strip in track.strips:
        strip.select = True
    window = bpy.context.window_manager.windows[0]
    area = window.screen.areas[0]
    kept, area.type = area.type, "NLA_EDITOR"
    try:
        region = next(r for r in area.regions if r.type == "WINDOW")
        with bpy.context.temp_override(window=window, area=area, region=region):
            assert bpy.ops.nla.transition_add() == {"FINISHED"}
    finally:
        area.type = kept


def test_animation_and_surface_data_that_cannot_travel_is_listed():
    # A transition strip and a surface with a second row of points; a strip's animated influence and
    # Envelope modifiers (on an action's F-curve and on a driver's) travel: not listed.
    mover = link(bpy.data.objects.new("Mover", None))
    mover.keyframe_insert("location", index=0, frame=1)
    mover.keyframe_insert("location", index=0, frame=10)
    ad = mover.animation_data
    action = ad.action
    ad.action = None
    track = ad.nla_tracks.new()
    strip = track.strips.new("Walk", 1, action)
    strip.use_animated_influence = True
    track.strips.new("Walk again", 30, action)
    _transition_between(track)
    assert [s.type for s in track.strips] == ["CLIP", "TRANSITION", "CLIP"]
    bag = action.layers[0].strips[0].channelbags[0]
    bag.fcurves[0].modifiers.new("ENVELOPE")
    driven = link(bpy.data.objects.new("Driven", None))
    driven.driver_add("location", 2).modifiers.new("ENVELOPE")
    surface = bpy.data.curves.new("Sheet", "SURFACE")
    surface.splines.new("NURBS").points.add(3)
    link(bpy.data.objects.new("Sheet", surface))
    bpy.ops.surface.primitive_nurbs_surface_surface_add()  # a 4 x 4 patch: rows the API cannot make
    lines = _lines()
    transition = track.strips[1].name
    where = "Blender's API makes only action strips"
    assert ("Object 'Mover'", f"NLA transition strip {transition!r}", where) in lines
    assert [line for line in lines if line[0] == "Object 'Mover'"] == [
        ("Object 'Mover'", f"NLA transition strip {transition!r}", where)
    ]
    assert not [line for line in lines if line[0] == "Object 'Driven'"]
    where = "Blender's API cannot set a surface's V point count: one row of points travels"
    assert ("Surface Curve 'SurfPatch'", "rows of surface points past the first", where) in lines
    assert not [line for line in lines if "Sheet" in line[0]]  # one row: it travels


def test_a_cache_file_whose_file_is_gone_is_listed():
    from scene_builders import build_cache_file

    build_cache_file()
    assert _lines() == []
    os.remove(bpy.path.abspath(bpy.data.cache_files["Rise"].filepath))
    why = "'Rise' reads files that are missing or over 512 MiB"
    assert _lines() == [("Object 'Cached'", "modifier 'Cache' cache file", why)]


def _draw_annotation() -> None:
    """One annotation stroke across the 3D view, drawn as the Annotate tool does."""
    window = bpy.context.window_manager.windows[0]
    area = next(a for a in window.screen.areas if a.type == "VIEW_3D")
    region = next(r for r in area.regions if r.type == "WINDOW")
    points = [
        {"name": "", "location": (0.0, 0.0, 0.0), "mouse": (10 + 10 * i, 10 + 5 * i),
         "mouse_event": (10 + 10 * i, 10 + 5 * i), "pressure": 1.0, "size": 0, "x_tilt": 0.0,
         "y_tilt": 0.0, "time": float(i), "is_start": i == 0}
        for i in range(5)
    ]  # fmt: skip
    with bpy.context.temp_override(window=window, area=area, region=region):
        assert bpy.ops.gpencil.annotate(mode="DRAW", stroke=points, wait_for_input=False) == {"FINISHED"}


def test_a_scenes_annotation_is_listed_once_it_has_strokes():
    notes = bpy.data.annotations.new("Notes")
    bpy.context.scene.annotation = notes
    notes.layers.new("Empty").frames.new(1)
    assert _lines() == []  # nothing drawn: nothing lost
    _draw_annotation()
    why = "Blender's API makes annotation strokes only by drawing them"
    assert _lines() == [("Scene 'Scene'", "the annotation 'Notes'", why)]


def test_physics_whose_settings_do_not_travel_is_listed():
    """Force fields, cloth, soft body, collision, rigid bodies and dynamic paint travel (test_physics.py);
    a fluid does not, and the box says so."""
    build_physics()
    build_rigid_bodies()
    build_dynamic_paint()
    assert _lines() == []
    bpy.data.objects["Floor"].modifiers.new("Smoke", "FLUID")
    assert sorted((line[0], line[1]) for line in _lines()) == [
        ("Object 'Floor'", "the settings of fluid modifier 'Smoke'"),
    ]
