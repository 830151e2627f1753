"""One client's session with a broadcaster or a cluster of them, with no I/O of its own.

Everything a client must get right once, whatever runs it (the trio client library, the add-on's network
thread): request refs and their replies, op ids and the unacknowledged operations, the room's seq, the
convergence rule (protocol/convergence.py), and failing over (docs/protocol.md section 2): which node to
try next, when to leave a node, and what to send after reconnecting.

    session = ClientSession(hello, [("127.0.0.1", 12800)], failover=True)
    # connect to session.failover_order()[0], send session.hello
    step = session.receive(event, now)      # for every event read; act on the step
    ref, join = session.join("shot-010")    # requests to send
    op_id, batch = session.write([["set", "k", b"v"]])
    # on a lost connection, or when a step says failover:
    failed_refs = session.connection_lost("why", now)
    # connect to the next address of session.failover_order(), send session.hello, read its welcome
    # into session.receive(), then send every event of session.resume_plan()

``now`` is any monotonic clock in seconds; the session never reads a clock itself.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .admin_events import BackupData, ExportBlob, ExportItems
from .convergence import Change, Overridden, Overrides, PendingEdits, op_changes
from .events import (
    Ack,
    Applied,
    Batch,
    Delete,
    Error,
    Event,
    Hello,
    Joined,
    JoinRoom,
    LeaveRoom,
    Left,
    Ping,
    Pong,
    RoomDeleted,
    RoomEvent,
    Set,
    SnapshotChunk,
    SnapshotEnd,
    Welcome,
)
from .nodes import SILENT_HEARTBEATS, Address, Nodes

REF_BASE = 1 << 40  # request refs live far from op ids: an error's ref then names exactly one of them
GIVE_UP_CODES = frozenset(
    {"auth_failed", "version_mismatch", "kicked", "forbidden"}
)  # another node won't help
UNAVAILABLE = "unavailable"


def op_event(op_id: int, ops: list[list[Any]], *, compact: bool = True, seen: int | None = None) -> Event:
    """The event that carries ``ops`` under ``op_id`` (``compact``: a lone op as ``set``/``delete``);
    ``seen``: the last seq we had when the edit was made."""
    if not compact:
        return Batch(op_id=op_id, ops=ops, seen=seen)
    if len(ops) == 1 and ops[0][0] == "set" and len(ops[0]) == 3:  # a set with blob refs goes as a batch
        return Set(op_id=op_id, key=ops[0][1], value=ops[0][2], seen=seen)
    if len(ops) == 1 and ops[0][0] == "delete":
        return Delete(op_id=op_id, key=ops[0][1], seen=seen)
    return Batch(op_id=op_id, ops=ops, seen=seen)


@dataclass
class Step:
    """What one received event means for the caller."""

    send: list[Event] = field(default_factory=list)  # to write now (pong)
    reply: tuple[int, Event] | None = None  # the answer (or error) to the request with this ref
    acked: tuple[int, int] | None = None  # (op_id, seq): our operation committed
    refused: list[tuple[int, Error]] = field(default_factory=list)  # our operations that had no effect
    # Our operations answered ``unavailable`` on a node we stay on: their outcome is unknown, so they stay
    # unacknowledged (an ack may still come at their place; a resume resends them under their op ids).
    unknown: list[tuple[int, Error]] = field(default_factory=list)
    view: list[Change] = field(default_factory=list)  # for a client showing its own edits at once
    view_keep: set[str] | None = None  # a rejoin snapshot ended: view keys not in here are gone
    snapshot_end: int | None = None  # the room's snapshot is complete at this seq
    resumed: Joined | None = None  # the room was joined again after a failover (resume or snapshot)
    room_lost: bool = False  # the room is gone for us (deleted, or it could not be resumed)
    failover: str | None = None  # leave this node (why): call connection_lost(), connect elsewhere
    fatal: Error | None = None  # the session is over: no node can help
    deliver: bool = False  # the application wants this event (others' operations, notices)
    # Our committed values that another client replaced without having seen them (docs/protocol.md §3).
    overridden: list[Overridden] = field(default_factory=list)


class ClientSession:
    def __init__(
        self,
        hello: Hello,
        addresses: list[Address],
        *,
        failover: bool = False,
        failover_timeout: float = 30.0,
        mirror: bool = True,
        compact_ops: bool = True,
        retry_codes: frozenset[str] = frozenset(),
    ):
        self.hello = hello
        self.nodes = Nodes(addresses)
        self.failover = failover
        self.failover_timeout = failover_timeout
        self.welcome: Welcome | None = None
        self.heartbeat = 5.0
        self.reconnects = 0
        # The room, and (with ``mirror``) its key map at ``seq`` in server order: others' operations
        # when they arrive, ours when their ack arrives at their position in the stream.
        self.room: str | None = None
        self.password: str | None = None
        self.seq = 0
        self.mirror = mirror
        self.state: dict[str, bytes] = {}
        self.unacked: dict[int, list[list[Any]]] = {}  # op_id -> ops, sent but not acknowledged
        self.edits = PendingEdits()
        self.overrides = Overrides()
        self._seen: dict[int, int] = {}  # op_id -> our seq when the op was made (resent with it)
        self.compact_ops = compact_ops
        # Refusals that mean "no effect, try again": the ops wait in ``retrying`` (their keys still
        # pending) until retry_writes() sends them under new op ids.
        self.retry_codes = retry_codes
        self.retrying: list[tuple[int, list[list[Any]]]] = []
        self.last_op_id = 0  # op ids increase across reconnects; the server dedupes retries by them
        self._refs = itertools.count(REF_BASE)
        self._requests: dict[int, str] = {}  # ref -> "request", "join", "resume" or "leave"
        self._join_passwords: dict[int, str | None] = {}
        self._event_ops: set[int] = set()  # op ids of room events (acked, never resent)
        self._snapshot_seq: int | None = None  # a snapshot is arriving (its seq)
        self._rejoin_keys: set[str] | None = None  # keys of a snapshot that replaces a resumed room
        self._last_received = 0.0
        self._outage_since: float | None = None  # when the node in use last failed us, until we resumed
        self._connected = False

    @property
    def addresses(self) -> list[Address]:
        return self.nodes.known

    @property
    def address(self) -> Address | None:
        return self.nodes.current

    # ---- requests ----------------------------------------------------------------------------------

    def request(self, make: Callable[[int], Event]) -> tuple[int, Event]:
        """A request whose reply (or error) comes back as ``Step.reply`` with this ref."""
        ref = next(self._refs)
        self._requests[ref] = "request"
        return ref, make(ref)

    def join(self, room: str, *, password: str | None = None, since: int | None = None) -> tuple[int, Event]:
        ref = next(self._refs)
        self._requests[ref] = "join"
        self._join_passwords[ref] = password
        return ref, JoinRoom(room=room, password=password, since=since, ref=ref)

    def leave(self) -> tuple[int, Event]:
        ref = next(self._refs)
        self._requests[ref] = "leave"
        return ref, LeaveRoom(ref=ref)

    def forget(self, ref: int) -> None:
        """The caller no longer waits for ``ref``."""
        self._requests.pop(ref, None)
        self._join_passwords.pop(ref, None)

    def write(
        self, ops: list[list[Any]], *, op_id: int | None = None, seen: int | None = None
    ) -> tuple[int, Event]:
        """Our own operation: kept until acknowledged, resent under the same op_id after a failover.
        ``seen`` (default: our seq now) is the last seq of the room the edit was made from."""
        if op_id is None:
            op_id = self.last_op_id + 1
        self.last_op_id = max(self.last_op_id, op_id)
        self.unacked[op_id] = ops
        self.edits.edit(op_id, ops)
        seen = self._seen.setdefault(op_id, self.seq if seen is None else seen)
        return op_id, op_event(op_id, ops, compact=self.compact_ops, seen=seen)

    def reserve_op_id(self) -> int:
        """An op id for a later ``write(op_id=...)``, above every one used so far."""
        self.last_op_id += 1
        return self.last_op_id

    def retry_writes(self) -> list[tuple[int, Event]]:
        """Send again, under new op ids, the refused ops (see ``retry_codes``) whose keys were not edited
        again since (those are in a later op already)."""
        retry, self.retrying = self.retrying, []
        out = []
        for op_id, ops in retry:
            still = [op for op in ops if self.edits.pending.get(op[1]) == op_id]
            seen = self._seen.pop(op_id, None)
            if still:
                out.append(self.write(still, seen=seen))  # made from the same state as before
        return out

    def reset_room(self) -> None:
        """We left the room (or it is gone): forget its seq, its key map and our unacknowledged ops."""
        self.room = None
        self.password = None
        self.seq = 0
        self.state = {}
        self.unacked.clear()
        self._seen.clear()
        self.edits.clear()
        self.overrides.clear()
        self.retrying.clear()
        self._snapshot_seq = None
        self._rejoin_keys = None

    def room_event(self, value: bytes) -> tuple[int, Event]:
        """A room event (relayed, not stored): acknowledged, but not resent after a failover."""
        self.last_op_id += 1
        self._event_ops.add(self.last_op_id)
        return self.last_op_id, RoomEvent(op_id=self.last_op_id, value=value)

    # ---- connections -------------------------------------------------------------------------------

    def failover_order(self) -> list[Address]:
        """Every known node, starting after the one in use (which comes last), wrapping around."""
        return self.nodes.order()

    def connecting(self, address: Address) -> Hello:
        """A new connection to ``address`` is being opened: send this hello first."""
        self.nodes.current = address
        self.welcome = None
        self._connected = False
        return self.hello

    def connection_lost(self, reason: str, now: float) -> list[int]:
        """The connection in use is gone (or we leave it); returns the refs (and room events' op ids)
        that failed with it: requests and room events are not replayed on the next node, operations are
        (``resume_plan``).
        """
        self._connected = False
        if self._outage_since is None:
            self._outage_since = now
        failed = [*self._requests, *sorted(self._event_ops)]
        self._requests.clear()
        self._join_passwords.clear()
        self._event_ops.clear()
        return failed

    def resume_plan(self) -> list[Event]:
        """What to send once a new connection is welcomed: join the room again from our seq (a fresh
        snapshot if the last one was cut short), then every unacknowledged operation under its op_id."""
        plan: list[Event] = []
        if self.room is not None:
            since = None if self._snapshot_seq is not None else self.seq
            ref = next(self._refs)
            self._requests[ref] = "resume"
            plan.append(JoinRoom(room=self.room, password=self.password, since=since, ref=ref))
        plan += [
            op_event(i, self.unacked[i], compact=self.compact_ops, seen=self._seen.get(i))
            for i in sorted(self.unacked)
        ]
        return plan

    def silence_deadline(self) -> float | None:
        """With failover: when the server, silent until then, counts as dead (None: no limit)."""
        if not (self.failover and self._connected):
            return None
        return self._last_received + SILENT_HEARTBEATS * self.heartbeat

    def gave_up(self, now: float) -> bool:
        """No node let us resume for ``failover_timeout`` seconds."""
        return self._outage_since is not None and now - self._outage_since >= self.failover_timeout

    # ---- events ------------------------------------------------------------------------------------

    def receive(self, event: Event, now: float) -> Step:
        self._last_received = now
        step = Step()
        match event:
            case Welcome():
                self._on_welcome(event)
            case Ping(nonce=nonce):
                step.send.append(Pong(nonce=nonce))
            case Pong():
                pass
            case Ack(op_id=op_id, seq=seq):
                self._on_ack(op_id, seq, step)
            case Applied(room=room, seq=seq, ops=ops):
                if room == self.room and self._snapshot_seq is None:
                    self._apply(ops)
                    step.overridden = self.overrides.remote(
                        seq, event.client_id, event.op_id, ops, event.seen, self.edits.pending
                    )
                    step.view = self.edits.remote(seq, ops)
                    self.seq = max(self.seq, seq)
                step.deliver = True
            case SnapshotChunk(room=room, items=items) if room == self.room:
                self._on_snapshot_chunk(items, step)
            case SnapshotEnd(room=room, seq=seq) if room == self.room:
                self._on_snapshot_end(seq, step)
            case Error():
                self._on_error(event, step)
            case Joined(ref=ref) if ref in self._requests:
                self._on_joined(event, self._requests.pop(ref), step)
            case Left(ref=ref) if ref in self._requests:
                del self._requests[ref]
                # What we sent before leaving still gets its ack (after `left`), which only settles it.
                self.reset_room()
                step.reply = (ref, event)
            case RoomDeleted(room=room, ref=None) if room == self.room:
                self.reset_room()
                step.room_lost = step.deliver = True
            case ExportItems() | ExportBlob() | BackupData():
                step.deliver = True  # part of an answer: the reply (admin_result) ends it
            case _:
                ref = getattr(event, "ref", None)
                if ref is not None and self._requests.pop(ref, None) is not None:
                    step.reply = (ref, event)
                else:
                    step.deliver = True
        return step

    def _on_welcome(self, welcome: Welcome) -> None:
        self.welcome = welcome
        self.heartbeat = max(0.5, float(welcome.heartbeat_interval or 5.0))
        self._connected = True
        self.nodes.learn(welcome.nodes)
        if self._outage_since is not None:
            self.reconnects += 1
            if self.room is None and not self.unacked:
                self._outage_since = None

    def _on_ack(self, op_id: int, seq: int, step: Step) -> None:
        self._event_ops.discard(op_id)
        ops = self.unacked.pop(op_id, None)
        self._seen.pop(op_id, None)
        if ops is not None:
            if seq > self.seq:  # else already in a snapshot that replaced our state: a duplicate ack
                self._apply(ops)
            step.view = self.edits.acked(op_id, ops, seq)
            self.overrides.committed(seq, ops)
            self.seq = max(self.seq, seq)
        # else a retry's ack at or below our seq, or an op sent before we left its room (its seq is not ours)
        self._outage_since = None
        step.acked = (op_id, seq)

    def _on_joined(self, joined: Joined, kind: str, step: Step) -> None:
        step.reply = (joined.ref, joined) if joined.ref is not None else None
        if kind == "join":
            self.password = self._join_passwords.pop(joined.ref, None)
        self.room = joined.room
        if joined.mode == "snapshot":
            self._snapshot_seq = joined.seq
            self.state = {}
            if kind == "resume":  # the log after our seq is gone: the snapshot replaces what we had
                self._rejoin_keys = set()
            else:
                self.edits.clear()
                self.overrides.clear()
                self.seq = joined.seq
        else:
            self.seq = joined.seq
        if kind == "resume":
            step.resumed = joined
            if not self.unacked:
                self._outage_since = None

    def _on_snapshot_chunk(self, items: list[list[Any]], step: Step) -> None:
        if self.mirror:
            for key, value in items:
                self.state[key] = value
        if self._rejoin_keys is not None:
            self._rejoin_keys.update(key for key, _ in items)
            step.view = self.edits.snapshot(self._snapshot_seq or 0, items)
        else:
            step.view = [(key, value) for key, value in items]

    def _on_snapshot_end(self, seq: int, step: Step) -> None:
        self._snapshot_seq = None
        if self._rejoin_keys is not None:
            self.edits.snapshot_missing(seq, self._rejoin_keys)
            step.view_keep = self._rejoin_keys | set(self.edits.pending)
            self._rejoin_keys = None
        self.seq = seq
        step.snapshot_end = seq

    def _on_error(self, error: Error, step: Step) -> None:
        ref = error.ref
        leave = self.failover and (
            error.code == UNAVAILABLE or (error.fatal and error.code not in GIVE_UP_CODES)
        )
        if error.fatal and not leave:
            step.fatal = error
        if leave:
            step.failover = f"{error.code}: {error.message}"
        kind = self._requests.pop(ref, None) if ref is not None else None
        if kind == "resume":
            if error.code != UNAVAILABLE and not error.fatal:
                # The room is gone for us (deleted, password changed...): its operations cannot commit.
                step.refused = [(op_id, error) for op_id in sorted(self.unacked)]
                self.reset_room()
                step.room_lost = step.deliver = True
            return
        if kind is not None:
            self._join_passwords.pop(ref, None)
            step.reply = (ref, error)
        elif ref in self._event_ops:
            self._event_ops.discard(ref)
            step.refused.append((ref, error))
        elif ref in self.unacked:
            if leave:  # it is resent, under its op_id, on the next node
                pass
            elif error.code == UNAVAILABLE:
                step.unknown.append((ref, error))
            else:
                self._refuse(ref, error, step)
        else:
            if ref is not None and ref < REF_BASE:
                step.refused.append((ref, error))  # an op we stopped tracking (its room was reset)
            step.deliver = True

    def _refuse(self, op_id: int, error: Error, step: Step) -> None:
        ops = self.unacked.pop(op_id)
        step.refused.append((op_id, error))
        if error.code in self.retry_codes:
            self.retrying.append((op_id, ops))  # its keys stay pending: our value is still the one shown
        else:
            self._seen.pop(op_id, None)
            step.view += self.edits.refused(op_id, ops)

    def _apply(self, ops: list[list[Any]]) -> None:
        if not self.mirror:
            return
        for key, value in op_changes(ops):
            if value is None:
                self.state.pop(key, None)
            else:
                self.state[key] = value
