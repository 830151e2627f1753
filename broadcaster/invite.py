"""Invite links for the trio client library: ``connect_invite``, and ``--expires`` of ``blendsync invite``.

The link's grammar and the pin check live in protocol/invite.py, shared with the add-on.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from protocol.invite import MAX_LINK_CHARS, SCHEME, Invite, InviteError

if TYPE_CHECKING:
    from .client import Client

__all__ = ["MAX_LINK_CHARS", "SCHEME", "Invite", "InviteError", "connect_invite", "parse_expiry"]

_DURATION = re.compile(r"([0-9]{1,9})([smhdw])")  # 10 years is 315,360,000 s
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
MAX_EXPIRY_SECONDS = 10 * 365 * 86400


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
