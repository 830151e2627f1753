"""Other artists in the 3D view: their viewport frustums, names and selection outlines.

The geometry is computed by plain functions over lists of floats
(:func:`frustum_lines`, :func:`box_lines`, :func:`user_overlays`), which the
tests check directly: Blender running as a Python module has no window, so
the draw callbacks never run there. The callbacks only hand that geometry to
the ``gpu`` module (lines, in ``POST_VIEW``) and ``blf`` (names, in
``POST_PIXEL``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import bpy

from . import session as session_module
from . import sync

Vec3 = tuple[float, float, float]
Line = tuple[Vec3, Vec3]

FRUSTUM_DEPTH = 1.0
FRUSTUM_ASPECT = 16 / 9
FRUSTUM_HALF_WIDTH = 0.36  # at depth 1: a 50 mm lens on a 36 mm sensor

_handles: list[tuple[Any, str]] = []  # (handle, region type) of our draw handlers


def rows_from_column_major(flat: Sequence[float]) -> list[list[float]]:
    """16 floats, column-major (as in ``presence.view_matrix``) -> 4 rows."""
    if len(flat) != 16:
        raise ValueError("a 4x4 matrix needs 16 floats")
    return [[float(flat[col * 4 + row]) for col in range(4)] for row in range(4)]


def invert_rigid(rows: Sequence[Sequence[float]]) -> list[list[float]]:
    """Inverse of a rotation + translation matrix (a view matrix is one)."""
    rot_t = [[rows[c][r] for c in range(3)] for r in range(3)]
    t = [rows[0][3], rows[1][3], rows[2][3]]
    inv_t = [-sum(rot_t[r][c] * t[c] for c in range(3)) for r in range(3)]
    return [[*rot_t[r], inv_t[r]] for r in range(3)] + [[0.0, 0.0, 0.0, 1.0]]


def transform(rows: Sequence[Sequence[float]], point: Sequence[float]) -> Vec3:
    x, y, z = point
    out = [rows[r][0] * x + rows[r][1] * y + rows[r][2] * z + rows[r][3] for r in range(3)]
    w = rows[3][0] * x + rows[3][1] * y + rows[3][2] * z + rows[3][3]
    if w not in (0.0, 1.0):
        out = [v / w for v in out]
    return (out[0], out[1], out[2])


def camera_position(view_matrix: Sequence[float]) -> Vec3:
    """Where a viewer with this view matrix (world -> view, column-major) stands, in world space."""
    return transform(invert_rigid(rows_from_column_major(view_matrix)), (0.0, 0.0, 0.0))


def frustum_lines(
    view_matrix: Sequence[float],
    depth: float = FRUSTUM_DEPTH,
    half_width: float = FRUSTUM_HALF_WIDTH,
    aspect: float = FRUSTUM_ASPECT,
) -> list[Line]:
    """A small pyramid showing where a viewer looks: apex at the eye, base ``depth`` ahead.

    View space looks down -Z with +Y up. 4 edges from the eye, the 4 sides of
    the base and a triangle above the base marking "up": 11 lines.
    """
    to_world = invert_rigid(rows_from_column_major(view_matrix))
    w, h = half_width * depth, half_width * depth / aspect
    eye = transform(to_world, (0.0, 0.0, 0.0))
    corners = [transform(to_world, (x, y, -depth)) for x, y in ((-w, -h), (w, -h), (w, h), (-w, h))]
    lines: list[Line] = [(eye, c) for c in corners]
    lines += [(corners[i], corners[(i + 1) % 4]) for i in range(4)]
    tip = transform(to_world, (0.0, h * 1.6, -depth))
    left = transform(to_world, (-w * 0.4, h * 1.05, -depth))
    right = transform(to_world, (w * 0.4, h * 1.05, -depth))
    lines += [(left, tip), (tip, right), (right, left)]
    return lines


def box_lines(matrix_world: Sequence[Sequence[float]], bound_box: Sequence[Sequence[float]]) -> list[Line]:
    """The 12 edges of an object's bounding box (Blender's 8-corner order) in world space."""
    corners = [transform(matrix_world, corner) for corner in bound_box]
    edges = ((0, 1), (1, 2), (2, 3), (3, 0), (4, 5), (5, 6), (6, 7), (7, 4), (0, 4), (1, 5), (2, 6), (3, 7))
    return [(corners[a], corners[b]) for a, b in edges]


def user_overlays(
    users: Iterable[dict[str, Any]],
    find_object: Callable[[str], Any],
) -> list[dict[str, Any]]:
    """What to draw for each other artist: colour, frustum lines, label and selection outlines.

    ``users`` are presence maps (``name``, ``color``, ``view_matrix``,
    ``selection``); ``find_object(uuid)`` returns an object with
    ``matrix_world`` and ``bound_box`` or None.
    """
    out = []
    for user in users:
        color = list(user.get("color") or (1.0, 1.0, 1.0))[:3]
        while len(color) < 3:
            color.append(1.0)
        entry: dict[str, Any] = {
            "id": user.get("id", ""),
            "name": str(user.get("name") or user.get("id") or "?"),
            "color": (*color, 1.0),
            "lines": [],
            "label_at": None,
            "selection_lines": [],
        }
        view = user.get("view_matrix")
        if isinstance(view, (list, tuple)) and len(view) == 16:
            entry["lines"] = frustum_lines(view)
            entry["label_at"] = camera_position(view)
        for uuid in user.get("selection") or ():
            ob = find_object(uuid)
            if ob is None:
                continue
            matrix = [list(row) for row in ob.matrix_world]
            entry["selection_lines"] += box_lines(matrix, [tuple(c) for c in ob.bound_box])
        out.append(entry)
    return out


def find_object(uuid: str):
    for ob in bpy.data.objects:
        if sync.peek_uuid(ob) == uuid:
            return ob
    return None


def current_overlays() -> list[dict[str, Any]]:
    session = session_module.current()
    if session is None or session.room is None:
        return []
    index = {sync.peek_uuid(ob): ob for ob in bpy.data.objects}
    return user_overlays(session.users.values(), index.get)


# ---- drawing (needs a window: never runs in module mode) -------------------------------------------------


def _draw_lines() -> None:
    import gpu
    from gpu_extras.batch import batch_for_shader

    overlays = current_overlays()
    if not overlays:
        return
    shader = gpu.shader.from_builtin("UNIFORM_COLOR")
    gpu.state.blend_set("ALPHA")
    gpu.state.line_width_set(2.0)
    for entry in overlays:
        coords = [p for line in entry["lines"] + entry["selection_lines"] for p in line]
        if not coords:
            continue
        batch = batch_for_shader(shader, "LINES", {"pos": coords})
        shader.uniform_float("color", entry["color"])
        batch.draw(shader)
    gpu.state.line_width_set(1.0)
    gpu.state.blend_set("NONE")


def _draw_names() -> None:
    import blf
    from bpy_extras.view3d_utils import location_3d_to_region_2d

    context = bpy.context
    region, region_3d = context.region, context.region_data
    if region is None or region_3d is None:
        return
    font = 0
    blf.size(font, 13)
    for entry in current_overlays():
        if entry["label_at"] is None:
            continue
        at = location_3d_to_region_2d(region, region_3d, entry["label_at"])
        if at is None:
            continue
        blf.color(font, *entry["color"])
        blf.position(font, at.x + 6, at.y + 6, 0)
        blf.draw(font, entry["name"])


def register() -> None:
    space = bpy.types.SpaceView3D
    _handles.append((space.draw_handler_add(_draw_lines, (), "WINDOW", "POST_VIEW"), "WINDOW"))
    _handles.append((space.draw_handler_add(_draw_names, (), "WINDOW", "POST_PIXEL"), "WINDOW"))


def unregister() -> None:
    while _handles:
        handle, region_type = _handles.pop()
        bpy.types.SpaceView3D.draw_handler_remove(handle, region_type)


def registered_handlers() -> int:
    return len(_handles)
