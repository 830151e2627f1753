"""Length-prefixed msgpack frames.

A frame is a 4-byte big-endian unsigned length followed by that many bytes of msgpack encoding one map.
The length is checked against the limit as soon as the 4 header bytes are in, before any body is buffered.
"""

from __future__ import annotations

import struct
from typing import Any

import msgpack

from .errors import ErrorCode, RemoteProtocolError

HEADER = struct.Struct(">I")
DEFAULT_MAX_FRAME_SIZE = 64 * 1024 * 1024
# Limits on what msgpack may allocate while decoding one body; the body size already bounds them,
# but these keep a small frame from declaring a huge container.
_UNPACK_LIMITS = dict(max_str_len=DEFAULT_MAX_FRAME_SIZE, max_bin_len=DEFAULT_MAX_FRAME_SIZE)


def pack_body(body: dict[str, Any]) -> bytes:
    return msgpack.packb(body, use_bin_type=True)


def encode_frame(body: dict[str, Any]) -> bytes:
    payload = pack_body(body)
    return HEADER.pack(len(payload)) + payload


def frame_bytes(payload: bytes) -> bytes:
    """Prefix an already packed body with its length."""
    return HEADER.pack(len(payload)) + payload


def unpack_body(payload: bytes) -> dict[str, Any]:
    """Decode one frame body. Garbage is a fatal ``bad_frame``; a string that is not UTF-8 in an otherwise
    sound body is a ``bad_message`` naming the field (the frame boundaries are intact, the stream goes on)."""
    try:
        body = msgpack.unpackb(payload, raw=False, strict_map_key=True, use_list=True, **_UNPACK_LIMITS)
    except UnicodeDecodeError:
        raise _not_utf8(payload) from None
    except Exception as exc:  # msgpack raises several unrelated types for garbage
        raise RemoteProtocolError(
            ErrorCode.BAD_FRAME, f"frame body is not valid msgpack: {exc}", fatal=True
        ) from None
    if not isinstance(body, dict):
        raise RemoteProtocolError(ErrorCode.BAD_FRAME, "frame body must be a msgpack map", fatal=True)
    return body


def _not_utf8(payload: bytes) -> RemoteProtocolError:
    """The error for a body with a str that is not UTF-8 (the slow path: decode again to find where)."""
    try:
        body = msgpack.unpackb(
            payload,
            raw=False,
            strict_map_key=True,
            unicode_errors="surrogateescape",  # bad bytes become lone surrogates, which no valid str holds
            **_UNPACK_LIMITS,
        )
    except Exception as exc:
        return RemoteProtocolError(ErrorCode.BAD_FRAME, f"frame body is not valid msgpack: {exc}", fatal=True)
    if not isinstance(body, dict):
        return RemoteProtocolError(ErrorCode.BAD_FRAME, "frame body must be a msgpack map", fatal=True)
    type_name = body.get("type")
    where = _find_bad_text(body, type_name if isinstance(type_name, str) and type_name.isprintable() else "")
    ref = next((body[n] for n in ("ref", "op_id") if type(body.get(n)) is int and 0 <= body[n] < 2**63), None)
    where = where if where is None or len(where) <= 200 else where[:200] + "..."
    return RemoteProtocolError(ErrorCode.BAD_MESSAGE, f"{where or 'a string'} is not valid UTF-8", ref=ref)


def _find_bad_text(value: Any, path: str) -> str | None:
    """The path of the first string (a map key or a value) holding bytes that were not UTF-8."""
    if isinstance(value, str):
        return path if not value.isascii() and _has_surrogate(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            if _has_surrogate(key):
                return f"{path}: a field name" if path else "a field name"
            if (found := _find_bad_text(item, f"{path}.{key}" if path else key)) is not None:
                return found
    if isinstance(value, list):
        for i, item in enumerate(value):
            if (found := _find_bad_text(item, f"{path}[{i}]")) is not None:
                return found
    return None


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


class FrameReader:
    """Accumulates bytes and yields complete frame bodies (still packed)."""

    def __init__(self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE):
        self.max_frame_size = max_frame_size
        self._buffer = bytearray()
        self._start = 0  # consumed prefix, compacted lazily to keep appends cheap
        self._expected: int | None = None

    def feed(self, data: bytes) -> None:
        self._buffer += data

    @property
    def buffered(self) -> int:
        return len(self._buffer) - self._start

    @property
    def expected(self) -> int | None:
        """The declared length of the frame being read, once its header is in."""
        return self._expected

    def next_payload(self, limit: tuple[int, str] | None = None) -> bytes | None:
        """The next complete frame payload, or None if more bytes are needed. ``limit``: (bytes, its name)
        for this frame, if lower than ``max_frame_size`` (a server's before the hello)."""
        available = len(self._buffer) - self._start
        if self._expected is None:
            if available < HEADER.size:
                return None
            (length,) = HEADER.unpack_from(self._buffer, self._start)
            most, name = limit if limit is not None else (self.max_frame_size, "max_frame_size")
            if length > most:
                self._buffer.clear()  # the stream is lost; free what it sent
                self._start = 0
                raise RemoteProtocolError(
                    ErrorCode.FRAME_TOO_LARGE, f"frame of {length} bytes exceeds {name} ({most})", fatal=True
                )
            self._start += HEADER.size
            available -= HEADER.size
            self._expected = length
        if available < self._expected:
            self._compact()
            return None
        end = self._start + self._expected
        payload = bytes(self._buffer[self._start : end])
        self._start = end
        self._expected = None
        self._compact()
        return payload

    def _compact(self) -> None:
        if self._start and (self._start > 65536 or self._start == len(self._buffer)):
            del self._buffer[: self._start]
            self._start = 0
