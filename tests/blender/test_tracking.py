"""A movie clip's tracking data (sync/tracking.py): round-trips, edits in place, and removals Blender's API
cannot make in place (a new clip of the same files)."""

from __future__ import annotations

import pytest

bpy = pytest.importorskip("bpy", reason="bpy (Blender as a Python module) is not installed")

from scene_builders import build_movieclip, reset_scene  # noqa: E402

from blender_addon import sync  # noqa: E402

pytestmark = pytest.mark.blender


def _tracking_key(values: dict[str, bytes]) -> str:
    (key,) = [k for k in values if k.startswith("clip/") and k.endswith("/tracking")]
    return key


def _changed(before: dict[str, bytes], after: dict[str, bytes]) -> list[tuple[str, bytes | None]]:
    ops: list[tuple[str, bytes | None]] = [(k, v) for k, v in after.items() if before.get(k) != v]
    return ops + [(k, None) for k in before if k not in after]


def _tracks(clip) -> dict[str, dict[str, list]]:
    return {
        obj.name: {
            t.name: [(m.frame, tuple(round(c, 5) for c in m.co), m.mute, m.is_keyed) for m in t.markers]
            for t in obj.tracks
        }
        for obj in clip.tracking.objects
    }


def test_tracking_travels_with_the_clip():
    build_movieclip()
    source = bpy.data.movieclips["Plate"]
    expected = _tracks(source)
    lens = source.tracking.camera.focal_length_pixels
    values = sync.serialise_scene()
    before = sync.scene_hash()
    doc = sync.decode_value(values[_tracking_key(values)])
    assert [o["name"] for o in doc["objects"]] == ["Camera", "Car"]
    assert list(doc["objects"][0]["tracks"]) == ["Antenna", "Corner"]  # by name
    reset_scene()
    applier = sync.apply_ops(list(values.items()))
    assert applier.errors == []
    clip = bpy.data.movieclips["Plate"]
    assert _tracks(clip) == expected
    assert clip.tracking.camera.focal_length_pixels == pytest.approx(lens)
    assert clip.tracking.camera.distortion_model == "BROWN"
    corner = clip.tracking.tracks["Corner"]
    assert corner.motion_model == "Affine" and corner.weight == pytest.approx(0.6)
    assert tuple(corner.markers.find_frame(2).pattern_corners[2]) == pytest.approx((0.025, 0.03))
    assert tuple(corner.markers.find_frame(2).search_min) == pytest.approx((-0.08, -0.07))
    assert clip.tracking.objects["Car"].scale == pytest.approx(2.5)
    assert sync.scene_hash() == before
    assert sync.serialise_scene() == values


def test_tracking_edits_apply_in_place():
    """Markers moved, added and deleted, a track added, settings changed, an object added: the same clip."""
    build_movieclip()
    values = sync.serialise_scene()
    reset_scene()
    applier = sync.apply_ops(list(values.items()))
    clip = bpy.data.movieclips["Plate"]
    # The same edits on the sender's side, made here and read back, then the room's value put back.
    corner = clip.tracking.tracks["Corner"]
    corner.markers.find_frame(2).co = (0.5, 0.5)
    corner.markers.delete_frame(3)
    corner.markers.insert_frame(9, co=(0.9, 0.1))
    clip.tracking.tracks.new(name="Window", frame=5)
    clip.tracking.camera.k1 = 0.02
    clip.tracking.objects.new("Bike").tracks.new(name="Wheel", frame=1)
    edited, edited_hash = sync.serialise_scene(), sync.scene_hash()
    sync.apply_ops(list(values.items()), applier=applier)  # tracks added since are removed: a new clip
    assert "Window" not in clip_tracks() and sync.serialise_scene() == values
    clip = bpy.data.movieclips["Plate"]
    pointer = clip.as_pointer()
    sync.apply_ops(_changed(values, edited), applier=applier)
    assert applier.errors == []
    assert bpy.data.movieclips["Plate"].as_pointer() == pointer  # only added and changed: in place
    assert sync.scene_hash() == edited_hash and sync.serialise_scene() == edited


