"""A datablock's name and flat settings as keys of their own: ``<kind>/<u>/name``, ``<kind>/<u>/set/<s>``.

Shared by the kinds whose settings two artists may change one by one at the
same moment (a light's energy and its colour): each setting is its own key,
so both changes survive.  A nested struct read with ``ctx.props(...,
nested=...)`` (a camera's depth of field) is one setting, and so is a struct of structs.py (a texture's
image user).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import bpy

from . import ids, rna, structs
from .assign import rename
from .context import ApplyContext, ReadContext
from .items import Items


def setting_items(values: Mapping[str, object]) -> dict[tuple[str, ...], object]:
    """``ctx.props(...)`` as the items of a ``set`` part."""
    return {(name,): value for name, value in values.items()}


def new_values(
    probe: bpy.types.ID,
    read_all: Callable[[bpy.types.ID, ReadContext], dict[str, object]],
    remove: Callable[[bpy.types.ID], None],
) -> dict[str, object]:
    """What ``read_all`` reads of ``probe``, a datablock just made to learn what Blender gives a new one
    (RNA's defaults are not it), which is removed after. Every pointer of a new datablock is empty: all are
    read (as None), whatever travels."""
    try:
        id_types = frozenset(t.__name__ for t in bpy.types.ID.__subclasses__())
        return read_all(probe, ReadContext(lambda _id: False, id_types, masked=False))
    finally:
        remove(probe)


def differing_items(
    values: Mapping[str, object], base: Mapping[str, object]
) -> dict[tuple[str, ...], object]:
    """The ``values`` that a new datablock's (``base``, :func:`new_values`) lack or hold otherwise, as the
    items of a ``set`` part: the settings keyed only while they differ from it."""
    return {
        (attr,): value for attr, value in sorted(values.items()) if attr not in base or base[attr] != value
    }


def apply_name(id_data: bpy.types.ID, doc: str, ctx: ApplyContext) -> bpy.types.ID:
    rename(id_data, doc)
    return id_data


def settings_part(
    struct_of: Callable[[bpy.types.ID], bpy.types.bpy_struct] = lambda id_data: id_data,
    changed_only: bool = False,
) -> Items:
    """The ``set`` part: one RNA setting per key, written where ``struct_of(datablock)`` says.

    ``changed_only``: write a value only when it differs (:func:`.rna.write_changed`).
    """
    write = rna.write_changed if changed_only else rna.write_props

    def apply(owner: bpy.types.ID, item: tuple[str, ...], doc: object, ctx: ApplyContext) -> bpy.types.ID:
        if ctx.deleting:  # a setting's key goes away only with its datablock (or its type)
            return owner
        struct = struct_of(owner)
        if struct.bl_rna.properties.get(item[0]) is None:
            # A setting of another type (a spot light's cone while the light is still the point light
            # made for an object that arrived first): apply again once the type has arrived.
            ctx.wait_for("meta", ids.get_uuid(owner))
            return owner
        if not structs.write(struct, item[0], doc):  # an image user...
            write(struct, {item[0]: doc}, ctx.resolve)
        return owner

    return Items(apply)
