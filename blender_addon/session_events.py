"""What each server event does to the session: the protocol's client session says what changes in the
room (``ClientSession.receive``); this applies it to the add-on's side (scene, room list, users,
notices); server errors are the session's own (``SyncSession._on_error``, connection state and retries).
Mixed into ``session.SyncSession``, whose state it shares.
"""

from __future__ import annotations

import time
from typing import Any

from . import sync
from .protocol_shim import protocol


class ServerEventsMixin:
    # Provided by session.SyncSession.
    room: Any
    client_session: Any
    applier: Any
    chunks: Any
    locks: dict[str, str]
    tracker: Any
    client_id: str
    live: bool
    receiving_snapshot: bool
    revision: int
    rooms: dict[str, dict[str, Any]]
    users: dict[str, dict[str, Any]]
    stats: dict[str, int]
    _requests: dict[int, tuple[str, dict[str, Any]]]
    _join: dict[str, Any] | None
    _send: Any
    _left_room: Any
    join_room: Any
    log: Any
    _on_error: Any

    def _on_event(self, event) -> None:
        P = protocol
        room = self.room
        step = self.client_session.receive(event, time.monotonic())
        for reply in step.send:
            self._send(reply)
        if step.view:
            self._feed(step.view)
        if isinstance(event, P.BlobDataEvent):
            ready = self.chunks.arrived(event.hash, event.data)
            if ready:  # a feed re-sorts the applier's whole queue: not once per chunk
                self.applier.feed(ready)
        elif isinstance(event, P.BlobStored):
            self.chunks.stored(event.hash)
        elif isinstance(event, P.LocksChanged):
            if event.room == room:
                for key in event.unlocked:
                    self.locks.pop(key, None)
                self.locks.update(event.locked)
                self.revision += 1
        elif isinstance(event, (P.LockGranted, P.Unlocked)):
            self._requests.pop(event.ref, None)
        elif isinstance(event, P.Applied):
            if event.room == room:
                self.stats["applied"] += len(step.view)
                self.stats["ignored"] += len(event.ops) - len(step.view)  # held back by our own edits
        elif isinstance(event, P.SnapshotEnd):
            if step.snapshot_end is not None:
                self._on_snapshot_end(step.snapshot_end, step.view_keep)
        elif isinstance(event, P.Joined):
            if step.resumed is not None:
                self._on_joined(event, resumed=True)
            elif self._join is not None and event.ref == self._join["ref"]:
                self._on_joined(event, resumed=False)
        elif isinstance(event, P.RoomList):
            self.rooms = {room["name"]: room for room in event.rooms if "name" in room}
            self.revision += 1
        elif isinstance(event, P.RoomsChanged):
            for room in event.updated:
                if "name" in room:
                    self.rooms[room["name"]] = room
            for name in event.deleted:
                self.rooms.pop(name, None)
            self.revision += 1
        elif isinstance(event, P.RoomCreated):
            request = self._requests.pop(event.ref, None) if event.ref is not None else None
            self.log(f"created room {event.room!r}")
            if request is not None and request[1].get("join"):
                info = request[1]
                self.join_room(info["room"], password=info["password"], send_scene=info["send_scene"])
        elif isinstance(event, P.Left):
            self._requests.pop(event.ref, None)
        elif isinstance(event, P.RoomDeleted):
            if event.ref is not None:
                self._requests.pop(event.ref, None)
                self.log(f"deleted room {event.room!r}")
            elif step.room_lost:
                self._left_room(f"room {event.room!r} was deleted")
            self.rooms.pop(event.room, None)
            self.revision += 1
        elif isinstance(event, P.ClientJoined):
            if event.room == self.room:
                client = dict(event.client)
                if client.get("id") and client["id"] != self.client_id:
                    self.users[client["id"]] = client
                    self.revision += 1
        elif isinstance(event, P.ClientLeft):
            if self.users.pop(event.client_id, None) is not None:
                self.revision += 1
        elif isinstance(event, P.ClientUpdated):
            if event.room == self.room and event.client_id != self.client_id:
                self.users.setdefault(event.client_id, {"id": event.client_id}).update(event.state)
                self.revision += 1
        elif isinstance(event, P.Error):
            self._on_error(event, step, room)

    def _feed(self, changes) -> None:
        """Remote values to the applier, in order, each once the chunks it names are here."""
        ready, gets = self.chunks.incoming(list(changes))
        for get in gets:
            self._send(get)
        if ready:
            self.applier.feed(ready)

    def _on_joined(self, joined, *, resumed: bool) -> None:
        join = self._join
        self._requests.pop(joined.ref, None)
        self.live = True
        self.users = {c["id"]: dict(c) for c in joined.clients if c.get("id") and c["id"] != self.client_id}
        if joined.mode == "snapshot":
            self.receiving_snapshot = True
            if not resumed and join is not None:
                if joined.key_count > 0 or not join.get("send_scene"):
                    sync.clear_scene()
                self.applier.reset()
                self.tracker.reset()
            # else: the log after our seq is gone; the snapshot replaces what we had
        else:
            self.log(f"resumed room {joined.room!r} after seq {joined.seq}")
        self.revision += 1

    def _on_snapshot_end(self, seq: int, keep: set[str] | None) -> None:
        self.receiving_snapshot = False
        if keep is not None:
            # A rejoin from a snapshot: what we had and it has not (nor we edit) was deleted meanwhile.
            self._feed([(key, None) for key in self.tracker.values if key not in keep])
            self.log(f"rejoined room {self.room!r} from a snapshot at seq {seq}")
        else:
            self.log(f"joined room {self.room!r} at seq {seq}")
        self._join = None  # the next scan uploads the local scene when it was kept (the tracker is fresh)
        self.revision += 1