def clip_tracks() -> list[str]:
    return [t.name for t in bpy.data.movieclips["Plate"].tracking.tracks]


def test_a_removed_track_makes_a_new_clip_with_its_users_and_properties():
    build_movieclip()
    bpy.data.movieclips["Plate"]["note"] = "plate one"
    values = sync.serialise_scene()
    reset_scene()
    applier = sync.apply_ops(list(values.items()))
    clip = bpy.data.movieclips["Plate"]
    uuid = clip[sync.UUID_PROP]
    doc = sync.decode_value(values[_tracking_key(values)])
    del doc["objects"][0]["tracks"]["Antenna"]
    del doc["objects"][1]["tracks"]["Corner"]
    sync.apply_ops([(_tracking_key(values), sync.encode_value(doc))], applier=applier)
    assert applier.errors == []
    (clip,) = bpy.data.movieclips
    assert clip.name == "Plate" and clip[sync.UUID_PROP] == uuid and clip["note"] == "plate one"
    assert bpy.context.scene.active_clip == clip and clip.frame_start == 10
    assert clip.colorspace_settings.name == "Linear Rec.709"
    assert clip_tracks() == ["Corner"] and [t.name for t in clip.tracking.objects["Car"].tracks] == []
    assert sync.decode_value(sync.serialise_scene()[_tracking_key(values)]) == doc


def test_new_files_keep_the_tracking_data():
    """A clip whose files change is a new clip: its tracks come along, the tracking key is not sent again."""
    from scene_builders import image_sequence

    build_movieclip()
    values = sync.serialise_scene()
    reset_scene()
    applier = sync.apply_ops(list(values.items()))
    new = bpy.data.movieclips.load(image_sequence(count=2, shade=0.5), check_existing=False)
    old = bpy.data.movieclips["Plate"]
    uuid, tracks = old[sync.UUID_PROP], _tracks(old)
    old.user_remap(new)
    bpy.data.movieclips.remove(old)
    new.name, new[sync.UUID_PROP] = "Plate", uuid
    edited = sync.serialise_scene()  # the sender's new files; its tracks are not on the new clip
    sync.apply_ops(list(values.items()), applier=applier)
    meta = [k for k in edited if k.startswith("clip/") and k.endswith("/meta")]
    sync.apply_ops([(k, edited[k]) for k in meta], applier=applier)
    assert applier.errors == []
    assert _tracks(bpy.data.movieclips["Plate"]) == tracks


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: d["objects"].clear(),
        lambda d: d["objects"].reverse(),
        lambda d: d["objects"][0]["tracks"]["Corner"]["markers"].update(frame=b"\x01\x00"),
        lambda d: d["objects"][0]["tracks"]["Corner"]["markers"].update(co=b""),
        lambda d: d.pop("camera"),
    ],
    ids=["no-objects", "camera-not-first", "bad-frames", "short-positions", "no-camera"],
)
def test_a_malformed_value_is_refused_by_name(damage):
    build_movieclip()
    values = sync.serialise_scene()
    key = _tracking_key(values)
    reset_scene()
    applier = sync.apply_ops([(k, v) for k, v in values.items() if k != key])
    doc = sync.decode_value(values[key])
    damage(doc)
    sync.apply_ops([(key, sync.encode_value(doc))], applier=applier)
    assert [error[0] for error in applier.errors] == [key]


# ---- two artists' edits of one clip's tracking data (sync/tracking_merge.py, merges.tracking) ------------


def _doc(edit=None) -> dict:
    """The tracking document of build_movieclip's clip after ``edit(clip)``."""
    reset_scene()
    build_movieclip()
    clip = bpy.data.movieclips["Plate"]
    if edit is not None:
        edit(clip)
    values = sync.serialise_scene()
    return sync.decode_value(values[_tracking_key(values)])


