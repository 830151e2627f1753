"""The protocol over a WebSocket on the HTTP port (``GET /ws``): one frame's body per binary message.

For browsers (the viewer, docs/values.md): the same msgpack messages, sessions, limits and receive deadlines
as the TCP port. The handshake, what clients send and the close are wsproto's (sans-IO, beside h11;
docs/decisions/0007); the server's binary messages are framed here, once per fanned-out frame (they are
not masked, so every viewer gets the same bytes). This module turns messages into protocol frames and
back, inside an ordinary Session:

- a binary message is one frame's body (no 4-byte length: the message has its own); a text message is a
  fatal ``bad_frame``; a message growing past ``max_frame_size`` is a fatal ``frame_too_large`` as soon as
  it does, before more of it is buffered;
- receive deadlines as on the TCP port (deadlines.py). A message's length is known only when it ends (it
  may come in fragments), so the allowance for the message in progress is ``heartbeat_timeout`` + the bytes
  received so far / ``min_frame_bytes_per_second``: a trickle extends it by next to nothing;
- a fatal error is sent as its frame, then a WebSocket close (1008 policy violation, 1009 too big, 1003
  for a text message) and the TCP close.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import socket
import struct
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import h11
import trio
from wsproto import ConnectionType
from wsproto.connection import Connection as WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    TextMessage,
)
from wsproto.handshake import H11Handshake
from wsproto.utilities import RemoteProtocolError as WSProtocolError

from protocol import ErrorCode
from protocol.framing import frame_bytes

from .direct_writes import DirectWrites
from .session import Session

if TYPE_CHECKING:
    from .server import Broadcaster

log = logging.getLogger("blendsync.websocket")

PATH = "/ws"
HEADER_BYTES = 4  # the length prefix of a frame on the TCP port, not sent over a WebSocket
WRITE_NOW_BYTES = 256 * 1024  # gathered past this, a session's messages are written at once

CLOSE_NORMAL, CLOSE_UNSUPPORTED, CLOSE_POLICY, CLOSE_TOO_BIG = 1000, 1003, 1008, 1009


def is_upgrade(request: h11.Request) -> bool:
    return any(name == b"upgrade" and value.lower() == b"websocket" for name, value in request.headers)


class WebSocketSession(Session):
    def __init__(self, host: Broadcaster, stream: trio.abc.Stream, peer: str, ws: WSConnection):
        super().__init__(host, stream, peer)
        self.ws = ws
        self.kind = "websocket"
        self._message: list[bytes] = []  # chunks of the binary message in progress
        self._message_bytes = 0
        self._in_message = False
        self._said_something = False  # a whole message came (the hello, or what stands for it)
        self._close_code = CLOSE_NORMAL
        self._raw = _raw_socket(stream)
        self.direct: DirectWrites = host.direct_writes
        self._pending: list[bytes] = []  # messages for the next direct write (see send_frame)
        self._pending_bytes = 0

    # ---- Session's transport hooks ------------------------------------------------------------------

    def receive_transport(self, data: bytes) -> bool:
        ended = not data  # the TCP stream ended: wsproto says so as a close (1006) as well
        events = []
        try:
            self.ws.receive_data(data or None)
            for event in self.ws.events():
                if isinstance(event, CloseConnection) and self.ws.state is ConnectionState.OPEN and not ended:
                    # Frames wsproto cannot parse (unmasked, reserved bits, a bad close...) come as a close
                    # it proposes, the connection still open: the peer broke the protocol, it did not close.
                    self._close_code = event.code
                    self.fail(ErrorCode.BAD_FRAME, f"bad WebSocket data: {event.reason}")
                    return False
                events.append(event)
        except WSProtocolError as exc:
            self._close_code = CLOSE_POLICY
            self.fail(ErrorCode.BAD_FRAME, f"bad WebSocket data: {exc}")
            return False
        for event in events:
            if isinstance(event, BytesMessage):
                if not self._message_part(event.data, event.message_finished):
                    return False
            elif isinstance(event, TextMessage):
                self._close_code = CLOSE_UNSUPPORTED
                self.fail(ErrorCode.BAD_FRAME, "a WebSocket text message: frames are binary messages")
                return False
            elif isinstance(event, Ping):
                if self.ws.state is ConnectionState.OPEN:  # not once the peer's close came in the same read
                    self.send_frame_raw(self.ws.send(event.response()))
            elif isinstance(event, CloseConnection):
                ended = True  # the peer is done: the session ends as on a closed socket
        if ended:
            self.conn.receive_data(b"")  # once: the protocol refuses data after its end
        return True

    def _message_part(self, data: bytes | bytearray, finished: bool) -> bool:
        self._in_message = True
        self._message_bytes += len(data)
        # The first message is held to the limit before hello; any after it (pipelined behind the hello in
        # this read, before the session has read the hello) to max_frame_size.
        limit, name = (
            (self.conn.max_frame_size, "max_frame_size") if self._said_something else self.conn.incoming_limit
        )
        if self._message_bytes > limit:
            self._close_code = CLOSE_TOO_BIG
            self.fail(ErrorCode.FRAME_TOO_LARGE, f"a message over {name} ({limit} bytes)")
            return False
        self._message.append(bytes(data))
        if finished:
            body = b"".join(self._message)
            self._message, self._message_bytes, self._in_message = [], 0, False
            self._said_something = True
            self.conn.receive_data(frame_bytes(body))
        return True

    def transport_bytes(self, frames: list[bytes]) -> bytes:
        return b"".join(
            frame if isinstance(frame, _RawWebSocketData) else _binary_message(frame) for frame in frames
        )

    def incoming_frame_size(self) -> int | None:
        # A lower bound of the message's length: what has arrived of it (see the module's docstring).
        return self._message_bytes if self._in_message else None

    def frame_in_progress(self) -> bool:
        return self._in_message

    async def close_transport(self) -> None:
        if self._raw is not None:
            self._raw.close()  # our duplicate of the socket's descriptor
            self._raw = None
        if self.ws.state in (ConnectionState.OPEN, ConnectionState.REMOTE_CLOSING):
            try:
                data = self.ws.send(CloseConnection(code=self._close_code))
                await self.stream.send_all(data)
            except (WSProtocolError, trio.BrokenResourceError, trio.ClosedResourceError):
                pass
        await self.stream.aclose()

    def send_frame(self, frame: bytes) -> None:
        """Gathered for one direct write to the socket when nothing is waiting before it.

        Fanning a room's operation out to hundreds of viewers would otherwise wake one writer task per
        viewer per operation. Instead each message is appended to the session's pending bytes, and one
        task per server (DirectWrites) writes every pending session's bytes with one send each once the
        current step is done: operations committed together (a server catching up commits several at
        once) cost each viewer one system call, not one each. What the socket does not take is queued,
        and the writer task sends it and everything after it, in order, with the usual backpressure.
        """
        self.direct.queue_deferred(self)  # order: frames deferred before this one go first
        if self._raw is None or self.closing or self.writing or len(self.out):
            self._queue_pending()  # order: what was gathered goes first
            super().send_frame(frame)
            return
        data = frame if isinstance(frame, _RawWebSocketData) else _binary_message(frame)
        if not self._pending:
            self.direct.add(self)
        self._pending.append(data)
        self._pending_bytes += len(data)
        if self._pending_bytes >= WRITE_NOW_BYTES:
            self.write_pending()

    def defer_frame(self, frame: bytes, viewers: Sequence) -> None:
        """``frame`` to ``viewers`` (this one among them) once the artists' copies are out (rooms.py)."""
        self.direct.defer(frame, viewers)

    def write_pending(self) -> None:
        """Write the gathered messages with one send; queue what the socket does not take."""
        pending, self._pending, self._pending_bytes = self._pending, [], 0
        raw = self._raw
        if not pending or self.closing:
            return  # a failing session sends its error frame only
        if raw is None or self.writing or len(self.out):
            super().send_frame(_RawWebSocketData(b"".join(pending)))  # after what the writer holds
            return
        data = pending[0] if len(pending) == 1 else b"".join(pending)
        try:
            sent = raw.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self._raw = None  # the writer task meets the same error and ends the session
            sent = 0
        self.host.metrics.sent_bytes += sent
        self.sent_directly = True  # the writer task need not ping a client that is being sent to
        if sent < len(data):
            super().send_frame(_RawWebSocketData(data[sent:]))

    def _queue_pending(self) -> None:
        if self._pending:
            pending, self._pending, self._pending_bytes = self._pending, [], 0
            if not self.closing:
                super().send_frame(_RawWebSocketData(b"".join(pending)))

    def send_frame_raw(self, data: bytes) -> None:
        """A WebSocket control frame (a pong), queued with the session's frames."""
        self.direct.queue_deferred(self)
        self._queue_pending()
        super().send_frame(_RawWebSocketData(data))  # queued, or the client cut as a slow consumer

    def send_stream(self, frames: Iterator[bytes]) -> None:
        self._queue_pending()  # a snapshot comes after the `joined` gathered before it
        super().send_stream(frames)

    def fail(self, code: ErrorCode, message: str, ref: int | None = None) -> None:
        if self._close_code == CLOSE_NORMAL:
            self._close_code = CLOSE_POLICY  # every fatal error; text and size have their own codes
        super().fail(code, message, ref)


