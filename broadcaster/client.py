"""A small trio client for the broadcaster: a shell over the sans-IO client session.

Used by the tests, the benchmarks and operators' tools. The protocol's client side (refs, op ids and the
unacknowledged operations, the room's seq and key map, resuming and failing over) is
protocol/client_session.py; this module owns the socket, the clock and the callers waiting for answers.
It mirrors the joined room's key map in server order (``client.state`` at ``client.seq``): others'
operations are applied when they arrive, the client's own when their ack arrives, which the server places
at the op's position in the stream.

    async with connect("127.0.0.1", 12800, name="ana") as client:
        await client.create_room("shot-010")
        await client.join("shot-010")
        seq = await client.set("obj/1/transform", b"...")
        event = await client.receive()
"""

from __future__ import annotations

import hashlib
import math
import secrets
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import trio

from protocol import (
    CLOSED,
    NEED_DATA,
    PROTOCOL_MIN,
    PROTOCOL_VERSION,
    Admin,
    AdminResult,
    BackupData,
    BlobDataEvent,
    BlobGet,
    BlobPut,
    BlobQuery,
    BlobStatus,
    ClientSession,
    Connection,
    CreateRoom,
    DeleteRoom,
    Error,
    Event,
    ExportBlob,
    ExportItems,
    Hello,
    Joined,
    ListRooms,
    Lock,
    LockGranted,
    LocksChanged,
    Overridden,
    Presence,
    RemoteProtocolError,
    Role,
    Unlock,
    Unlocked,
    parse_address,
)
from protocol.invite import check_pin_format
from protocol.nodes import SILENT_HEARTBEATS, Address

from .tls import PinMismatch, check_pin, pinned_client_context

HANDSHAKE_TIMEOUT = 3.0  # a node that does not welcome us within this is skipped
ROUND_PAUSE = 0.2  # after every known node was tried once


class ServerError(Exception):
    def __init__(self, code: str, message: str, fatal: bool = False):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.fatal = fatal

    @classmethod
    def of(cls, error: Error) -> ServerError:
        return cls(error.code, error.message, error.fatal)


class ConnectionLost(Exception):
    pass


class _LeaveNode(Exception):
    """The session decided to fail over to another node (``error``: the fatal error that said so)."""

    def __init__(self, reason: str, error: ServerError | None = None):
        super().__init__(reason)
        self.error = error


@dataclass
class JoinResult:
    room: str
    seq: int
    mode: str
    clients: list[dict[str, Any]]
    role: str | None = None  # "owner", "editor" or "viewer"


@dataclass(eq=False)
class _Waiter:
    done: trio.Event = field(default_factory=trio.Event)
    value: Any = None
    error: BaseException | None = None

    def resolve(self, value: Any = None, error: BaseException | None = None) -> None:
        if not self.done.is_set():
            self.value, self.error = value, error
            self.done.set()

    async def wait(self) -> Any:
        await self.done.wait()
        if self.error is not None:
            raise self.error
        return self.value


