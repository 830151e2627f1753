"""Drivers as one key per driven channel: ``<kind>/<u>/driver/<data path>/<index>``, and on a mesh's shape
keys (their ``Key``) ``mesh/<u>/shapedriver/<data path>/<index>``.

A document is ``{type, expression, use_self, mute, variables}``; each
variable ``{name, type, targets}``, each target its settings (``id_type``,
``data_path``, ``bone_target``, ``transform_type``, ``transform_space``,
``rotation_mode``, ``context_property``, fallback) and ``id``: the uuid of
the datablock it reads, or a link into a library (linked.py; None for one
that does not travel: the receiver's target stays empty). A target reading
shape keys (a ``Key``, which is not a datablock of its own here) has
``id`` None and ``key_of``: the reference of the mesh, lattice or curve
that owns them (a shape key driven by another, of its own mesh or another's).
The values a driver writes are derived (derived.py)
and never sent. ``curve`` is the driver's own F-curve, which maps the
driver's value: ``{extrapolation, keys, modifiers}`` (fcurves.py), so a
mapping curve's keyframes and a Generator's coefficients travel with the
driver.
"""

from __future__ import annotations

from collections.abc import Callable

import bpy

from . import fcurves, ids, rna
from .context import ApplyContext, ReadContext
from .items import Items

DRIVER_PROPS = ("type", "expression", "use_self")
TARGET_PROPS = (
    "id_type",
    "data_path",
    "bone_target",
    "transform_type",
    "transform_space",
    "rotation_mode",
    "context_property",
    "use_fallback_value",
    "fallback_value",
)


def _target(target, ctx: ReadContext | None) -> dict[str, object]:
    doc: dict[str, object] = {attr: rna.plain(getattr(target, attr)) for attr in TARGET_PROPS}
    read, owner = target.id, None
    if isinstance(read, bpy.types.Key):
        read, owner = None, read.user
    if ctx is None:  # describing: the target by name
        doc["id"] = read.name if read is not None else None
        if owner is not None:
            doc["key_of"] = owner.name
    else:
        doc["id"] = ctx.ref(read)
        if owner is not None:
            doc["key_of"] = ctx.ref(owner)
    return doc


def _shape_keys_of(tdoc: dict, ctx: ApplyContext) -> bpy.types.Key | None:
    """The shape keys a target reads (``key_of``); applied again once the owner's shapes are while they or
    the block the target reads are missing."""
    owner = ctx.resolve(tdoc["key_of"]) if tdoc["key_of"] is not None else None
    if owner is None:
        return None
    key = getattr(owner, "shape_keys", None)
    try:
        found = key is not None and (
            not tdoc.get("data_path") or key.path_resolve(tdoc["data_path"]) is not None
        )
    except ValueError:
        found = False
    uuid = ids.peek_uuid(owner)
    if not found and uuid is not None:  # applied again (and evaluated again) once they are
        ctx.wait_for("shapes", uuid)
    return key


def _driver(fc, ctx: ReadContext | None) -> dict[str, object]:
    driver = fc.driver
    doc: dict[str, object] = {attr: rna.plain(getattr(driver, attr)) for attr in DRIVER_PROPS}
    doc["mute"] = fc.mute
    doc["variables"] = [
        {
            "name": var.name,
            "type": var.type,
            "targets": [_target(t, ctx) for t in var.targets],
        }
        for var in driver.variables
    ]
    doc["curve"] = {
        "extrapolation": fc.extrapolation,
        "keys": fcurves.read_keyframes(fc) if ctx is not None else fcurves.describe_keyframes(fc),
        "modifiers": fcurves.read_modifiers(fc),
    }
    return doc


def items(owner: bpy.types.ID | None, ctx: ReadContext) -> dict[tuple[str, str], dict]:
    """The items of a ``driver`` part: ``(data path, index)`` -> document."""
    ad = getattr(owner, "animation_data", None)
    if ad is None:
        return {}
    return {(fc.data_path, str(fc.array_index)): _driver(fc, ctx) for fc in ad.drivers}


def describe(owner: bpy.types.ID | None) -> list:
    ad = getattr(owner, "animation_data", None)
    if ad is None:
        return []
    return sorted(
        ([fc.data_path, fc.array_index, _driver(fc, None)] for fc in ad.drivers), key=lambda d: d[:2]
    )


