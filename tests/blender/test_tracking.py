"""A movie clip's tracking data (sync/tracking.py): round-trips, edits in place, removals Blender's API
cannot make in place (a new clip of the same files), and the merge of two artists' edits."""

from __future__ import annotations

import pytest

bpy = pytest.importorskip("bpy", reason="bpy (Blender as a Python module) is not installed")

from scene_builders import build_movieclip, reset_scene  # noqa: E402

from blender_addon import sync  # noqa: E402
from blender_addon.sync import merges, tracking_merge  # noqa: E402
from blender_addon.sync.codec import pack_i32, unpack_i32  # noqa: E402

pytestmark = pytest.mark.blender


def _key(values: dict[str, bytes], part: str) -> str:
    """The clip's key whose part (and items) end with ``part`` (``tracking``, ``Camera/Corner``...)."""
    (key,) = [
        k
        for k in values
        if k.startswith("clip/")
        and (k.endswith("/tracking") if part == "tracking" else k.endswith(f"/track/{part}"))
    ]
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


def clip_tracks() -> list[str]:
    return [t.name for t in bpy.data.movieclips["Plate"].tracking.tracks]


def test_tracking_travels_with_the_clip():
    build_movieclip()
    source = bpy.data.movieclips["Plate"]
    expected = _tracks(source)
    lens = source.tracking.camera.focal_length_pixels
    values = sync.serialise_scene()
    before = sync.scene_hash()
    doc = sync.decode_value(values[_key(values, "tracking")])
    assert [o["name"] for o in doc["objects"]] == ["Camera", "Car"]
    assert sorted(k.split("/track/")[1] for k in values if "/track/" in k) == [
        "Camera/Antenna",
        "Camera/Corner",
        "Car/Corner",
    ]
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


def test_a_track_of_an_object_not_here_yet_waits_for_it():
    """Keys applied one at a time, the tracks before the settings that make their tracking object."""
    from replicas import applied_one_at_a_time

    build_movieclip()
    values = sync.serialise_scene()
    before = sync.scene_hash()
    tracks = [(k, v) for k, v in values.items() if "/track/" in k]
    applier = applied_one_at_a_time(
        [(k, v) for k, v in values.items() if "/track/" not in k and not k.endswith("/tracking")]
        + tracks
        + [(_key(values, "tracking"), values[_key(values, "tracking")])]
    )
    assert applier.errors == [] and applier.pending_links == {}
    assert sync.scene_hash() == before and sync.serialise_scene() == values


def test_tracking_edits_apply_in_place():
    """Markers moved, added and deleted, a track added, settings changed, an object added: the same clip,
    and only the keys of what changed."""
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
    assert sorted(k.split("/", 2)[2] for k, _ in _changed(values, edited)) == [
        "track/Bike/Wheel",
        "track/Camera/Corner",
        "track/Camera/Window",
        "tracking",
    ]
    sync.apply_ops(_changed(edited, values), applier=applier)  # tracks added since are removed: a new clip
    assert "Window" not in clip_tracks() and sync.serialise_scene() == values
    clip = bpy.data.movieclips["Plate"]
    pointer = clip.as_pointer()
    sync.apply_ops(_changed(values, edited), applier=applier)
    assert applier.errors == []
    assert bpy.data.movieclips["Plate"].as_pointer() == pointer  # only added and changed: in place
    assert sync.scene_hash() == edited_hash and sync.serialise_scene() == edited


def test_a_removed_track_makes_a_new_clip_with_its_users_and_properties():
    build_movieclip()
    bpy.data.movieclips["Plate"]["note"] = "plate one"
    values = sync.serialise_scene()
    reset_scene()
    applier = sync.apply_ops(list(values.items()))
    clip = bpy.data.movieclips["Plate"]
    uuid = clip[sync.UUID_PROP]
    gone = [_key(values, "Camera/Antenna"), _key(values, "Car/Corner")]
    sync.apply_ops([(key, None) for key in gone], applier=applier)
    assert applier.errors == []
    (clip,) = bpy.data.movieclips
    assert clip.name == "Plate" and clip[sync.UUID_PROP] == uuid and clip["note"] == "plate one"
    assert bpy.context.scene.active_clip == clip and clip.frame_start == 10
    assert clip.colorspace_settings.name == "Linear Rec.709"
    assert clip_tracks() == ["Corner"] and [t.name for t in clip.tracking.objects["Car"].tracks] == []
    assert sync.serialise_scene() == {k: v for k, v in values.items() if k not in gone}
    sync.apply_ops([(gone[0], None)], applier=applier)  # gone already: nothing to do
    assert bpy.data.movieclips["Plate"] == clip


