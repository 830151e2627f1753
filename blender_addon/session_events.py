"""What each server event does to the session: the protocol's client session says what changes in the
room (``ClientSession.receive``); this applies it to the add-on's side (scene, room list, users,
notices); server errors are the session's own (``SyncSession._on_error``, connection state and retries).
Mixed into ``session.SyncSession``, whose state it shares.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from . import dirty, notices, sync
from .paint_watch import images_of
from .protocol_shim import protocol
from .sync import merges, object_settings, painted

RETRY_DELAY = 0.5
# The batch had no effect: send it again, under a new op_id, after a pause. (``unavailable`` is not here:
# that node cannot commit, so the session leaves it and resends on the next one under the same op_id.)
# ``no_such_blob``: its chunks go up again first; ``conflict``: another node wrote the key's refs meanwhile.
RETRY_CODES = frozenset({"rate_limited", "internal", "no_such_blob", "conflict"})

# States of the connection, shown in the panel.
CONNECTING = "connecting"
CONNECTED = "connected"
DISCONNECTED = "disconnected"  # lost; the network thread is reconnecting
STOPPED = "stopped"

# Called with (session, event) after the session has taken each server event (modules add themselves).
LISTENERS: list[Callable[[Any, Any], None]] = []


class ServerEventsMixin:
    # Provided by session.SyncSession.
    room: Any
    client_session: Any
    applier: Any
    chunks: Any
    display: Any
    locks: dict[str, str]
    tracker: Any
    client_id: str
    live: bool
    busy: bool
    receiving_snapshot: bool
    revision: int
    rooms: dict[str, dict[str, Any]]
    users: dict[str, dict[str, Any]]
    notices: Any
    view: Any
    leases: Any
    replay: Any
    _request: Any
    _send_ops: Any
    _before: dict[int, dict[str, bytes | None]]
    _merge_bases: dict[str, tuple[bytes | None, bytes]]
    rereads: Any
    moved: Any
    _send_local: Any
    _locked: list[tuple[list[list[Any]], dict[str, bytes | None]]]
    stats: dict[str, int]
    _requests: dict[int, tuple[str, dict[str, Any]]]
    _join: dict[str, Any] | None
    _send: Any
    _left_room: Any
    join_room: Any
    log: Any

    def _on_event(self, event) -> None:
        P = protocol
        room = self.room
        refused = None
        if isinstance(event, P.Error) and event.code == "locked" and event.ref is not None:
            refused = self.client_session.unacked.get(event.ref)  # a batch the server refused
        if isinstance(event, P.Applied) and event.room == room:
            if event.blobs:
                self.chunks.pushed(event.blobs)  # before the gate sees its values: nothing to fetch
            self._send_strokes_before(event.ops)
        followed = {}
        if isinstance(event, P.Applied) and event.room == room and event.client_id != self.client_id:
            # Made before our batches that moved sockets or renamed what it names: named the new way here.
            followed = self.moved.follow(event.ops, event.seen, self.tracker.values)
        step = self.client_session.receive(event, time.monotonic())
        for reply in step.send:
            self._send(reply)
        keys = {record.key for record in step.overridden}
        overridden = [*step.overridden, *self.rereads.overtaken(event, step.view, keys, self._merge_bases)]
        merged, applied_as = self._merge_overridden(overridden) if overridden else ({}, {})
        told = [record for record in overridden if record.key not in merged and record.key not in followed]
        if told:  # named before the applier changes them (their edit may be a rename)
            self.notices.overridden(told, self.users)
            self.revision += 1
        if step.view:
            self._feed(self.view.incoming(step.view))
            self.display.note_room(step.view)
            for key, _ in step.view:  # someone else's value: a later merge starts from it
                if key not in merged:
                    self._merge_bases.pop(key, None)
            self.rereads.superseded(key for key, _ in step.view if key not in merged)
        if merged:  # after theirs, in the applier's order of each key; sent as an edit made having seen it
            self._feed(list(applied_as.items()))  # the applier keeps a key's last value: not theirs
            now = self.rereads.hold(merged, {record.key: record.value for record in overridden})
            self._send_local(now, [])
            for record in overridden:
                if record.key in now:
                    self._merge_bases[record.key] = (record.value, now[record.key])
            for _, before in self._locked:  # the room's newer values are not undone by ours
                for key, _ in step.view:
                    before.pop(key, None)
        if followed:  # after theirs; their keys at the old positions hold ours again
            self._feed(list(followed.items()))
            self._send_local(
                {key: value for key, value in followed.items() if value is not None},
                [key for key, value in followed.items() if value is None],
            )
        if step.acked is not None:
            self._before.pop(step.acked[0], None)
            self.moved.acked(*step.acked)
        self.moved.refused(op_id for op_id, _ in step.refused)
        for op_id, _ in step.refused:
            before = self._before.pop(op_id, {})
            if refused is not None and op_id == event.ref:
                self._locked = [*self._locked[-7:], (refused, before)]
        if isinstance(event, P.BlobDataEvent):
            ready = self.chunks.arrived(event.hash, event.data)
            for get in self.chunks.take_gets():  # a tree's next level, known now
                self._send(get)
            if ready:  # a feed re-sorts the applier's whole queue: not once per chunk
                self.applier.feed(ready)
        elif isinstance(event, P.BlobStored):
            self.chunks.stored(event.hash)
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
        elif isinstance(event, P.LocksChanged):
            if event.room == room:
                ours = [key for key, owner in self.locks.items() if owner == self.client_id]
                for key in event.unlocked:  # key locks: the edit-mode leases (editors())
                    self.locks.pop(key, None)
                self.locks.update(event.locked)
                self.edit_mode.released(key for key in ours if self.locks.get(key) != self.client_id)
                self.leases.locks_changed(event, self.client_id)  # prefix locks: selection leases
                self.revision += 1
        elif isinstance(event, P.LockGranted):
            self._requests.pop(event.ref, None)
            self.leases.granted(event.prefixes)
        elif isinstance(event, P.Unlocked):
            self._requests.pop(event.ref, None)
        elif isinstance(event, P.Error):
            request = self._requests.get(event.ref) if event.ref is not None else None
            if request is not None and request[0] == "lease":
                self.leases.refused(request[1]["prefixes"])
            self._on_error(event, step, room)
        if self._locked:
            self._settle_locked()
        for listener in LISTENERS:  # other concerns' replies (room_history.py)
            listener(self, event)

    # ---- selection leases (leases.py) ---------------------------------------------------------------------

    def _update_leases(self, selection: list[str]) -> None:
        """Lock what became selected, release what was deselected ("lock what I select")."""
        if not self.live:
            return
        lock, unlock = self.leases.wanted(selection)
        most = protocol.MAX_LOCK_KEYS  # prefixes in one request
        for kind, make, prefixes in (("lease", protocol.Lock, lock), ("unlease", protocol.Unlock, unlock)):
            for start in range(0, len(prefixes), most):
                chunk = prefixes[start : start + most]
                self._request(kind, lambda ref, m=make, c=chunk: m(prefixes=c, ref=ref), prefixes=chunk)

    def _leases_filter(self, ops: list[list[Any]]) -> list[list[Any]]:
        """Scanned ops without edits of objects others hold: those are undone here (and told)."""
        ops, blocked = self.leases.outgoing(ops)
        if blocked:
            self._undo(blocked, {key: self.tracker.previous.get(key) for key in blocked})
        return ops

    def _send_strokes_before(self, ops: list[list[Any]]) -> None:
        """Another artist's pixels for an image that holds unsaved pixels here: strokes made here since it
        was last read (Blender reports none) are read and sent first, so that theirs is held back by ours
        instead of painting over them, and the one overridden merges the two (sync/merges.py)."""
        if not self.live or self.busy:
            return
        images = [img for img in images_of(op[1] for op in ops) if img.is_dirty]
        if images:
            self.tracker.previous.clear()
            changed, deleted = self.tracker.scan(images, look_for_new=False)  # the loop's scan looks for new
            self._send_local(changed, deleted)

    def _note_sent_mergeable(self, changed: dict[str, bytes], deleted: list[str]) -> None:
        """For each key we send whose concurrent edits merge (sync/merges.py): the value our edit was made
        from and its value, until someone else's value of the key arrives (what a merge needs)."""
        for key, value in changed.items():
            if merges.merger(key) is not None:
                # No key for a stack's order was an empty stack, the base both edits were made from.
                base = self.tracker.previous.get(key) or sync.held_without_key(key)
                self._merge_bases[key] = (base, value)
        for key in deleted:
            self._merge_bases.pop(key, None)

    def _merge_overridden(self, overridden: list[Any]) -> tuple[dict[str, bytes], dict[str, bytes]]:
        """key -> the merge of our overridden edit and theirs, where there is something of ours to keep;
        and key -> what is applied for it here (the merge, or a first step towards it: merge_rereads.py)."""
        out: dict[str, bytes] = {}
        applied_as: dict[str, bytes] = {}
        keys = {record.key for record in overridden}
        for record in overridden:
            base = self._merge_bases.pop(record.key, None)
            merge = merges.merger(record.key)
            if base is None or merge is None:
                continue
            if merge is merges.gpencil_strokes and record.key.rsplit("/", 1)[0] + "/meta" not in keys:
                merge = merges.gpencil_strokes_beside_our_layers  # our layers (the meta) stood
            if merge is merges.image_data:
                value = merges.image_data(base[0], base[1], record.value, lambda key=record.key: _saved(key))
            else:
                value = merge(base[0], base[1], record.value)
            if value is None:
                continue
            fed = self.rereads.arrange(record.key, base[0], base[1], record.value, value)
            if fed is not None:
                out[record.key], applied_as[record.key] = value, fed
        return out, applied_as

    def _remember_before(self, op_id: int, ops: list[list[Any]], previous: dict | None = None) -> None:
        """What an object's keys held before this batch (default: before the last scan), in case the server
        refuses it as locked."""
        previous = self.tracker.previous if previous is None else previous
        before = {op[1]: previous.get(op[1]) for op in ops if op[1].startswith("obj/") and op[1] in previous}
        self._before.pop(op_id, None)
        if before:
            self._before[op_id] = before

    def _settle_locked(self) -> None:
        """Batches the server refused as locked, once we know whose lease refused them (``locks_changed``
        may come after the refusal): the keys under others' leases go back to what they were (unless the
        room sent a newer value meanwhile), the rest of the batch goes out again."""
        waiting = []
        for ops, before in self._locked:
            holders = {op[1]: self.leases.holder(op[1]) for op in ops}
            if not any(holders.values()):
                waiting.append((ops, before))  # not a lease we know of (yet)
                continue
            undo = {key: owner for key, owner in holders.items() if owner is not None and key in before}
            self._undo(undo, {key: before[key] for key in undo})
            rest = [op for op in ops if holders[op[1]] is None]
            if rest and self.live:
                self._remember_before(self._send_ops(rest), rest, before)
        self._locked = waiting

    def _undo(self, holders: dict[str, str], values: dict[str, bytes | None]) -> None:
        """Put ``values`` back on keys other artists hold (key -> holder), and tell who holds them."""
        if not holders:
            return
        self.applier.feed(list(values.items()))
        for owner in sorted(set(holders.values())):
            first = next(key for key, holder in holders.items() if holder == owner)
            who = str(self.users.get(owner, {}).get("name") or owner[:8])
            subject = notices.describe_key(first)[0]
            self.notices.add(f"{subject} is locked by {who}: your change was undone", first, owner)
        self.revision += 1

    def _feed(self, changes) -> None:
        """The live room's values to the scene (not while it shows the room's past: replay.py)."""
        if self.replay is None:
            self.feed_scene(changes)

    def feed_scene(self, changes) -> None:
        """Values to the applier, in order, each once the chunks it names are here."""
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
                    object_settings.prepare()  # on the emptied scene, where it costs least
                    # Reports of what was cleared name freed datablocks, whose memory the room's may reuse
                    # (a report counts as the artist's edit while the applier works: session._apply_remote).
                    dirty.evaluate()
                    dirty.forget()
                self.applier.reset()
                self.tracker.reset()
                self.view.reset()
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

    def _on_error(self, error, step, room: str | None) -> None:
        request = self._requests.pop(error.ref, None) if error.ref is not None else None
        self.log(f"server: {error.code}: {error.message}")
        if step.fatal is not None:
            # Reconnecting cannot help: stop trying until the user connects again.
            self.net.stop()
            self.state = STOPPED
            self.live = False
            self.status = f"refused by the server ({error.code})"
            return
        if step.failover is not None and not error.fatal:
            # This node cannot commit (no quorum): leave it; the batches go out again on the next one.
            self.net.drop_connection(self.generation)
        if request is not None and self._join is not None and self._join.get("ref") == error.ref:
            self._join = None  # the first join was refused
        if request is not None and error.code in ("no_such_room", "room_exists"):
            kind, info = request
            if kind == "join" and info.get("create"):  # an invite's room: its first artist creates it
                self.create_room(info["room"], keep_open=True, send_scene=info["send_scene"], or_join=True)
            elif kind == "create_room" and info.get("or_join"):  # another artist created it meanwhile
                self.join_room(info["room"], send_scene=info["send_scene"])
        if step.room_lost:
            self._left_room(f"could not rejoin {room!r}: {error.code}")
        elif any(error.code in RETRY_CODES for _ in step.refused):
            if error.code == "no_such_blob":
                for _, ops in self.client_session.retrying:
                    self.chunks.forget_stored(ops)
            self._retry_at = time.monotonic() + RETRY_DELAY  # sent again, under a new op_id, after a pause


def _saved(key: str) -> object:
    """The pixels the image of an ``img/<u>/data`` key shows without its unsaved ones (None: not here)."""
    images = images_of([key])
    return painted.saved(images[0]) if images else None
