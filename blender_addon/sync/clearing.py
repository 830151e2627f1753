"""Emptying the local scene for a room that already has content: every synchronised datablock goes, and one
scene stays, marked to be taken over by the room's (kinds/scenes.py)."""

from __future__ import annotations

import bpy

from . import ids
from .index import is_synced
from .kinds import REGISTRY


def clear_scene() -> None:
    """Remove every synchronised datablock; keep one empty scene that the room's scene will take over.

    Meant for joining a room that already has content.
    """
    keep = bpy.context.window.scene if bpy.context.window is not None else bpy.data.scenes[0]
    for kind in REGISTRY:
        for id_data in list(getattr(bpy.data, kind.collection)):
            if not is_synced(id_data):
                continue
            if kind.name == "scene" and id_data == keep:
                continue
            kind.remove_datablock(id_data)  # bpy.data.cache_files has no remove()
    if ids.UUID_PROP in keep:
        del keep[ids.UUID_PROP]
    keep[ids.ADOPT_PROP] = True
