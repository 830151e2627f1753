"""The sync loop: one connection, one room, the scene kept equal to the room's key map.

Everything here runs on Blender's main thread. :func:`pump` is the body of
the add-on's ``bpy.app.timers`` callback; tests call it directly (timers do
not run when Blender is a Python module). One call:

1. **local changes** - unless a snapshot or remote batch is still being
   applied, ``ChangeTracker.scan`` the datablocks the depsgraph reported
   (every ``FULL_SCAN_INTERVAL`` seconds: all of them) and send the changed
   and deleted keys as one ``batch`` with the next ``op_id``. The batch stays
   in ``unacked`` and its keys in ``pending`` until the server's ``ack``.
2. **network events** - drain the network thread's queue: room list, users,
   join replies, snapshot chunks, ``applied`` operations of others, ``ack`` of
   ours. A remote value for a key that has an unacknowledged local edit is
   not applied (docs/protocol.md section 3); it is kept aside in ``shadow``
   with its seq, and applied after all if the ack shows that our edit was
   ordered before it (which happens only when a resume turned into a
   snapshot).
3. **apply** - ``Applier.step`` in slices until the time budget is spent;
   the fraction done is the progress bar.
4. **presence** - name, colour, mode, frame, scene, view matrix and
   selection, only what changed, at most ``PRESENCE_INTERVAL`` apart.

On connection loss the network thread reconnects (same session id, next
address); the session then joins its room again with ``since`` = the last
seq it saw and re-sends every unacknowledged batch with its original
``op_id``; the server applies each at most once.
"""

from __future__ import annotations

import contextlib
import itertools
import queue
import secrets
import time
from collections.abc import Callable
from typing import Any

import bpy

from . import sync
from .net import HelloInfo, NetThread, parse_addresses
from .protocol_shim import protocol

FULL_SCAN_INTERVAL = 2.0
PRESENCE_INTERVAL = 0.1
MAX_BATCH_BYTES = 8 * 1024 * 1024
APPLY_SLICE = 64
RETRY_DELAY = 0.5
RETRY_CODES = {"unavailable", "rate_limited", "internal"}  # the batch had no effect: send it again
GIVE_UP_CODES = {"auth_failed", "version_mismatch", "kicked"}  # fatal; reconnecting cannot help
REF_BASE = 1 << 40  # request refs live far from op ids: an error's ref names either one

# States of the connection, shown in the panel.
CONNECTING = "connecting"
CONNECTED = "connected"
DISCONNECTED = "disconnected"  # lost; the network thread is reconnecting
STOPPED = "stopped"

_current: Session | None = None
_dirty: dict[int, bpy.types.ID] = {}
after_pump: list[Callable[[Session], None]] = []  # UI refresh hooks (ui.py adds one)


def current() -> Session | None:
    return _current


def note_dirty(ids) -> None:
    """Called by the depsgraph handler: remember which datablocks changed since the last pump."""
    if _current is None or _current.room is None:
        return
    for id_data in ids:
        with contextlib.suppress(ReferenceError):
            _dirty[id_data.as_pointer()] = id_data


def take_dirty() -> list[bpy.types.ID]:
    out = list(_dirty.values())
    _dirty.clear()
    return out


def pump(budget: float = 0.02) -> bool:
    """Run the sync loop once (see the module docstring); returns whether work is still queued."""
    session = _current
    if session is None:
        return False
    busy = session.pump(budget)
    for hook in list(after_pump):
        try:
            hook(session)
        except Exception as exc:  # a UI refresh must never stop syncing
            session.log(f"UI refresh failed: {exc}")
    return busy


def _timer() -> float | None:
    if _current is None:
        return None
    return 0.01 if pump() else 0.05


