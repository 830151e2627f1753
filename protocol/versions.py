"""Protocol versions: which ones this code speaks, and how a client and a server agree on one.

A ``hello`` names the range the client speaks (``protocol_min`` to ``protocol``); a server speaks every
version of its own range and picks the newest both speak, which ``welcome.protocol`` names (with the server's
range beside it). No version in common is a fatal ``version_mismatch`` whose message tells the artist what to
do (docs/protocol.md section 2, "Versions").

What each version adds:

    1  the first protocol
    2  ``hello.protocol_min``; ``welcome.protocol_min``/``protocol_max`` and the add-on the server serves
       (``addon_version``, ``addon_port``, ``addon_sha256``)
    3  ``applied.blobs``: the blobs a write made new travel with it to the other members
"""

from __future__ import annotations

PROTOCOL_MIN = 1  # the oldest version this code speaks (as a server and as a client)
PROTOCOL_VERSION = 3  # the newest
APPLIED_BLOBS_SINCE = 3  # a session of an older version is sent ``applied`` without ``blobs``


def negotiate(client_min: int, client_max: int, server_min: int, server_max: int) -> int | None:
    """The newest version in both ranges, or None when they do not overlap."""
    best = min(client_max, server_max)
    return best if best >= max(client_min, server_min) else None


def mismatch_reason(client_min: int, client_max: int, server_min: int, server_max: int) -> str:
    """Why the ranges do not meet, as the start of a ``version_mismatch`` message."""
    speaks = f"{client_min} to {client_max}" if client_min != client_max else f"{client_max}"
    serves = f"{server_min} to {server_max}" if server_min != server_max else f"{server_max}"
    side = "older" if client_max < server_min else "newer"
    return f"this client speaks protocol {speaks}, the server {serves}: the client is {side} than the server"
