"""Preferences, the "blendsync" sidebar tab of the 3D view, its lists and operators.

Operators only queue requests on the session (see session.py) and return at
once: connecting, joining and applying happen in the network thread and in
the timer's pump. After each pump, :func:`refresh` mirrors the session's
rooms and users into ``WindowManager.blendsync`` so that the UI lists can
show them.
"""

from __future__ import annotations

import getpass
import re

import bpy
from bpy.props import (
    BoolProperty,
    CollectionProperty,
    FloatVectorProperty,
    IntProperty,
    PointerProperty,
    StringProperty,
)

from . import session as session_module
from . import sync
from .leases import draw_leases
from .notices import draw_notices
from .overlay import rows_from_column_major
from .presence import find_region_3d
from .ui_untravelled import draw_untravelled

PACKAGE = __package__ or "blender_addon"


_BLENDER_MODE = re.compile(r"[A-Z][A-Z_]*")  # bpy.context.mode, as the add-on sends it in presence


def _default_name() -> str:
    try:
        return getpass.getuser()[:64] or "artist"
    except Exception:
        return "artist"


def preferences(context=None):
    context = context or bpy.context
    addon = context.preferences.addons.get(PACKAGE)
    return addon.preferences if addon is not None else None


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


# ---- data -----------------------------------------------------------------------------------------------


def _on_lock_selection(self, context) -> None:
    session = session_module.current()
    if session is not None:
        session.leases.enabled = self.lock_selection


class BLENDSYNC_AddonPreferences(bpy.types.AddonPreferences):
    bl_idname = PACKAGE

    servers: StringProperty(
        name="Servers",
        description="Broadcaster addresses, host:port, comma-separated; tried in order",
        default="127.0.0.1:12800",
    )
    user_name: StringProperty(name="Name", description="Shown to the other artists", default=_default_name())
    color: FloatVectorProperty(
        name="Colour", subtype="COLOR", size=3, min=0.0, max=1.0, default=(0.2, 0.6, 1.0)
    )
    token: StringProperty(
        name="Token", description="Access token, if the server asks for one", subtype="PASSWORD"
    )
    lock_selection: BoolProperty(
        name="Lock what I select",
        description="While an object is selected here, the others cannot change it",
        default=False,
        update=_on_lock_selection,
    )

    def draw(self, context):
        layout = self.layout
        layout.prop(self, "servers")
        row = layout.row()
        row.prop(self, "user_name")
        row.prop(self, "color", text="")
        layout.prop(self, "token")
        layout.prop(self, "lock_selection")


class BLENDSYNC_RoomItem(bpy.types.PropertyGroup):
    # ``name`` comes with PropertyGroup.
    users: IntProperty(name="Users")
    keys: IntProperty(name="Keys")
    size: IntProperty(name="Size")
    locked: BoolProperty(name="Locked")
    keep_open: BoolProperty(name="Keep open")


class BLENDSYNC_UserItem(bpy.types.PropertyGroup):
    client_id: StringProperty(name="Client")
    color: FloatVectorProperty(name="Colour", subtype="COLOR", size=3, min=0.0, max=1.0)
    mode: StringProperty(name="Mode")
    frame: IntProperty(name="Frame")
    scene: StringProperty(name="Scene")
    has_view: BoolProperty(name="Has view")


def _on_follow_view(self, context) -> None:
    session = session_module.current()
    if session is not None:
        session.follow_view(self.follow_view)


class BLENDSYNC_State(bpy.types.PropertyGroup):
    rooms: CollectionProperty(type=BLENDSYNC_RoomItem)
    room_index: IntProperty(default=0)
    users: CollectionProperty(type=BLENDSYNC_UserItem)
    user_index: IntProperty(default=0)
    new_room: StringProperty(name="Room", default="shot-010")
    keep_open: BoolProperty(
        name="Keep open", description="Keep the room when its last artist leaves", default=True
    )
    password: StringProperty(name="Password", subtype="PASSWORD")
    send_scene: BoolProperty(
        name="Send my scene", description="Upload this file's scene into the new, empty room", default=True
    )
    join_password: StringProperty(name="Password", description="For locked rooms", subtype="PASSWORD")
    show_notices: BoolProperty(name="History", description="Show every recent notice", default=False)
    follow_view: BoolProperty(
        name="Follow the shared camera and frame",
        description="Share the active camera, current frame, preview range and viewport shading with the "
        "other artists who follow them (off: they are yours alone)",
        default=False,
        update=_on_follow_view,
    )
    revision: IntProperty(default=-1)


def state(context=None) -> BLENDSYNC_State:
    return (context or bpy.context).window_manager.blendsync


