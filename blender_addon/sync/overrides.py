"""Library overrides: local datablocks that override ones linked from a library.

An override travels like any local datablock of its kind (an object's name,
transform, pose, collections..., a mesh's geometry and materials are its
kind's keys), and its primary part names what it overrides: ``override`` =
``[library uuid, reference name, system override, hierarchy root uuid]``
(the root is None for the root itself; objects and collections always carry
the field, other kinds only when they are overrides, :func:`with_override`).
A receiver makes the same hierarchy of overrides from the same linked
object or collection (``override_hierarchy_create``) when the root arrives,
and each member takes over the override made for it; object data made
editable in an override (``override_create`` on a mesh or armature) is made
the same way from the receiver's copy of the library.  An override whose
library or root has not arrived is made once they have (its other parts
wait); a stand-in made meanwhile (an object's data) is replaced by it.
"""

from __future__ import annotations

import bpy

from . import ids, linked
from .assign import replace
from .context import ApplyContext, ReadContext

HIERARCHIES = ("objects", "collections")  # what a hierarchy of overrides is made from


def read(id_data: bpy.types.ID, ctx: ReadContext) -> list[object] | None:
    """What an override overrides, if it is one of a datablock linked from a synchronised library."""
    override = id_data.override_library
    reference = linked.ref(override.reference, ctx) if override is not None else None
    if reference is None:
        return None
    root = override.hierarchy_root
    root_uuid = ctx.ref(root) if root is not None and root != id_data else None
    return [reference[0], reference[2], bool(override.is_system_override), root_uuid]


def with_override(doc: object, id_data: bpy.types.ID, ctx: ReadContext) -> object:
    """A primary part's document (or a description) with what ``id_data`` overrides, for kinds whose
    documents do not name it themselves (object data made editable in an override)."""
    if not isinstance(doc, dict) or "override" in doc:
        return doc
    override = read(id_data, ctx)
    return doc if override is None else {**doc, "override": override}


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
    if made is None and root is None and collection in HIERARCHIES:
        # The root of a hierarchy: every override in it is made now, as on the sending side; the
        # root's own collection keys say where it is linked.
        scene, view_layer = bpy.context.scene, bpy.context.view_layer
        made = reference.override_hierarchy_create(scene, view_layer, do_fully_editable=not system)
        holder = scene.collection.children if collection == "collections" else scene.collection.objects
        if any(m == made for m in holder):
            holder.unlink(made)
    elif made is None:
        # Added to the hierarchy after it was made, or object data made editable: an override of its own.
        made = reference.override_create(remap_local_usages=False)
    made.override_library.is_system_override = system
    return made


def take_over(collection: str, doc: list, current: bpy.types.ID | None, ctx: ApplyContext):
    """The override ``doc`` names, made here (:func:`make`) in place of ``current`` when that is a plain
    datablock: a stand-in made for an object whose data had not arrived.  None while it cannot be made."""
    if current is not None and current.override_library is not None:
        return current
    made = make(collection, doc, ctx)
    if made is not None and current is not None:
        made = replace(current, made, getattr(bpy.data, collection).remove)
    return made
