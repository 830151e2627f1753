"""A room's history on request: blame, checkpoints (named and automatic), restore, fork, replay and
retention.

Who may do what (docs/protocol.md, "History"): every member of a room may read its history, name, list
and delete checkpoints, restore and fork it (there is one room role, editor); only the room's creator or an
admin changes its retention. Every change is one replicated transaction built from this node's copy (after
a fence) and guarded so that it applies only to the state it was built from (a checkpoint, which names the
seq it read, only to what it depends on: writes committed meanwhile do not void it): the commands are in
history.py. Automatic checkpoints and age-based compaction run on the leader (checkpoint_loop).
"""

from __future__ import annotations

import logging
import secrets
import time
from typing import Any

import trio

from protocol import (
    Checkpoint,
    CheckpointDeleted,
    CheckpointList,
    CheckpointMade,
    DeleteCheckpoint,
    ErrorCode,
    Fork,
    Forked,
    History,
    HistoryResult,
    ListCheckpoints,
    Replay,
    Restore,
    Restored,
    Retention,
    SetRetention,
)

from . import history, replay
from .config import ServerConfig
from .errors import RequestError
from .history_parts import (
    ATTEMPTS,
    abandoned,
    builder_mark,
    checkpoint_in_parts,
    drop_partial_checkpoint,
    fork_in_parts,
    op_cost,
    part_bytes,
    propose_guarded,
    restore_in_parts,
    total_cost,
)
from .hub import Hub
from .locks import refuse_locked
from .rooms import Room
from .roomstore import RoomStore, abandon_import_command, lock_payload, log_path
from .session import Session

log = logging.getLogger("blendsync.server")


def log_cap(config: ServerConfig, store: RoomStore, room: str) -> int | None:
    """The room's log cap: its own ``ops`` retention, else the server's ``room_tail``; None keeps all."""
    ops = history.history_version(store.node, room)[1].get("ops")
    ops = config.room_tail if ops is None else ops
    return ops or None