def _merged(base: dict, ours: dict, theirs: dict) -> dict | None:
    from blender_addon.sync import merges

    merge = merges.merger("clip/0123456789abcdef0123456789abcdef/tracking")
    out = merge(*(sync.encode_value(doc) for doc in (base, ours, theirs)))
    return None if out is None else sync.decode_value(out)


def _frames(doc: dict, obj: int, track: str) -> dict[int, tuple]:
    from blender_addon.sync import tracking_merge

    return tracking_merge._markers(doc["objects"][obj]["tracks"][track]["markers"])


def _move(frame: int, co: tuple[float, float]):
    def edit(clip):
        clip.tracking.tracks["Corner"].markers.find_frame(frame).co = co

    return edit


def test_both_artists_tracks_markers_and_settings_are_kept():
    base = _doc()

    def ours_edit(clip):
        _move(2, (0.5, 0.5))(clip)
        clip.tracking.tracks["Corner"].markers.insert_frame(11, co=(0.9, 0.9))
        clip.tracking.tracks.new(name="Left", frame=1)
        clip.tracking.camera.k2 = 0.03
        clip.tracking.objects.new("Bike")

    def theirs_edit(clip):
        _move(7, (0.1, 0.1))(clip)
        clip.tracking.tracks["Corner"].markers.delete_frame(3)
        clip.tracking.tracks.new(name="Right", frame=1)
        clip.tracking.camera.k1 = 0.01
        clip.tracking.tracks["Antenna"].weight = 0.3
        clip.tracking.objects.new("Dog")

    ours, theirs = _doc(ours_edit), _doc(theirs_edit)
    merged = _merged(base, ours, theirs)
    assert merged is not None
    assert list(merged["objects"][0]["tracks"]) == ["Antenna", "Corner", "Left", "Right"]
    corner = _frames(merged, 0, "Corner")
    assert sorted(corner) == [1, 2, 7, 11]  # theirs removed 3, ours added 11
    assert corner[2][0] == pytest.approx((0.5, 0.5)) and corner[7][0] == pytest.approx((0.1, 0.1))
    assert merged["camera"]["k1"] == pytest.approx(0.01) and merged["camera"]["k2"] == pytest.approx(0.03)
    assert merged["objects"][0]["tracks"]["Antenna"]["props"]["weight"] == pytest.approx(0.3)
    assert [o["name"] for o in merged["objects"]] == ["Camera", "Car", "Dog", "Bike"]
    # Applied, Blender holds what was merged, and reads it back as it is.
    reset_scene()
    build_movieclip()
    values = sync.serialise_scene()
    key = _tracking_key(values)
    sync.apply_ops([(key, sync.encode_value(merged))])
    assert sync.decode_value(sync.serialise_scene()[key]) == merged


def test_the_same_marker_or_setting_changed_by_both_is_theirs():
    base = _doc()
    ours = _doc(_move(2, (0.5, 0.5)))
    theirs = _doc(_move(2, (0.2, 0.8)))
    assert _merged(base, ours, theirs) is None  # nothing of ours is left to keep
    ours = _doc(lambda clip: setattr(clip.tracking.camera, "k1", 0.5))
    theirs = _doc(lambda clip: setattr(clip.tracking.camera, "k1", -0.5))
    assert _merged(base, ours, theirs) is None


