"""The broadcaster: rooms over the replicated tree, one Session per client, coalesced room-list updates."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from functools import partial
from typing import Any

import trio

from protocol import (
    Ack,
    Applied,
    ClientJoined,
    ClientLeft,
    ClientUpdated,
    CreateRoom,
    DeleteRoom,
    ErrorCode,
    EventRelayed,
    Joined,
    JoinRoom,
    Left,
    RoomCreated,
    RoomDeleted,
    RoomList,
    RoomsChanged,
    SnapshotChunk,
    SnapshotEnd,
)
from replication.node import Node, Proposal, ReplicationError
from replication.tree import TreeError, WatchEvent

from . import __version__, passwords
from .config import ServerConfig
from .rooms import (
    ROOMS,
    Room,
    appended_seq,
    create_room_command,
    delete_room_command,
    encode_frame,
    keys_path,
    log_path,
    meta_path,
    write_command,
)
from .session import RequestError, Session

log = logging.getLogger("blendsync.server")


class Broadcaster:
    def __init__(self, config: ServerConfig, node: Node):
        self.config = config
        self.node = node
        self.version = __version__
        self.rooms: dict[str, Room] = {}
        self.sessions: dict[str, Session] = {}
        self.list_subscribers: set[Session] = set()
        self._changed_rooms: set[str] = set()
        self._deleted_rooms: set[str] = set()
        self._list_dirty = trio.Event()
        self.listen_addresses: list[str] = []
        self._load_rooms()
        self._subscription = node.subscribe((ROOMS, "**"), self._on_tree_event)

    # ---- serving ------------------------------------------------------------------------------------

    async def serve(self, task_status=trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(
                partial(trio.serve_tcp, self._handle_connection, self.config.port, host=self.config.host)
            )
            self.listen_addresses = [_format_address(listener.socket.getsockname()) for listener in listeners]
            nursery.start_soon(self._room_list_pump)
            log.info("listening on %s", ", ".join(self.listen_addresses))
            task_status.started(listeners)

    async def _handle_connection(self, stream: trio.SocketStream) -> None:
        try:
            peer = _format_address(stream.socket.getpeername())
        except OSError:
            peer = "?"
        await Session(self, stream, peer).run()

    def client_addresses(self) -> list[str]:
        return list(self.listen_addresses)

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
            self._remove_member(session)
        if self.sessions.get(session.client_id) is session:
            del self.sessions[session.client_id]

    def disconnected(self, session: Session) -> None:
        self.detach(session)

    # ---- room list ----------------------------------------------------------------------------------

    def room_info(self, name: str) -> dict[str, Any] | None:
        found = self.node.read_local(meta_path(name))
        if found is None:
            return None
        meta = found[1]
        room = self.rooms.get(name) or Room(name)
        keys = self.node.read_local(keys_path(name))
        return {
            "name": name,
            "users": len(room.members),
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
        try:
            return await self.node.propose(command)
        except ReplicationError as exc:
            raise RequestError(ErrorCode.UNAVAILABLE, str(exc)) from None
        except TreeError as exc:
            raise RequestError(ErrorCode.INVALID_KEY, str(exc)) from None

    async def create_room(self, session: Session, request: CreateRoom) -> None:
        password = None
        if request.password is not None:
            password = await passwords.hash_password(request.password)
        meta = {"keep_open": request.keep_open, "password": password, "created_by": session.name}
        result = await self._propose(create_room_command(request.room, meta))
        if not result.get("succeeded"):
            raise RequestError(ErrorCode.ROOM_EXISTS, f"room {request.room!r} already exists")
        session.send(RoomCreated(room=request.room, ref=request.ref))

    async def join_room(self, session: Session, request: JoinRoom) -> None:
        if session.room is not None:
            raise RequestError(ErrorCode.ALREADY_IN_ROOM, f"already in room {session.room.name!r}")
        meta = self._meta(request.room)
        stored = meta.get("password")
        if stored is not None and (
            request.password is None or not await passwords.verify_password(request.password, stored)
        ):
            raise RequestError(ErrorCode.WRONG_PASSWORD, f"wrong password for room {request.room!r}")
        # From here to the end there is no await: the snapshot and the fan-out registration are atomic.
        self._meta(request.room)  # it may have been deleted while the password was checked
        if session.room is not None or session.closing:
            raise RequestError(ErrorCode.ALREADY_IN_ROOM, "already in a room")
        room = self.rooms.setdefault(request.room, Room(request.room))
        seq = self.current_seq(request.room)
        clients = [member.info() for member in room.members.values()]
        tail = self._tail_after(request.room, request.since, seq) if request.since is not None else None
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
            items = [
                (path[-1], value) for path, _, value in self.node.match_local((*keys_path(room.name), "*"))
            ]
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
        room.members[session.client_id] = session
        session.room = room
        joined = encode_frame(ClientJoined(room=room.name, client=session.info()))
        self._send_to_room(room, joined, exclude=session)
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
        entries = [
            (int(path[-1]), payload)
            for path, _, payload in self.node.match_local((*log_path(room), "*"))
            if int(path[-1]) > since
        ]
        if since < seq and (not entries or entries[0][0] != since + 1):
            return None
        return entries

    async def leave_room(self, session: Session, ref: int | None) -> None:
        room = session.room
        if room is None:
            raise RequestError(ErrorCode.NOT_IN_ROOM, "not in a room")
        self._remove_member(session)
        session.send(Left(room=room.name, ref=ref))
        found = self.node.read_local(meta_path(room.name))
        if not room.members and found is not None and not found[1].get("keep_open"):
            # The last member left on purpose: a room that is not kept open goes (a dropped connection
            # does not count as leaving, so a crash never deletes work).
            await self._propose(delete_room_command(room.name))

    async def delete_room(self, session: Session, request: DeleteRoom) -> None:
        self._meta(request.room)
        room = self.rooms.get(request.room)
        if room is not None and room.members:
            raise RequestError(
                ErrorCode.ROOM_IN_USE, f"room {request.room!r} has {len(room.members)} clients"
            )
        result = await self._propose(delete_room_command(request.room))
        if not result.get("succeeded"):
            raise RequestError(ErrorCode.NO_SUCH_ROOM, f"no room {request.room!r}")
        session.send(RoomDeleted(room=request.room, ref=request.ref))

    def _meta(self, room: str) -> dict[str, Any]:
        found = self.node.read_local(meta_path(room))
        if found is None:
            raise RequestError(ErrorCode.NO_SUCH_ROOM, f"no room {room!r}")
        return found[1]

    def _remove_member(self, session: Session) -> None:
        room = session.room
        assert room is not None
        room.members.pop(session.client_id, None)
        session.room = None
        self._send_to_room(room, encode_frame(ClientLeft(room=room.name, client_id=session.client_id)))
        self._room_changed(room.name)

    def current_seq(self, room: str) -> int:
        found = self.node.read_local(log_path(room))
        return found[0].next_seq - 1 if found is not None else 0

    # ---- operations ---------------------------------------------------------------------------------

    def submit_write(self, session: Session, op_id: int, ops: list[list[Any]]) -> Proposal:
        assert session.room is not None
        command = write_command(session.room.name, session.client_id, op_id, ops, self.config.room_tail)
        try:
            return self.node.submit(command, client=session.client_id, seq=op_id)
        except ReplicationError as exc:
            raise RequestError(ErrorCode.UNAVAILABLE, str(exc)) from None
        except TreeError as exc:
            raise RequestError(ErrorCode.LIMIT_EXCEEDED, str(exc)) from None

    def write_outcome(self, session: Session, proposal: Proposal, op_id: int) -> RequestError | None:
        """A committed or failed write. Its ack goes with the fan-out; only failures are reported here."""
        if proposal.error is not None:
            return RequestError(ErrorCode.UNAVAILABLE, str(proposal.error))
        result = proposal.result
        assert result is not None
        if proposal.duplicate:
            # A retry of an op that already committed: no fan-out happened this time, so ack it here.
            seq = appended_seq(result)
            if seq is not None:
                session.send(Ack(op_id=op_id, seq=seq))
                return None
        if not result.get("ok"):
            return RequestError(ErrorCode.BAD_MESSAGE, result.get("message", "operation refused"))
        if appended_seq(result) is None:
            return RequestError(ErrorCode.NO_SUCH_ROOM, "the room no longer exists")
        return None

    def relay_event(self, session: Session, op_id: int, value: bytes) -> None:
        room = session.room
        if room is None:
            raise RequestError(ErrorCode.NOT_IN_ROOM, "join a room before sending events")
        seq = self.current_seq(room.name)
        frame = encode_frame(EventRelayed(room=room.name, client_id=session.client_id, value=value, seq=seq))
        self._send_to_room(room, frame, exclude=session)
        session.send(Ack(op_id=op_id, seq=seq))

    def relay_presence(self, session: Session, state: dict[str, Any]) -> None:
        assert session.room is not None
        frame = encode_frame(ClientUpdated(room=session.room.name, client_id=session.client_id, state=state))
        self._send_to_room(session.room, frame, exclude=session)

    def _send_to_room(self, room: Room, frame: bytes, exclude: Session | None = None) -> None:
        for member in list(room.members.values()):
            if member is not exclude and not member.out.put(frame):
                member.fail(ErrorCode.SLOW_CONSUMER, "too much data queued for this client")

    # ---- replicated state -> this node ------------------------------------------------------------------

    def _load_rooms(self) -> None:
        for path, _, _ in self.node.match_local((ROOMS, "*", "meta")):
            room = self.rooms.setdefault(path[1], Room(path[1]))
            for key_path, _, value in self.node.match_local((*keys_path(room.name), "*")):
                room.note_key(key_path[-1], len(value))

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
                self.rooms.setdefault(name, Room(name))
                self._room_changed(name)
            return
        room = self.rooms.get(name)
        if room is None or len(path) != 4:
            return
        if path[2] == "keys":
            room.note_key(path[3], None if event.action == "delete" else len(event.payload))
            self._room_changed(name)
        elif path[2] == "log" and event.action == "create":
            room.fan_out(int(path[3]), event.payload, self._overflowed)

    def _overflowed(self, session: Session) -> None:
        session.fail(ErrorCode.SLOW_CONSUMER, "too much data queued for this client")

    def _room_gone(self, name: str) -> None:
        room = self.rooms.pop(name, None)
        if room is None:
            return
        frame = encode_frame(RoomDeleted(room=name))
        for member in list(room.members.values()):
            member.room = None
            if not member.out.put(frame):
                member.fail(ErrorCode.SLOW_CONSUMER, "too much data queued for this client")
        room.members.clear()
        self._changed_rooms.discard(name)
        self._deleted_rooms.add(name)
        self._list_dirty.set()


def _format_address(sockname: Any) -> str:
    host, port = sockname[0], sockname[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
