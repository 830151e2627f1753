"""A movie clip's tracking data, two parts of kind ``clip``: ``tracking`` (the tracking camera's intrinsics
and lens distortion, the tracking and 2D stabilisation settings, the tracking objects with their settings)
and ``track/<object>/<track>`` (one key per track: its settings and markers - frame, position, pattern
corners, search area, muted, keyed - as packed arrays in frame order). Two artists tracking two features of
one clip change two keys; tracks and tracking objects are named (Blender keeps the names unique), and their
order in the clip editor's lists is each artist's (objects travel the camera's first, then by name).

Blender's API removes no track: a receiver told that a track is gone is given a new clip, loaded from the
same files, with the clip's other tracks (the caller puts it in the old one's place). What the API does not
write stays each artist's: the camera solve (reconstructed cameras and 3D bundles), plane tracks and which
tracks the 2D stabilisation uses (docs/addon.md, "Not synchronised yet").
"""

from __future__ import annotations

import array
from collections.abc import Callable

import bpy

from . import moves, rna
from .arrays import fget, iget
from .assign import rename
from .codec import pack_f32, pack_i32, unpack_f32, unpack_i32
from .context import ReadContext
from .tracking_merge import MARKER_FLAGS, MARKER_FLOATS

# The focal length travels in pixels (what Blender stores); millimetres and the principal point in pixels
# are computed from the clip's frame size.
CAMERA_SKIP = ("focal_length", "principal_point_pixels")
STABILIZATION_SKIP = ("active_track_index", "active_rotation_track_index", "show_tracks_expanded")
TRACK_SKIP = ("name", "select", "select_anchor", "select_pattern", "select_search")
OBJECT_SKIP = ("name",)

Props = Callable[..., dict]  # ReadContext.props: (struct, skip=...) -> settings


def plain_props() -> Props:
    """A reading of settings that names no datablock and masks nothing (a copy from one clip to another)."""
    return ReadContext(lambda _id: False, frozenset(), masked=False).props


def _flags(markers, attr: str, count: int) -> bytes:
    buf = array.array("b", [0]) * count
    if count:
        markers.foreach_get(attr, buf)
    return bytes(buf)


def _markers(track) -> dict[str, bytes]:
    markers, count = track.markers, len(track.markers)
    doc = {"frame": pack_i32(iget(markers, "frame", count, 1))}
    doc.update({attr: pack_f32(fget(markers, attr, count, width)) for attr, width in MARKER_FLOATS})
    doc.update({attr: _flags(markers, attr, count) for attr in MARKER_FLAGS})
    return doc


def _track(track, props: Props) -> dict[str, object]:
    return {"props": props(track, skip=TRACK_SKIP), "markers": _markers(track)}


def _objects(clip: bpy.types.MovieClip) -> list:
    """The tracking objects, the camera's first, then by name."""
    objects = list(clip.tracking.objects)
    return sorted(objects, key=lambda obj: (not obj.is_camera, obj.name))


def read_settings(clip: bpy.types.MovieClip, props: Props) -> dict[str, object]:
    """The ``tracking`` part."""
    tracking = clip.tracking
    return {
        "camera": props(tracking.camera, skip=CAMERA_SKIP),
        "settings": props(tracking.settings),
        "stabilization": props(tracking.stabilization, skip=STABILIZATION_SKIP),
        "objects": [
            {"name": obj.name, "camera": obj.is_camera, "props": props(obj, skip=OBJECT_SKIP)}
            for obj in _objects(clip)
        ],
    }


def read_tracks(clip: bpy.types.MovieClip, props: Props) -> dict[tuple[str, str], dict]:
    """The ``track`` part: ``(object name, track name)`` -> the track's document."""
    for obj in _objects(clip):  # a track renamed keeps its struct (sync/moves.py)
        moves.note_names(clip, f"tracks/{obj.name}", {track.as_pointer(): track.name for track in obj.tracks})
    return {
        (obj.name, track.name): _track(track, props)
        for obj in _objects(clip)
        for track in sorted(obj.tracks, key=lambda t: t.name)
    }


