"""Which datablocks changed since the last pump, as the depsgraph handler reports them.

Kept by pointer, with the ones whose every update since the last pump was shading only (a selection or
a viewport redraw), which the tracker can look at more cheaply.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection

import bpy

_dirty: dict[int, bpy.types.ID] = {}
_shading_only: set[int] = set()  # pointers in _dirty whose every update since the last pump was shading only
_shown: set[tuple[int, int]] = set()  # (scene, view layer) pointers the windows showed at the last catch_up()


def note(ids, shading_only=()) -> None:
    light = set()
    for id_data in shading_only:
        with contextlib.suppress(ReferenceError):
            light.add(id_data.as_pointer())
    for id_data in ids:
        with contextlib.suppress(ReferenceError):
            ptr = id_data.as_pointer()
            if ptr not in _dirty and ptr in light:
                _shading_only.add(ptr)
            elif ptr not in light:
                _shading_only.discard(ptr)
            _dirty[ptr] = id_data


def forget() -> None:
    _dirty.clear()
    _shading_only.clear()


def take() -> tuple[list[bpy.types.ID], list[bpy.types.ID]]:
    """The datablocks noted since the last call, and those of them that changed shading only."""
    out = list(_dirty.values())
    light = [id_data for ptr, id_data in _dirty.items() if ptr in _shading_only]
    forget()
    return out, light


def pending() -> bool:
    """Whether anything was noted since the last :func:`take`."""
    return bool(_dirty)


def reported(id_data: bpy.types.ID) -> bool:
    """Whether this datablock was noted since the last :func:`take` for more than shading."""
    try:
        ptr = id_data.as_pointer()
    except ReferenceError:
        return False
    return ptr in _dirty and ptr not in _shading_only


def evaluate() -> set[int] | None:
    """Evaluate the depsgraph now (its handler notes what it reports); the pointers noted since the last
    :func:`take`, or None without a view layer."""
    view_layer = getattr(bpy.context, "view_layer", None)
    if view_layer is None:
        return None
    view_layer.update()
    return set(_dirty)


def catch_up() -> None:
    """Evaluate the view layers the windows showed at the last call and show no more.

    Blender reports an edit from each view layer's depsgraph when that one is evaluated, and a depsgraph made
    after the edit (a window switched to a view layer it had not shown) does not report it: the edit waits in
    the depsgraph of the view layer shown before, which no window evaluates any more.
    """
    global _shown
    wm = bpy.context.window_manager
    now = {(w.scene.as_pointer(), w.view_layer.as_pointer()) for w in (wm.windows if wm is not None else ())}
    if _shown - now:
        for scene in bpy.data.scenes:
            for layer in scene.view_layers:
                # Pointers only compared: a view layer removed since is not looked at.
                pair = (scene.as_pointer(), layer.as_pointer())
                if pair in _shown and pair not in now and layer.depsgraph is not None:
                    layer.update()
    _shown = now


def discard(ids, keep: Collection[int] = frozenset()) -> None:
    """Forget these datablocks' reports (the sync loop's own change, already taken care of), except those
    whose pointer is in ``keep`` (reported before that change)."""
    for id_data in ids:
        with contextlib.suppress(ReferenceError):
            ptr = id_data.as_pointer()
            if ptr in keep:
                continue
            _dirty.pop(ptr, None)
            _shading_only.discard(ptr)


def keep_only(ptrs: Collection[int]) -> None:
    """Forget every report but those of these pointers (the sync loop's own changes since they were taken)."""
    for ptr in [ptr for ptr in _dirty if ptr not in ptrs]:
        del _dirty[ptr]
        _shading_only.discard(ptr)


def drop_since(before: set[int] | None) -> bool:
    """Evaluate again and forget what that reports beyond ``before`` (what :func:`evaluate` answered before
    the sync loop changed the scene itself: no operator ran in between, so the rest is its own change);
    False, forgetting nothing, without a view layer."""
    if before is None or evaluate() is None:
        return False
    keep_only(before)
    return True