def start(addresses: str | list[tuple[str, int]], **kwargs: Any) -> Session:
    """Stop any previous session and connect a new one (the connect happens on the network thread)."""
    global _current
    stop()
    session = Session(addresses, **kwargs)
    _current = session
    session.start()
    if not bpy.app.timers.is_registered(_timer):
        bpy.app.timers.register(_timer, first_interval=0.05, persistent=True)
    return session


def stop() -> None:
    global _current
    session, _current = _current, None
    if session is not None:
        session.stop()
    _dirty.clear()
    if bpy.app.timers.is_registered(_timer):
        bpy.app.timers.unregister(_timer)


def _flatten_column_major(matrix) -> list[float]:
    return [float(matrix[row][col]) for col in range(4) for row in range(4)]


def find_region_3d():
    """The first 3D view's region data (None when Blender has no 3D view)."""
    wm = bpy.context.window_manager
    for window in getattr(wm, "windows", ()):
        screen = window.screen
        if screen is None:
            continue
        for area in screen.areas:
            if area.type == "VIEW_3D":
                space = area.spaces.active
                region_3d = getattr(space, "region_3d", None)
                if region_3d is not None:
                    return region_3d
    return None


def gather_presence(name: str, color: list[float]) -> dict[str, Any]:
    """This artist's presence fields, read from Blender and fitted to the protocol's grammar (Blender
    names may hold control characters; a field that still does not fit is left out, not sent)."""
    limits = protocol.limits
    context = bpy.context
    scene = context.scene
    state: dict[str, Any] = {"name": protocol.fit_name(name), "color": [float(c) for c in color]}
    state["mode"] = protocol.fit_name(
        str(getattr(context, "mode", "OBJECT") or "OBJECT"), limits.MAX_LABEL_BYTES
    )
    if scene is not None:
        state["frame"] = int(scene.frame_current)
        state["scene"] = protocol.fit_name(scene.name)
    region_3d = find_region_3d()
    if region_3d is not None:
        state["view_matrix"] = _flatten_column_major(region_3d.view_matrix)
    view_layer = context.view_layer
    selection: list[str] = []
    if view_layer is not None:
        for ob in view_layer.objects:
            if ob.select_get(view_layer=view_layer):
                uuid = sync.peek_uuid(ob)
                if uuid is not None:
                    selection.append(uuid)
    budget, kept = limits.MAX_SELECTION_BYTES, []
    for uuid in sorted(selection)[: limits.MAX_SELECTION]:
        budget -= len(uuid.encode("utf-8"))
        if budget < 0:
            break
        kept.append(uuid)
    state["selection"] = kept
    return {k: v for k, v in state.items() if protocol.presence_field_ok(k, v)}


