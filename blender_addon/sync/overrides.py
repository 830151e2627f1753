"""Library overrides: local datablocks that override ones linked from a library.

An override travels like any local object or collection (its name,
transform, pose, collections... are its kind's keys), and its primary part
names what it overrides: ``[library uuid, reference name, system override,
hierarchy root uuid]`` (the root is None for the root itself).  A receiver
makes the same hierarchy of overrides from the same linked datablock
(``override_hierarchy_create``) when the root arrives, and each member
takes over the override made for it.  An override whose library or root
has not arrived is made once they have (its kind's ``create`` returns None
and its other parts wait).
"""

from __future__ import annotations

import bpy

from . import ids, linked
from .context import ApplyContext, ReadContext


def read(id_data: bpy.types.ID, ctx: ReadContext) -> list[object] | None:
    """What an override overrides, if it is one of a datablock linked from a synchronised library."""
    override = id_data.override_library
    reference = linked.ref(override.reference, ctx) if override is not None else None
    if reference is None:
        return None
    root = override.hierarchy_root
    root_uuid = ctx.ref(root) if root is not None and root != id_data else None
    return [reference[0], reference[2], bool(override.is_system_override), root_uuid]


def _unclaimed(collection: str, reference: bpy.types.ID, root: bpy.types.ID | None, ctx: ApplyContext):
    """An override of ``reference`` in this hierarchy that no synchronised datablock holds yet."""
    for id_data in getattr(bpy.data, collection):
        override = id_data.override_library
        if id_data.library is not None or override is None or override.reference != reference:
            continue
        if root is not None and override.hierarchy_root != root:
            continue
        if ctx.lookup(ids.peek_uuid(id_data)) is None:
            return id_data
    return None


def make(collection: str, doc: list, ctx: ApplyContext) -> bpy.types.ID | None:
    """The same override on this side, or None while its library, linked datablock or root is missing."""
    lib_uuid, name, system, root_uuid = doc
    reference = linked.resolve([lib_uuid, collection, name], ctx)
    root = ctx.resolve(root_uuid) if root_uuid else None
    if reference is None or (root_uuid and root is None):
        return None
    made = _unclaimed(collection, reference, root, ctx)
    if made is None and root is None:
        # The root of a hierarchy: every override in it is made now, as on the sending side; the
        # root's own collection keys say where it is linked.
        scene, view_layer = bpy.context.scene, bpy.context.view_layer
        made = reference.override_hierarchy_create(scene, view_layer, do_fully_editable=not system)
        holder = scene.collection.children if collection == "collections" else scene.collection.objects
        if any(m == made for m in holder):
            holder.unlink(made)
    elif made is None:
        # Added to the hierarchy after it was made: an override of its own.
        made = reference.override_create(remap_local_usages=False)
    made.override_library.is_system_override = system
    return made
