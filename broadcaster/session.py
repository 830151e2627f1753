"""One client connection: a reader and a writer task in a nursery, around a sans-IO protocol Connection."""

from __future__ import annotations

import logging
import math
import secrets
import time
from typing import TYPE_CHECKING, Any

import trio

from protocol import (
    CLOSED,
    NEED_DATA,
    PROTOCOL_VERSION,
    Admin,
    Batch,
    Connection,
    CreateRoom,
    Delete,
    DeleteRoom,
    Error,
    ErrorCode,
    Event,
    Hello,
    JoinRoom,
    LeaveRoom,
    ListRooms,
    Lock,
    Ping,
    Pong,
    Presence,
    RemoteProtocolError,
    Role,
    RoomEvent,
    Set,
    Unlock,
    Welcome,
)

from .auth import ANONYMOUS_ADMIN, User
from .deadlines import ReceiveDeadlines
from .outqueue import OutQueue
from .rooms import Room, encode_frame

if TYPE_CHECKING:
    from .server import Broadcaster

log = logging.getLogger("blendsync.session")

WRITE_BATCH_BYTES = 256 * 1024


class RequestError(Exception):
    """A request that gets an error frame; the connection goes on.

    With ``pause``, the server then reads nothing more from this client for that many seconds: a refused
    password guess must not be retried at once on the same connection (docs/security.md).
    """

    def __init__(self, code: ErrorCode, message: str, *, pause: float = 0.0):
        super().__init__(message)
        self.code = code
        self.message = message
        self.pause = pause


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
    def __init__(self, broadcaster: Broadcaster, stream: trio.abc.Stream, peer: str):
        self.broadcaster = broadcaster
        config = broadcaster.config
        self.config = config
        self.stream = stream
        self.peer = peer
        self.accepted_at = trio.current_time()  # the handshake deadline counts from here
        self.conn = Connection(Role.SERVER, max_frame_size=config.max_frame_size)
        self.out = OutQueue(config.send_queue_bytes)
        self.client_id = ""
        self.name = ""
        self.kind = ""
        self.user: User = ANONYMOUS_ADMIN
        self.connected_at = time.time()
        self.operations = 0
        self.imports: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}  # room -> (final, current) meta
        self._ops_limit = RateLimit(config.max_ops_per_second) if config.max_ops_per_second > 0 else None
        self._presence_limit = (
            RateLimit(config.max_presence_per_second) if config.max_presence_per_second > 0 else None
        )
        self.presence: dict[str, Any] = {}
        self.room: Room | None = None
        self.joined_seq = 0  # the room's stream to this session starts after this seq (see write_outcome)
        self.last_op_id = 0
        self.closing = False
        self._inflight = trio.Semaphore(config.max_inflight_ops)
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
        finally:
            self.broadcaster.detach(self)
            with trio.CancelScope(shield=True), trio.move_on_after(1):
                await self.stream.aclose()

    def send(self, event: Event) -> None:
        self.send_frame(encode_frame(event))

    def send_frame(self, frame: bytes) -> None:
        """Queue an encoded frame; a client whose queue is full is cut as a slow consumer (it resumes)."""
        if not self.out.put(frame):
            self.fail(ErrorCode.SLOW_CONSUMER, "too much data queued for this client")

    def fail(self, code: ErrorCode, message: str, ref: int | None = None) -> None:
        """End the session: send one error frame (best effort, bounded in time), then close."""
        if self.closing:
            return
        self.closing = True
        self.broadcaster.metrics.error(code.value)
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
        self.broadcaster.detach(self)

    async def _writer(self) -> None:
        ping_nonce = 0
        while True:
            batch = await self.out.get_batch(WRITE_BATCH_BYTES, self.config.heartbeat_interval)
            if batch is None:
                if self.out.closed:
                    break
                ping_nonce += 1
                batch = [encode_frame(Ping(nonce=ping_nonce))] if self.client_id else []
                if not batch:
                    continue
            data = b"".join(batch)
            try:
                await self.stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                break
            self.broadcaster.metrics.sent_bytes += len(data)
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
                frame_size=self.conn.incoming_frame_size,
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
            self.broadcaster.metrics.received_bytes += len(data)
            self.conn.receive_data(data)
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
            deadlines.received(frames_completed=frames > 0, frame_in_progress=self.conn.frame_in_progress)

    # ---- requests -----------------------------------------------------------------------------------

    async def _handle(self, event: Event) -> None:
        ref = getattr(event, "ref", None)
        if ref is None:
            ref = getattr(event, "op_id", None)
        try:
            await self._dispatch(event)
        except RequestError as exc:
            self.reply_error(exc.code, exc.message, ref)
            if exc.pause > 0:
                await trio.sleep(exc.pause)  # the reader waits here; not charged to any receive deadline
        except Exception:
            # A server bug must cost this request, not the server: every other client goes on.
            log.exception("request %s from %s failed", event.TYPE, self.client_id or self.peer)
            self.reply_error(ErrorCode.INTERNAL, f"the server failed to handle {event.TYPE}", ref)

    def reply_error(self, code: ErrorCode, message: str, ref: int | None) -> None:
        self.broadcaster.metrics.error(code.value)
        self.send(Error(code=code.value, message=message, ref=ref))

    async def _dispatch(self, event: Event) -> None:
        b = self.broadcaster
        match event:
            case Hello():
                await self._hello(event)
            case Ping(nonce=nonce):
                self.send(Pong(nonce=nonce))
            case Pong():
                pass
            case ListRooms(subscribe=subscribe, ref=ref):
                b.list_rooms(self, subscribe, ref)
            case CreateRoom() | JoinRoom() | DeleteRoom() if not self.user.may_use_room(event.room):
                # A room-scoped token (an invite) enters its room only (docs/security.md).
                raise RequestError(ErrorCode.FORBIDDEN, "this token is for another room")
            case CreateRoom():
                await b.create_room(self, event)
            case JoinRoom():
                await b.join_room(self, event)
            case LeaveRoom(ref=ref):
                await b.leave_room(self, ref)
            case DeleteRoom():
                await b.delete_room(self, event)
            case Set(op_id=op_id, key=key, value=value):
                await self._write(op_id, [["set", key, value]])
            case Delete(op_id=op_id, key=key):
                await self._write(op_id, [["delete", key]])
            case Batch(op_id=op_id, ops=ops):
                await self._write(op_id, ops)
            case RoomEvent(op_id=op_id, value=value):
                self._check_op_rate()
                b.metrics.events += 1
                b.relay_event(self, op_id, value)
            case Presence(state=state):
                b.metrics.presence += 1
                limit = self._presence_limit
                if limit is not None and not limit.take():
                    self._rate_limited(limit, "max_presence_per_second")
                    return
                self.presence.update(state)
                self._presence_dirty.update(state)
                self._presence_wakeup.set()
            case Lock():
                await b.lock(self, event)
            case Unlock():
                await b.unlock(self, event)
            case Admin():
                await b.admin(self, event)
            case _:
                raise RequestError(ErrorCode.UNKNOWN_TYPE, f"{event.TYPE} is not a request")

    async def _hello(self, hello: Hello) -> None:
        b = self.broadcaster
        user = b.authenticate(hello.token)
        if user is None:
            reason = "missing, unknown or expired token" if hello.token else "a token is required"
            self.fail(ErrorCode.AUTH_FAILED, reason)
            return
        client_id = hello.session or secrets.token_hex(16)
        if not b.claim_session(client_id, user):
            # Session ids are visible to other members; one user must not take over another's session.
            self.fail(ErrorCode.FORBIDDEN, "this session id belongs to another user")
            return
        limit = self.config.max_clients
        if limit and len(b.sessions) >= limit and client_id not in b.sessions:
            b.metrics.limit("max_clients")
            self.fail(ErrorCode.LIMIT_EXCEEDED, f"max_clients ({limit}) reached: try again later")
            return
        self.user = user
        self.client_id = client_id
        # With auth, others see the authenticated user, not a name the client chose.
        self.name = user.name or hello.client_name
        self.kind = hello.client_kind
        b.register(self)
        self.send(
            Welcome(
                protocol=PROTOCOL_VERSION,
                server_version=self.broadcaster.version,
                session=self.client_id,
                client_id=self.client_id,
                nodes=self.broadcaster.client_addresses(),
                max_frame_size=self.config.max_frame_size,
                heartbeat_interval=self.config.heartbeat_interval,
                user=user.name or None,
                role=user.role if b.tokens is not None else None,
            )
        )

    def _check_op_rate(self) -> None:
        limit = self._ops_limit
        if limit is not None and not limit.take():
            self.broadcaster.metrics.limit("max_ops_per_second")
            raise RequestError(
                ErrorCode.RATE_LIMITED, f"max_ops_per_second ({limit.rate:g}) exceeded: operation dropped"
            )

    def _rate_limited(self, limit: RateLimit, name: str) -> None:
        """A dropped presence update: say so at most once a second (presence is lossy by design)."""
        self.broadcaster.metrics.limit(name)
        now = trio.current_time()
        if now - limit.warned_at >= 1.0:
            limit.warned_at = now
            self.reply_error(
                ErrorCode.RATE_LIMITED, f"{name} ({limit.rate:g}) exceeded: update dropped", None
            )

    async def _write(self, op_id: int, ops: list[list[Any]]) -> None:
        if self.room is None:
            raise RequestError(ErrorCode.NOT_IN_ROOM, "join a room before sending operations")
        # An op_id at or below the last one is a retry: the store answers it with the original outcome
        # (the seq it got, if it committed) and never applies it twice.
        # Refusals before this point have no effect at all: the client may retry with the same op_id.
        self._check_op_rate()
        # Backpressure: with too many writes in flight, stop reading from this client until some commit.
        await self._inflight.acquire()
        room = self.room
        if room is None:  # the room went while this client was held back
            self._inflight.release()
            raise RequestError(ErrorCode.NOT_IN_ROOM, "the room no longer exists")
        try:
            pending = self.broadcaster.check_write(self, ops)
        except BaseException:
            self._inflight.release()
            raise
        self.last_op_id = max(self.last_op_id, op_id)
        try:
            proposal = self.broadcaster.submit_write(self, op_id, ops)
        except BaseException:
            self._inflight.release()
            if pending is not None:
                room.pending_keys -= pending[0]
                room.pending_bytes -= pending[1]
            raise
        self.operations += 1
        proposal.add_done_callback(lambda done: self._write_done(done, op_id, room, pending))

    def _write_done(self, proposal: Any, op_id: int, room: Room, pending: tuple[int, int] | None) -> None:
        self._inflight.release()
        if pending is not None:
            room.pending_keys -= pending[0]
            room.pending_bytes -= pending[1]
        error = self.broadcaster.write_outcome(self, proposal, op_id, room)
        if error is not None:
            self.reply_error(error.code, error.message, op_id)

    async def _presence_pump(self) -> None:
        """Relay presence at most ``presence_rate`` times a second; updates in between are merged."""
        interval = 1.0 / self.config.presence_rate if self.config.presence_rate > 0 else math.inf
        while True:
            await self._presence_wakeup.wait()
            self._presence_wakeup = trio.Event()
            if self._presence_dirty and self.room is not None:
                self.broadcaster.relay_presence(self, self._presence_dirty)
            self._presence_dirty = {}
            await trio.sleep(interval)