def refresh(session) -> None:
    """Mirror the session's rooms and users into the UI lists (after-pump hook)."""
    wm = bpy.context.window_manager
    st = getattr(wm, "blendsync", None)
    if st is None or st.revision == session.revision % (1 << 30):
        return
    st.revision = session.revision % (1 << 30)
    selected = st.rooms[st.room_index].name if 0 <= st.room_index < len(st.rooms) else None
    st.rooms.clear()
    for name in sorted(session.rooms):
        info = session.rooms[name]
        item = st.rooms.add()
        item.name = name
        item.users = int(info.get("users", 0) or 0)
        item.keys = int(info.get("keys", 0) or 0)
        item.size = min(int(info.get("bytes", 0) or 0), 2**31 - 1)
        item.locked = bool(info.get("locked"))
        item.keep_open = bool(info.get("keep_open"))
        if name == selected:
            st.room_index = len(st.rooms) - 1
    st.users.clear()
    editors = session.editors()
    for client_id, info in sorted(session.users.items(), key=lambda kv: str(kv[1].get("name", ""))):
        item = st.users.add()
        item.name = str(info.get("name") or client_id)
        item.client_id = client_id
        color = list(info.get("color") or (1.0, 1.0, 1.0))[:3]
        item.color = [min(1.0, max(0.0, float(c))) for c in color + [1.0] * (3 - len(color))]
        editing = editors.get(client_id)
        # "editing X" comes from the locks others hold, never from what a client says of itself: a mode that
        # is not one of Blender's names (EDIT_MESH, SCULPT...) is not shown.
        mode = str(info.get("mode") or "")
        item.mode = (
            f"editing {', '.join(editing)}" if editing else mode if _BLENDER_MODE.fullmatch(mode) else ""
        )
        item.frame = int(info.get("frame") or 0)
        item.scene = str(info.get("scene") or "")
        item.has_view = isinstance(info.get("view_matrix"), list)
    for area in getattr(bpy.context.screen, "areas", ()):
        if area.type == "VIEW_3D":
            area.tag_redraw()


# ---- lists ----------------------------------------------------------------------------------------------


class BLENDSYNC_UL_rooms(bpy.types.UIList):
    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index=0):
        row = layout.row(align=True)
        row.label(text=item.name, icon="LOCKED" if item.locked else "UNLOCKED")
        row.label(text=f"{item.users}", icon="USER")
        row.label(text=human_size(item.size))
        if item.keep_open:
            row.label(text="", icon="PINNED")


class BLENDSYNC_UL_users(bpy.types.UIList):
    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index=0):
        row = layout.row(align=True)
        swatch = row.row()
        swatch.ui_units_x = 1
        swatch.prop(item, "color", text="")
        row.label(text=item.name)
        mode = item.mode  # "editing <datablock names>" or Blender's mode, e.g. EDIT_MESH
        row.label(text=mode if mode.startswith("editing ") else mode.title().replace("_", " "))
        row.label(text=f"{item.frame}", icon="TIME")
        row.label(text=item.scene, icon="SCENE_DATA")


# ---- operators ------------------------------------------------------------------------------------------


def _need_session(operator) -> object | None:
    session = session_module.current()
    if session is None:
        operator.report({"WARNING"}, "Not connected")
    return session


class BLENDSYNC_OT_connect(bpy.types.Operator):
    """Connect to the broadcaster (in the background: the UI does not wait)"""

    bl_idname = "blendsync.connect"
    bl_label = "Connect"

    servers: StringProperty(name="Servers", description="Overrides the preferences when set")

    def execute(self, context):
        prefs = preferences(context)
        servers = self.servers or (prefs.servers if prefs else "127.0.0.1:12800")
        name = (prefs.user_name if prefs else "") or _default_name()
        color = tuple(prefs.color) if prefs else (0.2, 0.6, 1.0)
        token = (prefs.token if prefs else "") or None
        lock_selection = bool(prefs.lock_selection) if prefs else False
        try:
            session = session_module.start(
                servers,
                name=name,
                color=color,
                token=token,
                version=_version(),
                lock_selection=lock_selection,
            )
            session.view.following = state(context).follow_view
        except ValueError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        return {"FINISHED"}


class BLENDSYNC_OT_disconnect(bpy.types.Operator):
    """Leave the room and close the connection"""

    bl_idname = "blendsync.disconnect"
    bl_label = "Disconnect"

    def execute(self, context):
        session_module.stop()
        st = state(context)
        st.rooms.clear()
        st.users.clear()
        st.revision = -1
        return {"FINISHED"}


class BLENDSYNC_OT_refresh_rooms(bpy.types.Operator):
    """Ask the server for the room list again"""

    bl_idname = "blendsync.refresh_rooms"
    bl_label = "Refresh Rooms"

    def execute(self, context):
        session = _need_session(self)
        if session is None:
            return {"CANCELLED"}
        session.list_rooms()
        return {"FINISHED"}