# A frame fanned out to a room is one bytes object queued to every member: its WebSocket message (a server's
# messages are not masked) is the same for every viewer, so it is made once. Recent frames only.
_MESSAGES: OrderedDict[int, tuple[bytes, bytes]] = OrderedDict()
_MESSAGES_KEPT = 256


def _binary_message(frame: bytes) -> bytes:
    """One unfragmented binary message (RFC 6455 section 5.2) carrying the body of ``frame``."""
    cached = _MESSAGES.get(id(frame))
    if cached is not None and cached[0] is frame:
        return cached[1]
    size = len(frame) - HEADER_BYTES
    if size < 126:
        header = bytes((0x82, size))
    elif size < 1 << 16:
        header = struct.pack("!BBH", 0x82, 126, size)
    else:
        header = struct.pack("!BBQ", 0x82, 127, size)
    message = header + frame[HEADER_BYTES:]
    _MESSAGES[id(frame)] = (frame, message)  # holding the frame keeps its id from being reused
    if len(_MESSAGES) > _MESSAGES_KEPT:
        _MESSAGES.popitem(last=False)
    return message


def _raw_socket(stream: trio.abc.Stream) -> socket.socket | None:
    """A non-blocking duplicate of a plain TCP stream's socket, for WebSocketSession.send_frame."""
    inner = getattr(stream, "stream", stream)
    if not isinstance(inner, trio.SocketStream):
        return None
    try:
        raw = socket.socket(fileno=os.dup(inner.socket.fileno()))
    except OSError:
        return None
    raw.setblocking(False)
    return raw


