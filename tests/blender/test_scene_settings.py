"""A scene's render and look settings (render engine, samples, colour management, output format, units...):
one key per setting of each struct, nested structs written so that what depends on another member lands
(scene_settings.py)."""

from __future__ import annotations

import pytest

bpy = pytest.importorskip("bpy", reason="bpy (Blender as a Python module) is not installed")

from replicas import applied_one_at_a_time, concurrently  # noqa: E402
from scene_builders import link, reset_scene  # noqa: E402

from blender_addon import sync  # noqa: E402

pytestmark = pytest.mark.blender


def render_keys() -> dict[str, object]:
    prefix = sync.make_key("scene", sync.get_uuid(bpy.context.scene), "render") + "/"
    return {
        key[len(prefix) :]: sync.decode_value(value)
        for key, value in sync.serialise_scene().items()
        if key.startswith(prefix)
    }


def light_the_shot() -> None:
    """What a lighter changes, several of them members that only exist for another's value."""
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    if getattr(scene, "cycles", None) is not None:
        scene.cycles.samples = 77
        scene.cycles.use_denoising = False
    scene.eevee.taa_render_samples = 33
    scene.render.film_transparent = True
    scene.render.use_motion_blur = True
    scene.render.motion_blur_shutter = 0.25
    scene.render.filepath = "//renders/shot_*_####"  # pattern characters are data
    settings = scene.render.image_settings
    settings.file_format = "OPEN_EXR"
    settings.color_depth = "32"  # a depth PNG does not have
    settings.exr_codec = "DWAA"
    view = scene.view_settings
    view.view_transform = "Filmic"
    view.look = "High Contrast"  # a look of Filmic only
    view.exposure = 0.5
    view.gamma = 1.25
    view.use_curve_mapping = True  # a grade: the combined curve lifted, a point added to the red one
    view.curve_mapping.curves[0].points[0].location = (0.0, 0.1)
    view.curve_mapping.curves[1].points.new(0.5, 0.6)
    view.curve_mapping.black_level = (0.05, 0.05, 0.05)
    view.curve_mapping.update()
    units = scene.unit_settings
    units.system = "IMPERIAL"
    units.length_unit = "FEET"  # a unit of the imperial system only
    scene.gravity = (0.0, 0.0, -3.7)
    scene.render.use_simplify = True
    scene.render.simplify_subdivision = 2
    scene.audio_volume = 0.5
    shading = scene.display.shading  # the Workbench render's look (a layout's playblasts)
    shading.light = "FLAT"
    shading.color_type = "OBJECT"
    shading.show_cavity = True
    shading.cavity_type = "BOTH"
    shading.show_xray = True
    shading.xray_alpha = 0.25
    shading.single_color = (0.2, 0.4, 0.6)


def check_lighting() -> None:
    scene = bpy.context.scene
    assert scene.render.engine == "CYCLES"
    if getattr(scene, "cycles", None) is not None:
        assert scene.cycles.samples == 77 and not scene.cycles.use_denoising
    assert scene.eevee.taa_render_samples == 33
    assert scene.render.film_transparent and scene.render.use_motion_blur
    assert scene.render.motion_blur_shutter == 0.25
    assert scene.render.filepath == "//renders/shot_*_####"
    settings = scene.render.image_settings
    assert (settings.file_format, settings.color_depth, settings.exr_codec) == ("OPEN_EXR", "32", "DWAA")
    view = scene.view_settings
    assert (view.view_transform, view.look) == ("Filmic", "High Contrast")
    assert view.exposure == 0.5 and view.gamma == 1.25
    curves = view.curve_mapping.curves
    assert view.use_curve_mapping and tuple(curves[0].points[0].location) == pytest.approx((0.0, 0.1))
    assert [c for p in curves[1].points for c in p.location] == pytest.approx([0, 0, 0.5, 0.6, 1, 1])
    assert tuple(view.curve_mapping.black_level) == pytest.approx((0.05, 0.05, 0.05))
    assert (scene.unit_settings.system, scene.unit_settings.length_unit) == ("IMPERIAL", "FEET")
    assert tuple(scene.gravity) == pytest.approx((0.0, 0.0, -3.7))
    assert scene.render.use_simplify and scene.render.simplify_subdivision == 2
    assert scene.audio_volume == 0.5
    shading = scene.display.shading
    assert (shading.light, shading.color_type, shading.cavity_type) == ("FLAT", "OBJECT", "BOTH")
    assert shading.show_cavity and shading.show_xray and shading.xray_alpha == 0.25
    assert tuple(shading.single_color) == pytest.approx((0.2, 0.4, 0.6))


