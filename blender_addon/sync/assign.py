"""Writing values into Blender without needless updates, shared by the kinds' apply functions."""

from __future__ import annotations

from collections.abc import Callable

import bpy

from . import ids


def set_changed(struct, attr: str, value) -> None:
    """Assign only when different (avoids needless depsgraph tags); values Blender refuses are skipped.

    ``None`` (a whole value or a component of an array) is what animation writes on the sending side
    (derived.py): it is left to this side's animation.
    """
    if value is None:
        return
    if isinstance(value, list) and None in value:
        set_components(struct, attr, value)
        return
    try:
        current = getattr(struct, attr)
        if hasattr(current, "__len__") and not isinstance(current, str):
            if [float(x) for x in current] == [float(x) for x in value]:
                return
        elif current == value:
            return
        setattr(struct, attr, value)
    except (AttributeError, TypeError, ValueError, RuntimeError):
        pass


def set_components(struct, attr: str, value: list) -> None:
    """Write the components of an array property that are not ``None``, each only when different."""
    try:
        current = getattr(struct, attr)
        for i, component in enumerate(value):
            if component is not None and i < len(current) and current[i] != component:
                current[i] = component
    except (AttributeError, TypeError, ValueError, RuntimeError):
        pass


def rename(id_data, name: str) -> None:
    if id_data.name != name:
        id_data.name = name


def set_materials(materials, wanted: list[bpy.types.Material | None]) -> None:
    """Set a data material list in place (clearing it would reset the objects' slot links)."""
    while len(materials) > len(wanted):
        materials.pop()
    for i, mat in enumerate(wanted):
        if i >= len(materials):
            materials.append(mat)
        elif materials[i] != mat:
            materials[i] = mat


def replace(old: bpy.types.ID, new: bpy.types.ID, remove: Callable[[bpy.types.ID], None]) -> bpy.types.ID:
    """Put ``new`` in the place of ``old``: same uuid, every user relinked; ``old`` is removed with ``remove``
    (a collection's ``remove``, or the kind's own where the collection has none)."""
    uuid = ids.peek_uuid(old)
    old.user_remap(new)
    remove(old)
    if uuid is not None:
        ids.set_uuid(new, uuid)
    return new


def typed_member(stack, name: str, doc: dict | None, what: str, where: str, report: Callable[[str], None]):
    """Make ``stack``'s member ``name`` (an object's modifiers, its visual effects) what ``doc`` says: of
    type ``doc["type"]`` (made again if it has another), with its ``show_viewport`` and ``show_render``;
    removed for None. Returns the member, or None when it is gone or Blender refuses the type (reported:
    "<what> '<name>' of type '<type>' cannot be added to <where>")."""
    member = stack.get(name)
    if member is not None and (doc is None or member.type != doc["type"]):
        stack.remove(member)
        member = None
    if doc is None:
        return None
    if member is None:
        try:
            member = stack.new(name, doc["type"])
        except (TypeError, RuntimeError) as exc:
            report(f"{what} {name!r} of type {doc['type']!r} cannot be added to {where}: {exc}")
            return None
    for attr in ("show_viewport", "show_render"):
        if getattr(member, attr) != doc[attr]:
            setattr(member, attr, doc[attr])
    return member
