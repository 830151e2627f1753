"""This node's sessions and rooms: who is in which room, fan-out to members, the coalesced room list.

The Hub mirrors the replicated rooms (through the RoomStore) as Room objects with their local members;
other nodes' members come from the PeerRelay. It knows nothing of requests: joins, writes, locks and admin
use it from above.
"""

from __future__ import annotations

from typing import Any

import trio

from protocol import (
    Ack,
    ClientJoined,
    ClientLeft,
    ClientUpdated,
    ErrorCode,
    EventRelayed,
    RoomDeleted,
    RoomList,
    RoomsChanged,
)

from .config import ServerConfig
from .errors import RequestError
from .metrics import Metrics
from .peers import PeerRelay
from .rooms import VIEWER_KIND, Room, encode_frame
from .roomstore import RoomStore
from .session import Session


class Hub:
    def __init__(self, config: ServerConfig, store: RoomStore, metrics: Metrics):
        self.config = config
        self.store = store
        self.metrics = metrics
        self.rooms: dict[str, Room] = {}
        self.sessions: dict[str, Session] = {}
        self.peers = PeerRelay(self.rooms, store.node)
        self.list_subscribers: set[Session] = set()
        self._changed_rooms: set[str] = set()
        self._deleted_rooms: set[str] = set()
        self._list_dirty = trio.Event()

    # ---- sessions -----------------------------------------------------------------------------------

    def register(self, session: Session) -> None:
        previous = self.sessions.get(session.client_id)
        if previous is not None and previous is not session:
            previous.fail(ErrorCode.PROTOCOL_STATE, "this session was resumed on another connection")
        self.sessions[session.client_id] = session

    def unregister(self, session: Session) -> None:
        self.list_subscribers.discard(session)
        if self.sessions.get(session.client_id) is session:
            del self.sessions[session.client_id]

    # ---- room list ----------------------------------------------------------------------------------

    def room_info(self, name: str) -> dict[str, Any] | None:
        meta = self.store.find_meta(name)
        if meta is None:
            return None
        if meta.get("importing"):
            return None
        room = self.rooms.get(name) or Room(name)
        return {
            "name": name,
            "users": len(room.members) + self.peers.count(name),
            "keys": self.store.key_count(name),
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

    def room_changed(self, name: str) -> None:
        self._changed_rooms.add(name)
        self._list_dirty.set()

    async def room_list_pump(self) -> None:
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

    def check_room_count(self) -> None:
        limit = self.config.max_rooms
        if limit and len(self.rooms) >= limit:
            self.metrics.limit("max_rooms")
            raise RequestError(ErrorCode.LIMIT_EXCEEDED, f"max_rooms ({limit}) reached: no new rooms")

    def current_seq(self, room: str) -> int:
        runtime = self.rooms.get(room)
        base = runtime.seq_base if runtime is not None else 0
        return base + self.store.last_log_seq(room)

    def in_use(self, name: str) -> int:
        """Clients in the room, on this node and the others."""
        room = self.rooms.get(name)
        return (len(room.members) if room is not None else 0) + self.peers.count(name)

    # ---- membership and fan-out -----------------------------------------------------------------------

    def add_member(self, session: Session, room: Room) -> None:
        """Make ``session`` a member (it has its snapshot or tail queued) and tell everyone."""
        room.members[session.client_id] = session
        session.room = room
        self._announce(room, session, encode_frame(ClientJoined(room=room.name, client=session.info())))
        self.peers.joined(room.name, session.info())
        self.room_changed(room.name)

    def remove_member(self, session: Session) -> None:
        room = session.room
        assert room is not None
        room.members.pop(session.client_id, None)
        session.room = None
        self._announce(room, session, encode_frame(ClientLeft(room=room.name, client_id=session.client_id)))
        self.peers.left(room.name, session.client_id)
        self.room_changed(room.name)

    @staticmethod
    def _announce(room: Room, session: Session, frame: bytes) -> None:
        """A member came or went: tell the others. Viewers are told of artists only, and artists of
        everyone (they count the viewers): 500 reviewers joining cost 500 x artists frames, not 500^2."""
        viewer = session.kind == VIEWER_KIND
        for member in list(room.members.values()):
            if member is not session and not (viewer and member.kind == VIEWER_KIND):
                member.send_frame(frame)

    def relay_event(self, session: Session, op_id: int, value: bytes) -> None:
        room = session.room
        if room is None:
            raise RequestError(ErrorCode.NOT_IN_ROOM, "join a room before sending events")
        seq = self.current_seq(room.name)
        frame = encode_frame(EventRelayed(room=room.name, client_id=session.client_id, value=value, seq=seq))
        room.send(frame, exclude=session)
        self.peers.event(room.name, session.client_id, value, seq)
        session.send(Ack(op_id=op_id, seq=seq))

    def relay_presence(self, session: Session, state: dict[str, Any]) -> None:
        assert session.room is not None
        frame = encode_frame(ClientUpdated(room=session.room.name, client_id=session.client_id, state=state))
        session.room.send(frame, exclude=session)
        self.peers.presence(session.room.name, session.client_id, state)

    # ---- replicated state -> this node ------------------------------------------------------------------

    def load_rooms(self) -> None:
        for name, meta in self.store.metas():
            room = self.rooms.setdefault(name, Room(name))
            room.seq_base = meta.get("seq_base", 0) if isinstance(meta, dict) else 0
            room.created_index = self.store.meta_created_index(name)
            for key, value in self.store.items(room.name):
                room.note_key(key, len(value))
            for key, payload in self.store.locks(room.name):
                room.locks[key] = payload["owner"]
            for prefix, payload in self.store.prefix_locks(room.name):
                room.prefix_locks[prefix] = payload["owner"]

    def note_meta(self, name: str, meta: Any, created_index: int) -> None:
        room = self.rooms.setdefault(name, Room(name))
        room.created_index = created_index
        if isinstance(meta, dict):
            room.seq_base = meta.get("seq_base", 0)
        self.room_changed(name)

    def room_gone(self, name: str) -> bool:
        """The room was deleted: tell its members and the room list (False if this node did not know it)."""
        room = self.rooms.pop(name, None)
        if room is None:
            return False
        frame = encode_frame(RoomDeleted(room=name))
        for member in list(room.members.values()):
            member.room = None
            member.send_frame(frame)
        room.members.clear()
        self._changed_rooms.discard(name)
        self._deleted_rooms.add(name)
        self._list_dirty.set()
        return True
