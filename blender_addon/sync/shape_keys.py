"""Shape keys (a ``Key``) of meshes, lattices and curves, as parts of the owner's kind.

``<kind>/<u>/shapes``: the key blocks in order with their settings and
points; ``shapeanim``: the action animating them (the ``Key``'s);
``shapenla/<track>`` and ``shapenlaorder``: its NLA tracks;
``shapedriver/<data path>/<index>``: its drivers. A key block holds one
point per vertex of a mesh, per point of a lattice, per spline point of a
curve (splines in order); a curve's points also carry tilt and radius, and
its Bézier points their handles. A value whose point count is not the
owner's waits for the part that brings the points (a mesh's ``geometry``, a
lattice's ``meta`` with its size, a curve's ``splines``).
"""

from __future__ import annotations

from collections.abc import Callable

import bpy

from . import animation, drivers, ids, nla, rna
from .arrays import fget, floats, fset
from .assign import rename, set_changed
from .codec import pack_f32, unpack_f32
from .context import ApplyContext, ReadContext
from .replacing import carry_animation

SHAPE_KEY_PROPS = ("slider_min", "slider_max", "value", "vertex_group", "interpolation", "mute", "lock_shape")
HANDLES = ("handle_left", "handle_right")


def _is_curve(owner: bpy.types.ID) -> bool:
    return isinstance(owner, bpy.types.Curve)


def point_counts(owner: bpy.types.ID) -> tuple[int, int]:
    """(points, Bézier points) a key block of ``owner`` holds."""
    if isinstance(owner, bpy.types.Mesh):
        return len(owner.vertices), 0
    if isinstance(owner, bpy.types.Lattice):
        return len(owner.points), 0
    total = bezier = 0
    for spline in owner.splines:
        if spline.type == "BEZIER":
            bezier += len(spline.bezier_points)
        else:
            total += len(spline.points)
    return total + bezier, bezier


def _bezier_points(kb) -> list:
    return [p for p in kb.data if isinstance(p, bpy.types.ShapeKeyBezierPoint)]


# ---------------------------------------------------------------- read


def read_blocks(key: bpy.types.Key | None, ctx: ReadContext) -> dict[str, object] | None:
    """Settings per key block, points as packed f32; values that the Key's animation or drivers write are
    None (derived.py)."""
    if key is None or not len(key.key_blocks):
        return None
    curve = _is_curve(key.user)
    blocks = []
    for kb in key.key_blocks:
        n = len(kb.data)
        doc: dict[str, object] = {"name": kb.name}
        doc.update({attr: ctx.masked(kb, attr, rna.plain(getattr(kb, attr))) for attr in SHAPE_KEY_PROPS})
        doc["relative_key"] = kb.relative_key.name if kb.relative_key is not None else None
        doc["co"] = pack_f32(fget(kb.data, "co", n, 3))
        if curve:
            doc["tilt"] = pack_f32(fget(kb.data, "tilt", n, 1))
            doc["radius"] = pack_f32(fget(kb.data, "radius", n, 1))
            bezier = _bezier_points(kb)
            for attr in HANDLES:
                doc[attr] = pack_f32([c for p in bezier for c in getattr(p, attr)])
        blocks.append(doc)
    return {
        "use_relative": key.use_relative,
        "eval_time": ctx.masked(key, "eval_time", float(key.eval_time)),
        "blocks": blocks,
    }


def read(owner: bpy.types.ID, ctx: ReadContext) -> dict[str, object]:
    """The owner's shape key parts: ``shapes``, ``shapeanim``, ``shapenla`` and ``shapenlaorder``,
    ``shapedriver``."""
    key = owner.shape_keys
    return {
        "shapes": read_blocks(key, ctx),
        "shapeanim": animation.read(key, ctx),
        **nla.read(key, ctx, "shapenla"),
        "shapedriver": drivers.items(key, ctx),
    }


def describe(owner: bpy.types.ID, ctx: ReadContext) -> dict[str, object]:
    key = owner.shape_keys
    shapes = None
    if key is not None and len(key.key_blocks):
        curve = _is_curve(owner)
        blocks = []
        for kb in key.key_blocks:
            points = [floats(d.co) for d in kb.data]
            if curve:
                points = [[*floats(d.co), d.tilt, d.radius] for d in kb.data]
                points += [floats(getattr(p, attr)) for p in _bezier_points(kb) for attr in HANDLES]
            blocks.append(
                [
                    kb.name,
                    [rna.plain(getattr(kb, attr)) for attr in SHAPE_KEY_PROPS],
                    kb.relative_key.name if kb.relative_key is not None else None,
                    points,
                ]
            )
        shapes = {"use_relative": key.use_relative, "eval_time": key.eval_time, "blocks": blocks}
    return {
        "shapes": shapes,
        "shapeanim": animation.describe(key, ctx),
        "shape_nla": nla.describe(key),
        "shape_drivers": drivers.describe(key),
    }


