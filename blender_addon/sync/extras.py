"""What a datablock of any kind may carry beside its kind's own data: custom properties
(``<kind>/<u>/prop/<name>``, custom_props.py) and, on kinds with animation data, drivers
(``<kind>/<u>/driver/<path>/<index>``, drivers.py), the action animating it (``<kind>/<u>/anim``,
animation.py) and its NLA tracks (``<kind>/<u>/nla/<track>`` and ``nlaorder``, nla.py). A kind takes the
first two with ``parts={..., **extras.PARTS}`` and ``extras.read`` / ``extras.describe`` in its serialise /
describe, and the action link with ``animation``; the registry gives each of them to every kind that does not
take it itself (:func:`given`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection

import bpy

from . import animation, custom_props, drivers, nla
from .context import ReadContext
from .kinds.base import NO_ACTION, Kind

PARTS = {"prop": custom_props.PART, "driver": drivers.part()}

# A part given to a kind: (its parts, what it adds to serialise's dict, what it adds to describe's dict).
Given = tuple[
    dict[str, object],
    Callable[[bpy.types.ID, ReadContext], dict[str, object]],
    Callable[[bpy.types.ID, ReadContext], dict[str, object]],
]


def read(id_data: bpy.types.ID, ctx: ReadContext) -> dict[str, object]:
    return {"prop": custom_props.items(id_data, ctx), "driver": drivers.items(id_data, ctx)}


def describe(id_data: bpy.types.ID) -> dict[str, object]:
    return {"custom_props": custom_props.describe(id_data), "drivers": drivers.describe(id_data)}


def _props() -> Given:
    return (
        {"prop": PARTS["prop"]},
        lambda id_data, ctx: {"prop": custom_props.items(id_data, ctx)},
        lambda id_data, ctx: {"custom_props": custom_props.describe(id_data)},
    )


def _drivers() -> Given:
    return (
        {"driver": PARTS["driver"]},
        lambda id_data, ctx: {"driver": drivers.items(id_data, ctx)},
        lambda id_data, ctx: {"drivers": drivers.describe(id_data)},
    )


def _action() -> Given:
    return (
        {"anim": animation.apply_part},
        lambda id_data, ctx: {"anim": animation.read(id_data, ctx)},
        lambda id_data, ctx: {"anim": animation.describe(id_data, ctx)},
    )


def _tracks() -> Given:
    return (
        nla.parts("nla"),
        lambda id_data, ctx: nla.read(id_data, ctx, "nla"),
        lambda id_data, ctx: {"nla": nla.describe(id_data)},
    )


def _missing(kind: Kind) -> list[Given]:
    """What ``kind`` does not take itself of what every datablock of its type may carry."""
    animated = "animation_data" in getattr(bpy.types, kind.rna_type).bl_rna.properties
    # A node group is its own node tree: its action and tracks travel as the tree's (``treeanim``,
    # ``treenla``, node_trees.py).
    own_action = "anim" in kind.parts or (kind.rna_type == "NodeTree" and "treeanim" in kind.parts)
    own_tracks = "nla" in kind.parts or (kind.rna_type == "NodeTree" and "treenla" in kind.parts)
    return [
        given
        for wanted, given in (
            ("prop" not in kind.parts, _props),
            (animated and "driver" not in kind.parts, _drivers),
            (animated and not own_action, _action),
            (animated and not own_tracks, _tracks),
        )
        if wanted
    ]


# The action links of a datablock, its node tree and its shape keys: a new datablock has no action, so each
# is keyed only while one is assigned (Kind.unkeyed).
ACTION_PARTS = ("anim", "treeanim", "shapeanim")


def _unkeyed(kind: Kind, parts: Collection[str]) -> dict[str, object]:
    return {**{part: NO_ACTION for part in ACTION_PARTS if part in parts}, **kind.unkeyed}


def given(kind: Kind) -> Kind:
    """``kind`` with custom properties and (if its datablocks have animation data) drivers, the action link
    and the NLA tracks added to its parts, serialise and describe, where it does not take them itself; its
    action links keyed only while an action is assigned."""
    missing = [make() for make in _missing(kind)]
    if not missing:
        unkeyed = _unkeyed(kind, kind.parts)
        return kind if unkeyed == kind.unkeyed else dataclasses.replace(kind, unkeyed=unkeyed)
    parts = {name: part for added, _, _ in missing for name, part in added.items()}

    def serialise(id_data: bpy.types.ID, ctx: ReadContext) -> dict[str, object]:
        out = kind.serialise(id_data, ctx)
        for _, read_added, _ in missing:
            out.update(read_added(id_data, ctx))
        return out

    def describe(id_data: bpy.types.ID, ctx: ReadContext) -> dict:
        out = dict(kind.describe(id_data, ctx))
        for _, _, describe_added in missing:
            out.update(describe_added(id_data, ctx))
        return out

    every = {**kind.parts, **parts}
    return dataclasses.replace(
        kind, parts=every, serialise=serialise, describe=describe, unkeyed=_unkeyed(kind, every)
    )