class _RawWebSocketData(bytes):
    """Bytes already in WebSocket framing (a control frame), passed through as they are."""


class _Prefixed(trio.abc.Stream):
    """A stream whose first receive returns the bytes h11 read past the upgrade request."""

    def __init__(self, stream: trio.abc.Stream, prefix: bytes):
        self.stream = stream
        self.prefix = prefix

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self.prefix:
            data, self.prefix = self.prefix, b""
            return data
        return await self.stream.receive_some(max_bytes)

    async def send_all(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.stream.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        raise NotImplementedError

    async def aclose(self) -> None:
        await self.stream.aclose()


def _check_upgrade(request: h11.Request) -> None:
    """What wsproto leaves unchecked of RFC 6455 4.2.1: HTTP/1.1 or later, and one key of 16 bytes."""
    if request.http_version < b"1.1":
        raise ValueError(f"HTTP/{request.http_version.decode()}: an upgrade needs HTTP/1.1")
    keys = [value for name, value in request.headers if name == b"sec-websocket-key"]
    try:
        valid = len(keys) == 1 and len(base64.b64decode(keys[0], validate=True)) == 16
    except binascii.Error:
        valid = False
    if not valid:
        raise ValueError("Sec-WebSocket-Key must be one base64 value of 16 bytes")


BAD_UPGRADE = (
    b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\nconnection: close\r\n"
    b"content-length: %d\r\n\r\n%s"
)


async def serve_websocket(
    broadcaster: Broadcaster,
    stream: trio.abc.Stream,
    peer: str,
    request: h11.Request,
    trailing: bytes,
    accepted_at: float,
) -> None:
    """Complete the upgrade of ``request`` (already parsed by h11) and run a session on it."""
    handshake = H11Handshake(ConnectionType.SERVER)
    try:
        _check_upgrade(request)
        handshake.initiate_upgrade_connection(request.headers, request.target)
        data = handshake.send(AcceptConnection())
    except (WSProtocolError, ValueError) as exc:
        # Not a valid WebSocket upgrade (no key, another version, not GET, a header that is not ASCII...):
        # a plain 400, then close.
        reason = f"bad WebSocket upgrade: {exc}\n".encode()
        with trio.move_on_after(1):
            try:
                await stream.send_all(BAD_UPGRADE % (len(reason), reason))
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
        await stream.aclose()
        return
    ws = handshake.connection
    assert ws is not None
    session = WebSocketSession(broadcaster, _Prefixed(stream, trailing), peer, ws)
    session.accepted_at = accepted_at  # the handshake deadline counts from the TCP accept
    try:
        await stream.send_all(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        await stream.aclose()
        return
    broadcaster.connections += 1
    broadcaster.metrics.connections_total += 1
    try:
        await session.run()
    finally:
        broadcaster.connections -= 1
