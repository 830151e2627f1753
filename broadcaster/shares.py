"""Share links: read-only, room-scoped, expiring, revocable viewer tokens, as a URL on the HTTP port.

    http://studio.lan:12880/view/shot%2F010?token=bst_...

Each link is a viewer user for one room with an expiry, named ``share-`` and 12 hex digits, kept in the
replicated tree (sharestore.py), so it opens on every node of a cluster; the token is shown once and
stored only hashed. Made, listed and revoked by the room's owner (its creator, or an admin) with the admin
actions ``share``, ``shares`` and ``revoke_share`` (``blendsync admin share ROOM``). Revoking closes the
link's open connections on every node as it applies the revocation.
The room in the URL is percent-encoded: it is data, never a path or a pattern.
"""

from __future__ import annotations

import secrets
import socket
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

from protocol import Admin, AdminResult, ErrorCode

from .auth import TokensFileError, check_scope, hash_token, new_token
from .errors import RequestError
from .roles import OWNER, room_role
from .roomstore import RoomStore
from .session import Session
from .sharestore import ShareStore, create_share_command, link_opens, revoke_share_command, share_record

ACTIONS = frozenset({"share", "shares", "revoke_share"})
NAME_PREFIX = "share-"
DEFAULT_EXPIRES_IN = 7 * 86400
VIEW_PATH = "/view/"
MAX_DROPPED = 100  # expired links dropped with one new link: the command stays small


def view_url(http_address: str, room: str, token: str) -> str:
    """The link a browser opens: the room percent-encoded whole (``/``, ``?``, ``#``, ``%`` included)."""
    query = urllib.parse.urlencode({"token": token})
    return f"http://{http_address}{VIEW_PATH}{urllib.parse.quote(room, safe='')}?{query}"


class Shares:
    def __init__(
        self,
        with_users: bool,
        store: RoomStore,
        links: ShareStore,
        sessions: dict[str, Session],
        http_address: Callable[[], str | None],
    ):
        self.with_users = with_users
        self.store = store
        self.links = links
        self.sessions = sessions
        self.http_address = http_address

    async def handle(self, session: Session, request: Admin) -> None:
        if not self.with_users:
            raise RequestError(
                ErrorCode.FORBIDDEN,
                "share links need a server with users (a tokens_file): without one, "
                "everyone who can reach it is an admin",
            )
        args = request.args
        if request.action == "share":
            result: Any = await self._share(session, args)
        elif request.action == "shares":
            result = self._list(session, args)
        else:
            result = await self._revoke(session, args)
        session.send(AdminResult(action=request.action, result=result, ref=request.ref))

    def _check_owner(self, session: Session, room: Any) -> tuple[str, dict[str, Any]]:
        """``room`` and its meta, when the session's user owns the room (or is an admin)."""
        if not isinstance(room, str):
            raise RequestError(ErrorCode.BAD_MESSAGE, "this action needs room (a room name)")
        meta = self.store.meta(room)  # no_such_room for a room that does not exist
        if room_role(session.user, meta) != OWNER:
            raise RequestError(
                ErrorCode.FORBIDDEN, f"only the owner of room {room!r} or an admin may share it"
            )
        return room, meta

    async def _share(self, session: Session, args: dict[str, Any]) -> dict[str, Any]:
        room, meta = self._check_owner(session, args.get("room"))
        incarnation = meta.get("incarnation")
        expires_in = args.get("expires_in")
        now = int(time.time())
        expires_at = now + (DEFAULT_EXPIRES_IN if expires_in is None else expires_in)
        try:
            check_scope(room, expires_at)
        except TokensFileError as exc:
            raise RequestError(ErrorCode.BAD_MESSAGE, str(exc)) from None
        name = NAME_PREFIX + secrets.token_hex(6)
        token = new_token()
        record = share_record(hash_token(token), room, expires_at, session.user.name, now, incarnation)
        # Links past their expiry go with the next one made: the tree holds the live ones.
        gone = [n for n, r in self.links.records() if r["expires_at"] is not None and now >= r["expires_at"]]
        result = await self.store.propose(create_share_command(name, record, gone[:MAX_DROPPED]))
        if not result.get("succeeded"):
            raise RequestError(ErrorCode.INTERNAL, f"a share link named {name!r} exists: try again")
        address = self.http_address()
        return {
            "name": name,
            "room": room,
            "expires_at": expires_at,
            "token": token,
            "url": view_url(address, room, token) if address is not None else None,
        }

    def _list(self, session: Session, args: dict[str, Any]) -> list[dict[str, Any]]:
        room = args.get("room")
        incarnation = None
        if room is not None or not session.user.is_admin:
            room, meta = self._check_owner(session, room)
            incarnation = meta.get("incarnation")
        now = time.time()
        return [
            {
                "name": name,
                "room": record["room"],
                "expires_at": record["expires_at"],
                "expired": record["expires_at"] is not None and now >= record["expires_at"],
                "created_by": record["created_by"] or None,
            }
            for name, record in self.links.records()
            if record["revoked_at"] is None and (room is None or opens(record, room, incarnation))
        ]

    async def _revoke(self, session: Session, args: dict[str, Any]) -> dict[str, Any]:
        name = args.get("name")
        if not isinstance(name, str):
            raise RequestError(ErrorCode.BAD_MESSAGE, "revoke_share needs name (as listed by shares)")
        record = self.links.get(name)
        if record is None or record["revoked_at"] is not None or not self._may_revoke(session, record):
            if session.user.is_admin:
                raise RequestError(ErrorCode.BAD_MESSAGE, f"no share link named {name!r}")
            # Another room's link reads as one that does not exist: a name tells nothing of a room.
            raise RequestError(ErrorCode.FORBIDDEN, f"no share link named {name!r} in a room you own")
        here = sum(1 for s in self.sessions.values() if s.user.name == name and s.user.is_viewer)
        revoked = {**record, "revoked_at": int(time.time()), "revoked_by": session.user.name}
        # Every node closes the link's sessions as it applies this (server.py), this one included.
        result = await self.store.propose(revoke_share_command(name, record, revoked))
        if not result.get("succeeded"):
            raise RequestError(ErrorCode.BAD_MESSAGE, f"share link {name!r} changed meanwhile: list again")
        return {"name": name, "room": record["room"], "closed": here}

    def _may_revoke(self, session: Session, record: dict[str, Any]) -> bool:
        room = record["room"]
        meta = self.store.find_meta(room)
        owner = meta is not None and room_role(session.user, meta) == OWNER
        return session.user.is_admin or (owner and opens(record, room, meta.get("incarnation")))


def public_http_address(http_addresses: list[str], advertise: str | None) -> str | None:
    """host:port for links: the HTTP port, on the advertised host when it listens on every address."""
    if not http_addresses:
        return None
    host, _, port = http_addresses[0].rpartition(":")
    if host in ("0.0.0.0", "[::]"):
        host = advertise.rpartition(":")[0] if advertise else socket.gethostname()
    return f"{host}:{port}"


def opens(record: dict[str, Any], room: str, incarnation: str | None) -> bool:
    """Whether a link opens ``room`` of this incarnation: a link of a room deleted and made again under its
    name belongs to the room that was deleted (its owner was another, maybe)."""
    return record["room"] == room and link_opens(record.get("incarnation"), incarnation)
