"""Share links: read-only, room-scoped, expiring, revocable viewer tokens, as a URL on the HTTP port.

    http://studio.lan:12880/view/shot%2F010?token=bst_...

Each link is a user of the tokens file with the viewer role, its room and an expiry (auth.py), named
``share-`` and 12 hex digits; the token is shown once and stored only hashed. Made, listed and revoked by
the room's owner (its creator, or an admin) with the admin actions ``share``, ``shares`` and
``revoke_share`` (``blendsync admin share ROOM``). Revoking closes the link's open connections at once.
The room in the URL is percent-encoded: it is data, never a path or a pattern.
"""

from __future__ import annotations

import secrets
import socket
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from protocol import Admin, AdminResult, ErrorCode

from .auth import TokensFileError, add_user, read_users, remove_user
from .errors import RequestError
from .roles import OWNER, room_role
from .roomstore import RoomStore
from .session import Session

ACTIONS = frozenset({"share", "shares", "revoke_share"})
NAME_PREFIX = "share-"
DEFAULT_EXPIRES_IN = 7 * 86400
VIEW_PATH = "/view/"


def view_url(http_address: str, room: str, token: str) -> str:
    """The link a browser opens: the room percent-encoded whole (``/``, ``?``, ``#``, ``%`` included)."""
    query = urllib.parse.urlencode({"token": token})
    return f"http://{http_address}{VIEW_PATH}{urllib.parse.quote(room, safe='')}?{query}"


class Shares:
    def __init__(
        self,
        tokens_file: Path | None,
        store: RoomStore,
        sessions: dict[str, Session],
        http_address: Callable[[], str | None],
    ):
        self.tokens_file = tokens_file
        self.store = store
        self.sessions = sessions
        self.http_address = http_address

    async def handle(self, session: Session, request: Admin) -> None:
        if self.tokens_file is None:
            raise RequestError(
                ErrorCode.FORBIDDEN,
                "share links need a server with users (a tokens_file): without one, "
                "everyone who can reach it is an admin",
            )
        args = request.args
        try:
            if request.action == "share":
                result: Any = self._share(session, args)
            elif request.action == "shares":
                result = self._list(session, args)
            else:
                result = self._revoke(session, args)
        except TokensFileError as exc:
            raise RequestError(ErrorCode.INTERNAL, f"the tokens file: {exc}") from None
        session.send(AdminResult(action=request.action, result=result, ref=request.ref))

    def _check_owner(self, session: Session, room: Any) -> str:
        if not isinstance(room, str):
            raise RequestError(ErrorCode.BAD_MESSAGE, "this action needs room (a room name)")
        meta = self.store.meta(room)  # no_such_room for a room that does not exist
        if room_role(session.user, meta) != OWNER:
            raise RequestError(
                ErrorCode.FORBIDDEN, f"only the owner of room {room!r} or an admin may share it"
            )
        return room

    def _share(self, session: Session, args: dict[str, Any]) -> dict[str, Any]:
        room = self._check_owner(session, args.get("room"))
        expires_in = args.get("expires_in")
        expires_at = int(time.time()) + (DEFAULT_EXPIRES_IN if expires_in is None else expires_in)
        name = NAME_PREFIX + secrets.token_hex(6)
        assert self.tokens_file is not None
        token = add_user(self.tokens_file, name, "viewer", room=room, expires_at=expires_at)
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
        if room is not None or not session.user.is_admin:
            room = self._check_owner(session, room)
        assert self.tokens_file is not None
        now = time.time()
        return [
            {
                "name": user["name"],
                "room": user["room"],
                "expires_at": user.get("expires_at"),
                "expired": user.get("expires_at") is not None and now >= user["expires_at"],
            }
            for user in read_users(self.tokens_file)
            if user["role"] == "viewer" and (room is None or user.get("room") == room)
        ]

    def _revoke(self, session: Session, args: dict[str, Any]) -> dict[str, Any]:
        name = args.get("name")
        if not isinstance(name, str):
            raise RequestError(ErrorCode.BAD_MESSAGE, "revoke_share needs name (as listed by shares)")
        assert self.tokens_file is not None
        found = [u for u in read_users(self.tokens_file) if u["name"] == name and u["role"] == "viewer"]
        if not found:
            raise RequestError(ErrorCode.BAD_MESSAGE, f"no share link named {name!r}")
        self._check_owner_of(session, found[0]["room"])
        remove_user(self.tokens_file, name)
        closed = 0
        for other in list(self.sessions.values()):
            if other.user.name == name and other.user.is_viewer:
                other.fail(ErrorCode.AUTH_FAILED, "this share link was revoked")
                closed += 1
        return {"name": name, "room": found[0]["room"], "closed": closed}

    def _check_owner_of(self, session: Session, room: str) -> None:
        meta = self.store.find_meta(room)
        if not session.user.is_admin and (meta is None or room_role(session.user, meta) != OWNER):
            raise RequestError(ErrorCode.FORBIDDEN, f"only the owner of room {room!r} or an admin may revoke")


def public_http_address(http_addresses: list[str], advertise: str | None) -> str | None:
    """host:port for links: the HTTP port, on the advertised host when it listens on every address."""
    if not http_addresses:
        return None
    host, _, port = http_addresses[0].rpartition(":")
    if host in ("0.0.0.0", "[::]"):
        host = advertise.rpartition(":")[0] if advertise else socket.gethostname()
    return f"{host}:{port}"
