"""What an F-curve holds beside its channel: keyframes and modifiers. Shared by actions (one key per
f-curve, kinds/actions.py) and drivers (a driver's own mapping curve, drivers.py).

Keyframes travel as raw float arrays (``co``, handles) and lists of their
types; modifiers as a list in stack order, each ``{type, props}`` (every
writable setting: restricted range, influence, a Generator's mode, order
and coefficients, a Noise's scale and phase, a Cycles modifier's modes…).
An Envelope's control points do not travel.
"""

from __future__ import annotations

from . import rna
from .arrays import fget, floats, fset
from .codec import pack_f32

MODIFIER_SKIP = ("rna_type", "type", "active", "show_expanded")
# Written first: they decide which other settings exist or how long an array is (a Generator's order).
MODIFIER_FIRST = ("mode", "poly_order", "use_restricted_range", "use_influence")


def read_keyframes(fc) -> dict[str, object]:
    points = fc.keyframe_points
    n = len(points)
    return {
        "co": pack_f32(fget(points, "co", n, 2)),
        "handle_left": pack_f32(fget(points, "handle_left", n, 2)),
        "handle_right": pack_f32(fget(points, "handle_right", n, 2)),
        "interpolation": [p.interpolation for p in points],
        "easing": [p.easing for p in points],
        "handle_left_type": [p.handle_left_type for p in points],
        "handle_right_type": [p.handle_right_type for p in points],
    }


def write_keyframes(fc, keys: dict) -> None:
    n = len(keys["interpolation"])
    points = fc.keyframe_points
    if len(points) != n:
        points.clear()
        points.add(n)
    fset(points, "co", keys["co"])
    for i, point in enumerate(points):
        point.interpolation = keys["interpolation"][i]
        point.easing = keys["easing"][i]
        point.handle_left_type = keys["handle_left_type"][i]
        point.handle_right_type = keys["handle_right_type"][i]
    fset(points, "handle_left", keys["handle_left"])
    fset(points, "handle_right", keys["handle_right"])


def describe_keyframes(fc) -> list:
    points = fc.keyframe_points
    return [[floats(k.co), k.interpolation, floats(k.handle_left), floats(k.handle_right)] for k in points]


def _envelope_points(mod) -> list[list[float]]:
    return [[float(p.frame), float(p.min), float(p.max)] for p in mod.control_points]


def read_modifiers(fc) -> list[dict]:
    """The curve's modifiers in stack order: ``{type, props}`` (they link to no datablock); an Envelope's
    control points as ``points``: ``[frame, min, max]`` in frame order."""
    docs = []
    for mod in fc.modifiers:
        doc: dict = {
            "type": mod.type,
            "props": {
                p.identifier: rna.plain(getattr(mod, p.identifier))
                for p in mod.bl_rna.properties
                if not p.is_readonly and p.type != "POINTER" and p.identifier not in MODIFIER_SKIP
            },
        }
        if mod.type == "ENVELOPE":
            doc["points"] = _envelope_points(mod)
        docs.append(doc)
    return docs


def _write_envelope_points(mod, points: list) -> None:
    """Make the envelope's control points the listed ones, in frame order (one point per frame).

    A point's ``min``/``max`` are set with ``foreach_set``, never through the point: Blender runs the
    modifier's update on a point's property set as if the point were the modifier, reading past it (a
    crash when the bytes there look like a Cycles modifier's curve)."""
    by_frame: dict[float, tuple[float, float]] = {}
    for frame, low, high in points:
        if frame == frame:  # a NaN frame has no place in the order
            by_frame.setdefault(float(frame), (float(low), float(high)))
    wanted = [[frame, low, high] for frame, (low, high) in sorted(by_frame.items())]
    if _envelope_points(mod) == wanted:
        return
    # A point is a pointer into the envelope's array, which every remove reallocates: take the first one
    # afresh each time (pointers taken before a remove point at freed memory).
    while len(mod.control_points):
        mod.control_points.remove(mod.control_points[0])
    for frame, _low, _high in wanted:
        mod.control_points.add(frame)
    mod.control_points.foreach_set("min", [low for _frame, low, _high in wanted])
    mod.control_points.foreach_set("max", [high for _frame, _low, high in wanted])


def write_modifiers(fc, docs: list[dict]) -> None:
    """Make the curve's modifier stack the listed one (made again when the types differ), then settings."""
    if [m.type for m in fc.modifiers] != [d["type"] for d in docs]:
        for mod in list(fc.modifiers):
            fc.modifiers.remove(mod)
        for doc in docs:
            fc.modifiers.new(doc["type"])
    for mod, doc in zip(fc.modifiers, docs, strict=True):
        rna.write_props(mod, doc["props"], lambda uuid: None, first=MODIFIER_FIRST)
        if mod.type == "ENVELOPE":
            _write_envelope_points(mod, doc.get("points", []))