class RoomHistory:
    def __init__(self, config: ServerConfig, store: RoomStore, hub: Hub):
        self.config = config
        self.store = store
        self.hub = hub
        self.replay_cache = replay.ReplayCache()
        self.part_bytes = part_bytes(config.max_frame_size)  # more than this goes in parts (history_parts)
        self.boot = secrets.token_hex(8)  # this process, in the records a change in parts leaves

    def mark(self) -> dict[str, Any]:
        return builder_mark(self.store.node_id, self.boot)

    def _room(self, session: Session) -> Room:
        if session.room is None:
            raise RequestError(ErrorCode.NOT_IN_ROOM, "join a room first")
        return session.room

    async def handle(self, session: Session, request: Any) -> None:
        room = self._room(session)
        await self.store.fence()  # answer from a copy that has everything committed before the request
        if session.room is not room:
            raise RequestError(ErrorCode.NOT_IN_ROOM, "the room went while the request waited")
        # The room the session is in, as of now: every command below requires this meta (its incarnation),
        # so none lands in a room deleted and created again under its name before it commits.
        meta = self.store.meta(room.name)
        match request:
            case History():
                rows, truncated = history.blame(
                    self.store.node, room.name, room.seq_base, request.prefix, request.since, request.limit
                )
                session.send(HistoryResult(room=room.name, keys=rows, truncated=truncated, ref=request.ref))
            case Replay():  # read-only: the room's map at a retained seq, a page at a time
                page = replay.replay_page(
                    self.store.node,
                    room.name,
                    room.seq_base,
                    self.store.meta(room.name),
                    request.seq,
                    request.after,
                    self.config.snapshot_chunk_bytes,
                    request.ref,
                    self.replay_cache,
                )
                session.send(page)
            case ListCheckpoints():
                found = history.checkpoint_list(self.store.node, room.name)
                session.send(CheckpointList(room=room.name, checkpoints=found, ref=request.ref))
            case Checkpoint():
                made = await self.checkpoint(
                    room.name, meta, request.name, session.name, session.client_id, auto=False
                )
                session.send(CheckpointMade(room=room.name, checkpoint=made, ref=request.ref))
            case DeleteCheckpoint():
                history.read_checkpoint(self.store.node, room.name, request.checkpoint)
                await self._guarded(
                    room.name,
                    meta,
                    lambda: history.delete_checkpoints_command(
                        self.store.node, room.name, meta, [request.checkpoint]
                    ),
                )
                session.send(
                    CheckpointDeleted(room=room.name, checkpoint=request.checkpoint, ref=request.ref)
                )
            case Restore():
                seq, undo = await self.restore(session, room, meta, request.checkpoint, request.seq)
                session.send(Restored(room=room.name, seq=seq, undo=undo, ref=request.ref))
            case Fork():
                seq = await self.fork(session, room, meta, request)
                session.send(Forked(room=request.room, source=room.name, seq=seq, ref=request.ref))
            case SetRetention():
                if not session.user.is_admin and meta.get("created_by") != session.user.name:
                    raise RequestError(
                        ErrorCode.FORBIDDEN, "only the room's creator or an admin sets retention"
                    )
                settings = {"days": request.days, "ops": request.ops}
                await self._guarded(
                    room.name,
                    meta,
                    lambda: history.retention_command(self.store.node, room.name, meta, settings),
                )
                session.send(Retention(room=room.name, days=request.days, ops=request.ops, ref=request.ref))

    def _still(self, room: str, meta: dict[str, Any]) -> None:
        """Refuse to build for a room that is gone: deleted, maybe created again under its name."""
        if self.store.find_meta(room) != meta:
            raise RequestError(ErrorCode.NO_SUCH_ROOM, f"room {room!r} was deleted meanwhile")

    async def _guarded(self, room: str, meta: dict[str, Any], build: Any) -> dict[str, Any]:
        """Propose a command built from this node's copy of the room whose meta is ``meta``; rebuild it if
        something changed first, unless that room is gone."""
        return await propose_guarded(self.store, room, meta, build)

    def _record(self, name: str, by: str, client_id: str, seq: int, auto: bool) -> dict[str, Any]:
        return {"name": name, "by": by, "c": client_id, "t": int(time.time()), "seq": seq, "auto": auto}

    async def checkpoint(
        self, room: str, meta: dict[str, Any], name: str, by: str, client_id: str, *, auto: bool
    ) -> dict[str, Any]:
        """Checkpoint the room whose meta is ``meta`` (refused if it is gone, whatever took its name)."""
        node = self.store.node
        state: dict[str, Any] = {}
        seq_base = meta.get("seq_base", 0)

        def read() -> tuple[dict[str, bytes], history.Refs]:
            self._still(room, meta)
            last = self.store.last_log_seq(room)
            items = dict(self.store.items(room))
            state["record"] = self._record(name, by, client_id, last + seq_base, auto)
            state["keys"] = len(items)
            return items, history.live_refs(node, room)

        items, refs = read()
        if total_cost(items, refs) > self.part_bytes:
            number = await checkpoint_in_parts(
                self.store, room, meta, items, refs, state["record"], self.part_bytes, self.mark()
            )
        else:
            # The first attempt takes what was read; each other reads again (a blob let go meanwhile is no
            # longer named by the map).
            first = [(items, refs)]

            def build() -> dict[str, Any]:
                read_now = first.pop() if first else read()
                return history.checkpoint_command(node, room, meta, *read_now, state["record"])

            number = (await self._guarded(room, meta, build))["results"][-1]["seq"]
        payload = {**state["record"], "keys": {}}
        return {**history.describe_checkpoint(number, payload), "keys": state["keys"]}

    async def store_checkpoint(
        self, room: str, meta: dict[str, Any], items: dict[str, bytes], refs: history.Refs, record: Any
    ) -> int:
        """Checkpoint ``items``, the room's map at ``record["seq"]``, in parts if need be; its id."""
        if total_cost(items, refs) > self.part_bytes:
            return await checkpoint_in_parts(
                self.store, room, meta, items, refs, record, self.part_bytes, self.mark()
            )
        node = self.store.node
        result = await self._guarded(
            room, meta, lambda: history.checkpoint_command(node, room, meta, items, refs, record)
        )
        return result["results"][-1]["seq"]

    async def restore(
        self, session: Session, room: Room, meta: dict[str, Any], checkpoint: int | None, seq: int | None
    ) -> tuple[int, int | None]:
        node = self.store.node
        outcome: dict[str, Any] = {}

        def build() -> dict[str, Any] | None:
            self._still(room.name, meta)
            last = self.store.last_log_seq(room.name)
            if checkpoint is not None:
                target = history.checkpoint_items(
                    node, room.name, history.read_checkpoint(node, room.name, checkpoint)
                )
                source: dict[str, int] = {"checkpoint": checkpoint}
            else:
                assert seq is not None
                target = history.state_at(node, room.name, seq, room.seq_base, meta)
                source = {"seq": seq}
            history.check_blobs(node, room.name, target[1], "restore")
            current = dict(self.store.items(room.name)), history.live_refs(node, room.name)
            ops = history.restore_ops(target, current)
            check_locks(ops)
            label = (
                f"before restore of {'checkpoint ' + str(checkpoint) if checkpoint else 'seq ' + str(seq)}"
            )
            outcome.update(ops=ops, seq=last + room.seq_base, target=target, source=source, label=label)
            if not ops:
                return None
            if total_cost(*current) + sum(op_cost(op) for op in ops) > self.part_bytes:
                outcome["parts"] = True
                return None
            undo_number = _next_child(node, history.checkpoints_path(room.name))
            undo = self._record(label, session.name, session.client_id, last + room.seq_base, True)
            entry = {"c": session.client_id, "o": undo_number, "u": session.name, "t": undo["t"], "r": source}
            cap = log_cap(self.config, self.store, room.name)
            owner = None
            if room.has_locks or room.locks_pending:
                owner = lock_payload(session.client_id, session.name, self.store.node_id)
            command, _ = history.restore_command(
                node, room.name, meta, target, current, last, undo, entry, cap, owner
            )
            outcome["undo"] = undo_number
            return command

        def check_locks(ops: list[list[Any]]) -> None:  # like a write: another session's locked key stays
            refuse_locked(room, (op[1] for op in ops), session.client_id)

        for _ in range(ATTEMPTS):
            command = build()
            if outcome.get("parts"):
                return await self._restore_in_parts(session, room, meta, outcome, check_locks)
            if command is None:
                return outcome["seq"], None  # already the target state: nothing to append
            result = await self.store.propose(command)
            if not result.get("ok"):
                raise RequestError(ErrorCode.INTERNAL, result.get("message", "refused"))
            if result.get("succeeded"):
                log.info("%s restored room %s (%s ops)", session.name, room.name, len(outcome["ops"]))
                return result["results"][-1]["seq"] + room.seq_base, outcome["undo"]
            await self.store.fence()
        raise RequestError(ErrorCode.UNAVAILABLE, "the room kept changing: try again")

    async def _restore_in_parts(
        self, session: Session, room: Room, meta: dict[str, Any], outcome: dict[str, Any], check_locks: Any
    ) -> tuple[int, int]:
        """A restore too large for one transaction (history_parts.py): its target made a checkpoint (unless
        it is one), then the undo checkpoint, then the ops a part at a time."""
        node = self.store.node
        source = outcome["source"]
        target = source.get("checkpoint")
        if target is None:
            record = self._record(
                f"target of restore to seq {source['seq']}",
                session.name,
                session.client_id,
                source["seq"],
                True,
            )
            target = await self.store_checkpoint(room.name, meta, *outcome["target"], record)
        last = self.store.last_log_seq(room.name)
        current = dict(self.store.items(room.name)), history.live_refs(node, room.name)
        undo = self._record(outcome["label"], session.name, session.client_id, last + room.seq_base, True)
        undo_number = await self.store_checkpoint(room.name, meta, *current, undo)
        marker = {
            "target": target,
            "undo": undo_number,
            "c": session.client_id,
            "u": session.name,
            "t": int(time.time()),
            "r": source,
            "builder": self.mark(),
        }
        owner = lock_payload(session.client_id, session.name, self.store.node_id)
        cap = log_cap(self.config, self.store, room.name)
        seq = await restore_in_parts(
            self.store, room.name, meta, marker, cap, owner, self.part_bytes, check_locks
        )
        log.info("%s restored room %s in parts (%s ops)", session.name, room.name, len(outcome["ops"]))
        return seq + room.seq_base, undo_number

    async def fork(self, session: Session, room: Room, meta: dict[str, Any], request: Fork) -> int:
        if not session.user.may_use_room(request.room):
            raise RequestError(ErrorCode.FORBIDDEN, "this token is for another room")
        self.hub.check_room_count()
        node = self.store.node
        if request.checkpoint is not None:
            payload = history.read_checkpoint(node, room.name, request.checkpoint)
            (items, refs), seq = history.checkpoint_items(node, room.name, payload), payload["seq"]
        else:
            seq = request.seq if request.seq is not None else self.hub.current_seq(room.name)
            items, refs = history.state_at(node, room.name, seq, room.seq_base, meta)
        history.check_blobs(node, room.name, refs, "fork")
        new_meta = {
            "keep_open": request.keep_open,
            "password": None,
            "created_by": session.name,
            "forked_from": {"room": room.name, "seq": seq},
        }
        author = [session.client_id, session.name, int(time.time())]
        new_meta, source = history.fork_meta(new_meta), (room.name, meta)
        if total_cost(items, refs) > self.part_bytes:
            made = await fork_in_parts(
                self.store, request.room, items, refs, new_meta, source, author, self.part_bytes, self.mark()
            )
        else:
            command = history.fork_command(request.room, items, refs, new_meta, source, author)
            result = await self.store.propose(command)
            if not result.get("ok"):
                raise RequestError(ErrorCode.INTERNAL, result.get("message", "refused"))
            made = result.get("succeeded")
        if not made:
            await self.store.fence()
            if self.store.find_meta(request.room) is None:  # not taken: the source or a blob went
                self._still(room.name, meta)
                history.check_blobs(node, room.name, refs, "fork")
                raise RequestError(ErrorCode.CONFLICT, "the room changed meanwhile: fork again")
            raise RequestError(ErrorCode.ROOM_EXISTS, f"room {request.room!r} already exists")
        return seq


