"""Joining a room: the password check, then a snapshot of the live keys or a resume from the log tail.

The state a joiner gets (snapshot at seq N, or the held tail after ``since``) and its registration for the
fan-out happen with no await in between, so the stream it is sent continues exactly where that state ends.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from protocol import Ack, Applied, ErrorCode, Joined, JoinRoom, LocksChanged, SnapshotChunk, SnapshotEnd

from .config import ServerConfig
from .errors import RequestError
from .hub import Hub
from .password_attempts import PasswordGuard
from .roles import room_role
from .rooms import VIEWER_KIND, Room, encode_frame
from .roomstore import RoomStore
from .session import Session
from .sharestore import link_opens


class Joins:
    def __init__(self, config: ServerConfig, store: RoomStore, hub: Hub, password_guard: PasswordGuard):
        self.config = config
        self.store = store
        self.hub = hub
        self.password_guard = password_guard

    def _meta_for(self, session: Session, room: str) -> dict[str, Any]:
        """The room's meta; for a share link, only if the room is the one the link was made for."""
        meta = self.store.meta(room)
        user = session.user
        if user.is_viewer and not link_opens(user.incarnation, meta.get("incarnation")):
            raise RequestError(
                ErrorCode.NO_SUCH_ROOM,
                f"the room {room!r} this link was made for was deleted (a room made since under its "
                "name is another room)",
            )
        return meta

    async def join_room(self, session: Session, request: JoinRoom) -> None:
        session.left = None  # from here, its ops reach it through the stream it joins (ack at their place)
        if request.password is not None and self.store.find_meta(request.room) is not None:
            self.password_guard.refuse_early(session.peer, request.room)  # before any work for a guess
        # A room just created (or written) through another node must be visible here first.
        await self.store.fence()
        if session.room is not None:
            raise RequestError(ErrorCode.ALREADY_IN_ROOM, f"already in room {session.room.name!r}")
        meta = self._meta_for(session, request.room)
        stored = meta.get("password")
        # A share link was made by the room's owner for this room: it needs no password.
        if stored is not None and not session.user.is_viewer:
            await self.password_guard.check(session.peer, request.room, request.password, stored)
        # From here to the end there is no await: the snapshot and the fan-out registration are atomic.
        self._meta_for(session, request.room)  # it may have been deleted while the password was checked
        if session.room is not None or session.closing:
            raise RequestError(ErrorCode.ALREADY_IN_ROOM, "already in a room")
        room = self.hub.rooms.setdefault(request.room, Room(request.room))
        seq = self.hub.current_seq(request.room)
        viewer = session.kind == VIEWER_KIND  # a viewer is shown the artists, not the other viewers
        # Filtered before info(): 500 viewers joining would otherwise build 500 x 500 maps.
        clients = [m.info() for m in room.members.values() if not (viewer and m.kind == VIEWER_KIND)]
        clients += self.hub.peers.members(room.name)
        if viewer:
            clients = [client for client in clients if client.get("kind") != VIEWER_KIND]
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
                    role=room_role(session.user, meta),
                )
            )
            session.send_stream(self._tail_frames(room.name, session.client_id, tail))
        else:
            items = self.store.items(room.name)
            session.send(
                Joined(
                    room=room.name,
                    seq=seq,
                    mode="snapshot",
                    key_count=len(items),
                    clients=clients,
                    ref=request.ref,
                    role=room_role(session.user, meta),
                )
            )
            session.send_stream(self._snapshot_frames(room.name, seq, items))
        if room.has_locks:
            session.send(
                LocksChanged(room=room.name, locked=dict(room.locks), prefixes=dict(room.prefix_locks))
            )
        self.hub.add_member(session, room)

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
            if entry["c"] == client_id and "r" not in entry:  # a restore is applied by its author too
                yield encode_frame(Ack(op_id=entry["o"], seq=seq))
            else:
                yield encode_frame(
                    Applied(
                        room=room,
                        seq=seq,
                        client_id=entry["c"],
                        op_id=entry["o"],
                        ops=entry["ops"],
                        seen=entry.get("s"),
                    )
                )

    def _tail_after(self, room: str, since: int, seq: int) -> list[tuple[int, dict[str, Any]]] | None:
        """The held log entries after ``since``, or None if some of them are gone (then: snapshot)."""
        if since < 0 or since > seq:
            return None
        runtime = self.hub.rooms.get(room)
        base = runtime.seq_base if runtime is not None else 0
        entries = [(number + base, payload) for number, payload in self.store.log_entries(room, since - base)]
        if since < seq and (not entries or entries[0][0] != since + 1):
            return None
        return entries
