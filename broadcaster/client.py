"""A small trio client for the broadcaster, on top of the sans-IO protocol.

Used by the tests, the benchmarks and operators' tools. It mirrors the joined room's key map in server
order (``client.state`` at ``client.seq``): others' operations are applied when they arrive, the client's own
when their ack arrives, which the server places at the op's position in the stream.

    async with connect("127.0.0.1", 12800, name="ana") as client:
        await client.create_room("shot-010")
        await client.join("shot-010")
        seq = await client.set("obj/1/transform", b"...")
        event = await client.receive()
"""

from __future__ import annotations

import itertools
import math
import secrets
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import trio

from protocol import (
    CLOSED,
    NEED_DATA,
    PROTOCOL_VERSION,
    Ack,
    Admin,
    AdminResult,
    Applied,
    Batch,
    Connection,
    CreateRoom,
    Delete,
    DeleteRoom,
    Error,
    Event,
    ExportItems,
    Hello,
    Joined,
    JoinRoom,
    LeaveRoom,
    ListRooms,
    Lock,
    LockGranted,
    LocksChanged,
    Ping,
    Pong,
    Presence,
    RemoteProtocolError,
    Role,
    RoomDeleted,
    RoomEvent,
    Set,
    SnapshotChunk,
    SnapshotEnd,
    Unlock,
    Unlocked,
    Welcome,
)

IMPORT_CHUNK_BYTES = 8 * 1024 * 1024


class ServerError(Exception):
    def __init__(self, code: str, message: str, fatal: bool = False):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.fatal = fatal


class ConnectionLost(Exception):
    pass