def test_a_lighters_settings_reach_a_joiner_in_any_arrival_order():
    reset_scene()
    light_the_shot()
    before = sync.scene_hash()
    ops = list(sync.serialise_scene().items())
    keys = render_keys()
    assert keys["render/engine"] == "CYCLES" and keys["scene/view_settings"]["look"] == "High Contrast"
    for order in (ops, ops[::-1]):
        applied_one_at_a_time(order)
        check_lighting()
        assert sync.scene_hash() == before


def test_what_belongs_to_one_machine_or_one_artists_playback_has_no_key():
    reset_scene()
    keys = render_keys()
    assert "render/engine" in keys and "scene/view_settings" in keys
    for each_artists in (
        "cycles/device",
        "cycles/debug_use_spatial_splits",
        "render/threads",
        "render/threads_mode",
        "render/use_persistent_data",
        "render/compositor_device",
        "scene/frame_current",
        "scene/use_preview_range",
        "scene/sync_mode",
        "scene/use_audio_scrub",
        "scene/camera",  # the view state's, scene/<u>/view/camera
        "render/fps",  # a key of the first settings, scene/<u>/set/fps
    ):
        assert each_artists not in keys, each_artists
    # What only a 3D view shows of the Workbench's shading (its wireframe colour, pass, compositor)
    assert {"light", "color_type"} <= set(keys["display/shading"])
    assert not {"wireframe_color_type", "render_pass", "aov_name", "use_compositor"} & set(
        keys["display/shading"]
    )


def test_two_render_settings_changed_at_the_same_moment_both_stay():
    def build() -> None:
        bpy.context.scene.render.engine = "CYCLES"

    def edit_a() -> None:
        bpy.context.scene.eevee.taa_render_samples = 12
        bpy.context.scene.render.film_transparent = True

    def edit_b() -> None:
        view = bpy.context.scene.view_settings
        view.view_transform = "Filmic"
        view.look = "Low Contrast"

    def check() -> None:
        scene = bpy.context.scene
        assert scene.eevee.taa_render_samples == 12 and scene.render.film_transparent
        assert (scene.view_settings.view_transform, scene.view_settings.look) == ("Filmic", "Low Contrast")

    concurrently(build, edit_a, edit_b, check)


def test_a_setting_of_an_engine_or_version_unknown_here_is_kept_aside_not_an_error():
    reset_scene()
    ops = dict(sync.serialise_scene())
    prefix = sync.make_key("scene", sync.get_uuid(bpy.context.scene), "render")
    ops[f"{prefix}/someengine/quality"] = sync.encode_value(3)
    ops[f"{prefix}/render/a_setting_of_a_newer_blender"] = sync.encode_value(True)
    ops[f"{prefix}/render/resolution_x"] = sync.encode_value(640)  # a first setting's own key rules it
    ops[f"{prefix}/cycles/device"] = sync.encode_value("GPU")  # each machine's
    reset_scene()
    applier = sync.apply_ops(list(ops.items()))
    assert applier.errors == [] and applier.pending_links == {}
    assert bpy.context.scene.render.resolution_x == 1920
    if getattr(bpy.context.scene, "cycles", None) is not None:
        assert bpy.context.scene.cycles.device == "CPU"


# ---------------------------------------------------------------- timeline markers


def mark_the_shots() -> None:
    scene = bpy.context.scene
    cam = link(bpy.data.objects.new("ShotCam", bpy.data.cameras.new("ShotCam")))
    scene.timeline_markers.new("F_01", frame=1)
    scene.timeline_markers.new("F_01", frame=20)  # Blender lets markers share a name
    scene.timeline_markers.new("Shot/2 *", frame=40).camera = cam  # pattern characters are data


def markers() -> list:
    return sorted(
        (m.name, m.frame, m.camera.name if m.camera else None) for m in bpy.context.scene.timeline_markers
    )