def _frames(track) -> list[int]:
    return list(iget(track.markers, "frame", len(track.markers), 1))


def _write_markers(track, doc: dict) -> None:
    frames = list(unpack_i32(doc["frame"]))
    co = unpack_f32(doc["co"])
    if frames != sorted(set(frames)) or len(co) != 2 * len(frames):
        raise ValueError(f"track {track.name!r}: markers out of frame order, of a frame twice or uneven")
    have = set(_frames(track))
    for i, frame in enumerate(frames):  # added first: Blender keeps a track's last marker
        if frame not in have:
            track.markers.insert_frame(frame, co=(co[2 * i], co[2 * i + 1]))
    wanted = set(frames)
    for frame in _frames(track):
        if frame not in wanted and len(track.markers) > 1:
            track.markers.delete_frame(frame)
    if _frames(track) != frames:
        raise ValueError(f"track {track.name!r}: markers at {frames} could not be made")
    markers = track.markers
    for attr, _width in MARKER_FLOATS:
        markers.foreach_set(attr, unpack_f32(doc[attr]))
    for attr in MARKER_FLAGS:
        markers.foreach_set(attr, array.array("b", doc[attr]))


def write_settings(clip: bpy.types.MovieClip, doc: dict, resolve: rna.Resolver) -> None:
    """Write the ``tracking`` part: settings, and the tracking objects named as ``doc`` names them (one it
    does not name is removed with its tracks, whose keys went with it)."""
    docs = doc["objects"]
    if not docs or not docs[0]["camera"] or any(d["camera"] for d in docs[1:]):
        raise ValueError("tracking objects: the camera's must come first, and only once")
    names = [d["name"] for d in docs]
    if not all(isinstance(name, str) for name in names) or len(set(names)) != len(names):
        raise ValueError("tracking objects: names must be unique strings")
    tracking = clip.tracking
    rna.write_changed(tracking.camera, doc["camera"], resolve)
    rna.write_changed(tracking.settings, doc["settings"], resolve)
    rna.write_changed(tracking.stabilization, doc["stabilization"], resolve)
    objects = tracking.objects
    rename(next(obj for obj in objects if obj.is_camera), names[0])
    for obj in [obj for obj in objects if not obj.is_camera and obj.name not in names]:
        objects.remove(obj)
    for name in names[1:]:
        if objects.get(name) is None and objects.new(name).name != name:
            raise ValueError(f"tracking object {name!r} could not be made")
    for obj_doc in docs:
        rna.write_changed(objects[obj_doc["name"]], obj_doc["props"], resolve)


def write_track(clip: bpy.types.MovieClip, item: tuple[str, str], doc: dict, resolve: rna.Resolver) -> bool:
    """Make or update one track; False when its tracking object is not here (yet)."""
    obj = clip.tracking.objects.get(item[0])
    if obj is None:
        return False
    track = obj.tracks.get(item[1])
    if track is None:
        frames = unpack_i32(doc["markers"]["frame"])
        track = obj.tracks.new(name=item[1], frame=frames[0] if len(frames) else 1)
        if track.name != item[1]:
            raise ValueError(f"track {item[1]!r} could not be made")
    rna.write_changed(track, doc["props"], resolve)
    _write_markers(track, doc["markers"])
    return True


def has_track(clip: bpy.types.MovieClip, item: tuple[str, str]) -> bool:
    obj = clip.tracking.objects.get(item[0])
    return obj is not None and obj.tracks.get(item[1]) is not None


def copy(old: bpy.types.MovieClip, new: bpy.types.MovieClip, without: tuple[str, str] | None = None) -> None:
    """Give ``new`` (a clip loaded from other files, or the same files again) ``old``'s tracking data, but
    the track ``without``."""
    props = plain_props()
    write_settings(new, read_settings(old, props), lambda _uuid: None)
    for item, doc in read_tracks(old, props).items():
        if item != without:
            write_track(new, item, doc, lambda _uuid: None)
