"""Share links from the add-on: the room's owner makes a read-only, expiring link for reviewers in a
browser, lists the room's links and revokes them (docs/protocol.md, "Roles in a room": the admin actions
``share``, ``shares`` and ``revoke_share``, which a room's owner may send).

Requests go out through the sync session like its others; replies arrive through the session's event
listeners and land in a ``ShareView`` kept beside the session, for the joined room only. A new link's
token is in its URL, which the server shows once: the view keeps it until the room is left. The panel is
share_ui.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .protocol_shim import protocol

OWNER = "owner"
# (seconds, label): the expiry choices offered; the protocol allows 1 s to 10 years.
EXPIRIES = ((3600, "1 hour"), (86400, "1 day"), (7 * 86400, "7 days"), (30 * 86400, "30 days"))


@dataclass
class ShareView:
    room: str | None = None  # the room this view is about (another room: a fresh view)
    role: str | None = None  # joined.role: only an owner may share
    links: list[dict[str, Any]] = field(default_factory=list)  # as listed: name, room, expires_at, expired
    made: dict[str, Any] | None = None  # the last link made here: name, url, expires_at
    copied: bool = False  # its URL went to the clipboard
    error: str = ""
    pending: dict[int, str] = field(default_factory=dict)  # ref -> action
    revision: int = 0


def view(session: Any) -> ShareView:
    found = getattr(session, "share_view", None)
    if found is None or found.room != session.room:  # left, or joined another room: nothing known yet
        found = session.share_view = ShareView(room=session.room)
    return found


def may_share(session: Any) -> bool:
    return session is not None and session.room is not None and view(session).role == OWNER


def _ask(session: Any, action: str, args: dict[str, Any]) -> int:
    ref = session._request(action, lambda ref: protocol.Admin(action=action, args=args, ref=ref))
    if ref in session._requests:  # else: not connected (logged)
        view(session).pending[ref] = action
    return ref


def make_link(session: Any, expires_in: int) -> int:
    return _ask(session, "share", {"room": session.room, "expires_in": expires_in})


def list_links(session: Any) -> int:
    return _ask(session, "shares", {"room": session.room})


def revoke(session: Any, name: str) -> int:
    return _ask(session, "revoke_share", {"name": name})


def on_event(session: Any, event: Any) -> None:
    """A session event listener: the room's role when joined, and the replies to the requests above."""
    if isinstance(event, protocol.Joined) and event.room == session.room:
        shares = view(session)
        shares.role = event.role
        shares.revision += 1
        return
    ref = getattr(event, "ref", None)
    if ref is None or session.room is None:
        return
    shares = view(session)
    action = shares.pending.pop(ref, None)
    if action is None:
        return
    session._requests.pop(ref, None)
    shares.revision += 1
    if isinstance(event, protocol.Error):  # the session has logged it too
        shares.error = f"{event.code}: {event.message}"
        return
    if not isinstance(event, protocol.AdminResult):
        return
    shares.error = ""
    result = event.result
    if action == "share" and isinstance(result, dict):
        shares.made = {k: result.get(k) for k in ("name", "url", "expires_at")}
        shares.copied = False
        if not shares.made["url"]:
            shares.error = "the server has no HTTP port: the link has no URL"
        session.log(f"share link {result.get('name')} made")
        list_links(session)
    elif action == "shares" and isinstance(result, list):
        shares.links = sorted(result, key=lambda link: (link.get("expires_at") or 0, link.get("name", "")))
    elif action == "revoke_share" and isinstance(result, dict):
        name = result.get("name")
        shares.links = [link for link in shares.links if link.get("name") != name]
        if shares.made is not None and shares.made.get("name") == name:
            shares.made = None
        session.log(f"share link {name} revoked ({result.get('closed', 0)} viewers closed)")