class Client:
    def __init__(
        self,
        stream: trio.abc.Stream,
        session: ClientSession,
        *,
        max_frame_size: int = 64 * 1024 * 1024,
        ssl_context: ssl.SSLContext | None = None,
        pin: str | None = None,
    ):
        self.stream = stream
        self.session = session
        self.max_frame_size = max_frame_size
        self.conn = Connection(Role.CLIENT, max_frame_size=max_frame_size)
        self.locks: dict[str, str] = {}  # key -> owner client_id, in the joined room
        self.prefix_locks: dict[str, str] = {}  # prefix -> owner client_id (every key under it)
        self._ssl_context = ssl_context
        self._pin = pin
        self._send_lock = trio.StrictFIFOLock()
        self._waiters: dict[int, _Waiter] = {}  # ref -> waiter
        self._op_waiters: dict[int, _Waiter] = {}  # op_id -> waiter
        self._snapshot_done: _Waiter | None = None
        self.exports: dict[int, Callable[[Event], None]] = {}  # ref -> where an export's parts go
        self.sinks: dict[int, Callable[[bytes], None]] = {}  # ref -> where a backup's chunks go
        # Server events the caller may want, and Overridden: our committed value replaced by someone who
        # had not seen it (after the ``applied`` that did it).
        self._events_send, self.events = trio.open_memory_channel[Event | Overridden](math.inf)
        self._closed_error: BaseException | None = None
        self._connected = trio.Event()  # unset while failing over: operations wait to be resent
        self._connected.set()

    # The session's view, under the names callers have always used.
    welcome = property(lambda self: self.session.welcome)
    room = property(lambda self: self.session.room)
    seq = property(lambda self: self.session.seq)
    state = property(lambda self: self.session.state)
    failover = property(lambda self: self.session.failover)
    reconnects = property(lambda self: self.session.reconnects)
    addresses = property(lambda self: self.session.addresses)
    address = property(lambda self: self.session.address)

    @property
    def failover_timeout(self) -> float:
        return self.session.failover_timeout

    @failover_timeout.setter
    def failover_timeout(self, value: float) -> None:
        self.session.failover_timeout = value

    @property
    def client_id(self) -> str:
        assert self.welcome is not None
        return self.welcome.client_id

    # ---- plumbing -----------------------------------------------------------------------------------

    async def send(self, event: Event) -> None:
        """Send a request-less event (presence, or a raw event); fails while failing over."""
        async with self._send_lock:
            if not self._connected.is_set():
                raise ConnectionLost("reconnecting")
            await self._write(event)

    async def _write(self, event: Event) -> None:
        try:
            await self.stream.send_all(self.conn.send(event))
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise ConnectionLost(str(exc)) from None

    async def _request(self, ref: int, event: Event) -> Any:
        return await (await self._send_request(ref, event)).wait()

    async def _send_request(self, ref: int, event: Event) -> _Waiter:
        """Send a request without waiting for its reply: the waiter's wait() gives it."""
        waiter = self._waiters[ref] = _Waiter()
        self._check_open()
        try:
            await self.send(event)
        except ConnectionLost:
            self._waiters.pop(ref, None)
            self.session.forget(ref)
            raise
        return waiter

    def _check_open(self) -> None:
        if self._closed_error is not None:
            raise self._closed_error

    async def _reader(self, task_status=trio.TASK_STATUS_IGNORED) -> None:
        started = False
        try:
            while True:
                try:
                    while True:
                        await self._read_some()
                        if not started and self.welcome is not None:
                            started = True
                            task_status.started()
                except _LeaveNode as exc:
                    if not started:
                        raise exc.error or ConnectionLost(str(exc)) from None
                    await self._fail_over(str(exc))
                except (ConnectionLost, RemoteProtocolError) as exc:
                    if not (self.failover and started):
                        raise
                    await self._fail_over(str(exc))
        except (ConnectionLost, RemoteProtocolError, ServerError) as exc:
            self._fail_all(exc if not isinstance(exc, RemoteProtocolError) else ConnectionLost(str(exc)))
            if not started:
                raise
        finally:
            self._events_send.close()

    async def _read_some(self) -> None:
        deadline = self.session.silence_deadline()
        with trio.move_on_at(math.inf if deadline is None else deadline) as silence:
            try:
                data = await self.stream.receive_some(1 << 20)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                data = b""
        if silence.cancelled_caught:
            raise ConnectionLost(f"server silent for {SILENT_HEARTBEATS} heartbeat intervals")
        self.conn.receive_data(data)
        while True:
            event = self.conn.next_event()
            if event is NEED_DATA:
                return
            if event is CLOSED:
                raise ConnectionLost("server closed the connection")
            assert isinstance(event, Event)
            await self._on_event(event)

    async def _fail_over(self, reason: str) -> None:
        """Connect to another node with the same session and send the session's resume plan."""
        self._connected = trio.Event()
        lost = ConnectionLost(f"connection lost ({reason}); reconnecting")
        for ref in self.session.connection_lost(reason, trio.current_time()):
            waiter = self._waiters.pop(ref, None) or self._op_waiters.pop(ref, None)
            if waiter is not None:
                waiter.resolve(error=lost)
        self.locks = {}  # dropped with the connection; the resumed room announces the current ones
        self.prefix_locks = {}
        with trio.CancelScope(shield=True):
            await trio.aclose_forcefully(self.stream)
        while not self.session.gave_up(trio.current_time()):
            for address in self.session.failover_order():
                try:
                    with trio.fail_after(HANDSHAKE_TIMEOUT):
                        await self._handshake(address)
                    async with self._send_lock:
                        for event in self.session.resume_plan():
                            await self._write(event)
                        self._connected.set()
                    return
                except (OSError, trio.TooSlowError, ConnectionLost, RemoteProtocolError, _LeaveNode):
                    with trio.CancelScope(shield=True):
                        await trio.aclose_forcefully(self.stream)
            await trio.sleep(ROUND_PAUSE)
        timeout = self.session.failover_timeout
        raise ConnectionLost(f"no node let this client resume within {timeout:g} s ({reason})")

    async def _handshake(self, address: Address) -> None:
        stream: trio.abc.Stream
        if self._ssl_context is not None:
            stream = await trio.open_ssl_over_tcp_stream(*address, ssl_context=self._ssl_context)
            if self._pin is not None:
                await stream.do_handshake()
                check_pin(stream, self._pin)  # before the hello carries the token
        else:
            stream = await trio.open_tcp_stream(*address)
        self.stream, self.conn = stream, Connection(Role.CLIENT, max_frame_size=self.max_frame_size)
        await self._write(self.session.connecting(address))
        while self.welcome is None:
            await self._read_some()

    def _fail_all(self, error: BaseException) -> None:
        self._closed_error = error
        for waiter in [*self._waiters.values(), *self._op_waiters.values()]:
            waiter.resolve(error=error)
        if self._snapshot_done is not None:
            self._snapshot_done.resolve(error=error)

    async def _on_event(self, event: Event) -> None:
        step = self.session.receive(event, trio.current_time())
        if isinstance(event, Joined):  # a membership starts: its locks come after this, maybe in this read
            self.locks, self.prefix_locks = {}, {}
        for reply in step.send:
            async with self._send_lock:
                await self._write(reply)
        if step.reply is not None:
            ref, answer = step.reply
            waiter = self._waiters.pop(ref, None)
            if waiter is not None and isinstance(answer, Error):
                waiter.resolve(error=ServerError.of(answer))
            elif waiter is not None:
                waiter.resolve(answer)
        if step.acked is not None:
            waiter = self._op_waiters.pop(step.acked[0], None)
            if waiter is not None:
                waiter.resolve(step.acked[1])
        for op_id, error in step.refused + step.unknown:
            waiter = self._op_waiters.pop(op_id, None)
            if waiter is not None:
                waiter.resolve(error=ServerError.of(error))
        if step.snapshot_end is not None and self._snapshot_done is not None:
            self._snapshot_done.resolve(step.snapshot_end)
        if isinstance(event, ExportItems | ExportBlob) and event.ref in self.exports:
            self.exports[event.ref](event)
        elif isinstance(event, BackupData) and event.ref in self.sinks:
            self.sinks[event.ref](event.data)
        elif isinstance(event, LocksChanged) and event.room == self.room:
            for key in event.unlocked:
                self.locks.pop(key, None)
            self.locks.update(event.locked)
            for prefix in event.unlocked_prefixes:
                self.prefix_locks.pop(prefix, None)
            self.prefix_locks.update(event.prefixes)
            self._events_send.send_nowait(event)
        elif step.deliver:
            self._events_send.send_nowait(event)
        for overridden in step.overridden:
            self._events_send.send_nowait(overridden)
        if step.fatal is not None:
            raise ServerError.of(step.fatal)
        if step.failover is not None:
            fatal = isinstance(event, Error) and event.fatal
            raise _LeaveNode(step.failover, ServerError.of(event) if fatal else None)

    # ---- requests -----------------------------------------------------------------------------------

    async def list_rooms(self, subscribe: bool = False) -> list[dict[str, Any]]:
        reply = await self._request(
            *self.session.request(lambda ref: ListRooms(subscribe=subscribe, ref=ref))
        )
        return reply.rooms

    async def create_room(self, room: str, *, keep_open: bool = False, password: str | None = None) -> None:
        await self._request(
            *self.session.request(
                lambda ref: CreateRoom(room=room, keep_open=keep_open, password=password, ref=ref)
            )
        )

    async def join(self, room: str, *, password: str | None = None, since: int | None = None) -> JoinResult:
        """Join a room; returns once the snapshot (or the resumed tail's start) is in ``state``."""
        self._snapshot_done = _Waiter()
        joined: Joined = await self._request(*self.session.join(room, password=password, since=since))
        if joined.mode == "snapshot":
            await self._snapshot_done.wait()
        return JoinResult(
            room=room, seq=joined.seq, mode=joined.mode, clients=joined.clients, role=joined.role
        )

    async def leave(self) -> None:
        await self._request(*self.session.leave())

    async def delete_room(self, room: str) -> None:
        await self._request(*self.session.request(lambda ref: DeleteRoom(room=room, ref=ref)))

    def next_op_id(self) -> int:
        """Reserve an op id for ``send_ops(op_id=...)``; op ids increase within the session."""
        return self.session.reserve_op_id()

    async def send_ops(
        self, ops: list[list[Any]], *, op_id: int | None = None, seen: int | None = None
    ) -> tuple[int, _Waiter]:
        """Send a batch without waiting; returns (op_id, waiter whose wait() gives the seq). ``seen``: the
        room's seq the edit was made from (default: ``seq`` now; others are told when it overrides them).

        While failing over, the operation waits in the session and goes out with the resume plan."""
        async with self._send_lock:  # taken by the resume plan too: an op is sent once per connection
            self._check_open()  # then registered with no wait in between: a closing client resolves it
            op_id, event = self.session.write(ops, op_id=op_id, seen=seen)
            waiter = self._op_waiters[op_id] = _Waiter()
            if self._connected.is_set():
                try:
                    await self._write(event)
                except ConnectionLost:
                    if not self.failover:
                        raise  # with failover, the reader notices, reconnects and resends it
        return op_id, waiter

    async def set(self, key: str, value: bytes) -> int:
        _, waiter = await self.send_ops([["set", key, value]])
        return await waiter.wait()

    async def delete(self, key: str) -> int:
        _, waiter = await self.send_ops([["delete", key]])
        return await waiter.wait()

    async def batch(self, ops: list[list[Any]]) -> int:
        _, waiter = await self.send_ops(ops)
        return await waiter.wait()

    async def event(self, value: bytes) -> int:
        op_id, event = self.session.room_event(value)
        waiter = self._op_waiters[op_id] = _Waiter()
        self._check_open()
        await self.send(event)
        return await waiter.wait()

    async def presence(self, **state: Any) -> None:
        await self.send(Presence(state=state))

    async def lock(self, keys: list[str], prefixes: list[str] | None = None) -> list[str]:
        """Lock keys, and every key under ``prefixes`` (each ending in /), of the joined room (all or none:
        ServerError ``locked``); returns the keys (``lock_prefixes`` returns both)."""
        return (await self.lock_prefixes(keys, prefixes or []))[0]

    async def lock_prefixes(self, keys: list[str], prefixes: list[str]) -> tuple[list[str], list[str]]:
        reply: LockGranted = await self._request(
            *self.session.request(lambda ref: Lock(keys=list(keys), prefixes=list(prefixes), ref=ref))
        )
        return reply.keys, reply.prefixes

    async def unlock(self, keys: list[str] | None = None, prefixes: list[str] | None = None) -> list[str]:
        """Release some (neither named: all) of this client's locks; returns the keys, then the prefixes."""
        reply: Unlocked = await self._request(
            *self.session.request(
                lambda ref: Unlock(keys=list(keys or []), prefixes=list(prefixes or []), ref=ref)
            )
        )
        return reply.keys + reply.prefixes

    async def put_blob(self, data: bytes, children: list[bytes] | None = None) -> bytes:
        """Store one blob (at most protocol.limits.MAX_BLOB_BYTES); returns its hash once it is durable.
        ``children``: the blobs this one holds as a tree node (docs/protocol.md section 3a)."""
        blob, waiter = await self.send_blob(data, children)
        await waiter.wait()
        return blob

    async def send_blob(self, data: bytes, children: list[bytes] | None = None) -> tuple[bytes, _Waiter]:
        """``put_blob`` without waiting: returns the hash and a waiter whose wait() returns once the blob is
        durable. Blobs sent one after the other, then the batch that references them, are stored in the
        order sent (the add-on uploads an edit's chunks this way: they share the server's commits)."""
        blob = hashlib.sha256(data).digest()
        event = self.session.request(lambda ref: BlobPut(hash=blob, data=data, ref=ref, children=children))
        return blob, await self._send_request(*event)

    async def missing_blobs(self, hashes: list[bytes]) -> list[bytes]:
        """Which of these blobs the server does not hold."""
        reply: BlobStatus = await self._request(
            *self.session.request(lambda ref: BlobQuery(hashes=list(hashes), ref=ref))
        )
        return reply.missing

    async def get_blob(self, blob: bytes) -> bytes | None:
        """A blob's bytes (checked against its hash when decoded), or None if the server does not hold it."""
        reply: BlobDataEvent = await self._request(
            *self.session.request(lambda ref: BlobGet(hashes=[blob], ref=ref))
        )
        return reply.data

    async def admin(self, action: str, **args: Any) -> Any:
        """An admin request (needs the admin role); returns its result."""
        reply: AdminResult = await self._request(
            *self.session.request(lambda ref: Admin(action=action, args=args, ref=ref))
        )
        return reply.result

    async def receive(self) -> Event | Overridden:
        try:
            return await self.events.receive()
        except trio.EndOfChannel:
            raise self._closed_error or ConnectionLost("connection closed") from None


