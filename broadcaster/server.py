"""The broadcaster: rooms over the replicated tree, one Session per client, coalesced room-list updates."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from functools import partial
from typing import Any

import trio

from protocol import (
    Ack,
    AdminResult,
    Applied,
    ClientJoined,
    ClientLeft,
    ClientUpdated,
    CreateRoom,
    DeleteRoom,
    ErrorCode,
    EventRelayed,
    ExportItems,
    Joined,
    JoinRoom,
    Left,
    Lock,
    LockGranted,
    LocksChanged,
    RoomCreated,
    RoomDeleted,
    RoomList,
    RoomsChanged,
    SnapshotChunk,
    SnapshotEnd,
    Unlock,
    Unlocked,
)
from protocol.events import check_key, check_room_name
from replication.node import Node, NotLeader, Proposal, ReplicationError
from replication.tree import TreeError, WatchEvent

from . import __version__, passwords, tls
from .auth import ANONYMOUS_ADMIN, TokenStore, User
from .config import ServerConfig, is_loopback
from .errors import RequestError
from .metrics import Metrics
from .password_attempts import PasswordGuard
from .peers import PeerRelay
from .rooms import Room, encode_frame
from .roomstore import (
    ROOMS,
    RoomStore,
    appended_seq,
    create_room_command,
    delete_room_command,
    import_command,
    keys_path,
    lock_path,
    locks_path,
    log_path,
    meta_path,
    write_command,
)
from .session import Session

EXPORT_CHUNK_BYTES = 1024 * 1024
MAX_REMEMBERED_SESSIONS = 100_000
ROOM_META_FIELDS = ("keep_open", "password", "created_by")

log = logging.getLogger("blendsync.server")


class Broadcaster:
    def __init__(self, config: ServerConfig, node: Node):
        self.config = config
        self.node = node
        self.store = RoomStore(node)
        self.version = __version__
        self.rooms: dict[str, Room] = {}
        self.sessions: dict[str, Session] = {}
        self.list_subscribers: set[Session] = set()
        self._changed_rooms: set[str] = set()
        self._deleted_rooms: set[str] = set()
        self._list_dirty = trio.Event()
        self.listen_addresses: list[str] = []
        self.http_addresses: list[str] = []
        self.metrics = Metrics()
        self.password_guard = PasswordGuard(config, self.metrics)
        node.on_fsync = self.metrics.fsync.observe
        self.started = time.time()
        self.connections = 0  # open client connections, with or without a completed hello
        config.check()
        self.tokens = TokenStore(config.tokens_file) if config.tokens_file is not None else None
        self.ssl_context = (
            tls.server_context(config.tls_cert, config.tls_key, client_ca=config.tls_client_ca)
            if config.tls_cert is not None and config.tls_key is not None
            else None
        )
        self._session_owners: dict[str, str] = {}  # session id -> user name (with auth)
        self._lock_changes: dict[str, tuple[dict[str, str], set[str]]] = {}
        self._locks_dirty = trio.Event()
        self._load_rooms()
        self._subscription = node.subscribe((ROOMS, "**"), self._on_tree_event)
        self.peers = PeerRelay(self, node)

    # ---- serving ------------------------------------------------------------------------------------

    async def serve(self, task_status=trio.TASK_STATUS_IGNORED) -> None:
        self._release_stale_locks()
        async with trio.open_nursery() as nursery:
            if self.ssl_context is not None:
                serve = partial(
                    trio.serve_ssl_over_tcp,
                    self._handle_connection,
                    self.config.port,
                    self.ssl_context,
                    host=self.config.host,
                )
            else:
                serve = partial(
                    trio.serve_tcp, self._handle_connection, self.config.port, host=self.config.host
                )
            listeners = await nursery.start(serve)
            self.listen_addresses = [
                _format_address(_socket(listener).getsockname()) for listener in listeners
            ]
            nursery.start_soon(self._room_list_pump)
            nursery.start_soon(self._locks_pump)
            nursery.start_soon(self.peers.run)
            nursery.start_soon(self._register_node)
            nursery.start_soon(self._metrics_sampler)
            log.info(
                "listening on %s (%s, %s)",
                ", ".join(self.listen_addresses),
                "TLS" if self.ssl_context is not None else "plain TCP",
                f"{len(self.tokens)} users" if self.tokens is not None else "no auth",
            )
            if self.tokens is not None and self.ssl_context is None and not is_loopback(self.config.host):
                log.warning("tokens and scenes cross the network in clear: configure tls_cert and tls_key")
            task_status.started(listeners)

    async def _handle_connection(self, stream: trio.abc.Stream) -> None:
        try:
            peer = _format_address(_socket(stream).getpeername())
        except OSError:
            peer = "?"
        self.connections += 1
        self.metrics.connections_total += 1
        try:
            await Session(self, stream, peer).run()
        finally:
            self.connections -= 1

    async def _metrics_sampler(self) -> None:
        while True:
            self.metrics.sample(trio.current_time())
            await trio.sleep(1.0)

    def claim_session(self, client_id: str, user: User) -> bool:
        """With auth, a session id stays with the first user that used it (while this process runs)."""
        if self.tokens is None:
            return True
        owner = self._session_owners.get(client_id)
        if owner is not None:
            return owner == user.name
        if len(self._session_owners) >= MAX_REMEMBERED_SESSIONS:
            for stale in list(self._session_owners)[: MAX_REMEMBERED_SESSIONS // 10]:
                if stale not in self.sessions:
                    del self._session_owners[stale]
        self._session_owners[client_id] = user.name
        return True

    def authenticate(self, token: str | None) -> User | None:
        """The user a hello's token names; without auth configured, everyone is a trusted admin."""
        if self.tokens is None:
            return ANONYMOUS_ADMIN
        user = self.tokens.authenticate(token)
        if user is None:
            self.metrics.auth_failures += 1
        return user

    def client_addresses(self) -> list[str]:
        """Where clients can reach the cluster: this node first, then the others (from the registry)."""
        own = self.config.advertise or (self.listen_addresses[0] if self.listen_addresses else None)
        others = [
            payload["client"]
            for path, _, payload in self.node.match_local(("cluster", "nodes", "*"))
            if isinstance(payload, dict)
            and payload.get("client") not in (None, own)
            and int(path[-1]) in self.node.voters
        ]
        return ([own] if own else []) + others

    async def _register_node(self) -> None:
        """Record this node's client address in the replicated registry (retried until it commits)."""
        own = self.config.advertise or self.listen_addresses[0]
        record = {"client": own, "raft": self.node.raft_address}
        path = ["cluster", "nodes", str(self.node.node_id)]
        while True:
            found = self.node.read_local(tuple(path))
            if found is not None and found[1] == record:
                return
            try:
                await self.node.propose({"then": [{"op": "put", "path": path, "payload": record}]})
            except ReplicationError:
                await trio.sleep(0.5)  # no leader yet

    # ---- sessions -----------------------------------------------------------------------------------

    def register(self, session: Session) -> None:
        previous = self.sessions.get(session.client_id)
        if previous is not None and previous is not session:
            previous.fail(ErrorCode.PROTOCOL_STATE, "this session was resumed on another connection")
        self.sessions[session.client_id] = session

    def detach(self, session: Session) -> None:
        """Take a session out of its room and every registry (it is closing)."""
        self.list_subscribers.discard(session)
        if session.room is not None:
            self._release_locks(session, session.room)
            self._remove_member(session)
        for room in list(session.imports):
            self._abandon_import(session, room)
        if self.sessions.get(session.client_id) is session:
            del self.sessions[session.client_id]

    # ---- room list ----------------------------------------------------------------------------------

    def room_info(self, name: str) -> dict[str, Any] | None:
        found = self.node.read_local(meta_path(name))
        if found is None:
            return None
        meta = found[1]
        if meta.get("importing"):
            return None
        room = self.rooms.get(name) or Room(name)
        keys = self.node.read_local(keys_path(name))
        return {
            "name": name,
            "users": len(room.members) + self.peers.count(name),
            "keys": keys[0].child_count if keys else 0,
            "bytes": room.total_bytes,
            "seq": self.current_seq(name),
            "keep_open": bool(meta.get("keep_open")),
            "locked": meta.get("password") is not None,
        }

    def list_rooms(self, session: Session, subscribe: bool, ref: int | None) -> None:
        rooms = [info for name in sorted(self.rooms) if (info := self.room_info(name)) is not None]
        session.send(RoomList(rooms=rooms, ref=ref))
        if subscribe:
            self.list_subscribers.add(session)

    def _room_changed(self, name: str) -> None:
        self._changed_rooms.add(name)
        self._list_dirty.set()

    async def _room_list_pump(self) -> None:
        """Send room-list changes at most every ``room_list_interval``: never one message per operation."""
        while True:
            await self._list_dirty.wait()
            self._list_dirty = trio.Event()
            changed, self._changed_rooms = self._changed_rooms, set()
            deleted, self._deleted_rooms = self._deleted_rooms, set()
            if self.list_subscribers:
                updated = [info for name in sorted(changed) if (info := self.room_info(name)) is not None]
                message = RoomsChanged(updated=updated, deleted=sorted(deleted - changed))
                for session in list(self.list_subscribers):
                    session.send(message)
            await trio.sleep(self.config.room_list_interval)

    # ---- room lifecycle -----------------------------------------------------------------------------

    async def _propose(self, command: dict[str, Any]) -> dict[str, Any]:
        return await self.store.propose(command)

    async def create_room(self, session: Session, request: CreateRoom) -> None:
        self._check_room_count()
        password = None
        if request.password is not None:
            password = await passwords.hash_password(request.password)
        meta = {"keep_open": request.keep_open, "password": password, "created_by": session.name}
        result = await self._propose(create_room_command(request.room, meta))
        if not result.get("succeeded"):
            raise RequestError(ErrorCode.ROOM_EXISTS, f"room {request.room!r} already exists")
        session.send(RoomCreated(room=request.room, ref=request.ref))

    async def _fence(self) -> None:
        await self.store.fence()

    async def join_room(self, session: Session, request: JoinRoom) -> None:
        if request.password is not None and self.node.read_local(meta_path(request.room)) is not None:
            self.password_guard.refuse_early(session.peer, request.room)  # before any work for a guess
        # A room just created (or written) through another node must be visible here first.
        await self._fence()
        if session.room is not None:
            raise RequestError(ErrorCode.ALREADY_IN_ROOM, f"already in room {session.room.name!r}")
        meta = self._meta(request.room)
        stored = meta.get("password")
        if stored is not None:
            await self.password_guard.check(session.peer, request.room, request.password, stored)
        # From here to the end there is no await: the snapshot and the fan-out registration are atomic.
        self._meta(request.room)  # it may have been deleted while the password was checked
        if session.room is not None or session.closing:
            raise RequestError(ErrorCode.ALREADY_IN_ROOM, "already in a room")
        room = self.rooms.setdefault(request.room, Room(request.room))
        seq = self.current_seq(request.room)
        clients = [member.info() for member in room.members.values()] + self.peers.members(room.name)
        tail = self._tail_after(request.room, request.since, seq) if request.since is not None else None
        session.joined_seq = request.since if tail is not None else seq  # where its stream starts
        if tail is not None:
            session.send(
                Joined(
                    room=room.name,
                    seq=request.since,
                    mode="resume",
                    key_count=len(room.key_sizes),
                    clients=clients,
                    ref=request.ref,
                )
            )
            session.out.put_stream(self._tail_frames(room.name, session.client_id, tail))
        else:
            items = [(key, value) for key, _, value in self.node.list_local(keys_path(room.name))]
            session.send(
                Joined(
                    room=room.name,
                    seq=seq,
                    mode="snapshot",
                    key_count=len(items),
                    clients=clients,
                    ref=request.ref,
                )
            )
            session.out.put_stream(self._snapshot_frames(room.name, seq, items))
        if room.locks:
            session.send(LocksChanged(room=room.name, locked=dict(room.locks)))
        room.members[session.client_id] = session
        session.room = room
        joined = encode_frame(ClientJoined(room=room.name, client=session.info()))
        self.send_to_room(room, joined, exclude=session)
        self.peers.joined(room.name, session.info())
        self._room_changed(room.name)

    def _snapshot_frames(self, room: str, seq: int, items: list[tuple[str, bytes]]) -> Iterator[bytes]:
        chunk: list[list[Any]] = []
        size = 0
        for key, value in items:
            chunk.append([key, value])
            size += len(key) + len(value) + 16
            if size >= self.config.snapshot_chunk_bytes:
                yield encode_frame(SnapshotChunk(room=room, items=chunk))
                chunk, size = [], 0
        if chunk:
            yield encode_frame(SnapshotChunk(room=room, items=chunk))
        yield encode_frame(SnapshotEnd(room=room, seq=seq))

    def _tail_frames(
        self, room: str, client_id: str, tail: list[tuple[int, dict[str, Any]]]
    ) -> Iterator[bytes]:
        """A resumed tail, streamed like a snapshot (it may be long; it does not count as queued)."""
        for seq, entry in tail:
            if entry["c"] == client_id:
                yield encode_frame(Ack(op_id=entry["o"], seq=seq))
            else:
                yield encode_frame(
                    Applied(room=room, seq=seq, client_id=entry["c"], op_id=entry["o"], ops=entry["ops"])
                )

    def _tail_after(self, room: str, since: int, seq: int) -> list[tuple[int, dict[str, Any]]] | None:
        """The held log entries after ``since``, or None if some of them are gone (then: snapshot)."""
        if since < 0 or since > seq:
            return None
        runtime = self.rooms.get(room)
        base = runtime.seq_base if runtime is not None else 0
        entries = [
            (int(name) + base, payload)
            for name, _, payload in self.node.list_local(log_path(room))
            if int(name) + base > since
        ]
        if since < seq and (not entries or entries[0][0] != since + 1):
            return None
        return entries

    async def leave_room(self, session: Session, ref: int | None) -> None:
        room = session.room
        if room is None:
            raise RequestError(ErrorCode.NOT_IN_ROOM, "not in a room")
        self._release_locks(session, room)
        self._remove_member(session)
        session.send(Left(room=room.name, ref=ref))
        found = self.node.read_local(meta_path(room.name))
        everyone_left = not room.members and not self.peers.count(room.name)
        if everyone_left and found is not None and not found[1].get("keep_open"):
            # The last member left on purpose: a room that is not kept open goes (a dropped connection
            # does not count as leaving, so a crash never deletes work).
            await self._propose(delete_room_command(room.name))

    async def delete_room(self, session: Session, request: DeleteRoom) -> None:
        meta = self._meta(request.room)
        if not session.user.is_admin and meta.get("created_by") != session.user.name:
            raise RequestError(
                ErrorCode.FORBIDDEN, f"only its creator or an admin may delete room {request.room!r}"
            )
        room = self.rooms.get(request.room)
        in_use = (len(room.members) if room is not None else 0) + self.peers.count(request.room)
        if in_use:
            raise RequestError(ErrorCode.ROOM_IN_USE, f"room {request.room!r} has {in_use} clients")
        result = await self._propose(delete_room_command(request.room))
        if not result.get("succeeded"):
            raise RequestError(ErrorCode.NO_SUCH_ROOM, f"no room {request.room!r}")
        session.send(RoomDeleted(room=request.room, ref=request.ref))

    def _meta(self, room: str) -> dict[str, Any]:
        return self.store.meta(room)

    def _check_room_count(self) -> None:
        limit = self.config.max_rooms
        if limit and len(self.rooms) >= limit:
            self.metrics.limit("max_rooms")
            raise RequestError(ErrorCode.LIMIT_EXCEEDED, f"max_rooms ({limit}) reached: no new rooms")

    def _remove_member(self, session: Session) -> None:
        room = session.room
        assert room is not None
        room.members.pop(session.client_id, None)
        session.room = None
        self.send_to_room(room, encode_frame(ClientLeft(room=room.name, client_id=session.client_id)))
        self.peers.left(room.name, session.client_id)
        self._room_changed(room.name)

    def current_seq(self, room: str) -> int:
        found = self.node.read_local(log_path(room))
        runtime = self.rooms.get(room)
        base = runtime.seq_base if runtime is not None else 0
        return base + (found[0].next_seq - 1 if found is not None else 0)

    # ---- operations ---------------------------------------------------------------------------------

    def check_write(self, session: Session, ops: list[list[Any]]) -> tuple[int, int] | None:
        """Refuse a write that touches another session's locked key or would pass a room limit.

        Returns the (keys, bytes) the write adds, to be counted as pending until it completes, or None when
        no room limit is configured. Costs nothing for rooms without locks and servers without limits.
        """
        room = session.room
        assert room is not None
        if room.locks:
            for op in ops:
                owner = room.locks.get(op[1])
                if owner is not None and owner != session.client_id:
                    raise RequestError(ErrorCode.LOCKED, f"key {op[1]!r} is locked by {owner}")
        max_keys, max_bytes = self.config.max_room_keys, self.config.max_room_bytes
        if not max_keys and not max_bytes:
            return None
        sizes = room.key_sizes
        add_keys = add_bytes = 0
        for op in ops:
            old = sizes.get(op[1])
            if op[0] == "set":
                if old is None:
                    add_keys += 1
                add_bytes += len(op[2]) - (old or 0)
            elif old is not None:
                add_keys -= 1
                add_bytes -= old
        if max_keys and add_keys > 0 and len(sizes) + room.pending_keys + add_keys > max_keys:
            self.metrics.limit("max_room_keys")
            raise RequestError(
                ErrorCode.LIMIT_EXCEEDED, f"max_room_keys ({max_keys}) reached in room {room.name!r}"
            )
        if max_bytes and add_bytes > 0 and room.total_bytes + room.pending_bytes + add_bytes > max_bytes:
            self.metrics.limit("max_room_bytes")
            raise RequestError(
                ErrorCode.LIMIT_EXCEEDED, f"max_room_bytes ({max_bytes}) reached in room {room.name!r}"
            )
        add_keys, add_bytes = max(add_keys, 0), max(add_bytes, 0)
        room.pending_keys += add_keys
        room.pending_bytes += add_bytes
        return add_keys, add_bytes

    def submit_write(self, session: Session, op_id: int, ops: list[list[Any]]) -> Proposal:
        room = session.room
        assert room is not None
        guard = self._lock_guard(room, session) if room.locks or room.locks_pending else None
        command = write_command(room.name, session.client_id, op_id, ops, self.config.room_tail, guard)
        try:
            proposal = self.node.submit(command, client=session.client_id, seq=op_id)
        except ReplicationError as exc:
            raise RequestError(ErrorCode.UNAVAILABLE, str(exc)) from None
        except TreeError as exc:
            if exc.code == "too_large":
                self.metrics.limit("max_entry_bytes")
                raise RequestError(ErrorCode.LIMIT_EXCEEDED, f"max_entry_bytes: {exc}") from None
            raise RequestError(ErrorCode.INVALID_KEY, str(exc)) from None
        self.metrics.operations += 1
        return proposal

    def write_outcome(
        self, session: Session, proposal: Proposal, op_id: int, room: Room
    ) -> RequestError | None:
        """A committed or failed write. Its ack goes with the fan-out; only failures are reported here."""
        if proposal.error is not None:
            return RequestError(ErrorCode.UNAVAILABLE, str(proposal.error))
        result = proposal.result
        assert result is not None
        if proposal.duplicate:
            # A retry of an op that already committed: this commit appended nothing and fanned nothing out.
            seq = appended_seq(result)
            if seq is not None:
                seq += room.seq_base
                # Its ack belongs at its seq. If this session's stream starts after that seq (its snapshot
                # or the state it resumed from holds the op), no ack was placed: send one now, with the
                # op's own seq, which the client reads as "already in your state". Otherwise the fan-out or
                # the resumed tail placed it already, and a second one would land after later operations.
                if session.room is not room or seq <= session.joined_seq:
                    session.send(Ack(op_id=op_id, seq=seq))
                return None
        if not result.get("ok"):
            return RequestError(ErrorCode.BAD_MESSAGE, result.get("message", "operation refused"))
        if appended_seq(result) is None:
            if self.rooms.get(room.name) is room:
                return RequestError(ErrorCode.LOCKED, "a key of this operation was locked by another client")
            return RequestError(ErrorCode.NO_SUCH_ROOM, "the room no longer exists")
        return None

    def relay_event(self, session: Session, op_id: int, value: bytes) -> None:
        room = session.room
        if room is None:
            raise RequestError(ErrorCode.NOT_IN_ROOM, "join a room before sending events")
        seq = self.current_seq(room.name)
        frame = encode_frame(EventRelayed(room=room.name, client_id=session.client_id, value=value, seq=seq))
        self.send_to_room(room, frame, exclude=session)
        self.peers.event(room.name, session.client_id, value, seq)
        session.send(Ack(op_id=op_id, seq=seq))

    def relay_presence(self, session: Session, state: dict[str, Any]) -> None:
        assert session.room is not None
        frame = encode_frame(ClientUpdated(room=session.room.name, client_id=session.client_id, state=state))
        self.send_to_room(session.room, frame, exclude=session)
        self.peers.presence(session.room.name, session.client_id, state)

    def send_to_room(self, room: Room, frame: bytes, exclude: Session | None = None) -> None:
        for member in list(room.members.values()):
            if member is not exclude:
                member.send_frame(frame)

    # ---- locks --------------------------------------------------------------------------------------------
    # A lock is /rooms/<room>/locks/<key> = {"owner": client_id, "user": name, "node": node id}. Writes by
    # others are refused at submit (from the local copy) and, while a room has locks, also by a condition in
    # the write's own transaction, so a write can never land after a lock on its key was granted.

    def _lock_payload(self, session: Session) -> dict[str, Any]:
        return {"owner": session.client_id, "user": session.name, "node": self._node_id()}

    def _node_id(self) -> Any:
        node_id = getattr(self.node, "node_id", None)
        return node_id if node_id is not None else self.node.status().get("id")

    def _lock_guard(self, room: Room, session: Session) -> Any:
        """A transaction condition: no key of the write is locked by anyone but this session."""
        return (room.name, self._lock_payload(session))

    async def lock(self, session: Session, request: Lock) -> None:
        room = session.room
        if room is None:
            raise RequestError(ErrorCode.NOT_IN_ROOM, "join a room before locking keys")
        keys = sorted(set(request.keys))
        for key in keys:
            owner = room.locks.get(key)
            if owner is not None and owner != session.client_id:
                raise RequestError(ErrorCode.LOCKED, f"key {key!r} is locked by {owner}")
        payload = self._lock_payload(session)
        compare: list[dict[str, Any]] = [{"exists": list(meta_path(room.name))}]
        then = []
        for key in keys:
            path = list(lock_path(room.name, key))
            compare.append({"any": [{"not": {"exists": path}}, {"payload_equals": [path, payload]}]})
            then.append({"op": "put", "path": path, "payload": payload})
        room.locks_pending += 1
        try:
            result = await self._propose({"compare": compare, "then": then})
        finally:
            room.locks_pending -= 1
        if not result.get("ok"):
            raise RequestError(ErrorCode.BAD_MESSAGE, result.get("message", "lock refused"))
        if not result.get("succeeded"):
            if self.rooms.get(room.name) is not room:
                raise RequestError(ErrorCode.NO_SUCH_ROOM, "the room no longer exists")
            taken = [k for k in keys if room.locks.get(k) not in (None, session.client_id)]
            raise RequestError(ErrorCode.LOCKED, f"locked by another client: {', '.join(taken) or keys[0]}")
        session.send(LockGranted(room=room.name, keys=keys, ref=request.ref))

    async def unlock(self, session: Session, request: Unlock) -> None:
        room = session.room
        if room is None:
            raise RequestError(ErrorCode.NOT_IN_ROOM, "not in a room")
        mine = {k for k, owner in room.locks.items() if owner == session.client_id}
        keys = sorted(mine & set(request.keys)) if request.keys else sorted(mine)
        proposals = self._submit_unlocks(room.name, keys, self._lock_payload(session))
        for proposal in proposals:
            try:
                await proposal.wait()
            except ReplicationError as exc:
                raise RequestError(ErrorCode.UNAVAILABLE, str(exc)) from None
        session.send(Unlocked(room=room.name, keys=keys, ref=request.ref))

    def _submit_unlocks(self, room: str, keys: list[str], payload: dict[str, Any]) -> list[Proposal]:
        """Delete each key's lock if it is still this owner's (one small command per key)."""
        proposals = []
        for key in keys:
            path = list(lock_path(room, key))
            command = {
                "compare": [{"payload_equals": [path, payload]}],
                "then": [{"op": "delete", "path": path}],
            }
            try:
                proposals.append(self.node.submit(command))
            except (ReplicationError, TreeError) as exc:
                log.warning("could not release the lock on %r in %s: %s", key, room, exc)
        return proposals

    def _release_locks(self, session: Session, room: Room) -> None:
        """Release a departing session's locks (it left, was closed or its connection dropped)."""
        keys = sorted(k for k, owner in room.locks.items() if owner == session.client_id)
        if keys:
            self._submit_unlocks(room.name, keys, self._lock_payload(session))

    def _release_stale_locks(self) -> None:
        """Locks held by this node's sessions before a restart: those sessions are gone."""
        node_id = self._node_id()
        then = [
            {"op": "delete", "path": list(path)}
            for path, _, payload in self.node.match_local((ROOMS, "*", "locks", "*"))
            if isinstance(payload, dict) and payload.get("node") == node_id
        ]
        if then:
            log.info("releasing %d locks held by sessions from before a restart", len(then))
            try:
                self.node.submit({"then": then})
            except (ReplicationError, TreeError) as exc:
                log.warning("could not release stale locks: %s", exc)

    def _lock_event(self, room: Room, key: str, payload: Any) -> None:
        locked, unlocked = self._lock_changes.setdefault(room.name, ({}, set()))
        if payload is None:
            room.locks.pop(key, None)
            locked.pop(key, None)
            unlocked.add(key)
        else:
            room.locks[key] = payload["owner"]
            locked[key] = payload["owner"]
            unlocked.discard(key)
        self._locks_dirty.set()

    async def _locks_pump(self) -> None:
        """Tell each room's members about lock changes, coalesced per scheduling round."""
        while True:
            await self._locks_dirty.wait()
            self._locks_dirty = trio.Event()
            await trio.sleep(0)  # let the rest of a committed batch apply first
            changes, self._lock_changes = self._lock_changes, {}
            for name, (locked, unlocked) in sorted(changes.items()):
                room = self.rooms.get(name)
                if room is not None and room.members:
                    message = LocksChanged(room=name, locked=locked, unlocked=sorted(unlocked))
                    self.send_to_room(room, encode_frame(message))

    # ---- admin ----------------------------------------------------------------------------------------

    async def admin(self, session: Session, request: Any) -> None:
        if not session.user.is_admin:
            raise RequestError(ErrorCode.FORBIDDEN, f"{request.action} needs the admin role")
        args = request.args
        handler = getattr(self, f"_admin_{request.action}")
        result = await handler(session, args, request.ref)
        if result is not None:
            session.send(AdminResult(action=request.action, result=result, ref=request.ref))

    async def _admin_rooms(self, session: Session, args: dict[str, Any], ref: int | None) -> Any:
        rooms = []
        for name in sorted(self.rooms):
            info = self.room_info(name)
            if info is not None:
                room = self.rooms[name]
                info["clients"] = [member.name for member in room.members.values()]
                info["locks"] = len(room.locks)
                rooms.append(info)
        return rooms

    async def _admin_status(self, session: Session, args: dict[str, Any], ref: int | None) -> Any:
        """This node's replication status and the cluster's client addresses."""
        return {**self.node.status(), "clients": self.client_addresses(), "sessions": len(self.sessions)}

    async def _admin_add_member(self, session: Session, args: dict[str, Any], ref: int | None) -> Any:
        node_id, address = args.get("node_id"), args.get("raft")
        if type(node_id) is not int or not isinstance(address, str):
            raise RequestError(ErrorCode.BAD_MESSAGE, "add_member needs node_id (int) and raft (host:port)")
        await self._membership(self.node.add_member(node_id, address))
        return self.node.status()["members"]

    async def _admin_remove_member(self, session: Session, args: dict[str, Any], ref: int | None) -> Any:
        node_id = args.get("node_id")
        if type(node_id) is not int:
            raise RequestError(ErrorCode.BAD_MESSAGE, "remove_member needs node_id (int)")
        await self._membership(self.node.remove_member(node_id))
        return self.node.status()["members"]

    async def _membership(self, change: Any) -> None:
        try:
            await change
        except NotLeader as exc:
            leader = self.node.read_local(("cluster", "nodes", str(exc.leader))) if exc.leader else None
            where = f" ({leader[1].get('client')})" if leader else ""
            raise RequestError(ErrorCode.UNAVAILABLE, f"ask the leader, node {exc.leader}{where}") from None
        except ReplicationError as exc:
            raise RequestError(ErrorCode.UNAVAILABLE, str(exc)) from None

    async def _admin_clients(self, session: Session, args: dict[str, Any], ref: int | None) -> Any:
        return [s.describe() for _, s in sorted(self.sessions.items())]

    async def _admin_kick(self, session: Session, args: dict[str, Any], ref: int | None) -> Any:
        client_id = _arg(args, "client_id", str)
        target = self.sessions.get(client_id)
        if target is None:
            raise RequestError(ErrorCode.NO_SUCH_CLIENT, f"no client {client_id!r} on this node")
        reason = _arg(args, "reason", str, required=False) or "disconnected by an admin"
        log.info("admin %s kicks %s (%s): %s", session.name, client_id, target.name, reason)
        target.fail(ErrorCode.KICKED, reason)
        return {"client_id": client_id, "name": target.name}

    async def _admin_delete_room(self, session: Session, args: dict[str, Any], ref: int | None) -> Any:
        name = _room_arg(args)
        found = self.node.read_local(meta_path(name))
        if found is None:
            raise RequestError(ErrorCode.NO_SUCH_ROOM, f"no room {name!r}")
        room = self.rooms.get(name)
        members = len(room.members) if room is not None else 0
        result = await self._propose(delete_room_command(name))
        if not result.get("succeeded"):
            raise RequestError(ErrorCode.NO_SUCH_ROOM, f"no room {name!r}")
        log.info("admin %s deleted room %s (%d clients were in it)", session.name, name, members)
        return {"room": name, "clients": members}

    async def _admin_break_lock(self, session: Session, args: dict[str, Any], ref: int | None) -> Any:
        name = _room_arg(args)
        self._meta(name)
        keys = _arg(args, "keys", list)
        if not keys or not all(isinstance(k, str) for k in keys):
            raise RequestError(ErrorCode.BAD_MESSAGE, "args.keys must be a non-empty list of keys")
        room = self.rooms.get(name)
        held = sorted(k for k in set(keys) if room is not None and k in room.locks)
        if held:
            await self._propose({"then": [{"op": "delete", "path": list(lock_path(name, k))} for k in held]})
        return {"room": name, "released": held}

    async def _admin_export(self, session: Session, args: dict[str, Any], ref: int | None) -> Any:
        """Stream the room's keys as export_items, then its meta and seq in admin_result (one snapshot)."""
        name = _room_arg(args)
        meta = self._meta(name)
        # No await from here on: the items and the seq are one consistent state.
        seq = self.current_seq(name)
        items = [(key, value) for key, _, value in self.node.list_local(keys_path(name))]

        def frames() -> Iterator[bytes]:
            chunk: list[list[Any]] = []
            size = 0
            for key, value in items:
                chunk.append([key, value])
                size += len(key) + len(value) + 16
                if size >= EXPORT_CHUNK_BYTES:
                    yield encode_frame(ExportItems(room=name, items=chunk, ref=ref))
                    chunk, size = [], 0
            if chunk:
                yield encode_frame(ExportItems(room=name, items=chunk, ref=ref))
            result = {
                "room": name,
                "meta": {k: meta.get(k) for k in ROOM_META_FIELDS},
                "seq": seq,
                "key_count": len(items),
            }
            yield encode_frame(AdminResult(action="export", result=result, ref=ref))

        session.out.put_stream(frames())
        return None

    async def _admin_import(self, session: Session, args: dict[str, Any], ref: int | None) -> Any:
        """Create a room from exported state. A large import comes in parts (``more``): the room stays
        hidden until the last part commits, so it appears complete or not at all."""
        name = _room_arg(args)
        items = _arg(args, "items", list)
        more = _arg(args, "more", bool, required=False) or False
        for item in items:
            if not (
                isinstance(item, list)
                and len(item) == 2
                and isinstance(item[0], str)
                and isinstance(item[1], bytes)
            ):
                raise RequestError(ErrorCode.BAD_MESSAGE, "args.items must be [key: str, value: bin] pairs")
            try:
                check_key(item[0])
            except ValueError as exc:
                raise RequestError(ErrorCode.INVALID_KEY, str(exc)) from None
        staged = session.imports.get(name)
        if staged is None:
            if self.node.read_local(meta_path(name)) is not None:
                raise RequestError(ErrorCode.ROOM_EXISTS, f"room {name!r} already exists")
            self._check_room_count()
            meta_in = _arg(args, "meta", dict, required=False) or {}
            seq = _arg(args, "seq", int, required=False) or 0
            password = meta_in.get("password")
            if password is not None and not (isinstance(password, dict) and password.get("kdf") == "scrypt"):
                raise RequestError(ErrorCode.BAD_MESSAGE, "meta.password must be a stored scrypt hash or nil")
            final = {
                "keep_open": bool(meta_in.get("keep_open", False)),
                "password": password,
                "created_by": str(meta_in.get("created_by") or session.name),
                "seq_base": max(0, seq),
            }
            previous = None
        else:
            final, previous = staged
        current = {**final, "importing": session.client_id} if more else final
        command = import_command(name, items, previous, current)
        result = await self._propose(command)
        if not result.get("ok"):
            self._abandon_import(session, name)
            raise RequestError(ErrorCode.BAD_MESSAGE, result.get("message", "import refused"))
        if not result.get("succeeded"):
            session.imports.pop(name, None)
            raise RequestError(ErrorCode.ROOM_EXISTS, f"room {name!r} already exists")
        if more:
            session.imports[name] = (final, current)
        else:
            session.imports.pop(name, None)
            log.info("admin %s imported room %s", session.name, name)
        keys = self.node.read_local(keys_path(name))
        return {"room": name, "keys": keys[0].child_count if keys else 0, "done": not more}

    def _abandon_import(self, session: Session, name: str) -> None:
        staged = session.imports.pop(name, None)
        if staged is None:
            return
        command = {
            "compare": [{"payload_equals": [list(meta_path(name)), staged[1]]}],
            "then": [{"op": "delete", "path": list(meta_path(name))[:-1]}],
        }
        try:
            self.node.submit(command)
        except (ReplicationError, TreeError) as exc:
            log.warning("could not remove the unfinished import of %s: %s", name, exc)

    # ---- replicated state -> this node ------------------------------------------------------------------

    def _load_rooms(self) -> None:
        for path, _, meta in self.node.match_local((ROOMS, "*", "meta")):
            room = self.rooms.setdefault(path[1], Room(path[1]))
            room.seq_base = meta.get("seq_base", 0) if isinstance(meta, dict) else 0
            for key, _, value in self.node.list_local(keys_path(room.name)):
                room.note_key(key, len(value))
            for key, _, payload in self.node.list_local(locks_path(room.name)):
                room.locks[key] = payload["owner"]

    def _on_tree_event(self, event: WatchEvent) -> None:
        """Called in commit order for every change under /rooms (on every node of a cluster)."""
        path = event.path
        if len(path) < 2:
            return
        name = path[1]
        if len(path) == 2 or path[2] == "meta":
            if event.action == "delete":
                self._room_gone(name)
            elif len(path) == 3:
                room = self.rooms.setdefault(name, Room(name))
                if isinstance(event.payload, dict):
                    room.seq_base = event.payload.get("seq_base", 0)
                self._room_changed(name)
            return
        room = self.rooms.get(name)
        if room is None or len(path) != 4:
            return
        if path[2] == "keys":
            room.note_key(path[3], None if event.action == "delete" else len(event.payload))
            self._room_changed(name)
        elif path[2] == "log" and event.action == "create":
            room.fan_out(int(path[3]) + room.seq_base, event.payload)
        elif path[2] == "locks":
            self._lock_event(room, path[3], None if event.action == "delete" else event.payload)

    def _room_gone(self, name: str) -> None:
        room = self.rooms.pop(name, None)
        if room is None:
            return
        frame = encode_frame(RoomDeleted(room=name))
        for member in list(room.members.values()):
            member.room = None
            member.send_frame(frame)
        room.members.clear()
        self._lock_changes.pop(name, None)
        self._changed_rooms.discard(name)
        self._deleted_rooms.add(name)
        self._list_dirty.set()


def _arg(args: dict[str, Any], name: str, kind: type, *, required: bool = True) -> Any:
    value = args.get(name)
    if value is None:
        if required:
            raise RequestError(ErrorCode.BAD_MESSAGE, f"args.{name} is missing")
        return None
    if type(value) is not kind:
        raise RequestError(ErrorCode.BAD_MESSAGE, f"args.{name} must be {kind.__name__}")
    return value


def _room_arg(args: dict[str, Any]) -> str:
    name = _arg(args, "room", str)
    try:
        check_room_name(name)
    except ValueError as exc:
        raise RequestError(ErrorCode.BAD_MESSAGE, str(exc)) from None
    return name


def _socket(thing: Any) -> Any:
    """The socket under a listener or stream, plain or TLS."""
    while not hasattr(thing, "socket"):
        thing = thing.transport_listener if hasattr(thing, "transport_listener") else thing.transport_stream
    return thing.socket


def _format_address(sockname: Any) -> str:
    host, port = sockname[0], sockname[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
