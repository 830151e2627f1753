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
    try:
        body = msgpack.unpackb(payload, raw=False, strict_map_key=True, use_list=True, **_UNPACK_LIMITS)
    except Exception as exc:  # msgpack raises several unrelated types for garbage
        raise RemoteProtocolError(ErrorCode.BAD_FRAME, f"frame body is not valid msgpack: {exc}") from None
    if not isinstance(body, dict):
        raise RemoteProtocolError(ErrorCode.BAD_FRAME, "frame body must be a msgpack map")
    return body


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

    def next_payload(self) -> bytes | None:
        """The next complete frame payload, or None if more bytes are needed."""
        available = len(self._buffer) - self._start
        if self._expected is None:
            if available < HEADER.size:
                return None
            (length,) = HEADER.unpack_from(self._buffer, self._start)
            if length > self.max_frame_size:
                self._buffer.clear()  # the stream is lost; free what it sent
                self._start = 0
                raise RemoteProtocolError(
                    ErrorCode.FRAME_TOO_LARGE,
                    f"frame of {length} bytes exceeds max_frame_size ({self.max_frame_size})",
                    fatal=True,
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
