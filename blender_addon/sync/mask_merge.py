"""Two artists' edits of one mask's layers (``mask/<u>/layers``, kinds/masks.py), merged by the one
overridden (merges.py): per layer by name, each layer's settings per setting, and the splines of a layer
both changed spline by spline, the points of a spline both changed point by point
(three_way.merge_in_place: splines and points have no identity that travels). Two artists rotoscoping
different shapes of one layer, or different points of one shape, keep both.

No bpy: values in, values out.
"""

from __future__ import annotations

from .codec import encode_value
from .three_way import merge_in_place, renamed_in_place, settings, three_way, unique_names


def _split(spline: dict) -> tuple[dict, list[dict]]:
    """A spline's settings and its points (each a map of its slice of every per-point field: packed arrays
    and lists of one entry per point), as kinds/masks.py writes them; ValueError when they do not add up."""
    count = spline.get("count")
    if type(count) is not int or count < 0:
        raise ValueError("mask spline: count must be a natural number")
    arrays = {field: value for field, value in spline.items() if isinstance(value, bytes)}
    lists = {field: value for field, value in spline.items() if isinstance(value, list)}
    widths = {}
    for field, data in arrays.items():
        if (len(data) % count if count else len(data)) != 0:
            raise ValueError(f"mask spline: {field} does not hold {count} points")
        widths[field] = len(data) // count if count else 0
    if any(len(values) != count for values in lists.values()) or (count and not lists):
        # (a count no list bears out would make that many points out of nothing)
        raise ValueError("mask spline: a list does not hold one entry per point")
    points = [
        {
            **{field: data[i * widths[field] : (i + 1) * widths[field]] for field, data in arrays.items()},
            **{field: values[i] for field, values in lists.items()},
        }
        for i in range(count)
    ]
    rest = {field: value for field, value in spline.items() if field not in arrays and field not in lists}
    return rest, points


def _joined(rest: dict, points: list[dict], like: dict) -> dict:
    """A spline from its settings and points, with ``like``'s fields in their order."""
    out = {}
    for field, value in like.items():
        if isinstance(value, bytes):
            out[field] = b"".join(point[field] for point in points)
        elif isinstance(value, list):
            out[field] = [point[field] for point in points]
        else:
            out[field] = rest[field]
    out["count"] = len(points)
    return out


def merge_spline(base: dict, ours: dict, theirs: dict) -> dict:
    """One spline both changed: its settings per setting, its points by content in place, a point both
    changed per field (position, handles, weight, handle types, parent); theirs when the three do not hold
    the same fields."""
    fields = {field: type(value) for field, value in theirs.items()}
    if any({field: type(value) for field, value in doc.items()} != fields for doc in (base, ours)):
        return theirs
    (base_rest, base_points), (our_rest, our_points), (their_rest, their_points) = (
        _split(doc) for doc in (base, ours, theirs)
    )
    points = merge_in_place(base_points, our_points, their_points, identity=encode_value, both=three_way)
    return _joined(three_way(base_rest, our_rest, their_rest), points, theirs)


def _merge_layer(base: dict, ours: dict, theirs: dict) -> dict:
    merged = settings(base, ours, theirs)
    splines = [layer["splines"] for layer in (base, ours, theirs)]
    if splines[1] != splines[0] and splines[2] != splines[0]:
        if not all(isinstance(s, list) and all(isinstance(doc, dict) for doc in s) for s in splines):
            raise ValueError("mask layer: splines must be a list of maps")
        merged["splines"] = merge_in_place(*splines, identity=encode_value, both=merge_spline)
    return merged


def merge_mask_layers(base: list, ours: list, theirs: list) -> list | None:
    """A mask's layers: per layer by name (each one's settings per setting, its splines as above); theirs'
    layers in their order, then those ours added. A layer either edit renamed in place is the base's
    under its new name (its name a setting: theirs where both renamed it), not one removed and another
    added; None when the other edit took that name."""
    names = [unique_names(layers) for layers in (base, ours, theirs)]
    if names[0] is None or names[1] is None or names[2] is None:
        return None
    renames = [renamed_in_place(names[0], names[1]), renamed_in_place(names[0], names[2])]
    if set(renames[0].values()) & set(names[2]) or set(renames[1].values()) & set(names[1]):
        return None
    was = [{now: old for old, now in renamed.items()} for renamed in renames]
    named = [{layer["name"]: layer for layer in base}] + [
        {back.get(layer["name"], layer["name"]): layer for layer in layers}
        for back, layers in zip(was, (ours, theirs), strict=True)
    ]
    out = three_way(*named, both=_merge_layer)  # type: ignore[arg-type]
    order = [was[1].get(n, n) for n in names[2]] + [was[0].get(n, n) for n in names[1]]
    return [out[name] for name in dict.fromkeys(order) if name in out]