@dataclass
class JoinResult:
    room: str
    seq: int
    mode: str
    clients: list[dict[str, Any]]


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
    def __init__(self, stream: trio.abc.Stream, *, max_frame_size: int = 64 * 1024 * 1024):
        self.stream = stream
        self.conn = Connection(Role.CLIENT, max_frame_size=max_frame_size)
        self.welcome: Welcome | None = None
        self.room: str | None = None
        self.seq = 0  # the room's seq that ``state`` reflects
        self.state: dict[str, bytes] = {}
        self.joining = False
        self._send_lock = trio.StrictFIFOLock()
        self._refs = itertools.count(1)
        self._last_op_id = 0  # op ids increase per session; the server dedupes retries by them
        self._waiters: dict[int, _Waiter] = {}  # ref -> waiter
        self._op_waiters: dict[int, _Waiter] = {}  # op_id -> waiter
        self._pending_ops: dict[int, list[list[Any]]] = {}  # own ops not yet acked
        self._snapshot_done: _Waiter | None = None
        self.locks: dict[str, str] = {}  # key -> owner client_id, in the joined room
        self._exports: dict[int, list[list[Any]]] = {}  # ref -> items received so far
        self._events_send, self.events = trio.open_memory_channel[Event](math.inf)
        self._closed_error: BaseException | None = None
        # Failover (see connect(failover=True)): where to reconnect, and how to say hello again.
        self.failover = False
        self.failover_timeout = 30.0  # give up reconnecting, or retrying an op, after this long
        self.addresses: list[tuple[str, int]] = []
        self.address: tuple[str, int] | None = None
        self.reconnects = 0
        self._hello: Hello | None = None
        self._ssl_context: ssl.SSLContext | None = None
        self._password: str | None = None
        self._connected = trio.Event()
        self._connected.set()
        self._op_first_sent: dict[int, float] = {}
        self._resume_ref: int | None = None  # the join that resumes the room after a reconnect

    @property
    def client_id(self) -> str:
        assert self.welcome is not None
        return self.welcome.client_id

    # ---- plumbing -----------------------------------------------------------------------------------

    async def send(self, event: Event) -> None:
        if not self._connected.is_set():
            if not isinstance(event, (Set, Delete, Batch)):
                raise ConnectionLost("reconnecting")
            return  # an operation: it is resent, with its op_id, once reconnected
        data = self.conn.send(event)
        async with self._send_lock:
            try:
                await self.stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                if self.failover and isinstance(event, (Set, Delete, Batch)):
                    return  # the reader notices the loss, reconnects and resends it
                raise ConnectionLost(str(exc)) from None

    async def _request(self, event: Event, ref: int) -> Any:
        waiter = self._waiters[ref] = _Waiter()
        self._check_open()
        await self.send(event)
        return await waiter.wait()

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
                except (ConnectionLost, RemoteProtocolError, ServerError) as exc:
                    fatal_for_good = isinstance(exc, ServerError) and exc.code in (
                        "auth_failed",
                        "version_mismatch",
                        "kicked",
                        "forbidden",
                    )
                    if not (self.failover and started) or fatal_for_good:
                        raise
                    await self._reconnect(exc)
        except (ConnectionLost, RemoteProtocolError, ServerError) as exc:
            self._fail_all(exc if not isinstance(exc, RemoteProtocolError) else ConnectionLost(str(exc)))
            if not started:
                raise
        finally:
            self._events_send.close()

    async def _read_some(self) -> None:
        try:
            data = await self.stream.receive_some(1 << 20)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            data = b""
        self.conn.receive_data(data)
        while True:
            event = self.conn.next_event()
            if event is NEED_DATA:
                return
            if event is CLOSED:
                raise ConnectionLost("server closed the connection")
            assert isinstance(event, Event)
            await self._on_event(event)

    async def _reconnect(self, cause: BaseException) -> None:
        """Connect to another node with the same session, resume the room, resend unacked operations."""
        self._connected = trio.Event()
        lost = ConnectionLost(f"connection lost ({cause}); reconnecting")
        for waiter in self._waiters.values():  # requests other than operations are not replayed
            waiter.resolve(error=lost)
        self._waiters.clear()
        with trio.CancelScope(shield=True):
            await trio.aclose_forcefully(self.stream)
        deadline = trio.current_time() + self.failover_timeout
        while trio.current_time() < deadline:
            for address in self._failover_order():
                try:
                    with trio.fail_after(3):
                        await self._handshake(address)
                except (OSError, trio.TooSlowError, ConnectionLost, RemoteProtocolError, ServerError):
                    continue
                self.reconnects += 1
                if self.room is not None:
                    ref = self._resume_ref = next(self._refs)
                    join = JoinRoom(room=self.room, password=self._password, since=self.seq, ref=ref)
                    await self.stream.send_all(self.conn.send(join))
                for op_id in sorted(self._pending_ops):
                    await self.stream.send_all(
                        self.conn.send(self._op_event(op_id, self._pending_ops[op_id]))
                    )
                self._connected.set()
                return
            await trio.sleep(0.2)
        raise ConnectionLost(f"no node reachable within {self.failover_timeout:g} s") from cause

    def _failover_order(self) -> list[tuple[str, int]]:
        known = list(self.addresses)
        if self.welcome is not None:
            for item in self.welcome.nodes:
                host, _, port = item.rpartition(":")
                address = (host.strip("[]"), int(port))
                if address not in known:
                    known.append(address)
        if self.address in known:  # start with the node after the one that failed
            i = known.index(self.address)
            known = known[i + 1 :] + known[: i + 1]
        return known

    async def _handshake(self, address: tuple[str, int]) -> None:
        stream: trio.abc.Stream
        if self._ssl_context is not None:
            stream = await trio.open_ssl_over_tcp_stream(*address, ssl_context=self._ssl_context)
        else:
            stream = await trio.open_tcp_stream(*address)
        self.stream, self.conn, self.address = stream, Connection(Role.CLIENT), address
        self.welcome = None
        assert self._hello is not None
        await stream.send_all(self.conn.send(self._hello))
        while self.welcome is None:
            await self._read_some()

    @staticmethod
    def _op_event(op_id: int, ops: list[list[Any]]) -> Event:
        if len(ops) == 1 and ops[0][0] == "set":
            return Set(op_id=op_id, key=ops[0][1], value=ops[0][2])
        if len(ops) == 1:
            return Delete(op_id=op_id, key=ops[0][1])
        return Batch(op_id=op_id, ops=ops)

    def _fail_all(self, error: BaseException) -> None:
        self._closed_error = error
        for waiter in [*self._waiters.values(), *self._op_waiters.values()]:
            waiter.resolve(error=error)
        if self._snapshot_done is not None:
            self._snapshot_done.resolve(error=error)

    async def _on_event(self, event: Event) -> None:
        match event:
            case Welcome():
                self.welcome = event
            case Ping(nonce=nonce):
                await self.send(Pong(nonce=nonce))
            case Pong():
                pass
            case Ack(op_id=op_id, seq=seq):
                ops = self._pending_ops.pop(op_id, None)
                self._op_first_sent.pop(op_id, None)
                if ops is not None and seq > self.seq:
                    self._apply(seq, ops)
                # else: an ack at or below our seq answers a retry of an op our state already holds (its
                # snapshot, or the state we resumed from): applying it again would undo later writes.
                waiter = self._op_waiters.pop(op_id, None)
                if waiter is not None:
                    waiter.resolve(seq)
            case Applied(seq=seq, ops=ops):
                self._apply(seq, ops)
                self._events_send.send_nowait(event)
            case SnapshotChunk(items=items):
                for key, value in items:
                    self.state[key] = value
            case SnapshotEnd(seq=seq):
                self.seq = seq
                if self._snapshot_done is not None:
                    self._snapshot_done.resolve(seq)
            case Error(ref=ref, fatal=False, code="unavailable") if (
                self.failover and ref in self._pending_ops and self._op_retry_allowed(ref)
            ):
                # The cluster could not commit it (yet): send it again under the same op_id, which
                # applies at most once.
                await self.send(self._op_event(ref, self._pending_ops[ref]))
            case Error(ref=ref) if ref is not None and ref == self._resume_ref:
                # Resuming the room failed on this node (e.g. no quorum there): try another.
                self._resume_ref = None
                raise ConnectionLost(f"could not resume the room: {event.code}: {event.message}")
            case Error(ref=ref, fatal=fatal):
                error = ServerError(event.code, event.message, fatal)
                waiter = None
                if ref is not None:
                    waiter = self._waiters.pop(ref, None)
                    if waiter is None:  # not a request's ref: an operation's op_id
                        waiter = self._op_waiters.pop(ref, None)
                        if event.code != "unavailable":
                            self._pending_ops.pop(ref, None)
                        # else its outcome is unknown (e.g. the leader changed before answering): it may
                        # still commit, and then its ack comes at its place; keep it to apply it there.
                if waiter is not None:
                    waiter.resolve(error=error)
                else:
                    self._events_send.send_nowait(event)
                if fatal:
                    raise error
            case Joined(mode=mode, seq=seq, ref=ref):
                # Reset here, in stream order: the snapshot chunks behind it may arrive before join() resumes.
                self.state = {} if mode == "snapshot" else self.state
                self.seq = seq
                waiter = self._waiters.pop(ref, None) if ref is not None else None
                if waiter is not None:
                    waiter.resolve(event)
            case ExportItems(ref=ref, items=items) if ref in self._exports:
                self._exports[ref].extend(items)
            case LocksChanged(room=room, locked=locked, unlocked=unlocked):
                if room == self.room:
                    for key in unlocked:
                        self.locks.pop(key, None)
                    self.locks.update(locked)
                self._events_send.send_nowait(event)
            case RoomDeleted(room=room, ref=None) if room == self.room:
                self.room = None
                self._events_send.send_nowait(event)
            case _:
                ref = getattr(event, "ref", None)
                waiter = self._waiters.pop(ref, None) if ref is not None else None
                if waiter is not None:
                    waiter.resolve(event)
                else:
                    self._events_send.send_nowait(event)

    def _op_retry_allowed(self, op_id: int) -> bool:
        first = self._op_first_sent.setdefault(op_id, trio.current_time())
        return trio.current_time() - first < self.failover_timeout

    def _apply(self, seq: int, ops: list[list[Any]]) -> None:
        for op in ops:
            if op[0] == "set":
                self.state[op[1]] = op[2]
            else:
                self.state.pop(op[1], None)
        self.seq = max(self.seq, seq)

    # ---- requests -----------------------------------------------------------------------------------

    async def list_rooms(self, subscribe: bool = False) -> list[dict[str, Any]]:
        ref = next(self._refs)
        reply = await self._request(ListRooms(subscribe=subscribe, ref=ref), ref)
        return reply.rooms

    async def create_room(self, room: str, *, keep_open: bool = False, password: str | None = None) -> None:
        ref = next(self._refs)
        await self._request(CreateRoom(room=room, keep_open=keep_open, password=password, ref=ref), ref)

    async def join(self, room: str, *, password: str | None = None, since: int | None = None) -> JoinResult:
        """Join a room; returns once the snapshot (or the resumed tail's start) is in ``state``."""
        ref = next(self._refs)
        self._snapshot_done = _Waiter()
        joined: Joined = await self._request(
            JoinRoom(room=room, password=password, since=since, ref=ref), ref
        )
        self.room = room
        self._password = password
        self.locks = {}
        if joined.mode == "snapshot":
            await self._snapshot_done.wait()
        return JoinResult(room=room, seq=joined.seq, mode=joined.mode, clients=joined.clients)

    async def leave(self) -> None:
        ref = next(self._refs)
        await self._request(LeaveRoom(ref=ref), ref)
        self.room = None

    async def delete_room(self, room: str) -> None:
        ref = next(self._refs)
        await self._request(DeleteRoom(room=room, ref=ref), ref)

    def next_op_id(self) -> int:
        self._last_op_id += 1
        return self._last_op_id

    async def send_ops(self, ops: list[list[Any]], *, op_id: int | None = None) -> tuple[int, _Waiter]:
        """Send a batch without waiting; returns (op_id, waiter whose wait() gives the seq)."""
        if op_id is None:
            op_id = self.next_op_id()
        self._last_op_id = max(self._last_op_id, op_id)
        waiter = self._op_waiters[op_id] = _Waiter()
        self._pending_ops[op_id] = ops
        self._check_open()
        await self.send(self._op_event(op_id, ops))
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
        op_id = self.next_op_id()
        waiter = self._op_waiters[op_id] = _Waiter()
        await self.send(RoomEvent(op_id=op_id, value=value))
        return await waiter.wait()

    async def presence(self, **state: Any) -> None:
        await self.send(Presence(state=state))

    async def lock(self, keys: list[str]) -> list[str]:
        """Lock keys of the joined room (all or none: ServerError ``locked``); returns the keys."""
        ref = next(self._refs)
        reply: LockGranted = await self._request(Lock(keys=list(keys), ref=ref), ref)
        return reply.keys

    async def unlock(self, keys: list[str] | None = None) -> list[str]:
        """Release some (default: all) of this client's locks; returns the keys released."""
        ref = next(self._refs)
        reply: Unlocked = await self._request(Unlock(keys=list(keys or []), ref=ref), ref)
        return reply.keys

    async def admin(self, action: str, **args: Any) -> Any:
        """An admin request (needs the admin role); returns its result."""
        ref = next(self._refs)
        reply: AdminResult = await self._request(Admin(action=action, args=args, ref=ref), ref)
        return reply.result

    async def export_room(self, room: str) -> dict[str, Any]:
        """A room's state as an export document (see broadcaster/roomfile.py for the file format)."""
        from .roomfile import make_document

        ref = next(self._refs)
        self._exports[ref] = []
        try:
            reply: AdminResult = await self._request(
                Admin(action="export", args={"room": room}, ref=ref), ref
            )
            items = self._exports[ref]
        finally:
            self._exports.pop(ref, None)
        result = reply.result
        return make_document(result["room"], result["meta"], result["seq"], items)

    async def import_room(
        self, document: dict[str, Any], *, name: str | None = None, chunk_bytes: int = IMPORT_CHUNK_BYTES
    ) -> dict[str, Any]:
        """Create a room from an export document, in parts of about ``chunk_bytes`` (one transaction each;
        the room becomes visible, complete, when the last part commits)."""
        room = name or document["room"]
        if self.welcome is not None and self.welcome.max_frame_size:
            chunk_bytes = min(chunk_bytes, self.welcome.max_frame_size // 2)
        parts: list[list[list[Any]]] = [[]]
        size = 0
        for key, value in document["items"]:
            item_size = len(key) + len(value) + 16
            if parts[-1] and size + item_size > chunk_bytes:
                parts.append([])
                size = 0
            parts[-1].append([key, value])
            size += item_size
        result: dict[str, Any] = {}
        for i, part in enumerate(parts):
            args: dict[str, Any] = {"room": room, "items": part, "more": i < len(parts) - 1}
            if i == 0:
                args["meta"] = document["meta"]
                args["seq"] = document["seq"]
            result = await self.admin("import", **args)
        return result

    async def receive(self) -> Event:
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
    failover: bool = False,
    addresses: list[str] | None = None,
) -> AsyncIterator[Client]:
    """A connected client (hello answered). With ``ssl_context``, over TLS (see broadcaster/tls.py).

    With ``failover``, a lost connection is replaced by one to another node (``addresses`` and the
    ``nodes`` the server lists in welcome), the room is resumed from the last seq and unacknowledged
    operations are resent with their op_ids; the caller sees at most a delay.
    """
    stream: trio.abc.Stream
    if ssl_context is not None:
        stream = await trio.open_ssl_over_tcp_stream(host, port, ssl_context=ssl_context)
        try:
            await stream.do_handshake()
        except trio.BrokenResourceError as exc:
            await stream.aclose()
            cause = exc.__cause__ or exc
            raise ConnectionLost(f"TLS handshake with {host}:{port} failed: {cause}") from None
    else:
        stream = await trio.open_tcp_stream(host, port)
    client = Client(stream)
    client.failover = failover
    client.address = (host, port)
    client._ssl_context = ssl_context
    client.addresses = [(host, port)]
    for item in addresses or []:
        other_host, _, other_port = item.rpartition(":")
        if (other_host, int(other_port)) not in client.addresses:
            client.addresses.append((other_host.strip("[]"), int(other_port)))
    client._hello = Hello(
        protocol=PROTOCOL_VERSION,
        client_name=name,
        client_kind=kind,
        client_version="blendsync-client",
        session=session or secrets.token_hex(16),
        token=token,
    )
    try:
        async with trio.open_nursery() as nursery:
            await client.send(client._hello)
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