# ---- automatic checkpoints and age-based compaction -------------------------------------------------------

MAINTENANCE_PERIOD = 30.0  # seconds between passes over the rooms (at most; less for short intervals)
COMPACT_BATCH = 10_000  # log entries dropped per room per pass


class HistoryMaintenance:
    """On the leader: automatic checkpoints after ``checkpoint_interval`` seconds of activity, the oldest
    automatic ones beyond ``auto_checkpoints_kept`` deleted, and logged operations past a room's age limit
    dropped. Each step is a guarded transaction, so a pass on a node that just lost the lead does no harm."""

    def __init__(self, config: ServerConfig, history: RoomHistory):
        self.config = config
        self.history = history
        self.store = history.store

    async def run(self) -> None:
        period = MAINTENANCE_PERIOD
        if self.config.checkpoint_interval:
            period = min(period, max(self.config.checkpoint_interval / 4, 0.05))
        while True:
            await trio.sleep(period)
            if self.store.node.status().get("role") != "leader":
                continue
            try:
                await self.run_once(time.time())
            except Exception:  # a bug here must not stop the server: log it, try again next pass
                log.exception("history maintenance failed")

    async def run_once(self, now: float) -> None:
        for room, _ in self.store.metas():
            try:
                await self.maintain(room, now)
            except RequestError as exc:  # the room went, or no quorum: the next pass tries again
                log.debug("history maintenance of %s: %s", room, exc.message)

    async def maintain(self, name: str, now: float) -> None:
        node = self.store.node
        # Read once: every step below is for this room, and is refused if it went meanwhile (a room created
        # again under its name waits for the next pass, which reads it afresh).
        meta = self.store.find_meta(name)
        if meta is None:
            return
        await self.leftovers(name, meta, now)
        if meta.get("importing"):
            return
        interval = self.config.checkpoint_interval
        if interval:
            checkpoints = history.checkpoint_list(node, name)
            seq_base = meta.get("seq_base", 0)
            # The latest by seq: a restore in parts checkpoints its target, an older seq, after the others.
            latest = max(checkpoints, key=lambda c: (c["seq"], c["time"]), default=None)
            since = latest["seq"] - seq_base if latest else 0
            first = node.read_local((*log_path(name), history.seq_name(since + 1)))
            # Activity: the first operation after the latest checkpoint is interval old. Once the log's cap
            # has trimmed it (seconds later in a busy room) its time is gone: it came after that
            # checkpoint, whose time stands for it; taking the trim for age checkpointed a busy room at
            # every pass. Before any checkpoint, a trimmed first operation is activity enough.
            if first is not None:
                active = first[1].get("t", 0) <= now - interval
            else:
                active = self.store.last_log_seq(name) > since
                if latest is not None:
                    active = active and latest["time"] <= now - interval
            if active:
                await self.history.checkpoint(name, meta, "automatic", "", "~server~", auto=True)
                checkpoints = history.checkpoint_list(node, name)
            autos = [c["id"] for c in checkpoints if c["auto"]]
            kept = self.config.auto_checkpoints_kept
            if kept and len(autos) > kept:
                old = autos[: len(autos) - kept]
                await self.history._guarded(
                    name, meta, lambda: history.delete_checkpoints_command(node, name, meta, old)
                )
        days = history.history_version(node, name)[1].get("days")
        days = self.config.history_days if days is None else days
        if days:
            cutoff = now - days * 86400
            names = []
            for number, entry in self.store.log_entries(name, limit=COMPACT_BATCH):  # oldest first
                if entry.get("t", 0) >= cutoff:
                    break
                names.append(history.seq_name(number))
            if names:
                await self.store.propose(history.compact_command(name, meta, names))

    async def leftovers(self, name: str, meta: dict[str, Any], now: float) -> None:
        """What a checkpoint, fork, restore or import made in parts left when its builder died or gave up
        (history_parts.py): a hidden fork or import and a partial checkpoint are removed, a recorded
        restore is finished."""
        node, me = self.store.node, self.history.mark()
        hidden = meta.get("importing")
        if isinstance(hidden, dict):
            what = "fork" if "fork" in hidden else "import"
            if abandoned(hidden.get(what), me, now):
                log.warning("removing the unfinished %s %s", what, name)
                await self.store.propose(abandon_import_command(name, meta))
            return
        for number, payload in history.partial_checkpoints(node, name):
            if abandoned(payload["partial"], me, now):
                log.warning("removing the unfinished checkpoint %s of room %s", number, name)
                await drop_partial_checkpoint(self.store, name, meta, number, payload)
        found = node.read_local(history.restoring_path(name))
        if found is not None and abandoned(found[1].get("builder"), me, now):
            log.warning("finishing the restore of room %s that %s started", name, found[1]["u"])
            cap = log_cap(self.config, self.store, name)
            nobody = {"owner": None}  # a key anyone has locked is left until the lock goes
            await restore_in_parts(self.store, name, meta, found[1], cap, nobody, self.history.part_bytes)


def _next_child(node: Any, path: tuple[str, ...]) -> int:
    found = node.read_local(path)
    return found[0].next_seq if found is not None else 1