def test_markers_and_the_cameras_they_bind_reach_a_joiner_in_any_arrival_order():
    reset_scene()
    mark_the_shots()
    before = sync.scene_hash()
    ops = list(sync.serialise_scene().items())
    for order in (ops, ops[::-1]):  # the camera after the marker that binds it
        applied_one_at_a_time(order)
        assert markers() == [("F_01", 1, None), ("F_01", 20, None), ("Shot/2 *", 40, "ShotCam")]
        assert sync.scene_hash() == before


def test_markers_of_other_names_changed_at_the_same_moment_all_stay():
    def edit_a() -> None:
        scene = bpy.context.scene
        late = max((m for m in scene.timeline_markers if m.name == "F_01"), key=lambda m: m.frame)
        late.frame = 24
        scene.timeline_markers.remove(next(m for m in scene.timeline_markers if m.name.startswith("Shot")))

    def edit_b() -> None:
        bpy.context.scene.timeline_markers.new("Beat", frame=12)

    def check() -> None:
        assert markers() == [("Beat", 12, None), ("F_01", 1, None), ("F_01", 24, None)]

    concurrently(mark_the_shots, edit_a, edit_b, check)


def test_a_marker_key_that_is_not_markers_is_refused():
    reset_scene()
    mark_the_shots()
    ops = dict(sync.serialise_scene())
    scene = sync.get_uuid(bpy.context.scene)
    mesh = sync.get_uuid(bpy.data.cameras["ShotCam"])  # a datablock that is not an object
    bad = {
        sync.make_key("scene", scene, "marker", "Text"): "F_01",
        sync.make_key("scene", scene, "marker", "Bool"): [[True, None]],
        sync.make_key("scene", scene, "marker", "Data"): [[3, mesh]],
    }
    reset_scene()
    applier = sync.apply_ops([*ops.items(), *((k, sync.encode_value(v)) for k, v in bad.items())])
    assert sorted(key for key, _ in applier.errors) == sorted(bad)
    assert [m[0] for m in markers()] == ["F_01", "F_01", "Shot/2 *"]  # nothing of them made


def test_marker_names_at_their_edges_travel_and_wire_extremes_are_refused_or_kept_in_range():
    """An empty name, the longest Blender keeps (63 bytes; one past is cut by Blender itself) and pattern
    characters round-trip; the largest integers the wire carries, in a marker's frame or a setting, are
    an error for that key or left to Blender's range, and the rest of the batch applies."""
    reset_scene()
    scene = bpy.context.scene
    for name in ("", "x" * 63, "y" * 64, "a/b*%?"):
        scene.timeline_markers.new(name, frame=3)
    assert sorted(len(m.name) for m in scene.timeline_markers) == [0, 6, 63, 63]
    before = sync.scene_hash()
    ops = dict(sync.serialise_scene())
    reset_scene()
    assert sync.apply_ops(list(ops.items())).errors == []
    assert sorted(m.name for m in bpy.context.scene.timeline_markers) == sorted(
        ["", "a/b*%?", "x" * 63, "y" * 63]
    )
    assert sync.scene_hash() == before
    uuid = sync.get_uuid(bpy.context.scene)
    huge = {
        sync.make_key("scene", uuid, "marker", "Far"): [[2**64 - 1, None]],
        sync.make_key("scene", uuid, "marker", "Early"): [[-(2**63), None]],
        sync.make_key("scene", uuid, "render", "render", "resolution_percentage"): 2**64 - 1,
        sync.make_key("scene", uuid, "render", "scene", "view_settings"): {"exposure": -(2**63), "look": 7},
        sync.make_key("scene", uuid, "render", "eevee", "taa_render_samples"): 12,  # the rest of the batch
    }
    applier = sync.apply_ops([(key, sync.encode_value(value)) for key, value in huge.items()])
    assert sorted(key for key, _ in applier.errors) == sorted(k for k in huge if "/marker/" in k)
    scene = bpy.context.scene
    assert "Far" not in {m.name for m in scene.timeline_markers} and scene.eevee.taa_render_samples == 12
    assert 1 <= scene.render.resolution_percentage <= 32767