def _write_variables(driver, variables: list[dict], ctx: ApplyContext) -> None:
    current = [(v.name, v.type, len(v.targets)) for v in driver.variables]
    if current != [(v["name"], v["type"], len(v["targets"])) for v in variables]:
        while driver.variables:
            driver.variables.remove(driver.variables[0])
        for doc in variables:
            var = driver.variables.new()
            var.name = doc["name"]
            var.type = doc["type"]
    for var, doc in zip(driver.variables, variables, strict=True):
        for target, tdoc in zip(var.targets, doc["targets"], strict=False):
            for attr in TARGET_PROPS:  # id_type first: it decides which datablocks the target takes
                if attr in tdoc and getattr(target, attr) != tdoc[attr]:
                    try:
                        setattr(target, attr, tdoc[attr])
                    except (TypeError, ValueError, AttributeError):
                        continue
            wanted = _shape_keys_of(tdoc, ctx) if "key_of" in tdoc else ctx.resolve(tdoc["id"])
            if target.id != wanted:
                try:
                    target.id = wanted
                except (TypeError, ValueError, AttributeError) as exc:
                    ctx.report(f"driver variable {doc['name']!r}: {exc}")
            _wait_for_property(target, ctx)


def _wait_for_property(target, ctx: ApplyContext) -> None:
    """A driver evaluated while the custom property or the pose bone it reads is missing stays off: apply
    it again once the target's custom properties (its own or its pose bones') or its pose have arrived."""
    path = target.data_path
    if target.id is None or ids.peek_uuid(target.id) is None:
        return
    bone = target.bone_target
    if bone and isinstance(target.id, bpy.types.Object) and target.id.type == "ARMATURE":
        pose = target.id.pose
        if pose is None or bone not in pose.bones:
            ctx.wait_for("pose", ids.peek_uuid(target.id))
    if '["' not in path:
        return
    try:
        target.id.path_resolve(path)
    except ValueError:
        ctx.wait_for("pbprop" if path.startswith("pose.bones") else "prop", ids.peek_uuid(target.id))


# Where a driven property that does not exist yet comes from: (data path prefix, part of the keyed
# datablock). A driver on a missing property is switched off by Blender's next evaluation.
PATH_PARTS = (
    ("pose.bones[", ".constraints[", "pbcon"),
    ("pose.bones[", "", "pose"),
    ("constraints[", "", "con"),
    ("modifiers[", "", "mod"),
    ("key_blocks[", "", "shapes"),
    ("bones[", "", "bones"),
    ('["', "", "prop"),  # a custom property of the datablock itself
)


def _wait_for_owner_path(owner: bpy.types.ID, data_path: str, uuid: str, ctx: ApplyContext) -> None:
    try:
        owner.path_resolve(data_path)
    except ValueError:
        part = next(
            (p for start, inner, p in PATH_PARTS if data_path.startswith(start) and inner in data_path),
            "meta",
        )
        ctx.wait_for(part, uuid)


def write(
    owner: bpy.types.ID, item: tuple[str, ...], doc: dict | None, ctx: ApplyContext, uuid: str | None = None
) -> None:
    """Make, update or (None) remove the driver ``item`` = (data path, index) of ``owner`` (kept under the
    datablock ``uuid``, default the owner's: a mesh for its shape keys' drivers)."""
    data_path, index_text = item
    index = int(index_text) if index_text.lstrip("-").isdigit() else 0
    ad = owner.animation_data
    fc = ad.drivers.find(data_path, index=index) if ad is not None else None
    if doc is None:
        if fc is not None:
            ad.drivers.remove(fc)
        return
    if fc is None:
        ad = ad or owner.animation_data_create()
        try:
            fc = ad.drivers.new(data_path, index=index)
        except (TypeError, RuntimeError) as exc:
            ctx.report(f"driver on {data_path!r}[{index}]: {exc}")
            return
    if fc.mute != doc["mute"]:
        fc.mute = doc["mute"]
    driver = fc.driver
    for attr in DRIVER_PROPS:
        if getattr(driver, attr) != doc[attr]:
            setattr(driver, attr, doc[attr])
    _write_variables(driver, doc["variables"], ctx)
    curve = doc.get("curve")
    if curve is not None:  # a driver read by an older add-on has none
        if fc.extrapolation != curve["extrapolation"]:
            fc.extrapolation = curve["extrapolation"]
        fcurves.write_keyframes(fc, curve["keys"])
        fcurves.write_modifiers(fc, curve["modifiers"])
    _wait_for_owner_path(owner, data_path, uuid or ids.get_uuid(owner), ctx)
    driver.is_valid = True  # evaluated again (a driver that failed before stays off until this is set)
    owner.update_tag()


def part(
    owner_of: Callable[[bpy.types.ID], bpy.types.ID | None] = lambda id_data: id_data, after: str = "meta"
) -> Items:
    """The ``driver`` part of a kind: drivers of ``owner_of(datablock)`` (default: the datablock); while
    that is None (shape keys that have not arrived), a driver waits for part ``after``."""

    def apply(id_data: bpy.types.ID, item: tuple[str, ...], doc: dict | None, ctx: ApplyContext):
        owner = owner_of(id_data)
        if owner is None:
            if doc is not None:
                ctx.wait_for(after, ids.get_uuid(id_data))
            return id_data
        write(owner, item, doc, ctx, ids.get_uuid(id_data))
        return id_data

    return Items(apply, depth=2)
