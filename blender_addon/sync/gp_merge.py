"""Two artists' edits of one grease pencil's strokes (``gpencil/<u>/strokes``: every layer's frames, kinds/
grease_pencils.py), merged by the one overridden (merges.py): per layer and frame; a frame both changed is
merged when both only added strokes to it (theirs' new strokes, then ours', after the ones it held), else
theirs. Only when ours kept the layers it started from: the layers are the ``meta`` key's, whose merge may
keep theirs' list, and strokes of a layer that list lacks would wait for it on every receiver. Two artists
sketching on one frame, or on different frames or layers, keep both drawings.

No bpy: values in, values out.
"""

from __future__ import annotations

from .arrays import ATTRIBUTE_LAYOUT
from .codec import pack_i32, unpack_i32
from .three_way import three_way, unique_names

# Bytes per value of each attribute type as kinds/grease_pencils.py packs it (arrays.read_attribute: a byte
# per boolean, four per number of every other type).
VALUE_BYTES = {
    kind: width * (1 if code == "b" else 4) for kind, (width, _key, code) in ATTRIBUTE_LAYOUT.items()
}


def _layer_names(doc: dict) -> list[str]:
    names = unique_names(doc["layers"])
    if names is None:
        raise ValueError("grease pencil layers: names must be unique strings")
    return names


def _frames(layer: dict | None) -> dict[int, dict]:
    frames = {} if layer is None else {frame["frame_number"]: frame for frame in layer["frames"]}
    if not all(type(number) is int for number in frames):
        raise ValueError("grease pencil frames: numbers must be integers")
    return frames


def _appended(base: dict, ours: dict, theirs: dict) -> dict:
    """One frame both changed: theirs, then the strokes ours added, when both only added strokes after the
    ones it held (the same attributes, every value of those strokes unchanged); else theirs."""
    if any("instance_of" in frame for frame in (base, ours, theirs)):
        return theirs
    sizes = [list(unpack_i32(frame["sizes"])) for frame in (base, ours, theirs)]
    held = len(sizes[0])
    if sizes[1][:held] != sizes[0] or sizes[2][:held] != sizes[0] or len(sizes[1]) == held:
        return theirs
    shapes = [
        [(a["name"], a["domain"], a["type"]) for a in frame["attributes"]] for frame in (base, ours, theirs)
    ]
    if shapes[1] != shapes[0] or shapes[2] != shapes[0]:
        return theirs
    counts = {"POINT": sum(sizes[0]), "CURVE": held}
    attributes = []
    for before, mine, their in zip(base["attributes"], ours["attributes"], theirs["attributes"], strict=True):
        kept = counts[before["domain"]] * VALUE_BYTES[before["type"]]
        data = [attr["data"] for attr in (before, mine, their)]
        if not all(isinstance(d, bytes) for d in data) or len(data[0]) != kept:
            return theirs
        if data[1][:kept] != data[0] or data[2][:kept] != data[0]:
            return theirs
        attributes.append(dict(their, data=data[2] + data[1][kept:]))
    return dict(theirs, sizes=pack_i32(sizes[2] + sizes[1][held:]), attributes=attributes)


def merge_strokes(base: dict, ours: dict, theirs: dict) -> dict | None:
    """The merged strokes document, in theirs' layers (None: ours changed the layers)."""
    names = [_layer_names(doc) for doc in (base, ours, theirs)]
    if names[1] != names[0]:
        return None
    layers = [{layer["name"]: layer for layer in doc["layers"]} for doc in (base, ours, theirs)]
    merged = []
    for name in names[2]:
        frames = three_way(*(_frames(found.get(name)) for found in layers), both=_appended)
        sources = {frame.get("instance_of") for frame in frames.values()} - {None}
        if any(source not in frames or "instance_of" in frames[source] for source in sources):
            return None  # an instanced frame whose drawing the other edit removed
        merged.append(dict(layers[2][name], frames=[frames[number] for number in sorted(frames)]))
    return dict(theirs, layers=merged)
