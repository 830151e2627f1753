"""Which action (and slot) animates a datablock: ``<kind>/<u>/anim`` on every kind whose datablocks carry
animation data (objects, lights, cameras, materials and worlds take it themselves; extras.given gives it to
the others), ``mesh/<u>/shapeanim`` (a mesh's shape keys) and a node tree's ``treeanim`` (a material's or
world's embedded tree, a node group).

Shared by the kinds whose datablocks carry animation data. The action itself
is a datablock of its own (``action/<u>/…``, one key per f-curve); this is
only the link to it.
"""

from __future__ import annotations

import bpy

from .context import ApplyContext, ReadContext


def read(id_data: bpy.types.ID | None, ctx: ReadContext) -> dict[str, object]:
    ad = getattr(id_data, "animation_data", None)
    action = ad.action if ad is not None else None
    slot = ad.action_slot if action is not None else None
    return {"action": ctx.ref(action), "slot": slot.identifier if slot is not None else None}


def describe(id_data: bpy.types.ID | None, ctx: ReadContext) -> list:
    doc = read(id_data, ctx)
    return [doc["action"], doc["slot"]]


def apply(id_data: bpy.types.ID, doc: dict, ctx: ApplyContext) -> None:
    """Assign the action and slot ``doc`` names (None: unassign)."""
    action = ctx.resolve(doc["action"])
    if action is None:
        if id_data.animation_data is not None and id_data.animation_data.action is not None:
            id_data.animation_data.action = None
        return
    ad = id_data.animation_data or id_data.animation_data_create()
    if ad.action != action:
        ad.action = action
    slot = next((s for s in action.slots if s.identifier == doc["slot"]), None)
    if slot is not None and ad.action_slot != slot:
        ad.action_slot = slot
    id_data.update_tag(refresh={"TIME"})  # evaluated again with this animation at the next tick


def apply_part(id_data: bpy.types.ID, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    """The ``anim`` part of a kind: the action animating the datablock itself."""
    apply(id_data, doc, ctx)
    return id_data
