"""Two artists' edits of one movie clip's tracking data (sync/tracking.py), merged by the one overridden
(merges.py). ``clip/<u>/tracking``: the camera's, tracking and stabilisation settings per setting, tracking
objects by name (each one's settings per setting; the camera's first, then by name, as they are read).
``clip/<u>/track/<object>/<track>``: the track's settings per setting and its markers per frame. Where both
changed the same setting or the marker of the same frame, theirs. Two artists tracking one feature over
different frames keep both halves of its path.

No bpy: values in, values out.
"""

from __future__ import annotations

from typing import Any

from .codec import pack_f32, pack_i32, unpack_f32, unpack_i32
from .three_way import settings, three_way

SETTINGS = ("camera", "settings", "stabilization")
# A track's markers as the tracking key packs them (sync/tracking.py reads and writes them by these).
MARKER_FLOATS = (("co", 2), ("pattern_corners", 8), ("search_min", 2), ("search_max", 2))
MARKER_FLAGS = ("mute", "is_keyed")


def _markers(doc: dict) -> dict[int, tuple]:
    """A track's markers as ``{frame: (co, pattern corners, search min, search max, mute, keyed)}``."""
    frames = unpack_i32(doc["frame"])
    count = len(frames)
    columns: list[list] = []
    for attr, width in MARKER_FLOATS:
        values = unpack_f32(doc[attr])
        if len(values) != count * width:
            raise ValueError(f"markers: {attr} holds {len(values)} values for {count} markers")
        columns.append([tuple(values[i * width : (i + 1) * width]) for i in range(count)])
    for attr in MARKER_FLAGS:
        flags = doc[attr]
        if not isinstance(flags, bytes) or len(flags) != count:
            raise ValueError(f"markers: {attr} is not one byte a marker")
        columns.append(list(flags))
    return {frame: tuple(column[i] for column in columns) for i, frame in enumerate(frames)}


def _packed(markers: dict[int, tuple]) -> dict[str, bytes]:
    frames = sorted(markers)
    doc = {"frame": pack_i32(frames)}
    for column, (attr, _width) in enumerate(MARKER_FLOATS):
        doc[attr] = pack_f32([v for frame in frames for v in markers[frame][column]])
    for offset, attr in enumerate(MARKER_FLAGS):
        doc[attr] = bytes(markers[frame][len(MARKER_FLOATS) + offset] for frame in frames)
    return doc


def merge_track(base: dict, ours: dict, theirs: dict) -> dict:
    """One track's document (raises ValueError, KeyError or TypeError for one this add-on does not write)."""
    markers = three_way(_markers(base["markers"]), _markers(ours["markers"]), _markers(theirs["markers"]))
    if not markers:  # Blender keeps a track's last marker: both removing all but different ones
        return theirs
    return {"props": three_way(base["props"], ours["props"], theirs["props"]), "markers": _packed(markers)}


def merge_settings(base: dict[str, Any], ours: dict[str, Any], theirs: dict[str, Any]) -> dict[str, Any]:
    """The ``tracking`` document (raises ValueError, KeyError or TypeError for one this add-on does not
    write)."""
    out = dict(theirs)
    for field in SETTINGS:
        out[field] = three_way(base[field], ours[field], theirs[field])
    cameras = [doc["objects"][0] for doc in (base, ours, theirs)]
    if not all(camera["camera"] is True for camera in cameras):
        raise ValueError("tracking objects: the camera's comes first")
    camera = settings(*cameras)
    others = [{obj["name"]: obj for obj in doc["objects"][1:]} for doc in (base, ours, theirs)]
    objects = three_way(*others, both=settings)
    objects.pop(camera["name"], None)
    out["objects"] = [camera] + [objects[name] for name in sorted(objects)]
    return out
