"""Putting a new datablock in the place of an old one of the same kind (a point cloud of another size, a
sound, font or movie clip with new content, a light probe of another type): same uuid, every user moved to
it, and what any datablock may carry beside its kind's own data (extras.py: custom properties, the action
and its slot, NLA tracks, drivers) carried over: those keys are not applied again."""

from __future__ import annotations

from collections.abc import Callable

import bpy

from . import assign, custom_props, nla


def carry_properties(old: bpy.types.ID, new: bpy.types.ID) -> None:
    for name in custom_props.names(old):  # not the layer's own (the uuid is set by assign.replace)
        value = old[name]
        new[name] = value.to_dict() if hasattr(value, "to_dict") else value
        try:
            new.id_properties_ui(name).update_from(old.id_properties_ui(name))
        except TypeError:  # a group or a datablock: no UI data
            continue


def carry_animation(old: bpy.types.ID, new: bpy.types.ID) -> None:
    ad = getattr(old, "animation_data", None)
    if ad is None or not hasattr(new, "animation_data"):
        return
    copy = new.animation_data_create()
    if ad.action is not None:
        copy.action = ad.action
        if ad.action_slot is not None:
            copy.action_slot = ad.action_slot
    for track in ad.nla_tracks:  # bottom up: each copy goes on top
        _, names = nla.copy_track(track, copy)
        for strip, name in names:
            strip.name = name  # another datablock's strips do not hold names in this stack
    for driver in ad.drivers:
        copy.drivers.from_existing(src_driver=driver)


def replace(old: bpy.types.ID, new: bpy.types.ID, remove: Callable[[bpy.types.ID], None]) -> bpy.types.ID:
    """Put ``new`` in the place of ``old`` with ``old``'s custom properties and animation data; ``old`` is
    removed with ``remove``."""
    carry_properties(old, new)
    carry_animation(old, new)
    return assign.replace(old, new, remove)
