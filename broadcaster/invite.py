"""Invite links: where a server is, which room, a token, and the pin of the server's certificate.

    blendsync://studio.lan:12800/shot-010?token=bst_...&pin=sha256:9f86d0...

The room is percent-encoded (room names may hold ``/``, ``?``, ``#`` or any Unicode); a link without a
room (``/``) is for any room the token allows. Without ``pin`` the client connects in plain TCP: links
only leave out the pin for a server without TLS.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from protocol import limits

from .tls import check_pin_format

if TYPE_CHECKING:
    from .client import Client

SCHEME = "blendsync"
MAX_LINK_CHARS = 4096
_DURATION = re.compile(r"([0-9]{1,6})([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
MAX_EXPIRY_SECONDS = 10 * 365 * 86400


class InviteError(ValueError):
    pass


@dataclass(frozen=True)
class Invite:
    host: str
    port: int
    room: str | None
    token: str
    pin: str | None

    def link(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        path = urllib.parse.quote(self.room, safe="") if self.room is not None else ""
        query = {"token": self.token, **({"pin": self.pin} if self.pin is not None else {})}
        return f"{SCHEME}://{host}:{self.port}/{path}?{urllib.parse.urlencode(query, safe=':')}"

    @classmethod
    def parse(cls, link: str) -> Invite:
        if not isinstance(link, str) or not link or len(link) > MAX_LINK_CHARS:
            raise InviteError(f"an invite link is 1 to {MAX_LINK_CHARS} characters")
        try:
            parts = urllib.parse.urlsplit(link.strip())
            port = parts.port
        except ValueError as exc:
            raise InviteError(f"not an invite link: {exc}") from None
        if parts.scheme != SCHEME:
            raise InviteError(f"an invite link starts with {SCHEME}:// (got {link[:40]!r})")
        if not parts.hostname or port is None or port == 0:
            raise InviteError("an invite link names a host and a port: blendsync://HOST:PORT/ROOM?token=...")
        room: str | None = None
        if parts.path not in ("", "/"):
            try:
                room = urllib.parse.unquote(parts.path[1:], errors="strict")
                limits.check_room_name(room)
            except (UnicodeDecodeError, ValueError) as exc:
                raise InviteError(f"the link's room is not a room name: {exc}") from None
        try:
            query = urllib.parse.parse_qs(parts.query, strict_parsing=True, errors="strict")
        except (UnicodeDecodeError, ValueError):
            raise InviteError("the link's query is not token=...&pin=...") from None
        if set(query) - {"token", "pin"} or len(query.get("token", [])) != 1 or len(query.get("pin", [])) > 1:
            raise InviteError("an invite link has one token= and at most one pin=")
        token = query["token"][0]
        if not token.isascii() or not token.isprintable():
            raise InviteError("the link's token is not printable ASCII")
        pin = None
        if "pin" in query:
            try:
                pin = check_pin_format(query["pin"][0])
            except ValueError as exc:
                raise InviteError(str(exc)) from None
        return cls(parts.hostname, port, room, token, pin)


def parse_expiry(text: str) -> int | None:
    """``7d``, ``12h``, ``30m``, ``2w``, ``90s`` as seconds; ``never`` as None."""
    if text == "never":
        return None
    match = _DURATION.fullmatch(text)
    seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)] if match else 0
    if not 0 < seconds <= MAX_EXPIRY_SECONDS:
        raise InviteError(
            f"--expires is a number and a unit (s, m, h, d, w), more than 0 and at most 10 years, or never"
            f" (got {text!r})"
        )
    return seconds


@asynccontextmanager
async def connect_invite(link: str | Invite, **kwargs: Any) -> AsyncIterator[Client]:
    """``connect`` to the server of an invite link with its token and pinned certificate (not yet joined).

    Raises InviteError for a malformed link, PinMismatch when the server shows another certificate.
    """
    from .client import connect

    invite = link if isinstance(link, Invite) else Invite.parse(link)
    async with connect(invite.host, invite.port, token=invite.token, pin=invite.pin, **kwargs) as client:
        yield client
