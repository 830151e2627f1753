"""Joining through an invite link: the artist pastes ``blendsync://host:port/room?token=...&pin=sha256:...``.

The link says everything: where the server is, the token, the room, and the SHA-256 of the server's
certificate (protocol/invite.py). The add-on connects over TLS accepting exactly that certificate (no CA:
net.py checks the pin before the token goes out), then joins the room, creating it (kept open, with this
file's scene) when it does not exist yet. What can go wrong is said in the sidebar in plain words: a
malformed link, a server showing another certificate, a token that expired or was revoked.
"""

from __future__ import annotations

import bpy
from bpy.props import StringProperty

from . import session as session_module
from . import ui
from .protocol_shim import protocol

# The room the current session was invited to, until it is joined: (session, room, connection generation
# the join went out on). One invite at a time, like one session.
_pending: dict[str, object] = {}


def parse(link: str):
    """The invite in ``link``; raises protocol.invite.InviteError with a reason the artist can act on."""
    return protocol.invite.Invite.parse(link.strip())


def connect(link: str, *, name: str, color: tuple[float, ...]) -> object:
    """Connect to the server of ``link`` with its token and pin; its room is joined once connected."""
    invite = parse(link)
    session = session_module.start(
        [(invite.host, invite.port)],
        name=name,
        color=color,
        token=invite.token,
        pin=invite.pin,
        version=ui._version(),
    )
    _pending.clear()
    if invite.room is not None:
        _pending.update(session=session, room=invite.room, generation=-1)
    return session


def enter_invited_room(session) -> None:
    """After-pump hook: once connected, join the invite's room (again when a reconnect lost the join)."""
    if _pending.get("session") is not session:
        return
    if session.room is not None:
        _pending.clear()
        return
    if session.connected and _pending["generation"] != session.generation and not session.joining:
        _pending["generation"] = session.generation
        session.join_room(str(_pending["room"]), send_scene=True, create=True)


def refusal_hint(session) -> str | None:
    """What a refused invite means for the artist, or None."""
    if session is None or session.state != session_module.STOPPED:
        return None
    last = session.messages[-1] if session.messages else ""
    if last.startswith("refused: the server's certificate is not the pinned one"):
        return "The server's certificate does not match the link: ask for a new link"
    if last.startswith("refused: auth_failed"):
        return "The link's token is unknown, revoked or expired: ask for a new link"
    if last.startswith("refused: version_mismatch"):
        return "This add-on cannot talk to that server: see the message above"
    return None


class BLENDSYNC_OT_connect_invite(bpy.types.Operator):
    """Connect with an invite link (blendsync://...): TLS pinned to the server's certificate, then its room"""

    bl_idname = "blendsync.connect_invite"
    bl_label = "Join with Invite"

    link: StringProperty(name="Invite link", description="Overrides the field in the sidebar when set")

    def execute(self, context):
        wm = context.window_manager
        link = self.link or wm.blendsync_invite
        prefs = ui.preferences(context)
        name = (prefs.user_name if prefs else "") or ui._default_name()
        color = tuple(prefs.color) if prefs else (0.2, 0.6, 1.0)
        try:
            connect(link, name=name, color=color)
        except ValueError as exc:  # InviteError, a malformed pin
            wm.blendsync_invite_error = f"Not an invite link: {exc}"
            self.report({"ERROR"}, wm.blendsync_invite_error)
            return {"CANCELLED"}
        wm.blendsync_invite_error = ""
        return {"FINISHED"}


class BLENDSYNC_PT_invite(bpy.types.Panel):
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "blendsync"
    bl_label = "Invite link"
    bl_parent_id = "BLENDSYNC_PT_connection"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        layout = self.layout
        wm = context.window_manager
        layout.prop(wm, "blendsync_invite", text="")
        layout.operator(BLENDSYNC_OT_connect_invite.bl_idname, icon="LINKED")
        if wm.blendsync_invite_error:
            layout.label(text=wm.blendsync_invite_error, icon="ERROR")
        hint = refusal_hint(session_module.current())
        if hint is not None:
            layout.label(text=hint, icon="ERROR")


CLASSES = (BLENDSYNC_OT_connect_invite, BLENDSYNC_PT_invite)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.WindowManager.blendsync_invite = StringProperty(
        name="Invite link",
        description="blendsync://host:port/room?token=...&pin=sha256:...",
        subtype="PASSWORD",
    )
    bpy.types.WindowManager.blendsync_invite_error = StringProperty(name="Invite error")
    session_module.after_pump.append(enter_invited_room)


def unregister() -> None:
    if enter_invited_room in session_module.after_pump:
        session_module.after_pump.remove(enter_invited_room)
    del bpy.types.WindowManager.blendsync_invite_error
    del bpy.types.WindowManager.blendsync_invite
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