class BLENDSYNC_OT_create_room(bpy.types.Operator):
    """Create a room and join it"""

    bl_idname = "blendsync.create_room"
    bl_label = "Create Room"

    def execute(self, context):
        session = _need_session(self)
        if session is None:
            return {"CANCELLED"}
        st = state(context)
        if not st.new_room.strip():
            self.report({"ERROR"}, "The room needs a name")
            return {"CANCELLED"}
        session.create_room(
            st.new_room.strip(),
            keep_open=st.keep_open,
            password=st.password or None,
            send_scene=st.send_scene,
            join=session.room is None,
        )
        return {"FINISHED"}


def _selected_room(context) -> str | None:
    st = state(context)
    if 0 <= st.room_index < len(st.rooms):
        return st.rooms[st.room_index].name
    return None


class BLENDSYNC_OT_join_room(bpy.types.Operator):
    """Join the selected room: the local scene is replaced by the room's"""

    bl_idname = "blendsync.join_room"
    bl_label = "Join Room"

    room: StringProperty(name="Room", description="Defaults to the room selected in the list")

    def execute(self, context):
        session = _need_session(self)
        if session is None:
            return {"CANCELLED"}
        room = self.room or _selected_room(context)
        if not room:
            self.report({"ERROR"}, "Select a room")
            return {"CANCELLED"}
        session.join_room(room, password=state(context).join_password or None)
        return {"FINISHED"}


class BLENDSYNC_OT_leave_room(bpy.types.Operator):
    """Leave the room (the local scene stays as it is)"""

    bl_idname = "blendsync.leave_room"
    bl_label = "Leave Room"

    def execute(self, context):
        session = _need_session(self)
        if session is None:
            return {"CANCELLED"}
        session.leave_room()
        return {"FINISHED"}


class BLENDSYNC_OT_delete_room(bpy.types.Operator):
    """Delete the selected room (only when nobody is in it)"""

    bl_idname = "blendsync.delete_room"
    bl_label = "Delete Room"

    room: StringProperty(name="Room")

    def execute(self, context):
        session = _need_session(self)
        if session is None:
            return {"CANCELLED"}
        room = self.room or _selected_room(context)
        if not room:
            self.report({"ERROR"}, "Select a room")
            return {"CANCELLED"}
        session.delete_room(room)
        return {"FINISHED"}


def _user(context, client_id: str):
    session = session_module.current()
    if session is None:
        return None
    if not client_id:
        st = state(context)
        if 0 <= st.user_index < len(st.users):
            client_id = st.users[st.user_index].client_id
    return session.users.get(client_id)


class BLENDSYNC_OT_snap_view(bpy.types.Operator):
    """Look through the selected artist's viewport"""

    bl_idname = "blendsync.snap_view"
    bl_label = "Snap to Their View"

    client_id: StringProperty(name="Client")

    def execute(self, context):
        user = _user(context, self.client_id)
        view = user.get("view_matrix") if user else None
        if not isinstance(view, list) or len(view) != 16:
            self.report({"WARNING"}, "That artist has no 3D view")
            return {"CANCELLED"}
        region_3d = context.region_data or find_region_3d()
        if region_3d is None:
            self.report({"WARNING"}, "No 3D view here")
            return {"CANCELLED"}
        snap_region_to_view(region_3d, view)
        return {"FINISHED"}


def snap_region_to_view(region_3d, view_matrix: list[float]) -> None:
    """Make a 3D view look from where another artist looks (keeping its orbit distance)."""
    from mathutils import Matrix, Vector

    world = Matrix(rows_from_column_major(view_matrix)).inverted_safe()
    rotation = world.to_quaternion()
    if region_3d.view_perspective == "CAMERA":
        region_3d.view_perspective = "PERSP"
    distance = region_3d.view_distance
    region_3d.view_rotation = rotation
    region_3d.view_location = world.translation + (rotation @ Vector((0.0, 0.0, -1.0))) * distance


class BLENDSYNC_OT_snap_frame(bpy.types.Operator):
    """Go to the selected artist's current frame"""

    bl_idname = "blendsync.snap_frame"
    bl_label = "Snap to Their Frame"

    client_id: StringProperty(name="Client")

    def execute(self, context):
        user = _user(context, self.client_id)
        if not user or not isinstance(user.get("frame"), int):
            self.report({"WARNING"}, "That artist has not told their frame")
            return {"CANCELLED"}
        context.scene.frame_set(user["frame"])
        return {"FINISHED"}


# ---- panels ---------------------------------------------------------------------------------------------


class _Tab:
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "blendsync"


class BLENDSYNC_PT_connection(_Tab, bpy.types.Panel):
    bl_label = "blendsync"
    bl_idname = "BLENDSYNC_PT_connection"

    def draw(self, context):
        draw_connection(self.layout, context)


