"""A movie clip's tracking data (the ``tracking`` part of kind ``clip``): the tracking camera's intrinsics and
lens distortion, the tracking and 2D stabilisation settings, the tracking objects and each one's tracks with
their settings and markers (frame, position, pattern corners, search area, muted, keyed).

Tracks are named (Blender keeps names unique within a tracking object) and travel sorted by name: their
order in the clip editor's list is each artist's. Markers travel as packed arrays in frame order.

Blender's API removes no track: a receiver whose clip holds a track the value lacks is given a new clip,
loaded from the same files, with the value's tracks (the caller puts it in the old one's place). What the
API does not write stays each artist's: the camera solve (reconstructed cameras and 3D bundles), plane
tracks and which tracks the 2D stabilisation uses (docs/addon.md, "Not synchronised yet").
"""

from __future__ import annotations

import array
from collections.abc import Callable

import bpy

from . import derived, rna
from .arrays import fget, iget
from .assign import rename
from .codec import pack_f32, pack_i32, unpack_f32, unpack_i32

# The focal length travels in pixels (what Blender stores); millimetres and the principal point in pixels
# are computed from the clip's frame size.
CAMERA_SKIP = ("focal_length", "principal_point_pixels")
STABILIZATION_SKIP = ("active_track_index", "active_rotation_track_index", "show_tracks_expanded")
TRACK_SKIP = ("name", "select", "select_anchor", "select_pattern", "select_search")
OBJECT_SKIP = ("name",)
MARKER_FLOATS = (("co", 2), ("pattern_corners", 8), ("search_min", 2), ("search_max", 2))
MARKER_FLAGS = ("mute", "is_keyed")

Props = Callable[..., dict]  # ReadContext.props: (struct, skip=...) -> settings


class _NoLinks:
    """A reading of settings that names no datablock and masks nothing (a copy from one clip to another)."""

    link_types: frozenset[str] = frozenset()

    def is_synced(self, id_data: bpy.types.ID) -> bool:
        return False

    def ref(self, id_data: bpy.types.ID | None) -> None:
        return None

    def animated(self, id_data: bpy.types.ID) -> derived.Paths:
        return derived.NOTHING


NO_LINKS = _NoLinks()


def plain_props(struct, skip=(), nested=()) -> dict:
    return rna.read_props(struct, NO_LINKS, skip=skip, nested=nested)


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


def _object(obj, props: Props) -> dict[str, object]:
    tracks = sorted(obj.tracks, key=lambda t: t.name)
    return {
        "name": obj.name,
        "camera": obj.is_camera,
        "props": props(obj, skip=OBJECT_SKIP),
        "tracks": {t.name: _track(t, props) for t in tracks},
    }


def read(clip: bpy.types.MovieClip, props: Props) -> dict[str, object]:
    tracking = clip.tracking
    return {
        "camera": props(tracking.camera, skip=CAMERA_SKIP),
        "settings": props(tracking.settings),
        "stabilization": props(tracking.stabilization, skip=STABILIZATION_SKIP),
        "objects": [_object(obj, props) for obj in tracking.objects],
    }


def _frames(track) -> list[int]:
    return list(iget(track.markers, "frame", len(track.markers), 1))


def _write_markers(track, doc: dict) -> None:
    frames = list(unpack_i32(doc["frame"]))
    co = unpack_f32(doc["co"])
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


def _first_frame(doc: dict) -> int:
    frames = unpack_i32(doc["markers"]["frame"])
    return frames[0] if len(frames) else 1


def _arrange_objects(tracking, docs: list[dict]) -> None:
    """The tracking objects named and ordered as ``docs`` (the camera's first, as Blender keeps it)."""
    objects = tracking.objects
    camera = next(obj for obj in objects if obj.is_camera)
    rename(camera, docs[0]["name"])
    wanted = [doc["name"] for doc in docs[1:]]
    others = [obj for obj in objects if not obj.is_camera]
    keep = 0
    while keep < min(len(others), len(wanted)) and others[keep].name == wanted[keep]:
        keep += 1
    for obj in others[keep:]:
        objects.remove(obj)
    for name in wanted[keep:]:
        made = objects.new(name)
        if made.name != name:
            raise ValueError(f"tracking object {name!r} could not be made")


def write(clip: bpy.types.MovieClip, doc: dict, resolve: rna.Resolver) -> bool:
    """Write ``doc`` (as :func:`read` makes it) into the clip's tracking data; False, with nothing written,
    when the clip holds a track ``doc`` lacks (only a new clip can lose it)."""
    tracking = clip.tracking
    docs = doc["objects"]
    if not docs or not docs[0]["camera"] or any(d["camera"] for d in docs[1:]):
        raise ValueError("tracking objects: the camera's must come first, and only once")
    camera = next(obj for obj in tracking.objects if obj.is_camera)
    if set(t.name for t in camera.tracks) - set(docs[0]["tracks"]):
        return False
    rna.write_changed(tracking.camera, doc["camera"], resolve)
    rna.write_changed(tracking.settings, doc["settings"], resolve)
    rna.write_changed(tracking.stabilization, doc["stabilization"], resolve)
    _arrange_objects(tracking, docs)
    for obj, obj_doc in zip(tracking.objects, docs, strict=True):
        rna.write_changed(obj, obj_doc["props"], resolve)
        have = {t.name for t in obj.tracks}
        if have - set(obj_doc["tracks"]):  # an object other than the camera's: made again, empty
            tracking.objects.remove(obj)
            return write(clip, doc, resolve)
        for name, track_doc in obj_doc["tracks"].items():
            track = obj.tracks.get(name)
            if track is None:
                track = obj.tracks.new(name=name, frame=_first_frame(track_doc))
                if track.name != name:
                    raise ValueError(f"track {name!r} could not be made")
            rna.write_changed(track, track_doc["props"], resolve)
            _write_markers(track, track_doc["markers"])
    return True


def copy(old: bpy.types.MovieClip, new: bpy.types.MovieClip) -> None:
    """Give ``new`` (a clip loaded from other files, or the same files again) ``old``'s tracking data."""
    if not write(new, read(old, plain_props), lambda _uuid: None):
        raise ValueError(f"the tracking data of {old.name!r} could not be copied")
