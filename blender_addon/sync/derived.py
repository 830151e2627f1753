"""Values that animation writes: read as "not ours" so that playing and scrubbing send nothing.

Blender writes the values of animated and driven properties (F-curves of a
datablock's action and of its NLA strips, drivers) back into the datablock
on every frame change and every evaluation. Those values are derived: the
edit that made them is the F-curve or the driver, which travels on its own
key (``action/<u>/fcurve/…``, ``<kind>/<u>/driver/…``). So a serialiser reads
each animated component as ``None`` (:func:`mask`): the key's value does not
move while the animation plays, an edit of a component that is not animated
still travels, and a receiver leaves animated components to its own
animation (:func:`.assign.set_changed` skips ``None`` components).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import bpy

# data path -> indices of the animated components (0 for a property that is not an array)
Paths = Mapping[str, frozenset[int]]

NOTHING: Paths = {}


# Animatable properties that Blender stores in another one: (ID type, data path) -> the stored paths. Their
# animation writes the stored property, which is what a serialiser reads.
STORED_IN: Mapping[tuple[str, str], tuple[str, ...]] = {
    ("ParticleSettings", "hair_length"): ("normal_factor",),
}


def _slot_fcurves(action: bpy.types.Action | None, slot) -> Iterable:
    if action is None:
        return ()
    out = []
    for layer in action.layers:
        for strip in layer.strips:
            for bag in getattr(strip, "channelbags", ()):
                if slot is None or bag.slot == slot:
                    out.extend(bag.fcurves)
    return out


# F-curve modifiers that make a curve of their own (Blender's FMI_TYPE_GENERATE_CURVE).
GENERATING = frozenset({"GENERATOR", "FNGENERATOR"})


def _writes(fc) -> bool:
    """Whether Blender evaluates this action F-curve: one without keyframes or a generating modifier writes
    nothing (BKE_fcurve_is_empty), so the value it animates is the datablock's own and travels."""
    return len(fc.keyframe_points) > 0 or any(m.type in GENERATING for m in fc.modifiers)


def animated_paths(id_data: bpy.types.ID) -> Paths:
    """Every component of ``id_data`` that its action, its NLA strips or its drivers write."""
    ad = getattr(id_data, "animation_data", None)
    if ad is None:
        return NOTHING
    found: dict[str, set[int]] = {}
    curves = list(_slot_fcurves(ad.action, ad.action_slot))
    for track in ad.nla_tracks:
        if track.mute:
            continue
        for strip in track.strips:
            if not strip.mute:
                curves.extend(_slot_fcurves(strip.action, getattr(strip, "action_slot", None)))
    curves = [fc for fc in curves if _writes(fc)]
    curves.extend(ad.drivers)
    for fc in curves:
        if not fc.mute:
            found.setdefault(fc.data_path, set()).add(fc.array_index)
    for path in list(found):
        for stored in STORED_IN.get((id_data.bl_rna.identifier, path), ()):
            found.setdefault(stored, set()).update(found[path])
    return {path: frozenset(indices) for path, indices in found.items()}


def path_of(struct: bpy.types.bpy_struct) -> str:
    """``struct``'s data path from its datablock (``""`` for the datablock itself)."""
    if struct is struct.id_data or isinstance(struct, bpy.types.ID):
        return ""
    try:
        return struct.path_from_id()
    except ValueError:  # a struct Blender cannot name a path to: nothing of it can be animated either
        return "\0"


def join(prefix: str, attr: str) -> str:
    return f"{prefix}.{attr}" if prefix else attr


def mask_packed(values, width: int, paths: Paths, collection: str, attr: str):
    """``values`` (an array of ``width`` floats per item of the collection at data path ``collection``, read
    from the items' ``attr``) with the animated components set to 0.0: a packed array holds no None, and a
    fixed value keeps its key still while the animation plays (the receiver's animation writes them again,
    :func:`reanimate`)."""
    head, tail = collection + "[", "]." + attr
    for path, indices in paths.items():
        if not (path.startswith(head) and path.endswith(tail)):
            continue
        item = path[len(head) : -len(tail)]
        if not item.isdigit():
            continue
        for index in indices:
            at = int(item) * width + index
            if 0 <= index < width and at < len(values):
                values[at] = 0.0
    return values


def reanimate(id_data: bpy.types.ID) -> None:
    """Values were written over what animation writes (a packed array, :func:`mask_packed`): evaluate the
    datablock's animation again at the next depsgraph tick."""
    if getattr(id_data, "animation_data", None) is not None:
        id_data.update_tag(refresh={"TIME"})


def mask(value: object, indices: frozenset[int] | None) -> object:
    """``value`` with its animated components (``indices``) replaced by ``None``."""
    if not indices:
        return value
    if isinstance(value, list):
        return [None if i in indices else v for i, v in enumerate(value)]
    return None