class Session:
    """One artist's connection and room (see the module docstring)."""

    def __init__(
        self,
        addresses: str | list[tuple[str, int]],
        *,
        name: str = "artist",
        color: tuple[float, ...] | list[float] = (0.2, 0.6, 1.0),
        token: str | None = None,
        session_id: str | None = None,
        net_factory: Callable[..., Any] | None = None,
        version: str = "",
    ) -> None:
        self.addresses = parse_addresses(addresses) if isinstance(addresses, str) else list(addresses)
        self.name = name
        self.color = [float(c) for c in color][:4]
        self.session_id = session_id or secrets.token_hex(16)
        self.net = (net_factory or NetThread)(
            self.addresses, HelloInfo(name=name, session=self.session_id, token=token, version=version)
        )
        self.state = CONNECTING
        self.status = "connecting"
        self.address = ""
        self.generation = 0  # the network thread's connection that our sends go to
        self.welcome = None
        self.client_id = ""
        self.messages: list[str] = []  # recent notices and server errors, newest last
        self.rooms: dict[str, dict[str, Any]] = {}
        self.users: dict[str, dict[str, Any]] = {}
        # Room state.
        self.room: str | None = None
        self.room_password: str | None = None
        self.live = False  # joined on the current connection (batches may go out)
        self.receiving_snapshot = False
        self.last_seq = 0
        self.tracker = sync.ChangeTracker()
        self.applier = sync.Applier(self.tracker)
        self.progress = 1.0
        self.op_ids = itertools.count(1)
        self.unacked: dict[int, list[list[Any]]] = {}  # op_id -> ops, in op_id order
        self.pending: dict[str, int] = {}  # key -> op_id of its latest unacknowledged edit
        self.shadow: dict[str, tuple[int, bytes | None]] = {}  # key -> (seq, value) held back by pending
        self.revision = 0  # bumped whenever something the UI shows changed
        self._refs = itertools.count(REF_BASE)
        self._requests: dict[int, tuple[str, dict[str, Any]]] = {}
        self._join: dict[str, Any] | None = None  # the join in flight
        self._snapshot_keys: set[str] | None = None  # keys of a snapshot that replaces a resumed state
        self._snapshot_seq = 0
        self._next_full_scan = 0.0
        self._presence_sent: dict[str, Any] = {}
        self._next_presence = 0.0
        self._retry: list[tuple[int, list[list[Any]]]] = []  # (failed op_id, its ops) to send again
        self._retry_at = 0.0
        self.stats = {"batches": 0, "applied": 0, "ignored": 0, "reconnects": 0}

    # ---- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> None:
        if hasattr(self.net, "start"):
            self.net.start()

    def stop(self) -> None:
        if self.live:
            self._send(protocol.LeaveRoom(ref=next(self._refs)))
        self.net.stop()
        self.state = STOPPED
        self.status = "disconnected"
        self.live = False
        self.revision += 1

    def log(self, text: str) -> None:
        self.messages.append(text)
        del self.messages[:-20]
        self.revision += 1

    @property
    def connected(self) -> bool:
        return self.state == CONNECTED

    @property
    def busy(self) -> bool:
        """A snapshot or remote batch is still being applied: the scene is half-built, do not scan."""
        return self.receiving_snapshot or self.applier.progress < 1.0

    @property
    def idle(self) -> bool:
        """Nothing queued in either direction (used by tests and tools to wait for quiet)."""
        return (
            not self.busy
            and not self.unacked
            and not self._retry
            and self.net.inbox.empty()
            and (self.room is None or self.live)
        )

    # ---- requests (UI operators call these) ---------------------------------------------------------

    def _send(self, event) -> bool:
        if self.state != CONNECTED:
            return False
        self.net.send(self.generation, event)
        return True

    def _request(self, kind: str, event_factory, **info: Any) -> int:
        ref = next(self._refs)
        self._requests[ref] = (kind, info)
        if not self._send(event_factory(ref)):
            self._requests.pop(ref, None)
            self.log(f"{kind}: not connected")
        return ref

    def list_rooms(self) -> None:
        self._request("list_rooms", lambda ref: protocol.ListRooms(subscribe=True, ref=ref))

    def create_room(
        self,
        room: str,
        *,
        keep_open: bool = False,
        password: str | None = None,
        send_scene: bool = False,
        join: bool = True,
    ) -> int:
        password = password or None
        return self._request(
            "create_room",
            lambda ref: protocol.CreateRoom(room=room, keep_open=keep_open, password=password, ref=ref),
            room=room,
            password=password,
            send_scene=send_scene,
            join=join,
        )

    def join_room(self, room: str, *, password: str | None = None, send_scene: bool = False) -> int:
        if self.room is not None:
            self.log(f"already in room {self.room!r}")
            return 0
        password = password or None
        self._join = {"room": room, "password": password, "send_scene": send_scene, "initial": True}
        ref = self._request(
            "join", lambda ref: protocol.JoinRoom(room=room, password=password, ref=ref), room=room
        )
        self._join["ref"] = ref
        return ref

    def leave_room(self) -> None:
        if self.room is None:
            return
        if self.live:
            self._request("leave", lambda ref: protocol.LeaveRoom(ref=ref))
        self._left_room(f"left room {self.room!r}")

    def delete_room(self, room: str) -> int:
        return self._request("delete", lambda ref: protocol.DeleteRoom(room=room, ref=ref), room=room)

    def drop_connection(self) -> None:
        """Simulate a network failure (tests, and the panel's debug button)."""
        self.net.drop_connection()

    def _left_room(self, why: str) -> None:
        self.room = None
        self.room_password = None
        self.live = False
        self.receiving_snapshot = False
        self._join = None
        self.applier.reset()
        self.tracker.reset()
        self.unacked.clear()
        self.pending.clear()
        self.shadow.clear()
        self._retry.clear()
        self.users.clear()
        self.last_seq = 0
        self.progress = 1.0
        _dirty.clear()
        self.log(why)

    # ---- the loop -----------------------------------------------------------------------------------

    def pump(self, budget: float = 0.02) -> bool:
        deadline = time.monotonic() + budget
        self._scan_local()
        self._send_retries()
        self._drain_network()
        self._apply_remote(deadline)
        self._send_presence()
        return self.busy or not self.net.inbox.empty()

    def _scan_local(self, force_full: bool = False) -> None:
        if self.room is None or self.busy or (self._join is not None and self._join.get("initial")):
            return
        now = time.monotonic()
        full = force_full or now >= self._next_full_scan
        dirty = take_dirty()
        if not full and not dirty:
            return
        if full:
            self._next_full_scan = now + FULL_SCAN_INTERVAL
        changed, deleted = self.tracker.scan(None if full else dirty)
        if not changed and not deleted:
            return
        ops: list[list[Any]] = [["set", key, value] for key, value in changed.items()]
        ops += [["delete", key] for key in deleted]
        for chunk in _split(ops, MAX_BATCH_BYTES):
            self._send_ops(chunk)

    def _send_ops(self, ops: list[list[Any]]) -> None:
        op_id = next(self.op_ids)
        self.unacked[op_id] = ops
        for op in ops:
            self.pending[op[1]] = op_id
        self.stats["batches"] += 1
        if self.live:
            self._send(protocol.Batch(op_id=op_id, ops=ops))

    def _drain_network(self) -> None:
        inbox = self.net.inbox
        while True:
            try:
                kind, generation, payload = inbox.get_nowait()
            except queue.Empty:
                return
            if self.state == STOPPED:
                continue
            if kind == "event":
                if generation == self.generation:
                    self._on_event(payload)
            elif kind == "connecting":
                self.status = f"connecting to {payload}"
                self.address = payload
                self.revision += 1
            elif kind == "connected":
                self._on_connected(generation, payload)
            elif kind == "disconnected":
                if generation == self.generation and self.state == CONNECTED:
                    self.state = DISCONNECTED
                    self.live = False
                    self.stats["reconnects"] += 1
                    self.log(f"connection lost ({payload}); reconnecting")
                self.status = f"reconnecting ({payload})"
                self.revision += 1
            elif kind == "send_failed":
                event, reason = payload
                self.log(f"could not send {event.TYPE}: {reason}")

    def _on_connected(self, generation: int, welcome) -> None:
        self.generation = generation
        self.state = CONNECTED
        self.welcome = welcome
        self.client_id = welcome.client_id
        address = getattr(self.net, "connected_address", None)
        self.address = f"{address[0]}:{address[1]}" if address else ""
        self.status = f"connected to {self.address or 'server'}"
        self._presence_sent = {}
        self._requests.clear()
        self.revision += 1
        self._send(protocol.ListRooms(subscribe=True, ref=next(self._refs)))
        if self.room is not None:
            # Resume: join again from the last seq seen, then re-send what was never acknowledged.
            self._join = {
                "room": self.room,
                "password": self.room_password,
                "send_scene": False,
                "initial": False,
            }
            ref = self._request(
                "join",
                lambda ref: protocol.JoinRoom(
                    room=self.room, password=self.room_password, since=self.last_seq, ref=ref
                ),
                room=self.room,
            )
            self._join["ref"] = ref
            for op_id, ops in self.unacked.items():
                self._send(protocol.Batch(op_id=op_id, ops=ops))
            self.live = True  # ordered behind the join: new batches may follow at once
        elif self._join is not None and self._join.get("initial"):
            self._join = None  # the connection dropped before the join was answered
            self.log("join interrupted by a connection loss; join again")

    def _on_event(self, event) -> None:
        P = protocol
        if isinstance(event, P.Applied):
            if event.room == self.room and self.live:
                self._on_applied(event.seq, event.ops)
        elif isinstance(event, P.Ack):
            self._on_ack(event.op_id, event.seq)
        elif isinstance(event, P.SnapshotChunk):
            if event.room == self.room:
                self._on_snapshot_items(event.items)
        elif isinstance(event, P.SnapshotEnd):
            if event.room == self.room:
                self._on_snapshot_end(event.seq)
        elif isinstance(event, P.Joined):
            self._on_joined(event)
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
            elif event.room == self.room:
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
            self._on_error(event)

    def _on_joined(self, joined) -> None:
        join = self._join
        if join is None or joined.ref != join.get("ref"):
            return
        self._requests.pop(joined.ref, None)
        self.room = joined.room
        self.room_password = join.get("password")
        self.live = True
        self.users = {c["id"]: dict(c) for c in joined.clients if c.get("id") and c["id"] != self.client_id}
        if joined.mode == "snapshot":
            self.receiving_snapshot = True
            if join["initial"]:
                if joined.key_count > 0 or not join.get("send_scene"):
                    sync.clear_scene()
                self.applier.reset()
                self.tracker.reset()
                self.pending.clear()
                self.shadow.clear()
                self.unacked.clear()
                self._snapshot_keys = None
            else:
                # The log after our last seq is gone: the snapshot replaces what we had.
                self._snapshot_keys = set()
                self._snapshot_seq = joined.seq
        else:
            self._join = None
            self.log(f"resumed room {joined.room!r} after seq {joined.seq}")
        self.revision += 1

    def _on_snapshot_items(self, items: list[list[Any]]) -> None:
        ops = []
        for key, value in items:
            if self._snapshot_keys is not None:
                self._snapshot_keys.add(key)
                if key in self.pending:
                    self.shadow[key] = (self._snapshot_seq, value)
                    continue
            ops.append((key, value))
        self.applier.feed(ops)

    def _on_snapshot_end(self, seq: int) -> None:
        self.receiving_snapshot = False
        self.last_seq = max(self.last_seq, seq) if self._snapshot_keys is not None else seq
        join = self._join
        if self._snapshot_keys is not None:
            gone = [
                (key, None)
                for key in self.tracker.values
                if key not in self._snapshot_keys and key not in self.pending
            ]
            for key in self.pending:
                if key not in self._snapshot_keys:
                    self.shadow[key] = (seq, None)
            self.applier.feed(gone)
            self._snapshot_keys = None
            self.log(f"rejoined room {self.room!r} from a snapshot at seq {seq}")
        else:
            self.log(f"joined room {self.room!r} at seq {seq}")
        self._join = None
        if join is not None and join.get("initial"):
            self._next_full_scan = 0.0  # the first scan uploads the local scene when it was kept
        self.revision += 1

    def _on_applied(self, seq: int, ops: list[list[Any]]) -> None:
        self.last_seq = max(self.last_seq, seq)
        feed = []
        for op in ops:
            key = op[1]
            value = op[2] if op[0] == "set" else None
            if key in self.pending:
                # Our own unacknowledged edit of this key is ordered after this value.
                self.shadow[key] = (seq, value)
                self.stats["ignored"] += 1
                continue
            feed.append((key, value))
        if feed:
            self.applier.feed(feed)
            self.stats["applied"] += len(feed)

    def _on_ack(self, op_id: int, seq: int) -> None:
        self.last_seq = max(self.last_seq, seq)
        ops = self.unacked.pop(op_id, None)
        if ops is None:
            return
        feed = []
        for op in ops:
            key = op[1]
            if self.pending.get(key) != op_id:
                continue
            del self.pending[key]
            held = self.shadow.pop(key, None)
            if held is not None and held[0] > seq:
                feed.append((key, held[1]))
        if feed:
            self.applier.feed(feed)

    def _on_error(self, error) -> None:
        ref = error.ref
        request = self._requests.pop(ref, None) if ref is not None else None
        self.log(f"server: {error.code}: {error.message}")
        if error.fatal and error.code in GIVE_UP_CODES:
            # Reconnecting cannot help: stop trying until the user connects again.
            self.net.stop()
            self.state = STOPPED
            self.live = False
            self.status = f"refused by the server ({error.code})"
            return
        if request is not None:
            kind = request[0]
            if kind == "join" and self._join is not None and self._join.get("ref") == ref:
                if self._join.get("initial"):
                    self._join = None
                else:
                    self._left_room(f"could not rejoin {self.room!r}: {error.code}")
            return
        if ref is not None and ref in self.unacked:
            # The batch had no effect. Keys edited again since then are in a later batch already.
            ops = [op for op in self.unacked.pop(ref) if self.pending.get(op[1]) == ref]
            if error.code in RETRY_CODES and ops:
                self._retry.append((ref, ops))  # sent again, under a new op_id, after a pause
                self._retry_at = time.monotonic() + RETRY_DELAY
                return
            # Refused for good (locked, forbidden, too large...): our value stays local.
            for op in ops:
                del self.pending[op[1]]
                held = self.shadow.pop(op[1], None)
                if held is not None:
                    self.applier.feed([(op[1], held[1])])

    def _send_retries(self) -> None:
        if not self._retry or not self.live or time.monotonic() < self._retry_at:
            return
        retry, self._retry = self._retry, []
        ops = [op for ref, batch in retry for op in batch if self.pending.get(op[1]) == ref]
        for chunk in _split(ops, MAX_BATCH_BYTES):
            self._send_ops(chunk)

    def _apply_remote(self, deadline: float) -> None:
        if self.applier.progress >= 1.0:
            self.progress = 1.0
            return
        while True:
            fraction = self.applier.step(max_ops=APPLY_SLICE)
            if fraction >= 1.0 or time.monotonic() >= deadline:
                break
        self.progress = fraction
        self.revision += 1

    def _send_presence(self) -> None:
        if not self.live:
            return
        now = time.monotonic()
        if now < self._next_presence:
            return
        self._next_presence = now + PRESENCE_INTERVAL
        try:
            state = gather_presence(self.name, self.color)
        except Exception as exc:
            self.log(f"presence: {exc}")
            return
        changed = {k: v for k, v in state.items() if self._presence_sent.get(k) != v}
        if changed:
            self._presence_sent.update(changed)
            self._send(protocol.Presence(state=changed))

    # ---- helpers for the UI and tests ---------------------------------------------------------------

    def pump_until(
        self,
        predicate: Callable[[], bool],
        timeout: float = 10.0,
        interval: float = 0.005,
        update: Callable[[], None] | None = None,
    ) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if update is not None:
                update()
            pump()
            if predicate():
                return True
            time.sleep(interval)
        return False


def _split(ops: list[list[Any]], limit: int) -> list[list[list[Any]]]:
    chunks: list[list[list[Any]]] = [[]]
    size = 0
    for op in ops:
        op_size = len(op[1]) + (len(op[2]) if len(op) > 2 else 0) + 16
        if chunks[-1] and size + op_size > limit:
            chunks.append([])
            size = 0
        chunks[-1].append(op)
        size += op_size
    return [chunk for chunk in chunks if chunk]
