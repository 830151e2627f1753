"""The *Share* box under the room panel, for the room's owner: make a read-only link for reviewers with an
expiry, copy its URL, list and revoke the room's links (share_links.py does the talking)."""

from __future__ import annotations

import time
from typing import Any

import bpy
from bpy.props import EnumProperty, StringProperty

from . import session as session_module
from . import share_links
from .panel_support import RedrawOnRevision
from .session_events import LISTENERS


def _owner_session():
    session = session_module.current()
    return session if share_links.may_share(session) else None


def _when(seconds: Any) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(seconds)) if seconds else "never"


class BLENDSYNC_OT_share_create(bpy.types.Operator):
    """Make a read-only link to this room for reviewers in a browser (it expires, and can be revoked)"""

    bl_idname = "blendsync.share_create"
    bl_label = "Create share link"

    @classmethod
    def poll(cls, context):
        return _owner_session() is not None

    def execute(self, context):
        expires_in = int(context.window_manager.blendsync_share_expiry)
        share_links.make_link(_owner_session(), expires_in)
        return {"FINISHED"}


class BLENDSYNC_OT_share_copy(bpy.types.Operator):
    """Copy the new link's URL to the clipboard"""

    bl_idname = "blendsync.share_copy"
    bl_label = "Copy link"

    @classmethod
    def poll(cls, context):
        session = _owner_session()
        made = share_links.view(session).made if session is not None else None
        return made is not None and bool(made.get("url"))

    def execute(self, context):
        shares = share_links.view(_owner_session())
        context.window_manager.clipboard = shares.made["url"]
        shares.copied = True
        shares.revision += 1
        self.report({"INFO"}, "share link copied")
        return {"FINISHED"}


class BLENDSYNC_OT_shares_refresh(bpy.types.Operator):
    """List this room's share links"""

    bl_idname = "blendsync.shares_refresh"
    bl_label = "Refresh"

    @classmethod
    def poll(cls, context):
        return _owner_session() is not None

    def execute(self, context):
        share_links.list_links(_owner_session())
        return {"FINISHED"}


class BLENDSYNC_OT_share_revoke(bpy.types.Operator):
    """Revoke this link: whoever has it open is disconnected at once, and it opens nothing any more"""

    bl_idname = "blendsync.share_revoke"
    bl_label = "Revoke"

    name: StringProperty(name="Link")

    @classmethod
    def poll(cls, context):
        return _owner_session() is not None

    def invoke(self, context, event):
        return context.window_manager.invoke_confirm(self, event)

    def execute(self, context):
        share_links.revoke(_owner_session(), self.name)
        return {"FINISHED"}


def draw_share(layout, context) -> None:
    session = _owner_session()
    if session is None:
        return
    shares = share_links.view(session)
    row = layout.row(align=True)
    row.prop(context.window_manager, "blendsync_share_expiry", text="Expires in")
    row.operator(BLENDSYNC_OT_share_create.bl_idname, text="Create", icon="LINKED")
    if shares.made is not None and shares.made.get("url"):
        box = layout.box()
        box.label(text=f"New link, until {_when(shares.made.get('expires_at'))} (shown only now):")
        box.label(text=shares.made["url"])
        if shares.copied:
            box.label(text="Copied to the clipboard", icon="CHECKMARK")
        else:
            box.operator(BLENDSYNC_OT_share_copy.bl_idname, icon="COPYDOWN")
    if shares.error:
        layout.label(text=shares.error, icon="ERROR")
    row = layout.row()
    row.label(text=f"Links to this room: {len(shares.links)}")
    row.operator(BLENDSYNC_OT_shares_refresh.bl_idname, text="", icon="FILE_REFRESH")
    for link in shares.links:
        row = layout.row()
        state = "expired" if link.get("expired") else f"until {_when(link.get('expires_at'))}"
        row.label(text=f"{link.get('name')}: {state}")
        row.operator(BLENDSYNC_OT_share_revoke.bl_idname, text="", icon="X").name = link.get("name", "")


class BLENDSYNC_PT_share(bpy.types.Panel):
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "blendsync"
    bl_label = "Share with reviewers"
    bl_idname = "BLENDSYNC_PT_share"
    bl_parent_id = "BLENDSYNC_PT_rooms"

    @classmethod
    def poll(cls, context):
        return _owner_session() is not None

    def draw(self, context):
        draw_share(self.layout, context)


def _revision(session) -> int:
    shares = getattr(session, "share_view", None)
    return shares.revision if shares is not None else -1


_redraw = RedrawOnRevision(_revision)  # after a share reply arrived


CLASSES = (
    BLENDSYNC_OT_share_create,
    BLENDSYNC_OT_share_copy,
    BLENDSYNC_OT_shares_refresh,
    BLENDSYNC_OT_share_revoke,
    BLENDSYNC_PT_share,
)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.WindowManager.blendsync_share_expiry = EnumProperty(
        name="Expires in",
        description="How long the share link opens the room",
        items=[
            (str(seconds), label, f"the link stops working after {label}")
            for seconds, label in share_links.EXPIRIES
        ],
        default=str(7 * 86400),
    )
    LISTENERS.append(share_links.on_event)
    session_module.after_pump.append(_redraw)


def unregister() -> None:
    if _redraw in session_module.after_pump:
        session_module.after_pump.remove(_redraw)
    if share_links.on_event in LISTENERS:
        LISTENERS.remove(share_links.on_event)
    del bpy.types.WindowManager.blendsync_share_expiry
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
