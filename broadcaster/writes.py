"""The write path: a client's set/delete/batch checked, submitted as one tree transaction, and its outcome.

A committed write is acknowledged by the fan-out (Room.fan_out), at the op's place in the room's stream;
this module reports only failures, and the ack of a retried op that the fan-out will not place
(write_outcome). docs/architecture.md, "Write path", follows one write through.
"""

from __future__ import annotations

import time
from typing import Any

import trio

from protocol import Ack, ErrorCode
from replication import Proposal, ReplicationError, TreeError

from .blobs import Blobs
from .checkpoints import log_cap
from .config import ServerConfig
from .errors import RequestError
from .hub import Hub
from .locks import refuse_locked
from .metrics import Metrics
from .rooms import Room
from .roomstore import RoomStore, appended_seq, lock_payload, write_command
from .session import Session


class Writes:
    def __init__(self, config: ServerConfig, store: RoomStore, hub: Hub, metrics: Metrics, blobs: Blobs):
        self.config = config
        self.store = store
        self.hub = hub
        self.metrics = metrics
        self.blobs = blobs

    async def write(
        self, session: Session, op_id: int, ops: list[list[Any]], seen: int | None = None
    ) -> None:
        if session.room is None:
            raise RequestError(ErrorCode.NOT_IN_ROOM, "join a room before sending operations")
        # An op_id at or below the last one is a retry: the store answers it with the original outcome
        # (the seq it got, if it committed) and never applies it twice.
        # Refusals before this point have no effect at all: the client may retry with the same op_id.
        session.check_op_rate()
        # Backpressure: with too many writes in flight, stop reading from this client until some commit.
        await session.inflight.acquire()
        if session.room is not None:
            await self.blobs.settle(session.room.name, ops)  # see Blobs.write_changes
        room = session.room
        if room is None:  # the room went while this client was held back
            session.inflight.release()
            raise RequestError(ErrorCode.NOT_IN_ROOM, "the room no longer exists")
        try:
            pending = self.check_write(session, ops)
        except BaseException:
            session.inflight.release()
            raise
        try:
            blob_changes = self.blobs.write_changes(session, room, ops)
        except BaseException:
            self._release(session, room, pending, None)
            raise
        session.last_op_id = max(session.last_op_id, op_id)
        pushed, taken = self.blobs.push_list(session.client_id, ops) if blob_changes else ([], {})
        try:
            proposal = self.submit_write(session, op_id, ops, blob_changes, seen, pushed)
        except BaseException:
            self._release(session, room, pending, blob_changes)
            self.blobs.give_back(session.client_id, taken)
            raise
        session.operations += 1
        started = trio.current_time()
        proposal.add_done_callback(
            lambda done: self._write_done(
                session, done, op_id, ops, room, pending, blob_changes, started, taken
            )
        )

    def _release(
        self, session: Session, room: Room, pending: tuple[int, int] | None, blob_changes: Any
    ) -> None:
        session.inflight.release()
        if pending is not None:
            room.pending_keys -= pending[0]
            room.pending_bytes -= pending[1]
        if blob_changes is not None:
            self.blobs.write_done(blob_changes)

    def _write_done(
        self,
        session: Session,
        proposal: Any,
        op_id: int,
        ops: list[list[Any]],
        room: Room,
        pending: tuple[int, int] | None,
        blob_changes: Any,
        started: float,
        taken: dict[bytes, list[bytes]],
    ) -> None:
        self._release(session, room, pending, blob_changes)
        error = self.write_outcome(session, proposal, op_id, room)
        if error is not None:
            self.blobs.give_back(session.client_id, taken)
        if error is not None and blob_changes is not None and error.code == ErrorCode.LOCKED:
            error = self.blobs.refusal(room, ops) or error  # the blob conditions, not a lock, failed
        if error is not None:
            session.reply_error(error.code, error.message, op_id)
        else:
            # The node answers a proposal after publishing its events: the op is already fanned out here.
            self.metrics.observe_write(trio.current_time() - started)

    def check_write(self, session: Session, ops: list[list[Any]]) -> tuple[int, int] | None:
        """Refuse a write that touches another session's locked key or would pass a room limit.

        Returns the (keys, bytes) the write adds, to be counted as pending until it completes, or None when
        no room limit is configured. Costs nothing for rooms without locks and servers without limits.
        """
        room = session.room
        assert room is not None
        if room.has_locks:
            refuse_locked(room, (op[1] for op in ops), session.client_id)
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

    def submit_write(
        self,
        session: Session,
        op_id: int,
        ops: list[list[Any]],
        blob_changes: Any = None,
        seen: int | None = None,
        pushed: list[bytes] | None = None,
    ) -> Proposal:
        room = session.room
        assert room is not None
        guard = self._lock_guard(room, session) if room.has_locks or room.locks_pending else None
        cap = log_cap(self.config, self.store, room.name)
        command = write_command(
            room.name,
            session.client_id,
            op_id,
            ops,
            cap,
            guard,
            session.name,
            int(time.time()),
            seen,
            pushed,
            room.created_index,
        )
        if blob_changes is not None:
            command["compare"] += blob_changes.compare
            command["then"][-1:-1] = blob_changes.then  # before the log append: its result gives the seq
        try:
            proposal = self.store.submit(command, client=session.client_id, seq=op_id)
        except ReplicationError as exc:
            raise RequestError(ErrorCode.UNAVAILABLE, str(exc)) from None
        except TreeError as exc:
            if exc.code == "too_large":
                self.metrics.limit("max_entry_bytes")
                raise RequestError(ErrorCode.LIMIT_EXCEEDED, f"max_entry_bytes: {exc}") from None
            raise RequestError(ErrorCode.INVALID_KEY, str(exc)) from None
        self.metrics.operations += 1
        return proposal

    def _lock_guard(self, room: Room, session: Session) -> Any:
        """A transaction condition: no key of the write is locked by anyone but this session."""
        return (room.name, lock_payload(session.client_id, session.name, self.store.node_id))

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
            if seq is not None and result["results"][-1]["path"][1] != room.name:
                # The op_id committed in another room of this session: its ack is not this room's to give.
                return RequestError(
                    ErrorCode.BAD_MESSAGE, f"op_id {op_id} already committed in another room: use a new op_id"
                )
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
            if self.hub.rooms.get(room.name) is room:
                return RequestError(ErrorCode.LOCKED, "a key of this operation was locked by another client")
            return RequestError(ErrorCode.NO_SUCH_ROOM, "the room no longer exists")
        return None