def test_a_track_ours_removed_goes_unless_theirs_changed_it():
    base = _doc()
    ours = dict(base, objects=[dict(o) for o in base["objects"]])
    ours["objects"][0] = dict(ours["objects"][0], tracks=dict(ours["objects"][0]["tracks"]))
    del ours["objects"][0]["tracks"]["Antenna"]
    theirs = _doc(lambda clip: setattr(clip.tracking.camera, "k1", 0.01))
    merged = _merged(base, ours, theirs)
    assert merged is not None and list(merged["objects"][0]["tracks"]) == ["Corner"]
    theirs = _doc(lambda clip: setattr(clip.tracking.tracks["Antenna"], "weight", 0.2))
    assert _merged(base, ours, theirs) is None  # they changed it: it stays


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: d["objects"].clear(),
        lambda d: d["objects"][0].update(camera=False),
        lambda d: d["objects"][0]["tracks"]["Corner"]["markers"].update(co=b"\0" * 4),
        lambda d: d["objects"][0]["tracks"]["Corner"]["markers"].update(mute=b""),
        lambda d: d.pop("settings"),
        lambda d: d.update(objects="Camera"),
    ],
    ids=["no-objects", "no-camera", "short-positions", "short-flags", "no-settings", "objects-not-a-list"],
)
def test_a_document_this_add_on_does_not_write_is_not_merged(damage):
    base = _doc()
    ours = _doc(_move(2, (0.5, 0.5)))
    theirs = _doc(_move(7, (0.1, 0.1)))
    damage(ours)
    assert _merged(base, ours, theirs) is None


def test_a_clip_s_files_are_read_again_only_when_they_change(tmp_path, monkeypatch):
    """A tracking edit serialises the clip again: its files are not read and hashed again unless their size
    or modification time changed (sync/file_sets.py)."""
    import os

    from blender_addon.sync import file_sets

    paths = [str(tmp_path / f"shot_{i}.png") for i in range(3)]
    for i, path in enumerate(paths):
        with open(path, "wb") as fh:
            fh.write(bytes([i]) * 1000)
    first = file_sets.read(paths)
    digest = file_sets.digest(first)
    again = file_sets.read(paths)
    assert all(a[1] is b[1] for a, b in zip(first, again, strict=True))  # the very bytes: not read again
    assert file_sets.digest(again) == digest
    with open(paths[1], "wb") as fh:  # same size, new content
        fh.write(b"\xff" * 1000)
    os.utime(paths[1], ns=(1, 1))
    changed = file_sets.read(paths)
    assert changed[1][1] == b"\xff" * 1000 and file_sets.digest(changed) != digest
    assert changed[0][1] is first[0][1]
    monkeypatch.setattr(file_sets, "CACHE_BYTES", 2500)  # two of the three files fit
    os.utime(paths[2], ns=(2, 2))
    file_sets.read(paths)  # the third is read again: the least recently read goes
    assert sum(len(entry[1]) for entry in file_sets._read.values()) <= 2500
    assert set(file_sets._hashes) <= {id(entry[1]) for entry in file_sets._read.values()}
    assert file_sets.digest(file_sets.read(paths)) == file_sets.digest(changed)


def test_an_object_following_a_track_evaluates_the_same_on_the_receiver():
    """A Follow Track constraint places its object from the track's markers: the same on every side."""
    from scene_builders import evaluate_scenes, link

    build_movieclip()
    scene = bpy.context.scene
    camera = link(bpy.data.objects.new("Shot", bpy.data.cameras.new("Shot")))
    camera.location = (0.0, -6.0, 1.0)
    camera.rotation_euler = (1.4, 0.0, 0.0)
    scene.camera = camera
    marker = link(bpy.data.objects.new("Marker", None))
    follow = marker.constraints.new("FOLLOW_TRACK")
    follow.use_active_clip, follow.track, follow.camera = True, "Corner", camera
    follow.depth_object = None
    scene.frame_set(2)
    evaluate_scenes()
    placed = [round(v, 4) for v in marker.matrix_world.translation]
    assert placed != [0.0, 0.0, 0.0]  # the track moved it
    values = sync.serialise_scene()
    reset_scene()
    assert sync.apply_ops(list(values.items())).errors == []
    bpy.context.scene.frame_set(2)
    evaluate_scenes()
    assert [round(v, 4) for v in bpy.data.objects["Marker"].matrix_world.translation] == placed
