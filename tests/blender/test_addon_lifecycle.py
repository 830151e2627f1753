"""Enabling and disabling the add-on leaves nothing behind: handlers, timers, draw handlers, classes."""

from __future__ import annotations

import threading

import pytest

bpy = pytest.importorskip("bpy", reason="bpy (Blender as a Python module) is not installed")

import addon_utils  # noqa: E402

pytestmark = pytest.mark.blender

CLASS_NAMES = [
    "BLENDSYNC_AddonPreferences",
    "BLENDSYNC_RoomItem",
    "BLENDSYNC_UserItem",
    "BLENDSYNC_State",
    "BLENDSYNC_UL_rooms",
    "BLENDSYNC_UL_users",
    "BLENDSYNC_OT_connect",
    "BLENDSYNC_OT_disconnect",
    "BLENDSYNC_OT_refresh_rooms",
    "BLENDSYNC_OT_create_room",
    "BLENDSYNC_OT_join_room",
    "BLENDSYNC_OT_leave_room",
    "BLENDSYNC_OT_delete_room",
    "BLENDSYNC_OT_snap_view",
    "BLENDSYNC_OT_snap_frame",
    "BLENDSYNC_PT_connection",
    "BLENDSYNC_PT_rooms",
    "BLENDSYNC_PT_users",
]


def footprint() -> dict:
    from blender_addon import overlay, session, ui

    handlers = {
        name: list(getattr(bpy.app.handlers, name))
        for name in dir(bpy.app.handlers)
        if isinstance(getattr(bpy.app.handlers, name), list)
    }
    return {
        "handlers": handlers,
        "timer": bpy.app.timers.is_registered(session._timer),
        "draw_handlers": overlay.registered_handlers(),
        "classes": sorted(cls.__name__ for cls in ui.CLASSES if cls.is_registered),
        "types": sorted(name for name in CLASS_NAMES if hasattr(bpy.types, name)),
        "wm_property": "blendsync" in bpy.types.WindowManager.bl_rna.properties,
        "operators": hasattr(bpy.ops.blendsync, "connect") and _operator_exists("connect"),
        "threads": sorted(t.name for t in threading.enumerate() if t.name.startswith("blendsync")),
        "session": session.current() is not None,
    }


def _operator_exists(name: str) -> bool:
    try:
        getattr(bpy.ops.blendsync, name).get_rna_type()
    except (KeyError, AttributeError, RuntimeError):
        return False
    return True


def _raise(exc):
    raise exc


def test_enable_connect_disable_leaves_nothing_behind():
    addon_utils.disable("blender_addon", default_set=True)
    import blender_addon  # noqa: F401  (so that footprint() can import its modules)

    before = footprint()
    assert before["classes"] == [] and not before["timer"] and not before["wm_property"]
    for _ in range(2):  # twice: a second enable must not find leftovers ("already registered")
        assert addon_utils.enable("blender_addon", default_set=True, handle_error=_raise) is not None
        # Connecting starts the timer and the network thread (to a port nobody listens on: it retries).
        assert bpy.ops.blendsync.connect(servers="127.0.0.1:9") == {"FINISHED"}
        during = footprint()
        assert during["timer"] and during["draw_handlers"] == 2 and during["session"]
        assert during["classes"] == sorted(CLASS_NAMES) and during["wm_property"]
        assert "BLENDSYNC_PT_connection" in during["types"] and during["operators"]
        assert during["threads"] == ["blendsync-net"]
        assert during["handlers"] != before["handlers"]
        from blender_addon import session

        net = session.current().net
        addon_utils.disable("blender_addon", default_set=True)
        assert not net.alive
        assert footprint() == before


def test_handlers_are_persistent_across_file_loads():
    assert addon_utils.enable("blender_addon", default_set=True, handle_error=_raise) is not None
    try:
        import blender_addon

        bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
        assert blender_addon._on_depsgraph_update in bpy.app.handlers.depsgraph_update_post
        assert blender_addon._on_load_post in bpy.app.handlers.load_post
    finally:
        addon_utils.disable("blender_addon", default_set=True)
    assert blender_addon._on_depsgraph_update not in bpy.app.handlers.depsgraph_update_post
