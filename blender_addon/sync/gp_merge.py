"""Two artists' edits of one grease pencil's strokes (``gpencil/<u>/strokes``: every layer's frames, kinds/
grease_pencils.py), merged by the one overridden (merges.py): per layer and frame; a frame both changed is
merged stroke by stroke, keeping what each erased, drew or changed (``_merged_frame``). The layers are the
``meta`` key's: strokes listing other layers wait for them on every receiver. So a merge is made only when
ours kept the layers it started from, or when ours' ``meta`` stood (not overridden: its merge may keep
theirs' list) and theirs kept them: an artist adding a layer and drawing in it keeps that drawing. Two
artists sketching on one frame (one erasing, one drawing), or on different frames or layers, keep both
drawings.

No bpy: values in, values out.
"""

from __future__ import annotations

import itertools
from collections import Counter

from .arrays import ATTRIBUTE_LAYOUT
from .codec import pack_f32, pack_i32, unpack_i32
from .three_way import merge_in_place, three_way, unique_names

# Bytes per value of each attribute type as kinds/grease_pencils.py packs it (arrays.read_attribute: a byte
# per boolean, four per number of every other type).
VALUE_BYTES = {
    kind: width * (1 if code == "b" else 4) for kind, (width, _key, code) in ATTRIBUTE_LAYOUT.items()
}


# What Blender draws for a built-in attribute a drawing lacks (its drawing's accessors); every other
# attribute, built-in or not, reads as zeros.
IMPLICIT = {"radius": 0.01, "opacity": 1.0, "fill_opacity": 1.0, "aspect_ratio": 1.0, "u_scale": 1.0}


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


Stroke = tuple[object, ...]  # its point count and its slice of each attribute


def _strokes(frame: dict, shape: list[tuple]) -> list[Stroke] | None:
    """A drawn frame's strokes, each its point count and its slice of every attribute (its identity); None
    when its arrays do not add up as kinds/grease_pencils.py writes them."""
    sizes = list(unpack_i32(frame["sizes"]))
    if any(size < 0 for size in sizes):
        return None
    starts = [0]
    for size in sizes:
        starts.append(starts[-1] + size)
    slices = []
    for attr, (_name, domain, kind) in zip(frame["attributes"], shape, strict=True):
        data, width = attr.get("data"), VALUE_BYTES.get(kind)
        rows = {"POINT": starts[-1], "CURVE": len(sizes)}.get(domain)
        if not isinstance(data, bytes) or width is None or rows is None or len(data) != rows * width:
            return None
        bounds = starts if domain == "POINT" else range(len(sizes) + 1)
        slices.append([data[a * width : b * width] for a, b in itertools.pairwise(bounds)])
    return [(size, *(column[i] for column in slices)) for i, size in enumerate(sizes)]


def _implicit(name: str, kind: str) -> bytes:
    """One value of attribute ``name`` as a drawing without it shows it."""
    width, _key, code = ATTRIBUTE_LAYOUT[kind]
    value = IMPLICIT.get(name, 0.0)
    if code == "b":
        return bytes([int(bool(value))]) * width
    return pack_f32([value] * width) if code == "f" else pack_i32([int(value)] * width)


def _projected(frame: dict, base: dict) -> list[Stroke] | None:
    """``frame``'s strokes in the base's attributes only (what tells a stroke kept from the base)."""
    by_name = {a["name"]: a for a in frame["attributes"]}
    columns = [by_name[a["name"]] for a in base["attributes"]]
    return _strokes(dict(frame, attributes=columns), [(a["name"], a["domain"], a["type"]) for a in columns])


def _grown(frame: dict, base: dict, attr: dict, held: bytes, new: bytes) -> dict:
    """``frame`` with ``attr`` (a name, domain and type): ``held`` for each value of the strokes kept from
    ``base``, ``new`` for the others'."""
    strokes, kept = _projected(frame, base), set(_projected(base, base) or ())
    data = b"".join(
        (held if stroke in kept else new) * (stroke[0] if attr["domain"] == "POINT" else 1)  # type: ignore[operator]
        for stroke in strokes or ()
    )
    return dict(frame, attributes=[*frame["attributes"], dict(attr, data=data)])


def _fill(base: dict, edit: dict, attr: dict) -> bytes:
    """The value ``edit``, which added ``attr``, gave the strokes it kept from ``base``: what most of
    theirs hold (a tool adding an attribute fills the strokes there), else what Blender shows without it."""
    by_name = {a["name"]: a for a in edit["attributes"]}
    strokes, kept = _projected(edit, base), set(_projected(base, base) or ())
    width = VALUE_BYTES[attr["type"]]
    added = dict(edit, attributes=[by_name[attr["name"]]])
    values = _strokes(added, [(attr["name"], attr["domain"], attr["type"])])
    counted: Counter[bytes] = Counter()
    for stroke, value in zip(strokes or (), values or (), strict=False):
        if stroke in kept:
            data = value[1]
            counted.update(data[i : i + width] for i in range(0, len(data), width))  # type: ignore[index]
    return counted.most_common(1)[0][0] if counted else _implicit(attr["name"], attr["type"])


