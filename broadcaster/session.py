"""One client connection: a reader and a writer task in a nursery, around a sans-IO protocol Connection."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from typing import Any, Protocol

import trio

from protocol import (
    CLOSED,
    NEED_DATA,
    Connection,
    Error,
    ErrorCode,
    Event,
    Ping,
    RemoteProtocolError,
    Role,
)

from .auth import ANONYMOUS_ADMIN, User
from .config import ServerConfig
from .deadlines import ReceiveDeadlines
from .errors import RequestError
from .metrics import Metrics
from .outqueue import OutQueue
from .rooms import Room, encode_frame

log = logging.getLogger("blendsync.session")

WRITE_BATCH_BYTES = 256 * 1024


class SessionHost(Protocol):
    """What a session needs of the server that accepted it (the Broadcaster). Defined here so that this
    module imports nothing above it: the server handles requests, the session only moves frames."""

    config: ServerConfig
    metrics: Metrics

    async def handle(self, session: Session, event: Event) -> None:
        """Answer one request (raises RequestError for an error frame)."""

    def detach(self, session: Session) -> None:
        """Take a closing session out of its room and every registry."""

    def relay_presence(self, session: Session, state: dict[str, Any]) -> None:
        """Tell the session's room about its merged presence changes."""


class RateLimit:
    """A token bucket: ``rate`` per second, bursts of up to one second's worth."""

    __slots__ = ("capacity", "last", "rate", "tokens", "warned_at")

    def __init__(self, rate: float):
        self.rate = rate
        self.capacity = max(rate, 1.0)
        self.tokens = self.capacity
        self.last = trio.current_time()
        self.warned_at = -math.inf

    def take(self) -> bool:
        now = trio.current_time()
        self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class Session:
    def __init__(self, host: SessionHost, stream: trio.abc.Stream, peer: str):
        self.host = host
        config = host.config
        self.config = config
        self.stream = stream
        self.peer = peer
        self.accepted_at = trio.current_time()  # the handshake deadline counts from here
        self.conn = Connection(Role.SERVER, max_frame_size=config.max_frame_size)
        self.out = OutQueue(config.send_queue_bytes)
        self.client_id = ""
        self.name = ""
        self.kind = ""
        self.protocol = 0  # the version its hello agreed on (what it may be sent)
        self.user: User = ANONYMOUS_ADMIN
        self.connected_at = time.time()
        self.operations = 0
        # room -> (final meta, current meta, the import's time) of an import in parts
        self.imports: dict[str, tuple[dict[str, Any], dict[str, Any], int]] = {}
        self._ops_limit = RateLimit(config.max_ops_per_second) if config.max_ops_per_second > 0 else None
        self._presence_limit = (
            RateLimit(config.max_presence_per_second) if config.max_presence_per_second > 0 else None
        )
        self.presence: dict[str, Any] = {}
        self.room: Room | None = None
        self.joined_seq = 0  # its room's stream starts after this seq (see Writes.write_outcome)
        # (room, last op_id sent) when it left a room: ops sent before leaving that commit later are acked
        # outside the stream (Broadcaster._on_tree_event); cleared when it starts joining again.
        self.left: tuple[Room, int] | None = None
        self.last_op_id = 0
        self.closing = False
        self.writing = False  # the writer task holds frames it has not finished sending
        self.sent_directly = False  # frames went out past the writer task (websocket.py) since its last wait
        self.inflight = trio.Semaphore(config.max_inflight_ops)  # writes not yet committed (backpressure)
        self._presence_dirty: dict[str, Any] = {}
        self._presence_wakeup = trio.Event()
        self._nursery: trio.Nursery | None = None

    def info(self) -> dict[str, Any]:
        return {"id": self.client_id, "name": self.name, "kind": self.kind, **self.presence}

    def describe(self) -> dict[str, Any]:
        """What an admin sees of this client."""
        return {
            "id": self.client_id,
            "name": self.name,
            "user": self.user.name or None,
            "role": self.user.role,
            "kind": self.kind,
            "peer": self.peer,
            "room": self.room.name if self.room is not None else None,
            "connected_seconds": round(time.time() - self.connected_at, 1),
            "operations": self.operations,
            "queued_bytes": self.out.queued_bytes,
        }

    # ---- lifecycle ----------------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._writer)
                nursery.start_soon(self._presence_pump)
                await self._reader()
                # The peer is gone or the session is failing: let the writer flush a final error frame.
                if not self.closing:
                    nursery.cancel_scope.cancel()
        except* Exception as failed:
            # A server bug met by what one client sent must end that session, not the server.
            log.error("session of %s failed", self.client_id or self.peer, exc_info=failed)
        finally:
            self.host.detach(self)
            with trio.CancelScope(shield=True), trio.move_on_after(1):
                await self.close_transport()

    def send(self, event: Event) -> None:
        self.send_frame(encode_frame(event))

    def send_frame(self, frame: bytes) -> None:
        """Queue an encoded frame; a client whose queue is full is cut as a slow consumer (it resumes)."""
        if not self.out.put(frame):
            self.fail(ErrorCode.SLOW_CONSUMER, "too much data queued for this client")

    def send_stream(self, frames: Iterator[bytes]) -> None:
        """Queue frames made as they are sent (a snapshot, a backup), after everything sent before."""
        self.out.put_stream(frames)

    def fail(self, code: ErrorCode, message: str, ref: int | None = None) -> None:
        """End the session: send one error frame (best effort, bounded in time), then close."""
        if self.closing:
            return
        self.closing = True
        self.host.metrics.error(code.value)
        log.info(
            "closing %s (%s): %s: %s",
            self.client_id or self.peer,
            self.name,
            code,
            message,
            extra={"client_id": self.client_id, "peer": self.peer, "code": code.value},
        )
        self.out.replace_with(encode_frame(Error(code=code.value, message=message, ref=ref, fatal=True)))
        if self._nursery is not None:
            self._nursery.cancel_scope.deadline = min(
                self._nursery.cancel_scope.deadline, trio.current_time() + self.config.close_grace
            )
        self.host.detach(self)

    async def _writer(self) -> None:
        ping_nonce = 0
        while True:
            self.writing = False
            batch = await self.out.get_batch(WRITE_BATCH_BYTES, self.config.heartbeat_interval)
            self.writing = True  # taken from the queue, not yet on the wire (see WebSocketSession)
            if batch is None:
                if self.out.closed:
                    break
                if self.sent_directly:  # not idle: its frames went out past this task
                    self.sent_directly = False
                    continue
                ping_nonce += 1
                batch = [encode_frame(Ping(nonce=ping_nonce))] if self.client_id else []
                if not batch:
                    continue
            data = self.transport_bytes(batch)
            try:
                await self.stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                break
            self.host.metrics.sent_bytes += len(data)
            if self.out.closed and not len(self.out):
                break
        assert self._nursery is not None
        self._nursery.cancel_scope.cancel()

    async def _reader(self) -> None:
        deadlines = ReceiveDeadlines(self.config, self.accepted_at)
        while not self.closing:
            deadline, reason = deadlines.next(
                trio.current_time(),
                hello_done=bool(self.client_id),
                frame_size=self.incoming_frame_size(),
            )
            waiting_since = trio.current_time()
            with trio.move_on_at(deadline) as scope:
                try:
                    data = await self.stream.receive_some(65536)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return
            deadlines.waited(trio.current_time() - waiting_since)
            if scope.cancelled_caught:
                self.fail(ErrorCode.TIMEOUT, reason)
                return
            self.host.metrics.received_bytes += len(data)
            if not self.receive_transport(data):
                return
            frames = 0
            while not self.closing:
                try:
                    event = self.conn.next_event()
                except RemoteProtocolError as exc:
                    if exc.fatal:
                        self.fail(exc.code, exc.message, exc.ref)
                        return
                    frames += 1
                    self.reply_error(exc.code, exc.message, exc.ref)
                    continue
                if event is NEED_DATA:
                    break
                if event is CLOSED:
                    return
                assert isinstance(event, Event)
                frames += 1
                await self._handle(event)
            deadlines.received(frames_completed=frames > 0, frame_in_progress=self.frame_in_progress())

    # ---- transport: frames on a byte stream (the TCP port); websocket.py overrides these -------------

    def receive_transport(self, data: bytes) -> bool:
        """Pass received bytes to the protocol; False when the transport failed the session."""
        self.conn.receive_data(data)
        return True

    def transport_bytes(self, frames: list[bytes]) -> bytes:
        return b"".join(frames)

    def incoming_frame_size(self) -> int | None:
        return self.conn.incoming_frame_size

    def frame_in_progress(self) -> bool:
        return self.conn.frame_in_progress

    async def close_transport(self) -> None:
        await self.stream.aclose()

    # ---- requests -----------------------------------------------------------------------------------

    async def _handle(self, event: Event) -> None:
        ref = getattr(event, "ref", None)
        if ref is None:
            ref = getattr(event, "op_id", None)
        try:
            await self.host.handle(self, event)
        except RequestError as exc:
            self.reply_error(exc.code, exc.message, ref)
            if exc.pause > 0:
                await trio.sleep(exc.pause)  # the reader waits here; not charged to any receive deadline
        except Exception:
            # A server bug must cost this request, not the server: every other client goes on.
            log.exception("request %s from %s failed", event.TYPE, self.client_id or self.peer)
            self.reply_error(ErrorCode.INTERNAL, f"the server failed to handle {event.TYPE}", ref)

    def reply_error(self, code: ErrorCode, message: str, ref: int | None) -> None:
        self.host.metrics.error(code.value)
        self.send(Error(code=code.value, message=message, ref=ref))

    def update_presence(self, state: dict[str, Any]) -> None:
        self.host.metrics.presence += 1
        limit = self._presence_limit
        if limit is not None and not limit.take():
            self._rate_limited(limit, "max_presence_per_second")
            return
        if self.user.name and "name" in state:  # with auth on, the name others see is the user's
            state = {field: value for field, value in state.items() if field != "name"}
        self.presence.update(state)
        self._presence_dirty.update(state)
        self._presence_wakeup.set()

    def check_op_rate(self) -> None:
        limit = self._ops_limit
        if limit is not None and not limit.take():
            self.host.metrics.limit("max_ops_per_second")
            raise RequestError(
                ErrorCode.RATE_LIMITED, f"max_ops_per_second ({limit.rate:g}) exceeded: operation dropped"
            )

    def _rate_limited(self, limit: RateLimit, name: str) -> None:
        """A dropped presence update: say so at most once a second (presence is lossy by design)."""
        self.host.metrics.limit(name)
        now = trio.current_time()
        if now - limit.warned_at >= 1.0:
            limit.warned_at = now
            self.reply_error(
                ErrorCode.RATE_LIMITED, f"{name} ({limit.rate:g}) exceeded: update dropped", None
            )

    async def _presence_pump(self) -> None:
        """Relay presence at most ``presence_rate`` times a second; updates in between are merged."""
        interval = 1.0 / self.config.presence_rate if self.config.presence_rate > 0 else math.inf
        while True:
            await self._presence_wakeup.wait()
            self._presence_wakeup = trio.Event()
            if self._presence_dirty and self.room is not None:
                self.host.relay_presence(self, self._presence_dirty)
            self._presence_dirty = {}
            await trio.sleep(interval)
