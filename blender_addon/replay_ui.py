"""The Replay box of the history panel: enter replay, a slider over the retained seqs, one-seq steps, and
*Back to live* (replay.py does the work)."""

from __future__ import annotations

import bpy
from bpy.props import FloatProperty, IntProperty

from . import replay
from .panel_support import joined_session as _session
from .session_events import LISTENERS

_syncing = False  # the slider is being moved to a seq chosen elsewhere: not a request of its own


def _slider_moved(wm, context) -> None:
    if not _syncing:
        replay.show_fraction(_session(), wm.blendsync_replay_at)


def _put_slider(wm, state: replay.Replay, seq: int) -> None:
    global _syncing
    span = state.last - state.first
    _syncing = True
    try:
        wm.blendsync_replay_at = (seq - state.first) / span if span > 0 else 1.0
    finally:
        _syncing = False


class BLENDSYNC_OT_replay_enter(bpy.types.Operator):
    """Show a read-only copy of the room at an earlier point of its history (the room is not changed)"""

    bl_idname = "blendsync.replay_enter"
    bl_label = "Replay history"

    @classmethod
    def poll(cls, context):
        return replay.can_enter(_session())

    def execute(self, context):
        global _syncing
        _syncing = True
        try:
            context.window_manager.blendsync_replay_at = 1.0  # starts at the room's current seq
        finally:
            _syncing = False
        replay.enter(_session())
        return {"FINISHED"}


class BLENDSYNC_OT_replay_step(bpy.types.Operator):
    """Show the room one operation earlier or later"""

    bl_idname = "blendsync.replay_step"
    bl_label = "Step"

    delta: IntProperty(name="Step", default=1, min=-1, max=1)

    @classmethod
    def poll(cls, context):
        state = replay.active(_session())
        return state is not None and state.seq is not None

    def execute(self, context):
        state = replay.active(_session())
        seq = min(max(state.seq + self.delta, state.first), state.last)
        _put_slider(context.window_manager, state, seq)
        replay.show(_session(), seq)
        return {"FINISHED"}


class BLENDSYNC_OT_replay_live(bpy.types.Operator):
    """Leave the replay: the scene becomes the live room again (what you did while replaying is dropped)"""

    bl_idname = "blendsync.replay_live"
    bl_label = "Back to live"

    @classmethod
    def poll(cls, context):
        return replay.active(_session()) is not None

    def execute(self, context):
        replay.back_to_live(_session())
        return {"FINISHED"}


def draw_box(layout, context) -> None:
    """The Replay box (drawn inside the checkpoint panel)."""
    box = layout.box()
    box.label(text="Replay", icon="TIME")
    state = replay.active(_session())
    if state is None:
        box.operator(BLENDSYNC_OT_replay_enter.bl_idname, icon="PLAY")
        return
    warning = box.column()
    warning.alert = True
    warning.label(text="Read-only: nothing you do here reaches the room", icon="ERROR")
    if state.seq is None:
        box.label(text="Reading the room ...")
    else:
        box.prop(context.window_manager, "blendsync_replay_at", text=f"seq {state.seq}", slider=True)
        row = box.row(align=True)
        row.operator(BLENDSYNC_OT_replay_step.bl_idname, text="", icon="TRIA_LEFT").delta = -1
        row.label(text=f"{state.first} to {state.last}")
        row.operator(BLENDSYNC_OT_replay_step.bl_idname, text="", icon="TRIA_RIGHT").delta = 1
        if state.loading is not None:
            box.label(text="Reading ...")
    if state.error:
        box.label(text=state.error, icon="ERROR")
    box.operator(BLENDSYNC_OT_replay_live.bl_idname, icon="LOOP_BACK")


CLASSES = (BLENDSYNC_OT_replay_enter, BLENDSYNC_OT_replay_step, BLENDSYNC_OT_replay_live)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.WindowManager.blendsync_replay_at = FloatProperty(
        name="Replay at",
        description="Where in the room's retained history the scene is shown (right: now)",
        min=0.0,
        max=1.0,
        default=1.0,
        subtype="FACTOR",
        update=_slider_moved,
    )
    LISTENERS.append(replay.on_event)


def unregister() -> None:
    if replay.on_event in LISTENERS:
        LISTENERS.remove(replay.on_event)
    del bpy.types.WindowManager.blendsync_replay_at
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
