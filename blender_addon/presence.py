"""This artist's presence, read from Blender: name, colour, mode, frame, scene, view matrix and selection.

The session sends only the fields that changed, at most ``session.PRESENCE_INTERVAL`` apart.
"""

from __future__ import annotations

from typing import Any

import bpy

from . import sync
from .protocol_shim import protocol


def _flatten_column_major(matrix) -> list[float]:
    return [float(matrix[row][col]) for col in range(4) for row in range(4)]


def find_region_3d():
    """The first 3D view's region data (None when Blender has no 3D view)."""
    wm = bpy.context.window_manager
    for window in getattr(wm, "windows", ()):
        screen = window.screen
        if screen is None:
            continue
        for area in screen.areas:
            if area.type == "VIEW_3D":
                space = area.spaces.active
                region_3d = getattr(space, "region_3d", None)
                if region_3d is not None:
                    return region_3d
    return None


def gather_presence(name: str, color: list[float]) -> dict[str, Any]:
    """This artist's presence fields, read from Blender and fitted to the protocol's grammar (Blender
    names may hold control characters; a field that still does not fit is left out, not sent)."""
    limits = protocol.limits
    context = bpy.context
    scene = context.scene
    state: dict[str, Any] = {"name": protocol.fit_name(name), "color": [float(c) for c in color]}
    state["mode"] = protocol.fit_name(
        str(getattr(context, "mode", "OBJECT") or "OBJECT"), limits.MAX_LABEL_BYTES
    )
    if scene is not None:
        state["frame"] = int(scene.frame_current)
        state["scene"] = protocol.fit_name(scene.name)
    region_3d = find_region_3d()
    if region_3d is not None:
        state["view_matrix"] = _flatten_column_major(region_3d.view_matrix)
    view_layer = context.view_layer
    selection: list[str] = []
    if view_layer is not None:
        for ob in view_layer.objects.selected:  # not every object: this runs 10 times a second
            uuid = sync.peek_uuid(ob)
            if uuid is not None:
                selection.append(uuid)
    budget, kept = limits.MAX_SELECTION_BYTES, []
    for uuid in sorted(selection)[: limits.MAX_SELECTION]:
        budget -= len(uuid.encode("utf-8"))
        if budget < 0:
            break
        kept.append(uuid)
    state["selection"] = kept
    return {k: v for k, v in state.items() if protocol.presence_field_ok(k, v)}
