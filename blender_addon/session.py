"""The sync loop: one connection, one room, the scene kept equal to the room's key map.

Everything here runs on Blender's main thread. :func:`pump` is the body of
the add-on's ``bpy.app.timers`` callback; tests call it directly (timers do
not run when Blender is a Python module). One call:

1. **local changes** - unless a snapshot or remote batch is still being
   applied, ``ChangeTracker.scan`` the datablocks the depsgraph reported,
   then ``ChangeTracker.audit`` the next ``AUDIT_SLICE`` datablocks, or fewer
   once ``AUDIT_SECONDS`` have passed (the safety net for what Blender does not
   report; nothing walks the whole scene in one pump), and send the changed and
   deleted keys as one ``batch`` with the next ``op_id``. The batch stays in
   ``unacked`` and its keys in ``pending`` until the server's ``ack``.
2. **network events** - drain the network thread's queue: room list, users, join replies, snapshot
   chunks, ``applied`` operations of others, ``ack`` of ours. The protocol's client session
   (protocol/client_session.py) says what each one changes in the scene; by the convergence rule
   (protocol/convergence.py, docs/protocol.md section 3) a remote value for a key that has an
   unacknowledged local edit is held back in ``shadow`` with its seq, and applied after all only if the
   ack shows that our edit was ordered before it (which happens only when a resume turned into a snapshot).
3. **apply** - ``Applier.step`` in slices until the time budget is spent (or
   as long as the depsgraph's evaluation of the last apply took, if longer);
   the fraction done is the progress bar. Once nothing is queued, what the applier
   left unread (a join's datablocks) is read back in the rest (``read_unread``).
4. **presence** - name, colour, mode, frame, scene, view matrix and
   selection, only what changed, at most ``PRESENCE_INTERVAL`` apart.

On connection loss the network thread reconnects (same session id, next
address); the session then sends the client session's resume plan: join its
room again with ``since`` = the last seq it saw and re-send every
unacknowledged batch with its original ``op_id``; the server applies each at
most once. A node that answers ``unavailable`` (no quorum) is left the same
way, through ``NetThread.drop_connection``.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

import bpy

from . import dirty, sync
from .chunk_transfer import ChunkTransfer, split_batches
from .display_mesh import DisplayMeshes
from .edit_mode import EditModeSync, editors_of, lease_held
from .leases import Leases
from .merge_rereads import MergeRereads
from .moved_keys import MovedKeys
from .net import HelloInfo, NetThread, parse_addresses
from .notices import Notices
from .paint_watch import PaintWatch
from .presence import find_region_3d as find_region_3d  # re-exported: tests reach it here
from .presence import gather_presence
from .protocol_shim import protocol
from .session_connection import ConnectionMixin
from .session_events import CONNECTED, CONNECTING, RETRY_CODES, STOPPED, ServerEventsMixin
from .session_events import DISCONNECTED as DISCONNECTED  # re-exported: tests reach it here
from .session_requests import RoomRequestsMixin
from .view_state import ViewState

AUDIT_SLICE = 8  # datablocks the safety-net audit looks at per pump, at most...
AUDIT_SECONDS = 0.0005  # ...and no more once this much time has passed (at least one)
COUNT_INTERVAL = 0.25  # with nothing reported, bpy.data's lengths (new and removed datablocks) this often
PRESENCE_INTERVAL = 0.1
APPLY_INTERVAL = 0.001  # the timer's interval while values wait to be applied or read back...
BUSY_INTERVAL = 0.01  # ...while other work is queued (the network's), or someone is in edit mode...
IDLE_INTERVAL = 0.05  # ...and otherwise
APPLY_SLICE = 64
# A pump that applies goes on at least as long as Blender's evaluation of the last pump's apply took (at most
# this long): a joiner's scene is evaluated once per pump, which with a fixed budget took as long as applying.
APPLY_EVALUATED_MAX = 0.1

_current: SyncSession | None = None
after_pump: list[Callable[[SyncSession], None]] = []  # UI refresh hooks (ui.py adds one)


def current() -> SyncSession | None:
    return _current


def note_dirty(ids, shading_only=()) -> None:
    """Called by the depsgraph handler: remember which datablocks changed since the last pump."""
    if _current is not None and _current.room is not None:
        dirty.note(ids, shading_only)


forget_dirty = dirty.forget  # called before an undo or redo step: the datablocks noted may be freed by it


def note_baked() -> None:
    """Called after a bake: the images it wrote hold unsaved pixels Blender does not report."""
    if _current is not None:
        _current.paint.baked = True


def note_undo() -> None:
    """Called after an undo or redo step: datablocks may have come back or gone without a depsgraph
    report of the collection, so the next scan reads every uuid again. Every struct is new: what tells
    renamed ones apart (sync/moves.py) starts again."""
    if _current is not None:
        _current.tracker.forget_counts()
        _current.tracker.drop_unread()
        _current.applier.forget_index()
        _current.moved.discard(forget=True)


take_dirty = dirty.take


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


_glance_until = 0.0  # until then, a timer call while someone edits only looks for news (_timer)


def _editing(session: SyncSession | None) -> bool:
    """Someone in the room (here or elsewhere) holds a datablock in edit mode."""
    if session is None or not session.live:
        return False
    return bool(session.edit_mode.leased) or lease_held(session.locks)


def _timer() -> float | None:
    """A live edit (ours or another artist's) is copied, sent and applied in the next pump: while anyone is in
    edit mode the timer runs every ``BUSY_INTERVAL`` (waiting a whole idle interval was a quarter of what
    others waited to see an edit). Between two whole pumps ``IDLE_INTERVAL`` apart, a call pumps only when
    something came in or was reported here, or an edit of ours waits for its pace (a whole pump audits the
    scene, a few ms in a heavy one). While values wait to be applied or read back the next pump comes at
    once: a pump keeps to its budget, and the gap was idle (~0.1 s of a 500-object join)."""
    global _glance_until
    session = _current
    if session is None:
        return None
    if (
        time.monotonic() < _glance_until
        and session.net.inbox.empty()
        and not dirty.pending()
        and not session.edit_mode.waiting
        and _editing(session)
    ):
        return BUSY_INTERVAL
    start = time.monotonic()
    busy = pump()
    applying = _current is not None and (_current.applier.progress < 1.0 or bool(_current.tracker.unread))
    editing = _editing(_current)
    _glance_until = start + IDLE_INTERVAL if editing and not busy else 0.0
    # A join's reply starts the applying: it is looked for as often (sleeping an idle interval first left
    # the snapshot waiting in the inbox, and its chunks unasked for, for most of a whole join's time).
    joining = _current is not None and _current._join is not None
    if joining or (busy and applying):
        return APPLY_INTERVAL
    return BUSY_INTERVAL if busy or editing else IDLE_INTERVAL


def start(addresses: str | list[tuple[str, int]], **kwargs: Any) -> SyncSession:
    """Stop any previous session and connect a new one (the connect happens on the network thread)."""
    global _current
    stop()
    session = SyncSession(addresses, **kwargs)
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
    forget_dirty()
    if bpy.app.timers.is_registered(_timer):
        bpy.app.timers.unregister(_timer)


class SyncSession(ConnectionMixin, RoomRequestsMixin, ServerEventsMixin):
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
        pin: str | None = None,
        lock_selection: bool = False,
    ) -> None:
        self.addresses = parse_addresses(addresses) if isinstance(addresses, str) else list(addresses)
        self.name = name
        self.color = [float(c) for c in color][:4]
        self.session_id = session_id or secrets.token_hex(16)
        info = HelloInfo(name=name, session=self.session_id, token=token, version=version)
        # With a pin (an invite link's), TLS that accepts only that certificate.
        self.net = (net_factory or NetThread)(self.addresses, info, **({"pin": pin} if pin else {}))
        # The protocol's side of the session: refs, op ids, unacked batches, seq, resume, convergence.
        hello = protocol.Hello(
            protocol=protocol.PROTOCOL_VERSION,
            protocol_min=protocol.PROTOCOL_MIN,
            client_name=name[:128],
            client_kind="blender",
            client_version=version,
            session=self.session_id,
            token=token or None,
        )
        self.client_session = protocol.ClientSession(
            hello, self.addresses, failover=True, mirror=False, compact_ops=False, retry_codes=RETRY_CODES
        )
        self.state = CONNECTING
        self.status = "connecting"
        self.address = ""
        self.generation = 0  # the network thread's connection that our sends go to
        self.welcome = None
        self.client_id = ""
        self.messages: list[str] = []  # recent notices and server errors, newest last
        self.notices = Notices()  # our values that others replaced without having seen them
        self.view = ViewState()  # camera, frame, preview range, shading: ours unless following
        self.leases = Leases(lock_selection)  # "lock what I select", and what others hold
        self._before: dict[int, dict[str, bytes | None]] = {}  # op_id -> object keys' values before it
        self._merge_bases: dict[str, tuple[bytes | None, bytes]] = {}  # see _note_sent_mergeable
        self.rereads = MergeRereads()  # what a merge moves, read again once it is applied
        self.moved = MovedKeys()  # what our batches moved or renamed from under others' keys
        self._locked: list[Any] = []  # batches refused as locked, until we know whose lease it was
        self.rooms: dict[str, dict[str, Any]] = {}
        self.users: dict[str, dict[str, Any]] = {}
        # Room state.
        self.live = False  # joined on the current connection (batches may go out)
        self.receiving_snapshot = False
        self.tracker = sync.ChangeTracker()
        self.applier = sync.Applier(self.tracker)
        self.applier.read_later = True  # what it leaves unread, the pumps read back once it is done
        self.chunks = ChunkTransfer()  # chunk uploads before batches, fetches before values are applied
        self.edit_mode = EditModeSync()  # edit-mode copies and the lease of the datablocks edited here
        self.paint = PaintWatch()  # images painted here (Blender does not report them)
        self._next_count = 0.0  # when the scan looks at bpy.data's lengths again if nothing is reported
        self.locks: dict[str, str] = {}  # key -> owner client_id, from locks_changed
        self.progress = 1.0
        self.revision = 0  # bumped whenever something the UI shows changed
        self._requests: dict[int, tuple[str, dict[str, Any]]] = {}
        self._join: dict[str, Any] | None = None  # the (first) join in flight
        self._presence_sent: dict[str, Any] = {}
        self._next_presence = 0.0
        self._retry_at = 0.0  # refused batches (RETRY_CODES) go out again after this
        self._evaluation = 0.0  # seconds the depsgraph's evaluation after the last apply took
        self.stats = {"batches": 0, "applied": 0, "ignored": 0, "reconnects": 0}
        self.display = DisplayMeshes()  # for the room's viewers, if it has any (display_mesh.py)
        self.replay = None  # replay.py: the scene shows the room's past, and nothing here reaches the room

    # The room as the protocol session keeps it.
    room = property(lambda self: self.client_session.room)
    room_password = property(lambda self: self.client_session.password)
    last_seq = property(lambda self: self.client_session.seq)
    unacked = property(lambda self: self.client_session.unacked)  # op_id -> ops, in op_id order
    pending = property(lambda self: self.client_session.edits.pending)  # key -> op_id of its last edit
    shadow = property(lambda self: self.client_session.edits.held)  # key -> (seq, value) held back
    joining = property(lambda self: self._join is not None)  # a join is on its way (not answered yet)

    # ---- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> None:
        if hasattr(self.net, "start"):
            self.net.start()

    def stop(self) -> None:
        if self.live:
            self._send(self.client_session.leave()[1])
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
        return self.receiving_snapshot or self.applier.progress < 1.0 or self.chunks.waiting > 0

    @property
    def idle(self) -> bool:
        """Nothing queued either way and no request awaiting its reply (what tests and tools wait for)."""
        return (
            not self.busy
            and not self.tracker.unread
            and not self.unacked
            and not self._requests
            and not self.client_session.retrying
            and self.net.inbox.empty()
            and (self.room is None or self.live)
        )

    # ---- requests: session_requests.RoomRequestsMixin (UI operators call them) ----------------------

    def follow_view(self, on: bool) -> None:
        """Follow the shared camera, frame, preview range and shading (or keep our own)."""
        changes = self.view.follow(on)
        if changes:
            self.applier.feed(changes)
        self.revision += 1

    def drop_connection(self) -> None:
        """Simulate a network failure (tests, and the panel's debug button)."""
        self.net.drop_connection()

    def _left_room(self, why: str) -> None:
        self.client_session.reset_room()
        self.live = False
        self.receiving_snapshot = False
        self._join = None
        self.applier.reset()
        self.tracker.reset()
        self.chunks.reset()
        self.view.reset()
        self.leases.reset()
        self._before.clear()
        self._merge_bases.clear()
        self.rereads.reset()
        self.moved.reset()
        self._locked.clear()
        self.edit_mode.reset()
        self.paint.reset()
        self.locks.clear()
        self.users.clear()
        self.replay = None
        self.progress = 1.0
        forget_dirty()
        self.log(why)

    # ---- the loop -----------------------------------------------------------------------------------

    def pump(self, budget: float = 0.02) -> bool:
        deadline = time.monotonic() + budget
        if self.replay is None:  # replaying: no scan, no lease, no display mesh, no presence
            if self.room is not None:
                dirty.catch_up()
            copied = self._edit_mode_step()
            self.moved.discard()  # what moved since the last scan's reads was the applier's
            if self.live and self.room is not None:
                note_dirty(self.paint.step(time.monotonic(), self._read_cost))
            self._scan_local()
            if copied:
                self.edit_mode.settle(copied, dirty.discard)
            self.display.pump(self)
        self._send_retries()
        self._drain_network()
        self._apply_remote(deadline)
        if self.tracker.unread and not self.receiving_snapshot and self.applier.progress >= 1.0:
            self._read_back(deadline)  # also while chunks still arrive
        if self.replay is None:
            self._send_presence()
        return self.busy or bool(self.tracker.unread) or not self.net.inbox.empty()

    def _scan_local(self) -> None:
        if self.room is None or self.receiving_snapshot or self._join is not None:
            return
        if self.busy:
            self._scan_settled()
            return
        # A fresh tracker (after joining) knows no datablock yet: this first scan finds them all.
        dirty, shading_only = take_dirty()
        self.tracker.previous.clear()
        now = time.monotonic()
        look_for_new = bool(dirty) or now >= self._next_count
        if look_for_new:
            self._next_count = now + COUNT_INTERVAL
        changed, deleted = self.tracker.scan(dirty, shading_only, look_for_new)
        if dirty or not look_for_new:  # an idle pump looks at the lengths or audits, not both
            audited, audit_deleted = self.tracker.audit(AUDIT_SLICE, AUDIT_SECONDS)
            changed.update(audited)
            deleted += [key for key in audit_deleted if key not in deleted]
        changed, merge_bases = self.rereads.release(changed)
        if merge_bases:  # sockets a merge moved were where the other edit had them, not where ours did
            self.moved.discard()
        self._send_local(changed, deleted)
        self._merge_bases.update(merge_bases)

    def _scan_settled(self) -> None:
        """While a join or a large remote batch fills in: the artist's edits of datablocks whose room values
        are all applied go out now, not once everything is (a joiner works while heavy chunks arrive)."""
        dirty, shading_only = take_dirty()
        if not dirty:
            return
        unsettled = self.applier.unsettled() | self.chunks.waiting_uuids()
        self.tracker.previous.clear()
        changed, deleted, held = self.tracker.scan_settled(dirty, shading_only, unsettled)
        note_dirty(held, shading_only)  # noted again as they were: shading only where they were so
        self._send_local(changed, deleted)

    def _send_local(self, changed: dict[str, bytes], deleted: list[str]) -> None:
        if not changed and not deleted:
            return
        self.display.note_sent(changed)
        self._note_sent_mergeable(changed, deleted)
        ops: list[list[Any]] = self.chunks.with_refs([["set", key, value] for key, value in changed.items()])
        ops += [["delete", key] for key in deleted]
        ops = self._leases_filter(self.view.outgoing(ops))
        self.moved.sent([self._send_ops(chunk) for chunk in split_batches(ops)])

    def _edit_mode_step(self) -> list[Any]:
        """Datablocks in edit mode: copy their edits out when they changed (paced), and hold their lease;
        returns the datablocks copied or marked changed."""
        if not self.live or self.busy or self._join is not None:
            return []
        changed, lock, unlock, held = self.edit_mode.step(
            time.monotonic(), self.pending, self.tracker.cost, dirty.reported
        )
        dirty.discard(held)  # not due yet: the step remembers them
        if changed:
            note_dirty(changed)
        if lock:
            self._request("lock", lambda ref: protocol.Lock(keys=lock, ref=ref))
        if unlock:
            self._request("unlock", lambda ref: protocol.Unlock(keys=unlock, ref=ref))
        return changed

    def _read_cost(self, id_data: bpy.types.ID) -> float:
        uuid = sync.peek_uuid(id_data)
        return 0.0 if uuid is None else self.tracker.cost(uuid)

    def editors(self) -> dict[str, list[str]]:
        """client_id -> names of the datablocks that artist holds in edit mode (from the room's locks)."""
        return editors_of(self.locks)

    def _send_ops(self, ops: list[list[Any]]) -> int:
        op_id, batch = self.client_session.write(ops)
        self._remember_before(op_id, ops)
        self.stats["batches"] += 1
        if self.live:
            self._send_with_chunks(batch)  # else it goes out with the resume plan
        return op_id

    def _send_with_chunks(self, batch) -> None:
        """A batch behind the chunks it references that the server may not hold (ordered by the server)."""
        for event in self.chunks.uploads(batch.ops):
            self._send(event)
        self._send(batch)

    def _apply_remote(self, deadline: float) -> None:
        if self.applier.progress >= 1.0:
            self.progress = 1.0
            self.rereads.applied()
            return
        # What the depsgraph reports before the apply is the artist's (the apply's own reports are dropped
        # below): the applier does not read those datablocks back, so the next scan sends the edit.
        self.rereads.before_apply()
        before = dirty.evaluate()
        self.applier.edited = dirty.reported if before is not None else None
        deadline = max(deadline, time.monotonic() + min(self._evaluation, APPLY_EVALUATED_MAX))
        fraction = self.applier.step(max_ops=APPLY_SLICE, until=deadline)  # slices until the deadline
        self.progress = fraction
        if fraction >= 1.0:
            self.rereads.applied()
        self.revision += 1
        evaluating = time.monotonic()
        # What the apply made Blender report (what the applier read back or took as it came, and what
        # depends on it) is dropped, so no scan reads it.
        if dirty.drop_since(before):
            self._evaluation = time.monotonic() - evaluating

    def _read_back(self, deadline: float) -> None:
        """Read back what the applier left unread, leaving what the artist changed to the scan. The first read
        of a kind makes and removes a throw-away datablock (its settings' defaults), after which Blender
        reports every object: dropped, as after an apply."""
        before = dirty.evaluate()
        self.tracker.read_unread(deadline, dirty.reported)
        dirty.drop_since(before)

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
        self._update_leases(state.get("selection", []))
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
