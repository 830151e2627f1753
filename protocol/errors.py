"""Error codes and exceptions shared by both ends of the wire."""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """Codes carried by an ``error`` frame. Stable: clients switch on them."""

    # Framing and message shape (the peer's fault).
    BAD_FRAME = "bad_frame"  # not msgpack, or not a map; the stream cannot continue
    FRAME_TOO_LARGE = "frame_too_large"  # length prefix above the limit; the stream cannot continue
    BAD_MESSAGE = "bad_message"  # a field is missing or has the wrong type
    UNKNOWN_TYPE = "unknown_type"
    PROTOCOL_STATE = "protocol_state"  # e.g. anything before hello, or a second hello
    VERSION_MISMATCH = "version_mismatch"
    # Access.
    AUTH_FAILED = "auth_failed"
    WRONG_PASSWORD = "wrong_password"
    FORBIDDEN = "forbidden"
    KICKED = "kicked"  # an admin closed this connection
    # Rooms.
    NO_SUCH_ROOM = "no_such_room"
    ROOM_EXISTS = "room_exists"
    ROOM_IN_USE = "room_in_use"
    NOT_IN_ROOM = "not_in_room"
    ALREADY_IN_ROOM = "already_in_room"
    NO_SUCH_CLIENT = "no_such_client"
    INVALID_KEY = "invalid_key"
    LOCKED = "locked"
    NO_SUCH_CHECKPOINT = "no_such_checkpoint"
    NOT_RETAINED = "not_retained"  # a restore or fork of a seq whose history is no longer kept
    NO_SUCH_BLOB = "no_such_blob"  # a blob the server does not hold (unknown hash, or collected)
    CONFLICT = "conflict"  # a key's blob references changed under a write: send it again, new op_id
    # Flow control and limits.
    SLOW_CONSUMER = "slow_consumer"
    RATE_LIMITED = "rate_limited"
    LIMIT_EXCEEDED = "limit_exceeded"
    TIMEOUT = "timeout"
    # Server side.
    UNAVAILABLE = "unavailable"  # no quorum / shutting down: retry later or elsewhere
    INTERNAL = "internal"


class ProtocolError(Exception):
    """Base class. ``fatal`` means the byte stream cannot be resynchronised."""

    def __init__(self, code: ErrorCode, message: str, *, fatal: bool = False, ref: int | None = None):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.fatal = fatal
        self.ref = ref


class LocalProtocolError(ProtocolError):
    """Our own side tried to do something the protocol forbids (a bug in the caller)."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something invalid."""
