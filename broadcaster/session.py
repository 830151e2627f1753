"""One client connection: a reader and a writer task in a nursery, around a sans-IO protocol Connection."""

from __future__ import annotations

import logging
import math
import secrets
from typing import TYPE_CHECKING, Any

import trio

from protocol import (
    CLOSED,
    NEED_DATA,
    PROTOCOL_VERSION,
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
    Ping,
    Pong,
    Presence,
    RemoteProtocolError,
    Role,
    RoomEvent,
    Set,
    Welcome,
)

from .outqueue import OutQueue
from .rooms import Room, encode_frame

if TYPE_CHECKING:
    from .server import Broadcaster

log = logging.getLogger("blendsync.session")

WRITE_BATCH_BYTES = 256 * 1024
CLOSE_GRACE_SECONDS = 2.0  # how long a closing session may take to deliver its last error frame


class RequestError(Exception):
    """A request that gets an error frame; the connection goes on."""

    def __init__(self, code: ErrorCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class Session:
    def __init__(self, broadcaster: Broadcaster, stream: trio.abc.Stream, peer: str):
        self.broadcaster = broadcaster
        config = broadcaster.config
        self.config = config
        self.stream = stream
        self.peer = peer
        self.conn = Connection(Role.SERVER, max_frame_size=config.max_frame_size)
        self.out = OutQueue(config.send_queue_bytes)
        self.client_id = ""
        self.name = ""
        self.kind = ""
        self.presence: dict[str, Any] = {}
        self.room: Room | None = None
        self.last_op_id = 0
        self.closing = False
        self._inflight = trio.Semaphore(config.max_inflight_ops)
        self._presence_dirty: dict[str, Any] = {}
        self._presence_wakeup = trio.Event()
        self._nursery: trio.Nursery | None = None

    def info(self) -> dict[str, Any]:
        return {"id": self.client_id, "name": self.name, "kind": self.kind, **self.presence}

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
            self.broadcaster.disconnected(self)
            with trio.CancelScope(shield=True), trio.move_on_after(1):
                await self.stream.aclose()

    def send(self, event: Event) -> None:
        if not self.out.put(encode_frame(event)):
            self.fail(ErrorCode.SLOW_CONSUMER, "too much data queued for this client")

    def fail(self, code: ErrorCode, message: str, ref: int | None = None) -> None:
        """End the session: send one error frame (best effort, bounded in time), then close."""
        if self.closing:
            return
        self.closing = True
        log.info("closing %s (%s): %s: %s", self.client_id or self.peer, self.name, code, message)
        self.out.replace_with(encode_frame(Error(code=code.value, message=message, ref=ref, fatal=True)))
        if self._nursery is not None:
            self._nursery.cancel_scope.deadline = min(
                self._nursery.cancel_scope.deadline, trio.current_time() + CLOSE_GRACE_SECONDS
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
            try:
                await self.stream.send_all(b"".join(batch))
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                break
            if self.out.closed and not len(self.out):
                break
        assert self._nursery is not None
        self._nursery.cancel_scope.cancel()

    async def _reader(self) -> None:
        timeout = self.config.handshake_timeout
        while not self.closing:
            with trio.move_on_after(timeout) as scope:
                try:
                    data = await self.stream.receive_some(65536)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return
            if scope.cancelled_caught:
                self.fail(ErrorCode.TIMEOUT, f"nothing received for {timeout:g} s")
                return
            self.conn.receive_data(data)
            while not self.closing:
                try:
                    event = self.conn.next_event()
                except RemoteProtocolError as exc:
                    if exc.fatal:
                        self.fail(exc.code, exc.message, exc.ref)
                        return
                    self.send(Error(code=exc.code.value, message=exc.message, ref=exc.ref))
                    continue
                if event is NEED_DATA:
                    break
                if event is CLOSED:
                    return
                assert isinstance(event, Event)
                await self._handle(event)
            if self.client_id:
                timeout = self.config.heartbeat_timeout

    # ---- requests -----------------------------------------------------------------------------------

    async def _handle(self, event: Event) -> None:
        ref = getattr(event, "ref", None)
        if ref is None:
            ref = getattr(event, "op_id", None)
        try:
            await self._dispatch(event)
        except RequestError as exc:
            self.send(Error(code=exc.code.value, message=exc.message, ref=ref))

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
                b.relay_event(self, op_id, value)
            case Presence(state=state):
                self.presence.update(state)
                self._presence_dirty.update(state)
                self._presence_wakeup.set()
            case _:
                raise RequestError(ErrorCode.UNKNOWN_TYPE, f"{event.TYPE} is not a request")

    async def _hello(self, hello: Hello) -> None:
        self.client_id = hello.session or secrets.token_hex(16)
        self.name = hello.client_name
        self.kind = hello.client_kind
        self.broadcaster.register(self)
        self.send(
            Welcome(
                protocol=PROTOCOL_VERSION,
                server_version=self.broadcaster.version,
                session=self.client_id,
                client_id=self.client_id,
                nodes=self.broadcaster.client_addresses(),
                max_frame_size=self.config.max_frame_size,
                heartbeat_interval=self.config.heartbeat_interval,
            )
        )

    async def _write(self, op_id: int, ops: list[list[Any]]) -> None:
        if self.room is None:
            raise RequestError(ErrorCode.NOT_IN_ROOM, "join a room before sending operations")
        if op_id <= self.last_op_id:
            raise RequestError(
                ErrorCode.BAD_MESSAGE, f"op_id {op_id} is not above the last one ({self.last_op_id})"
            )
        self.last_op_id = op_id
        # Backpressure: with too many writes in flight, stop reading from this client until some commit.
        await self._inflight.acquire()
        try:
            proposal = self.broadcaster.submit_write(self, op_id, ops)
        except BaseException:
            self._inflight.release()
            raise
        proposal.add_done_callback(lambda done: self._write_done(done, op_id))

    def _write_done(self, proposal: Any, op_id: int) -> None:
        self._inflight.release()
        error = self.broadcaster.write_outcome(self, proposal, op_id)
        if error is not None:
            self.send(Error(code=error.code.value, message=error.message, ref=op_id))

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
