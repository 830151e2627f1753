"""The room's history in the sidebar: a blame box for the active object, the checkpoint list with buttons
to name one and to restore one (room_history.py does the talking), and the Replay box (replay_ui.py)."""

from __future__ import annotations

import time

import bpy
from bpy.props import IntProperty, StringProperty

from . import replay, replay_ui, room_history
from . import session as session_module
from .panel_support import InRoom, RedrawOnRevision
from .panel_support import joined_session as _joined
from .session_events import LISTENERS

SHOWN_CHECKPOINTS = 20
# The outliner's right-click menus: datablocks in general, objects, collections
OUTLINER_MENUS = ("OUTLINER_MT_context_menu", "OUTLINER_MT_object", "OUTLINER_MT_collection")


def _when(seconds: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(seconds)) if seconds else "?"


class BLENDSYNC_OT_blame(bpy.types.Operator):
    """Ask the server who last changed each part of the datablock the box shows"""

    bl_idname = "blendsync.blame"
    bl_label = "Who changed it?"

    @classmethod
    def poll(cls, context):
        session = _joined()
        return session is not None and room_history.blamed(session, context.active_object) is not None

    def execute(self, context):
        session = _joined()
        for _, prefix in room_history.datablock_prefixes(room_history.blamed(session, context.active_object)):
            room_history.request_blame(session, prefix)
        return {"FINISHED"}


class BLENDSYNC_OT_blame_pick(bpy.types.Operator):
    """Show who last changed each part of this datablock (in the blendsync sidebar's Who changed it box)"""

    bl_idname = "blendsync.blame_pick"
    bl_label = "Who changed it? (blendsync)"

    @classmethod
    def poll(cls, context):
        return _joined() is not None and getattr(context, "id", None) is not None

    def execute(self, context):
        if not room_history.pick(_joined(), context.id):
            self.report({"WARNING"}, f"{context.id.name} is not synchronised")
            return {"CANCELLED"}
        return {"FINISHED"}


class BLENDSYNC_OT_blame_unpick(InRoom, bpy.types.Operator):
    """Go back to showing the active object"""

    bl_idname = "blendsync.blame_unpick"
    bl_label = "Back to the active object"

    def execute(self, context):
        room_history.unpick(_joined())
        return {"FINISHED"}


def draw_outliner_menu(menu, context) -> None:
    """The outliner's context menu entry: blame of the datablock right-clicked."""
    if BLENDSYNC_OT_blame_pick.poll(context):
        menu.layout.separator()
        menu.layout.operator(BLENDSYNC_OT_blame_pick.bl_idname, icon="VIEWZOOM")


class BLENDSYNC_OT_checkpoint(InRoom, bpy.types.Operator):
    """Name the room's current state, to come back to it later"""

    bl_idname = "blendsync.checkpoint"
    bl_label = "Name a checkpoint"

    name: StringProperty(name="Name", default="checkpoint", maxlen=255)

    def invoke(self, context, event):
        return context.window_manager.invoke_props_dialog(self)

    def execute(self, context):
        room_history.name_checkpoint(_joined(), self.name)
        return {"FINISHED"}


class BLENDSYNC_OT_checkpoints(InRoom, bpy.types.Operator):
    """List the room's checkpoints"""

    bl_idname = "blendsync.checkpoints"
    bl_label = "Refresh"

    def execute(self, context):
        room_history.request_checkpoints(_joined())
        return {"FINISHED"}


class BLENDSYNC_OT_restore(InRoom, bpy.types.Operator):
    """Bring everyone's scene back to this checkpoint (the state before is kept as a checkpoint too)"""

    bl_idname = "blendsync.restore"
    bl_label = "Restore"

    checkpoint: IntProperty(name="Checkpoint", min=1)

    def invoke(self, context, event):
        return context.window_manager.invoke_confirm(self, event)

    def execute(self, context):
        room_history.restore(_joined(), self.checkpoint)
        return {"FINISHED"}


class _Tab(InRoom):
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "blendsync"


class BLENDSYNC_PT_blame(_Tab, bpy.types.Panel):
    bl_label = "Who changed it"
    bl_idname = "BLENDSYNC_PT_blame"

    def draw(self, context):
        layout = self.layout
        session = _joined()
        ob = room_history.blamed(session, context.active_object)
        if ob is not None and ob != context.active_object:
            row = layout.row()
            row.label(text=f"{ob.name} (picked in the outliner)")
            row.operator(BLENDSYNC_OT_blame_unpick.bl_idname, text="", icon="X")
        if ob is None:
            layout.label(text="No active object (or right-click a datablock in the outliner)")
            return
        layout.operator(BLENDSYNC_OT_blame.bl_idname, icon="VIEWZOOM")
        for label, prefix in room_history.datablock_prefixes(ob):
            rows = room_history.blame_rows(session, prefix)
            if not rows:
                continue
            box = layout.box()
            box.label(text=f"{ob.name} ({label})")
            for part, who, when in rows[:30]:
                row = box.row()
                row.label(text=part)
                row.label(text=who or "?")
                row.label(text=_when(when))


class BLENDSYNC_PT_checkpoints(_Tab, bpy.types.Panel):
    bl_label = "Checkpoints"
    bl_idname = "BLENDSYNC_PT_checkpoints"

    def draw(self, context):
        layout = self.layout
        row = layout.row()
        row.operator(BLENDSYNC_OT_checkpoint.bl_idname, icon="BOOKMARKS")
        row.operator(BLENDSYNC_OT_checkpoints.bl_idname, icon="FILE_REFRESH")
        checkpoints = room_history.view(_joined()).checkpoints
        for checkpoint in reversed(checkpoints[-SHOWN_CHECKPOINTS:]):
            row = layout.row()
            who = checkpoint.get("by") or "server"
            auto = " (auto)" if checkpoint.get("auto") else ""
            row.label(text=f"{checkpoint.get('name')}{auto}: {who}, {_when(checkpoint.get('time', 0))}")
            op = row.operator(BLENDSYNC_OT_restore.bl_idname, text="", icon="LOOP_BACK")
            op.checkpoint = checkpoint["id"]
        replay_ui.draw_box(layout, context)


def _revision(session) -> tuple[int, int]:
    state = replay.active(session)
    return room_history.view(session).revision, state.revision if state is not None else -1


_redraw = RedrawOnRevision(_revision)  # after a history reply arrived


CLASSES = (
    BLENDSYNC_OT_blame,
    BLENDSYNC_OT_blame_pick,
    BLENDSYNC_OT_blame_unpick,
    BLENDSYNC_OT_checkpoint,
    BLENDSYNC_OT_checkpoints,
    BLENDSYNC_OT_restore,
    BLENDSYNC_PT_blame,
    BLENDSYNC_PT_checkpoints,
)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    LISTENERS.append(room_history.on_event)
    replay_ui.register()
    session_module.after_pump.append(_redraw)
    for menu in OUTLINER_MENUS:
        getattr(bpy.types, menu).append(draw_outliner_menu)


def unregister() -> None:
    for menu in OUTLINER_MENUS:
        getattr(bpy.types, menu).remove(draw_outliner_menu)
    if _redraw in session_module.after_pump:
        session_module.after_pump.remove(_redraw)
    replay_ui.unregister()
    if room_history.on_event in LISTENERS:
        LISTENERS.remove(room_history.on_event)
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
