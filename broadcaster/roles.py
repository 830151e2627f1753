"""Roles in a room: owner, editor, viewer (docs/security.md, "Roles in a room").

- **viewer**: a token with the viewer role (a share link), for its one room: it may join it and read it
  (snapshot, live operations, others' presence, and with ``blob_get`` the blobs its room's keys
  reference: blobs.py answers any other as not held), nothing else: no write, event, lock, presence,
  room list, room creation or deletion, admin action.
- **owner**: the room's creator, or an admin: may also delete the room and create share links for it.
- **editor**: any other user who may enter the room: reads and writes.

Checked by the server for every request, whatever the client is.
"""

from __future__ import annotations

from typing import Any

from protocol import BlobGet, ErrorCode, Event, Hello, JoinRoom, LeaveRoom, Ping, Pong

from .auth import User
from .errors import RequestError

OWNER, EDITOR, VIEWER = "owner", "editor", "viewer"

# What a viewer may send; everything else is refused with a non-fatal `forbidden`.
VIEWER_REQUESTS = (Hello, Ping, Pong, JoinRoom, LeaveRoom, BlobGet)


def room_role(user: User, meta: dict[str, Any]) -> str:
    if user.is_viewer:
        return VIEWER
    if user.is_admin or meta.get("created_by") == user.name:
        return OWNER
    return EDITOR


def check_request(user: User, event: Event) -> None:
    if user.is_viewer and not isinstance(event, VIEWER_REQUESTS):
        raise RequestError(ErrorCode.FORBIDDEN, f"{event.TYPE}: a viewer may only join its room and read")