def test_new_files_keep_the_tracking_data():
    """A clip whose files change is a new clip: its tracks come along, their keys need not come again."""
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
    ("part", "damage"),
    [
        ("tracking", lambda d: d["objects"].clear()),
        ("tracking", lambda d: d["objects"].reverse()),
        ("tracking", lambda d: d["objects"].append(dict(d["objects"][1]))),
        ("tracking", lambda d: d.pop("camera")),
        ("Camera/Corner", lambda d: d["markers"].update(frame=b"\x01\x00")),
        ("Camera/Corner", lambda d: d["markers"].update(co=b"")),
        (
            "Camera/Corner",
            lambda d: d["markers"].update(frame=pack_i32(list(unpack_i32(d["markers"]["frame"]))[::-1])),
        ),
        ("Camera/Corner", lambda d: d.pop("props")),
    ],
    ids=[
        "no-objects",
        "camera-not-first",
        "an-object-twice",
        "no-camera",
        "bad-frames",
        "short-positions",
        "frames-out-of-order",
        "no-settings",
    ],
)
def test_a_malformed_value_is_refused_by_name(part, damage):
    build_movieclip()
    values = sync.serialise_scene()
    key = _key(values, part)
    reset_scene()
    applier = sync.apply_ops([(k, v) for k, v in values.items() if k != key])
    doc = sync.decode_value(values[key])
    damage(doc)
    sync.apply_ops([(key, sync.encode_value(doc))], applier=applier)
    assert [error[0] for error in applier.errors] == [key]


# ---- two artists' edits of one clip's tracking data (sync/tracking_merge.py, merges.tracking) ------------


def _values(edit=None) -> dict[str, bytes]:
    """The keys of build_movieclip's clip after ``edit(clip)``."""
    reset_scene()
    build_movieclip()
    clip = bpy.data.movieclips["Plate"]
    clip[sync.UUID_PROP] = "0123456789abcdef0123456789abcdef"
    if edit is not None:
        edit(clip)
    return {k: v for k, v in sync.serialise_scene().items() if k.startswith("clip/")}


def _merged(key: str, base: dict, ours: dict, theirs: dict) -> dict | None:
    out = merges.merger(key)(base.get(key), ours.get(key), theirs.get(key))
    return None if out is None else sync.decode_value(out)


def _move(frame: int, co: tuple[float, float]):
    def edit(clip):
        clip.tracking.tracks["Corner"].markers.find_frame(frame).co = co

    return edit


def test_both_artists_markers_and_settings_are_kept():
    base = _values()

    def ours_edit(clip):
        _move(2, (0.5, 0.5))(clip)
        clip.tracking.tracks["Corner"].markers.insert_frame(11, co=(0.9, 0.9))
        clip.tracking.camera.k2 = 0.03
        clip.tracking.objects.new("Bike")
        clip.tracking.objects["Car"].scale = 4.0

    def theirs_edit(clip):
        _move(7, (0.1, 0.1))(clip)
        clip.tracking.tracks["Corner"].markers.delete_frame(3)
        clip.tracking.tracks["Corner"].weight = 0.3
        clip.tracking.camera.k1 = 0.01
        clip.tracking.objects.new("Dog")
        clip.tracking.objects["Car"].keyframe_a = 2

    ours, theirs = _values(ours_edit), _values(theirs_edit)
    corner = _key(base, "Camera/Corner")
    merged = _merged(corner, base, ours, theirs)
    assert merged is not None
    markers = tracking_merge._markers(merged["markers"])
    assert sorted(markers) == [1, 2, 7, 11]  # theirs removed 3, ours added 11
    assert markers[2][0] == pytest.approx((0.5, 0.5)) and markers[7][0] == pytest.approx((0.1, 0.1))
    assert merged["props"]["weight"] == pytest.approx(0.3)
    settings = _merged(_key(base, "tracking"), base, ours, theirs)
    assert settings["camera"]["k1"] == pytest.approx(0.01) and settings["camera"]["k2"] == pytest.approx(0.03)
    assert [o["name"] for o in settings["objects"]] == ["Camera", "Bike", "Car", "Dog"]
    car = settings["objects"][2]["props"]
    assert car["scale"] == pytest.approx(4.0) and car["keyframe_a"] == 2
    # Applied, Blender holds what was merged, and reads it back as it is.
    reset_scene()
    build_movieclip()
    bpy.data.movieclips["Plate"][sync.UUID_PROP] = "0123456789abcdef0123456789abcdef"
    tracking_key = _key(base, "tracking")
    sync.apply_ops([(tracking_key, sync.encode_value(settings)), (corner, sync.encode_value(merged))])
    values = sync.serialise_scene()
    assert sync.decode_value(values[tracking_key]) == settings and sync.decode_value(values[corner]) == merged