class BLENDSYNC_PT_rooms(_Tab, bpy.types.Panel):
    bl_label = "Rooms"
    bl_idname = "BLENDSYNC_PT_rooms"

    @classmethod
    def poll(cls, context):
        return session_module.current() is not None

    def draw(self, context):
        draw_rooms(self.layout, context)


class BLENDSYNC_PT_users(_Tab, bpy.types.Panel):
    bl_label = "Artists"
    bl_idname = "BLENDSYNC_PT_users"

    @classmethod
    def poll(cls, context):
        session = session_module.current()
        return session is not None and session.room is not None

    def draw(self, context):
        draw_users(self.layout, context)


def draw_connection(layout, context) -> None:
    session = session_module.current()
    prefs = preferences(context)
    if session is None:
        if prefs is not None:
            layout.prop(prefs, "servers", text="")
            row = layout.row()
            row.prop(prefs, "user_name", text="")
            row.prop(prefs, "color", text="")
        layout.operator("blendsync.connect", icon="URL")
        return
    icon = {"connected": "CHECKMARK", "connecting": "TIME", "disconnected": "ERROR"}.get(session.state, "X")
    layout.label(text=session.status, icon=icon)
    if session.room is not None:
        layout.label(text=f"Room: {session.room} (seq {session.last_seq})", icon="WORLD")
        if session.busy:
            layout.progress(factor=session.progress, type="BAR", text=f"Loading {session.progress:.0%}")
        elif session.unacked:
            layout.label(text=f"{len(session.unacked)} change(s) waiting for the server", icon="SORTTIME")
    for message in session.messages[-3:]:
        layout.label(text=message, icon="INFO")
    draw_notices(layout, session, state(context).show_notices, state(context))
    not_applied = session.applier.errors[-3:]
    if not_applied:
        # What the room holds but this Blender could not apply: which datablock, and why.
        box = layout.box()
        box.label(text=f"Not applied here ({len(session.applier.errors)})", icon="ERROR")
        for key, why in not_applied:
            box.label(text=f"{sync.key_subject(key)}: {why}")
    if session.room is not None:
        draw_untravelled(layout, context)
    layout.operator("blendsync.disconnect", icon="CANCEL")


def draw_rooms(layout, context) -> None:
    session = session_module.current()
    st = state(context)
    row = layout.row()
    row.template_list("BLENDSYNC_UL_rooms", "", st, "rooms", st, "room_index", rows=4)
    side = row.column(align=True)
    side.operator("blendsync.refresh_rooms", text="", icon="FILE_REFRESH")
    side.operator("blendsync.delete_room", text="", icon="TRASH")
    if session is not None and session.room is not None:
        layout.prop(st, "follow_view")
        layout.operator("blendsync.leave_room", icon="LOOP_BACK")
        return
    row = layout.row(align=True)
    row.prop(st, "join_password", text="", icon="LOCKED")
    row.operator("blendsync.join_room", icon="IMPORT")
    box = layout.box()
    box.label(text="New room", icon="ADD")
    box.prop(st, "new_room")
    row = box.row()
    row.prop(st, "keep_open")
    row.prop(st, "send_scene")
    box.prop(st, "password")
    box.operator("blendsync.create_room", icon="ADD")


def draw_users(layout, context) -> None:
    st = state(context)
    layout.template_list("BLENDSYNC_UL_users", "", st, "users", st, "user_index", rows=3)
    row = layout.row(align=True)
    row.operator("blendsync.snap_view", icon="HIDE_OFF")
    row.operator("blendsync.snap_frame", icon="TIME")
    session = session_module.current()
    if session is not None:
        draw_leases(layout, session)


def _version() -> str:
    return f"blendsync-addon {'.'.join(map(str, bpy.app.version))}"


CLASSES = (
    BLENDSYNC_AddonPreferences,
    BLENDSYNC_RoomItem,
    BLENDSYNC_UserItem,
    BLENDSYNC_State,
    BLENDSYNC_UL_rooms,
    BLENDSYNC_UL_users,
    BLENDSYNC_OT_connect,
    BLENDSYNC_OT_disconnect,
    BLENDSYNC_OT_refresh_rooms,
    BLENDSYNC_OT_create_room,
    BLENDSYNC_OT_join_room,
    BLENDSYNC_OT_leave_room,
    BLENDSYNC_OT_delete_room,
    BLENDSYNC_OT_snap_view,
    BLENDSYNC_OT_snap_frame,
    BLENDSYNC_PT_connection,
    BLENDSYNC_PT_rooms,
    BLENDSYNC_PT_users,
)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.WindowManager.blendsync = PointerProperty(type=BLENDSYNC_State)
    session_module.after_pump.append(refresh)


def unregister() -> None:
    if refresh in session_module.after_pump:
        session_module.after_pump.remove(refresh)
    del bpy.types.WindowManager.blendsync
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
