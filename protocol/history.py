"""The messages of a room's history: blame, checkpoints, restore, fork, replay and retention
(docs/protocol.md, section 4, "History"). Registered with the others in events.py; limits in limits.py."""

from __future__ import annotations

from typing import Annotated, Any

from .events import Event, Sender, _event
from .limits import (
    HISTORY_LIMIT,
    RETENTION_DAYS,
    UNIX_TIME,
    CheckpointId,
    CheckpointName,
    FieldError,
    Items,
    Key,
    KeyPrefix,
    Ref,
    RoomName,
    Seq,
)

# ---- client to server ------------------------------------------------------------------------------------


@_event("history", Sender.CLIENT)
class History(Event):
    """Who last changed each key of the joined room that starts with ``prefix`` (from the retained log)."""

    prefix: KeyPrefix = ""
    since: Annotated[int, UNIX_TIME] | None = None  # only changes at or after this time
    limit: Annotated[int, HISTORY_LIMIT] = 1000
    ref: Ref | None = None


@_event("checkpoint", Sender.CLIENT)
class Checkpoint(Event):
    """Name the joined room's current state."""

    name: CheckpointName
    ref: Ref | None = None


@_event("list_checkpoints", Sender.CLIENT)
class ListCheckpoints(Event):
    ref: Ref | None = None


@_event("delete_checkpoint", Sender.CLIENT)
class DeleteCheckpoint(Event):
    checkpoint: CheckpointId
    ref: Ref | None = None


def _one_source(checkpoint: int | None, seq: int | None, *, required: bool) -> None:
    if checkpoint is not None and seq is not None:
        raise FieldError("seq", "must be nil when checkpoint is given")
    if required and checkpoint is None and seq is None:
        raise FieldError("checkpoint", "or seq is required")


@_event("restore", Sender.CLIENT)
class Restore(Event):
    """Bring the joined room back to a checkpoint or a retained seq, as one new operation."""

    checkpoint: CheckpointId | None = None
    seq: Seq | None = None
    ref: Ref | None = None

    def check(self) -> None:
        _one_source(self.checkpoint, self.seq, required=True)


@_event("fork", Sender.CLIENT)
class Fork(Event):
    """A new room ``room`` holding the joined room's state at a checkpoint, a retained seq, or now."""

    room: RoomName
    checkpoint: CheckpointId | None = None
    seq: Seq | None = None
    keep_open: bool = False
    ref: Ref | None = None

    def check(self) -> None:
        _one_source(self.checkpoint, self.seq, required=False)


@_event("set_retention", Sender.CLIENT)
class SetRetention(Event):
    """The joined room's retention (its creator or an admin): nil is the server's setting, 0 no limit."""

    days: Annotated[int, RETENTION_DAYS] | None = None
    ops: Seq | None = None
    ref: Ref | None = None


@_event("replay", Sender.CLIENT)
class Replay(Event):
    """One page of the joined room's key map as it was at ``seq`` (nil: now), read-only: keys after
    ``after`` (nil: from the first), in key order."""

    seq: Seq | None = None
    after: Key | None = None
    ref: Ref | None = None


# ---- server to client ------------------------------------------------------------------------------------


@_event("history_result", Sender.SERVER)
class HistoryResult(Event):
    room: RoomName
    keys: list[list[Any]]  # [key, seq, client_id, name, time], sorted by key
    truncated: bool = False
    ref: Ref | None = None


@_event("checkpoint_made", Sender.SERVER)
class CheckpointMade(Event):
    room: RoomName
    checkpoint: dict[str, Any]  # as in checkpoint_list
    ref: Ref | None = None


@_event("checkpoint_list", Sender.SERVER)
class CheckpointList(Event):
    room: RoomName
    checkpoints: list[dict[str, Any]]  # id, name, by, client_id, time, seq, auto, keys; oldest first
    ref: Ref | None = None


@_event("checkpoint_deleted", Sender.SERVER)
class CheckpointDeleted(Event):
    room: RoomName
    checkpoint: CheckpointId
    ref: Ref | None = None


@_event("restored", Sender.SERVER)
class Restored(Event):
    room: RoomName
    seq: Seq  # the restore's own seq (the room's seq when there was nothing to change)
    undo: CheckpointId | None = None  # the checkpoint taken just before: restore it to undo
    ref: Ref | None = None


@_event("forked", Sender.SERVER)
class Forked(Event):
    room: RoomName
    source: RoomName
    seq: Seq  # the source's seq the new room holds
    ref: Ref | None = None


@_event("replay_state", Sender.SERVER)
class ReplayState(Event):
    room: RoomName
    seq: Seq  # the seq these items are the map at
    first: Seq  # the retained range a replay can show: from first to last (the room's seq)
    last: Seq
    key_count: Seq  # keys in the whole map at seq
    items: Items  # [key, value], sorted by key, after the request's ``after``
    more: bool = False  # the next page starts after the last item's key
    ref: Ref | None = None


@_event("retention", Sender.SERVER)
class Retention(Event):
    room: RoomName
    days: Annotated[int, RETENTION_DAYS] | None = None
    ops: Seq | None = None
    ref: Ref | None = None