def test_the_same_marker_or_setting_changed_by_both_is_theirs():
    base = _values()
    corner, settings = _key(base, "Camera/Corner"), _key(base, "tracking")
    assert _merged(corner, base, _values(_move(2, (0.5, 0.5))), _values(_move(2, (0.2, 0.8)))) is None
    ours = _values(lambda clip: setattr(clip.tracking.camera, "k1", 0.5))
    theirs = _values(lambda clip: setattr(clip.tracking.camera, "k1", -0.5))
    assert _merged(settings, base, ours, theirs) is None
    removed = dict(base)
    del removed[corner]
    assert _merged(corner, base, removed, _values(_move(2, (0.2, 0.8)))) is None  # ours removed it: theirs


@pytest.mark.parametrize(
    ("part", "damage"),
    [
        ("tracking", lambda d: d["objects"].clear()),
        ("tracking", lambda d: d["objects"][0].update(camera=False)),
        ("tracking", lambda d: d.pop("settings")),
        ("tracking", lambda d: d.update(objects="Camera")),
        ("Camera/Corner", lambda d: d["markers"].update(co=b"\0" * 4)),
        ("Camera/Corner", lambda d: d["markers"].update(mute=b"")),
    ],
    ids=["no-objects", "no-camera", "no-settings", "objects-not-a-list", "short-positions", "short-flags"],
)
def test_a_document_this_add_on_does_not_write_is_not_merged(part, damage):
    def ours_edit(clip):
        _move(2, (0.5, 0.5))(clip)
        clip.tracking.camera.k2 = 0.03

    def theirs_edit(clip):
        _move(7, (0.1, 0.1))(clip)
        clip.tracking.camera.k1 = 0.01

    base, ours, theirs = _values(), _values(ours_edit), _values(theirs_edit)
    key = _key(base, part)
    doc = sync.decode_value(ours[key])
    damage(doc)
    ours[key] = sync.encode_value(doc)
    assert _merged(key, base, ours, theirs) is None


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


def test_a_cached_file_split_again_is_not_hashed_again(tmp_path, monkeypatch):
    """Chunks of a file the read cache holds keep their hashes (chunks.pin): a sequence of hundreds of files
    of one length is more than the recent-arrays memory keeps. Once the file changes, it is hashed again."""
    import hashlib
    import os

    from blender_addon.sync import chunks, file_sets

    path = str(tmp_path / "plate.exr")
    with open(path, "wb") as fh:
        fh.write(os.urandom(10 * chunks.CHUNK_BYTES))
    file_sets.clear()
    data = file_sets.read_file(path)
    first = chunks.split(data)
    hashed = []

    class Counting:
        @staticmethod
        def sha256(piece):
            hashed.append(len(piece))
            return hashlib.sha256(piece)

    monkeypatch.setattr(chunks, "hashlib", Counting)
    chunks._recent.clear()  # only the pin can know it
    assert chunks.split(file_sets.read_file(path)) == first
    assert chunks.CHUNK_BYTES not in hashed  # no data chunk hashed again (list nodes are)
    with open(path, "r+b") as fh:
        fh.write(b"x")
    os.utime(path, ns=(5, 5))
    assert chunks.split(file_sets.read_file(path)) != first
    assert hashed.count(chunks.CHUNK_BYTES) == 10  # a new file: hashed whole
    file_sets.clear()
    assert not chunks._pinned


def test_an_object_following_a_track_evaluates_the_same_on_the_receiver():
    """A Follow Track constraint places its object from the track's markers: the same on every side."""
    from scene_builders import evaluate_scenes, link

    build_movieclip()
    # Loading the clip and setting its colour space tag it for a reload, which Blender's depsgraph runs
    # beside the constraint's evaluation that reads the same clip (bpy 5.0.1: a crash in
    # movieclip_get_postprocessed_ibuf in about one run of three). Evaluated before the constraint exists.
    evaluate_scenes()
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


@pytest.mark.parametrize(
    ("obj_name", "track_name"),
    [("Car/Left", "Corner*"), ("**", "50%/a"), ("Ünïcode", "ë" * 31), ("o" * 63, "t" * 63)],
    ids=["slash-and-star", "pattern-and-percent", "unicode", "longest-names"],
)
def test_track_and_object_names_are_data_in_keys(obj_name, track_name):
    """Names with pattern characters, slashes, percent signs, non-ASCII and Blender's longest (63 bytes)
    name their keys' items and come back as they were."""
    build_movieclip()
    clip = bpy.data.movieclips["Plate"]
    obj = clip.tracking.objects.new(obj_name)
    obj.tracks.new(name=track_name, frame=4).markers[0].co = (0.25, 0.75)
    assert (obj.name, obj.tracks[0].name) == (obj_name, track_name)  # Blender kept them whole
    values = sync.serialise_scene()
    before = sync.scene_hash()
    reset_scene()
    assert sync.apply_ops(list(values.items())).errors == []
    track = bpy.data.movieclips["Plate"].tracking.objects[obj_name].tracks[track_name]
    assert tuple(track.markers.find_frame(4).co) == pytest.approx((0.25, 0.75))
    assert sync.scene_hash() == before and sync.serialise_scene() == values
