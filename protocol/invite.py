"""Invite links and certificate pins: what a client needs to reach a server it was invited to.

    blendsync://studio.lan:12800/shot-010?token=bst_...&pin=sha256:9f86d0...

The room is percent-encoded (room names may hold ``/``, ``?``, ``#`` or any Unicode); a link without a
room (``/``) is for any room the token allows. Without ``pin`` the client connects in plain TCP: links
only leave out the pin for a server without TLS. A pin is ``sha256:`` and the 64 hex digits of the SHA-256
of the server certificate's DER bytes; a client accepts exactly that certificate, with no CA.

Pure (no I/O): the trio client library (broadcaster/invite.py, broadcaster/tls.py) and the add-on
(blender_addon/net.py, blender_addon/invite.py) parse links and check pins here.
"""

from __future__ import annotations

import hashlib
import urllib.parse
from dataclasses import dataclass

from .limits import check_room_name

SCHEME = "blendsync"
MAX_LINK_CHARS = 4096
PIN_PREFIX = "sha256:"


class InviteError(ValueError):
    pass


def check_pin_format(pin: str) -> str:
    """``pin`` in canonical form (lower-case hex); ValueError unless it is ``sha256:`` + 64 hex digits."""
    if not isinstance(pin, str) or not pin.lower().startswith(PIN_PREFIX):
        raise ValueError(f"a pin looks like sha256:<64 hex digits> (got {pin!r})")
    digest = pin[len(PIN_PREFIX) :].lower().replace(":", "")
    if len(digest) != 64 or set(digest) - set("0123456789abcdef"):
        raise ValueError(f"a pin looks like sha256:<64 hex digits> (got {pin!r})")
    return PIN_PREFIX + digest


def pin_of(der: bytes) -> str:
    """The pin of a certificate, from its DER bytes."""
    return PIN_PREFIX + hashlib.sha256(der).hexdigest()


def pin_problem(der: bytes | None, pin: str) -> str | None:
    """Why the certificate a server showed (DER bytes) is not the pinned one; None when it is."""
    if der is None:
        return "the server showed no certificate"
    shown = pin_of(der)
    if shown == check_pin_format(pin):
        return None
    return (
        f"the server's certificate is not the pinned one (pinned {pin}, shown {shown}): either the"
        " server got a new certificate (ask for a new invite link) or someone is in between"
    )


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
                check_room_name(room)
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
