"""The one public object of the protocol: a Connection per side, with no I/O of its own.

    conn = Connection(Role.SERVER)
    conn.receive_data(data)          # bytes from the socket; b"" at end of stream
    event = conn.next_event()        # an Event, NEED_DATA, or CLOSED
    data = conn.send(Welcome(...))   # bytes for the caller to write

Errors: next_event() raises RemoteProtocolError for a bad message. If ``exc.fatal`` the stream is lost
(answer with an error frame, then close); otherwise the caller answers with an error frame and goes on.
"""

from __future__ import annotations

from enum import Enum
from typing import Final

from .errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from .events import Event, Hello, Sender, Welcome, event_from_body
from .framing import DEFAULT_MAX_FRAME_SIZE, FrameReader, encode_frame, unpack_body
from .limits import MAX_HELLO_FRAME_BYTES
from .versions import PROTOCOL_MIN, PROTOCOL_VERSION


class Role(Enum):
    CLIENT = "client"
    SERVER = "server"


class State(Enum):
    HANDSHAKE = "handshake"  # server: waiting for hello; client: waiting for welcome
    READY = "ready"
    ERROR = "error"  # the stream could not be parsed any further
    CLOSED = "closed"  # the peer closed its side


class _Sentinel:
    def __init__(self, name: str):
        self._name = name

    def __repr__(self) -> str:
        return self._name


NEED_DATA: Final = _Sentinel("NEED_DATA")
CLOSED: Final = _Sentinel("CLOSED")


class Connection:
    def __init__(self, role: Role, *, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE):
        self.role = role
        self.state = State.HANDSHAKE
        self._reader = FrameReader(max_frame_size)
        self._eof = False
        self._peer = Sender.SERVER if role is Role.CLIENT else Sender.CLIENT
        self._us = Sender.CLIENT if role is Role.CLIENT else Sender.SERVER
        self._hello_done = False

    @property
    def max_frame_size(self) -> int:
        return self._reader.max_frame_size

    @property
    def frame_in_progress(self) -> bool:
        """Part of a frame (at least one byte of it) has been received but not the whole frame."""
        return self._reader.buffered > 0 or self._reader.expected is not None

    @property
    def incoming_limit(self) -> tuple[int, str]:
        """The longest frame the peer may send now, and the limit's name: a server takes no more than a
        hello's worth from a peer that has not said hello."""
        if self.role is Role.SERVER and not self._hello_done:
            return min(self.max_frame_size, MAX_HELLO_FRAME_BYTES), "the limit before hello"
        return self.max_frame_size, "max_frame_size"

    @property
    def incoming_frame_size(self) -> int | None:
        """The declared length of the frame in progress, once its 4-byte header is in."""
        return self._reader.expected

    def receive_data(self, data: bytes) -> None:
        if self._eof:
            raise LocalProtocolError(ErrorCode.PROTOCOL_STATE, "receive_data after end of stream")
        if data:
            self._reader.feed(data)
        else:
            self._eof = True

    def next_event(self) -> Event | _Sentinel:
        if self.state is State.ERROR:
            raise LocalProtocolError(ErrorCode.PROTOCOL_STATE, "the stream already failed")
        try:
            payload = self._reader.next_payload(self.incoming_limit)
        except RemoteProtocolError:
            self.state = State.ERROR
            raise
        if payload is None:
            if self._eof:
                if self._reader.buffered:
                    self.state = State.ERROR
                    raise RemoteProtocolError(
                        ErrorCode.BAD_FRAME, "stream ended in the middle of a frame", fatal=True
                    )
                self.state = State.CLOSED
                return CLOSED
            return NEED_DATA
        try:
            body = unpack_body(payload)
        except RemoteProtocolError as exc:
            # The length prefix was fine, so framing survives; a garbage body (fatal) is still a broken peer.
            if exc.fatal:
                self.state = State.ERROR
                raise
            raise self._fatal_before_hello(exc) from None
        try:
            event = event_from_body(body, from_role=self._peer)
        except RemoteProtocolError as exc:
            raise self._fatal_before_hello(exc) from None
        self._check_handshake(event, incoming=True)
        return event

    def _fatal_before_hello(self, exc: RemoteProtocolError) -> RemoteProtocolError:
        """A message that cannot be decoded: before hello there is no session to answer within, so a
        server takes the peer for one not speaking this protocol (fatal ``protocol_state``)."""
        if exc.fatal or self.role is not Role.SERVER or self._hello_done:
            return exc
        self.state = State.ERROR
        return RemoteProtocolError(
            ErrorCode.PROTOCOL_STATE, f"expected a valid hello first: {exc.message}", fatal=True
        )

    def send(self, event: Event) -> bytes:
        """Encode an event for the wire, checking that this side may send it now."""
        if not (event.SENDER & self._us):
            raise LocalProtocolError(
                ErrorCode.PROTOCOL_STATE, f"a {self.role.value} cannot send {event.TYPE}"
            )
        self._check_handshake(event, incoming=False)
        data = encode_frame(event.to_body())
        if len(data) - 4 > self.max_frame_size:
            raise LocalProtocolError(ErrorCode.FRAME_TOO_LARGE, f"{event.TYPE} frame is {len(data)} bytes")
        return data

    def _check_handshake(self, event: Event, *, incoming: bool) -> None:
        """Hello goes first from the client, exactly once; Welcome answers it, exactly once.

        A client may pipeline requests right after its hello; the server sends nothing but welcome or an
        error until it has answered the hello.
        """
        error = RemoteProtocolError if incoming else LocalProtocolError
        from_client = incoming == (self.role is Role.SERVER)
        if isinstance(event, Hello):
            if self._hello_done:
                raise error(ErrorCode.PROTOCOL_STATE, "second hello")
            # Whether the server speaks a version of the hello's range is the server's call (it names the
            # add-on to install in its refusal): see protocol/versions.py.
            self._hello_done = True
        elif isinstance(event, Welcome):
            if self.state is not State.HANDSHAKE or not self._hello_done:
                raise error(ErrorCode.PROTOCOL_STATE, "welcome out of order")
            if incoming and not PROTOCOL_MIN <= event.protocol <= PROTOCOL_VERSION:
                raise RemoteProtocolError(
                    ErrorCode.VERSION_MISMATCH,
                    f"the server chose protocol {event.protocol}; this client speaks {PROTOCOL_MIN} to"
                    f" {PROTOCOL_VERSION}",
                    fatal=True,
                )
            self.state = State.READY
        elif event.TYPE == "error":
            return
        elif from_client and not self._hello_done:
            # Without a hello there is no session to answer within: the peer is not speaking this protocol.
            raise error(ErrorCode.PROTOCOL_STATE, f"{event.TYPE} before hello", fatal=True)
        elif not from_client and self.state is State.HANDSHAKE:
            raise error(ErrorCode.PROTOCOL_STATE, f"{event.TYPE} before welcome")