def _alike(base: dict, ours: dict, theirs: dict) -> tuple[dict, dict, dict] | None:
    """The three frames with the attributes either edit added given to all three, by name (as
    kinds/grease_pencils.py reads them); None when an edit removed or retyped an attribute, or both added
    one differently."""
    kinds = [{a["name"]: (a["domain"], a["type"]) for a in f["attributes"]} for f in (base, ours, theirs)]
    if kinds[1] == kinds[0] and kinds[2] == kinds[0]:
        return base, ours, theirs
    added: dict[str, tuple[str, str]] = {}
    for edit in kinds[1:]:
        if any(edit.get(name) != kind for name, kind in kinds[0].items()):
            return None
        for name, kind in edit.items():
            if (name not in kinds[0] and added.setdefault(name, kind) != kind) or kind[1] not in VALUE_BYTES:
                return None
    frames = [base, ours, theirs]
    for name, (domain, kind) in added.items():
        attr = {"name": name, "domain": domain, "type": kind}
        held, new = _fill(base, theirs if name in kinds[2] else ours, attr), _implicit(name, kind)
        frames = [f if name in kinds[i] else _grown(f, base, attr, held, new) for i, f in enumerate(frames)]
    base, ours, theirs = (
        dict(f, attributes=sorted(f["attributes"], key=lambda a: a["name"])) for f in frames
    )
    return base, ours, theirs


def _merged_frame(base: dict, ours: dict, theirs: dict) -> dict:
    """One frame both changed, stroke by stroke (three_way.merge_in_place): strokes either edit erased go,
    those either drew or changed stay where they were in the draw order. A stroke both changed comes out
    in both versions: neither edit is lost, and which one was meant cannot be told. An attribute an edit
    added (a tool's first vertex colours) is given to the other edit's strokes: to those kept from the base
    as the adding edit filled its own, to new ones as Blender showed them without it (``_alike``).
    Theirs when an edit removed an attribute or one of them shows another frame's drawing."""
    if any("instance_of" in frame for frame in (base, ours, theirs)):
        return theirs
    alike = _alike(base, ours, theirs)
    if alike is None:
        return theirs
    original, (base, ours, theirs) = theirs, alike
    shape = [(a["name"], a["domain"], a["type"]) for a in theirs["attributes"]]
    strokes = [_strokes(frame, shape) for frame in (base, ours, theirs)]
    if strokes[0] is None or strokes[1] is None or strokes[2] is None:
        return original
    merged = merge_in_place(*strokes, identity=lambda stroke: stroke)
    sizes = pack_i32([stroke[0] for stroke in merged])  # type: ignore[misc]
    attributes = [
        dict(attr, data=b"".join(stroke[column + 1] for stroke in merged))  # type: ignore[misc]
        for column, attr in enumerate(theirs["attributes"])
    ]
    return dict(theirs, sizes=sizes, attributes=attributes)


def merge_strokes(base: dict, ours: dict, theirs: dict, layers_stand: bool = False) -> dict | None:
    """The merged strokes document, in theirs' layers; None when ours changed the layers, unless
    ``layers_stand`` (ours' ``meta``, which holds the layers, was not overridden: the room has ours' layer
    list) and theirs kept the layers of the base: then in ours' layers, a layer ours added with ours'
    frames, a layer ours renamed with theirs' frames of it under its new name. A layer ours removed whose
    frames theirs changed leaves theirs."""
    names = [_layer_names(doc) for doc in (base, ours, theirs)]
    if names[1] != names[0] and not (layers_stand and names[2] == names[0]):
        return None
    layers = [{layer["name"]: layer for layer in doc["layers"]} for doc in (base, ours, theirs)]
    renamed = {}  # ours' name -> the base's, for layers ours renamed (as many layers, a name changed)
    if len(names[1]) == len(names[0]):
        renamed = {new: old for old, new in zip(names[0], names[1], strict=True) if new not in layers[0]}
    if any(
        name not in layers[1] and name not in renamed.values() and layers[2].get(name) != layer
        for name, layer in layers[0].items()
    ):
        return None  # theirs drew on a layer ours removed
    merged = []
    for name in names[1] if names[1] != names[0] else names[2]:
        was = renamed.get(name, name)
        if was not in layers[0]:
            merged.append(layers[2].get(name) or layers[1][name])  # one of them added it
            continue
        frames = three_way(
            *(_frames(found.get(at)) for found, at in zip(layers, (was, name, was), strict=True)),
            both=_merged_frame,
        )
        sources = {frame.get("instance_of") for frame in frames.values()} - {None}
        if any(source not in frames or "instance_of" in frames[source] for source in sources):
            return None  # an instanced frame whose drawing the other edit removed
        merged.append(dict(layers[1 if was != name else 2][name], frames=[frames[n] for n in sorted(frames)]))
    return dict(theirs, layers=merged)
