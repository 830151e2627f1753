"""Edit-mode commands of the Blender worker (``tools/bench/addon_worker.py``), for ``addon.py editmode``.

Imported inside the worker once ``bpy`` is; each command takes the worker's helpers (:class:`Helpers`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any


@dataclass
class Helpers:
    bpy: Any
    session: Any  # () -> the add-on's SyncSession
    timer_tick: Any  # () -> seconds until the next call (what Blender's event loop does once)
    run_until: Any  # (predicate, timeout) -> pumps
    settled: Any  # (session) -> nothing queued
    pump_profile: list[Any]  # [cProfile.Profile] while the timer calls are profiled, else []


def profile(h: Helpers, path: str | None = None) -> dict[str, Any]:
    """Without ``path``: profile the timer calls from now on; with it: write the stats there and stop."""
    import cProfile

    if path is None:
        h.pump_profile[:] = [cProfile.Profile()]
    elif h.pump_profile:
        h.pump_profile.pop().dump_stats(path)
    return {}


def enter(h: Helpers, object: str) -> dict[str, Any]:
    """Make the object active and enter edit mode; pump until its lease is held and nothing is queued."""
    bpy = h.bpy
    session = h.session()
    ob = bpy.data.objects[object]
    bpy.context.view_layer.objects.active = ob
    bpy.ops.object.mode_set(mode="EDIT")
    h.run_until(lambda: session.edit_mode.leased and h.settled(session), 60)
    return {"mode": ob.mode, "vertices": len(ob.data.vertices)}


def leave(h: Helpers, object: str) -> dict[str, Any]:
    bpy = h.bpy
    session = h.session()
    bpy.ops.object.mode_set(mode="OBJECT")
    h.run_until(lambda: not session.edit_mode.leased and h.settled(session), 60)
    return {"mode": bpy.data.objects[object].mode}


def move(
    h: Helpers, object: str, index: int, z: float, after: float, timeout: float = 60.0
) -> dict[str, Any]:
    """Run the timer the way Blender does and, ``after`` seconds in (between two timer calls, where an
    operator runs), move vertex ``index`` of the edit mesh to height ``z``; then go on until the edit was
    copied out of the edit mesh, sent and acknowledged. Returns when (wall clock) the vertex moved, and the
    timer calls."""
    import bmesh

    bpy = h.bpy
    session = h.session()
    ob = bpy.data.objects[object]
    assert ob.mode == "EDIT", ob.mode
    calls: list[float] = []
    start = time.monotonic()
    due = start + after
    edit_at = None
    edit_wall = 0.0
    end = start + timeout
    while time.monotonic() < end:
        t0 = time.perf_counter()
        interval = h.timer_tick()
        calls.append(time.perf_counter() - t0)
        copied = edit_at is not None and abs(ob.data.vertices[index].co.z - z) < 1e-6  # out of the edit mesh
        if copied and h.settled(session) and time.monotonic() - edit_wall > 0.3:
            break  # copied, sent and acknowledged
        next_call = time.monotonic() + interval
        if edit_at is None and due < next_call:
            time.sleep(max(0.0, due - time.monotonic()))
            bm = bmesh.from_edit_mesh(ob.data)
            bm.verts.ensure_lookup_table()
            bm.verts[index].co.z = z
            bmesh.update_edit_mesh(ob.data)
            edit_at = time.time()
            edit_wall = time.monotonic()
        time.sleep(max(0.0, next_call - time.monotonic()))
    else:
        raise TimeoutError("the edit was not acknowledged")
    ms = sorted(c * 1000 for c in calls)
    return {"edit_at": edit_at, "timer_calls": len(ms), "timer_max_ms": round(ms[-1], 3), "mode": ob.mode}


COMMANDS = {"edit_mode_enter": enter, "edit_mode_leave": leave, "edit_mode_move": move, "profile": profile}