@asynccontextmanager
async def connect(
    host: str,
    port: int,
    *,
    name: str = "client",
    kind: str = "tool",
    session: str | None = None,
    token: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
    pin: str | None = None,
    failover: bool = False,
    addresses: list[str] | None = None,
    failover_timeout: float = 30.0,
) -> AsyncIterator[Client]:
    """A connected client (hello answered). With ``ssl_context``, over TLS (see broadcaster/tls.py).

    With ``pin`` (``sha256:<hex>``), over TLS accepting only the certificate with that fingerprint, and no
    CA (a self-signed server, see broadcaster/invite.py); any other certificate raises PinMismatch before
    anything, the token included, is sent.

    With ``failover``, the client leaves a node that drops the connection, answers ``unavailable`` (no
    quorum there) or falls silent, for the next of ``addresses`` and the ``nodes`` the server lists in
    welcome; it resumes the room from the last seq and resends unacknowledged operations with their op_ids,
    so the caller sees at most a delay. After ``failover_timeout`` seconds without a node that lets it
    resume, it gives up (ConnectionLost).
    """
    stream: trio.abc.Stream
    if pin is not None:
        pin = check_pin_format(pin)
        ssl_context = ssl_context or pinned_client_context()
    if ssl_context is not None:
        stream = await trio.open_ssl_over_tcp_stream(host, port, ssl_context=ssl_context)
        try:
            await stream.do_handshake()
            if pin is not None:
                check_pin(stream, pin)
        except trio.BrokenResourceError as exc:
            await stream.aclose()
            cause = exc.__cause__ or exc
            raise ConnectionLost(f"TLS handshake with {host}:{port} failed: {cause}") from None
        except PinMismatch:
            await trio.aclose_forcefully(stream)
            raise
    else:
        stream = await trio.open_tcp_stream(host, port)
    hello = Hello(
        protocol=PROTOCOL_VERSION,
        protocol_min=PROTOCOL_MIN,
        client_name=name,
        client_kind=kind,
        client_version="blendsync-client",
        session=session or secrets.token_hex(16),
        token=token,
    )
    known = [(host, port), *(parse_address(item) for item in addresses or [])]
    client_session = ClientSession(hello, known, failover=failover, failover_timeout=failover_timeout)
    client = Client(stream, client_session, ssl_context=ssl_context, pin=pin)
    try:
        async with trio.open_nursery() as nursery:
            await client.send(client_session.connecting((host, port)))
            await nursery.start(client._reader)
            try:
                yield client
            finally:
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # The reader task never raises once started, so a lone exception is the caller's own: unwrap it.
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise
    finally:
        with trio.CancelScope(shield=True):
            await trio.aclose_forcefully(client.stream)