# ---------------------------------------------------------------- apply


def with_temp_object(data: bpy.types.ID, action: Callable[[bpy.types.Object], None]) -> None:
    """Run ``action`` on a throw-away object using ``data`` (shape key operations live on objects)."""
    ob = bpy.data.objects.new("blendsync-temp", data)
    try:
        action(ob)
    finally:
        bpy.data.objects.remove(ob)


def clear(owner: bpy.types.ID) -> None:
    if owner.shape_keys is not None:
        with_temp_object(owner, lambda ob: ob.shape_key_clear())


def _make_blocks(owner: bpy.types.ID, names: list[str]) -> None:
    """Make the key blocks again (Blender's API neither moves nor resizes one). The ``Key`` is made anew, so
    its action, NLA tracks and drivers, which travel on keys of their own, are carried over from a copy."""
    old = owner.shape_keys
    holder = old.copy() if old is not None and old.animation_data is not None else None

    def make(ob: bpy.types.Object) -> None:
        ob.shape_key_clear()
        for name in names:
            kb = ob.shape_key_add(name=name, from_mix=False)
            rename(kb, name)

    try:
        with_temp_object(owner, make)
        if holder is not None:
            carry_animation(holder, owner.shape_keys)
            for fc in owner.shape_keys.animation_data.drivers:
                fc.driver.is_valid = True
    finally:
        if holder is not None:
            bpy.data.batch_remove([holder])


def _write_points(kb, doc: dict, curve: bool) -> None:
    fset(kb.data, "co", doc["co"])
    if not curve:
        return
    fset(kb.data, "tilt", doc["tilt"])
    fset(kb.data, "radius", doc["radius"])
    bezier = _bezier_points(kb)
    for attr in HANDLES:
        values = unpack_f32(doc[attr])
        for i, point in enumerate(bezier):
            setattr(point, attr, values[3 * i : 3 * i + 3])


def _fits(doc: dict, points: int, bezier: int, curve: bool) -> bool:
    if len(doc["co"]) != 12 * points:
        return False
    return not curve or all(len(doc.get(attr, b"")) == 12 * bezier for attr in HANDLES)


def apply_blocks(owner: bpy.types.ID, doc: dict | None, ctx: ApplyContext, points_part: str) -> bpy.types.ID:
    if doc is None:
        clear(owner)
        return owner
    points, bezier = point_counts(owner)
    curve = _is_curve(owner)
    blocks = doc["blocks"]
    if not all(_fits(b, points, bezier, curve) for b in blocks):
        # The points (a mesh's vertices, a lattice's size, a curve's splines) have not arrived: again then.
        ctx.wait_for(points_part, ids.get_uuid(owner))
        return owner
    key = owner.shape_keys
    current = [(kb.name, len(kb.data)) for kb in key.key_blocks] if key is not None else []
    if current != [(b["name"], points) for b in blocks]:
        _make_blocks(owner, [b["name"] for b in blocks])
        key = owner.shape_keys
    set_changed(key, "use_relative", doc["use_relative"])
    set_changed(key, "eval_time", doc["eval_time"])
    for kb, b in zip(key.key_blocks, blocks, strict=True):
        for attr in SHAPE_KEY_PROPS:
            set_changed(kb, attr, b[attr])
        if kb.slider_min != b["slider_min"]:  # refused while above the old maximum
            set_changed(kb, "slider_min", b["slider_min"])
        set_changed(kb, "value", b["value"])
        relative = key.key_blocks.get(b["relative_key"]) if b["relative_key"] else None
        if relative is not None and kb.relative_key != relative:
            kb.relative_key = relative
        _write_points(kb, b, curve)
    owner.update_tag()
    return owner


def apply_anim(owner: bpy.types.ID, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    """``<kind>/<u>/shapeanim``: the action animating the shape keys (their ``Key``)."""
    if owner.shape_keys is None:
        if doc["action"] is not None:
            ctx.wait_for("shapes", ids.get_uuid(owner))
        return owner
    animation.apply(owner.shape_keys, doc, ctx)
    return owner


def parts(points_part: str) -> dict[str, object]:
    """The shape key parts of a kind whose points arrive with part ``points_part``."""

    def apply_shapes(owner: bpy.types.ID, doc: dict | None, ctx: ApplyContext) -> bpy.types.ID:
        return apply_blocks(owner, doc, ctx, points_part)

    def key_of(owner: bpy.types.ID) -> bpy.types.Key | None:
        return owner.shape_keys

    return {
        "shapes": apply_shapes,
        "shapeanim": apply_anim,
        **nla.parts("shapenla", key_of, after="shapes"),
        "shapedriver": drivers.part(key_of, after="shapes"),
    }
