"""History changes too large for one log entry: a checkpoint, restore or fork made in parts.

A checkpoint, restore or fork is one transaction while it fits in one part (``part_bytes``: half a client
frame, so a restore's part, which holds each value twice, fits a log entry, and the operation it logs fits
the ``applied`` frame its members get). A larger one is a sequence of transactions that a crash cannot leave
half done:

- **Checkpoint**: its record is appended first, marked ``partial`` (nothing lists or reads it); each part
  stores its values and its share of the key map under the record; the last step removes the mark.
- **Fork**: the new room is made hidden (meta ``importing``: ``{"fork": mark}``, as an import in parts is),
  filled a part at a time, and shown by the last part.
- **Restore**: the undo checkpoint (and, to a seq, a checkpoint of the target) is made first, in parts if
  need be; then the restore's ops go to the log in parts, each one logged operation every member applies.
  The first part records the restore under ``restoring`` (its target, undo checkpoint and author), the last
  clears it; checkpoints are not deleted while it is there. A write committed between two parts is
  overwritten where it differs from the target (the restore orders after it), and the undo checkpoint, made
  before the first part, does not hold it.

Each names its builder (``mark``: node, process and start time). What a dead or stuck builder leaves is
finished or removed by the leader's maintenance once its builder is known gone (the leader is that node,
started again since) or it is ``PARTIAL_SECONDS`` old (a builder gives up before that): a partial
checkpoint is deleted with the values only it holds, a hidden fork with its room, and a recorded restore
is finished (its target is a checkpoint: what is left is the difference between the room and it).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import trio

from protocol import ErrorCode

from .errors import RequestError
from .history import (
    Refs,
    checkpoint_items,
    checkpoints_path,
    delete_checkpoints_command,
    fork_command,
    history_guard,
    history_version,
    live_refs,
    no_append_after,
    read_checkpoint,
    restore_ops,
    restored_ops,
    restoring_path,
    same_room,
    seq_name,
    value_ops,
)
from .roomstore import RoomStore, abandon_import_command

PARTIAL_SECONDS = 600  # a builder gives up after BUILD_SECONDS; what it left is the leader's after this
BUILD_SECONDS = PARTIAL_SECONDS / 2
ATTEMPTS = 5  # a guarded change rebuilt after losing a race with a write this many times, then unavailable

log = logging.getLogger("blendsync.server")


def part_bytes(max_frame_size: int) -> int:
    """The most a part may carry (estimated by ``item_cost``): half a client frame."""
    return max(max_frame_size // 2, 1)


def item_cost(key: str, value: bytes, refs: tuple[bytes, ...] = ()) -> int:
    """About what one key costs a part: its value (twice in a restore: the key and the logged op), its
    name in the paths, key map and author record, and a blob hold per reference."""
    return 2 * len(value) + 3 * len(key.encode()) + 96 * len(refs) + 200


def total_cost(items: dict[str, bytes], refs: Refs) -> int:
    return sum(item_cost(key, value, refs.get(key, ())) for key, value in items.items())


def split(costs: list[tuple[Any, int]], budget: int) -> list[list[Any]]:
    """Consecutive runs of ``costs``' items, each within ``budget`` (an item alone may exceed it)."""
    parts: list[list[Any]] = []
    size = budget + 1
    for item, cost in costs:
        if size + cost > budget:
            parts.append([])
            size = 0
        parts[-1].append(item)
        size += cost
    return parts


def split_items(items: dict[str, bytes], refs: Refs, budget: int) -> list[tuple[dict[str, bytes], Refs]]:
    costs = [(key, item_cost(key, items[key], refs.get(key, ()))) for key in sorted(items)]
    return [
        ({key: items[key] for key in keys}, {key: refs[key] for key in keys if key in refs})
        for keys in split(costs, budget)
    ]


async def propose_guarded(
    store: RoomStore, room: str, meta: dict[str, Any], build: Callable[[], dict[str, Any]]
) -> dict[str, Any]:
    """Propose a command built from this node's copy of the room whose meta is ``meta``; rebuild it if
    something changed first, unless that room is gone."""
    for _ in range(ATTEMPTS):
        if store.find_meta(room) != meta:
            raise RequestError(ErrorCode.NO_SUCH_ROOM, f"room {room!r} was deleted meanwhile")
        result = await store.propose(build())
        if not result.get("ok"):
            raise RequestError(ErrorCode.INTERNAL, result.get("message", "refused"))
        if result.get("succeeded"):
            return result
        await store.fence()
    raise RequestError(ErrorCode.UNAVAILABLE, "the room kept changing: try again")


def builder_mark(node_id: Any, boot: str) -> dict[str, Any]:
    """What names a builder in the records it leaves: its node, its process (``boot``) and the time."""
    return {"node": node_id, "boot": boot, "t": int(time.time())}


def abandoned(mark: Any, me: dict[str, Any], now: float) -> bool:
    """Whether what the builder ``mark`` names left is the leader's (``me``) to finish or remove: that
    builder handed it over (None), was this node before it started again, or it is ``PARTIAL_SECONDS``
    old."""
    if mark is None:  # handed over by its builder
        return True
    if not isinstance(mark, dict):
        return False
    if mark.get("node") == me["node"] and mark.get("boot") != me["boot"]:
        return True
    return mark.get("t", now) <= now - PARTIAL_SECONDS


# ---- commands ----------------------------------------------------------------------------------------------


def partial_checkpoint_command(
    node: Any, room: str, meta: dict[str, Any], record: dict[str, Any]
) -> dict[str, Any]:
    """The record of a checkpoint made in parts, appended first (its id is taken in seq order, under the
    history guard) and marked partial: nothing lists or reads it until ``finish_checkpoint_command``."""
    condition, guard = history_guard(room, *history_version(node, room))
    append = {"op": "append", "path": list(checkpoints_path(room)), "payload": record}
    return {"compare": [same_room(room, meta), condition], "then": [guard, append]}


def checkpoint_part_command(
    node: Any,
    room: str,
    meta: dict[str, Any],
    number: int,
    record: dict[str, Any],
    part: int,
    items: dict[str, bytes],
    refs: Refs,
) -> dict[str, Any]:
    """One part of a checkpoint made in parts: the values of ``items`` it stores and their key map under
    the record, which must still be the partial ``record`` (not deleted as abandoned)."""
    condition, guard = history_guard(room, *history_version(node, room))
    held, ops, keys = value_ops(node, room, items, refs)
    path = [*checkpoints_path(room), seq_name(number)]
    compare = [same_room(room, meta), condition, {"payload_equals": [path, record]}, *held]
    then = [guard, *ops, {"op": "put", "path": [*path, seq_name(part)], "payload": keys}]
    return {"compare": compare, "then": then}


def finish_checkpoint_command(
    node: Any, room: str, meta: dict[str, Any], number: int, record: dict[str, Any], count: int
) -> dict[str, Any]:
    """The last step of a checkpoint made in parts: the record loses its "partial" mark and counts its
    keys, if it is still the partial ``record``."""
    condition, guard = history_guard(room, *history_version(node, room))
    path = [*checkpoints_path(room), seq_name(number)]
    done = {k: v for k, v in record.items() if k != "partial"} | {"count": count}
    compare = [same_room(room, meta), condition, {"payload_equals": [path, record]}]
    return {"compare": compare, "then": [guard, {"op": "put", "path": path, "payload": done}]}


def restore_part_command(
    room: str,
    meta: dict[str, Any],
    ops: list[list[Any]],
    current_refs: Refs,
    last_seq: int,
    entry: dict[str, Any],
    cap: int | None,
    lock_owner: dict[str, Any] | None,
    marker: dict[str, Any] | None,
) -> dict[str, Any]:
    """One part of a restore in parts: some of its ops as one logged operation, if the map is still the
    one at tree seq ``last_seq``. A part with ``marker`` records the restore as under way (whoever finds
    the record later finishes it); the last part (``marker`` None) clears it. The append stays the last
    op, so the result's last entry names the part's seq."""
    changed, then = restored_ops(room, ops, current_refs, entry, cap, lock_owner)
    compare = [same_room(room, meta), no_append_after(room, last_seq), *changed]
    path = list(restoring_path(room))
    then.insert(
        -1, {"op": "put", "path": path, "payload": marker} if marker else {"op": "delete", "path": path}
    )
    return {"compare": compare, "then": then}


def op_cost(op: list[Any]) -> int:
    return item_cost(op[1], op[2] if op[0] == "set" else b"", tuple(op[3]) if len(op) > 3 else ())


# ---- builders ----------------------------------------------------------------------------------------------


async def checkpoint_in_parts(
    store: RoomStore,
    room: str,
    meta: dict[str, Any],
    items: dict[str, bytes],
    refs: Refs,
    record: dict[str, Any],
    budget: int,
    mark: dict[str, Any],
) -> int:
    """Make a checkpoint of ``items`` (``record``: name, author, time, seq, auto) in parts; its id."""
    node = store.node
    partial = {**record, "keys": {}, "partial": mark}
    result = await propose_guarded(
        store, room, meta, lambda: partial_checkpoint_command(node, room, meta, partial)
    )
    number = result["results"][-1]["seq"]
    path = (*checkpoints_path(room), seq_name(number))

    def still_partial() -> None:
        found = node.read_local(path)
        if found is None or found[1] != partial:
            raise RequestError(
                ErrorCode.CONFLICT, f"checkpoint {number} of room {room!r} was removed while it was made"
            )

    def part(index: int, part_items: dict[str, bytes], part_refs: Refs) -> dict[str, Any]:
        still_partial()
        return checkpoint_part_command(node, room, meta, number, partial, index, part_items, part_refs)

    def finish() -> dict[str, Any]:
        still_partial()
        return finish_checkpoint_command(node, room, meta, number, partial, len(items))

    try:
        with _deadline(room, "checkpoint"):
            for index, (part_items, part_refs) in enumerate(split_items(items, refs, budget), 1):
                await propose_guarded(store, room, meta, lambda: part(index, part_items, part_refs))  # noqa: B023
            await propose_guarded(store, room, meta, finish)
    except BaseException:
        with trio.CancelScope(shield=True), trio.move_on_after(10):
            await drop_partial_checkpoint(store, room, meta, number, partial)
        raise
    return number


async def drop_partial_checkpoint(
    store: RoomStore, room: str, meta: dict[str, Any], number: int, partial: dict[str, Any]
) -> None:
    """Delete a checkpoint left partial, with the values only it held, if it still is that one."""
    node = store.node
    path = (*checkpoints_path(room), seq_name(number))
    found = node.read_local(path)
    if found is None or found[1] != partial:
        return

    def drop() -> dict[str, Any]:
        command = delete_checkpoints_command(node, room, meta, [number])
        command["compare"].append({"payload_equals": [list(path), partial]})
        return command

    try:
        await propose_guarded(store, room, meta, drop)
    except RequestError as exc:
        log.warning("partial checkpoint %s of room %s stays for now: %s", number, room, exc.message)


async def fork_in_parts(
    store: RoomStore,
    room: str,
    items: dict[str, bytes],
    refs: Refs,
    meta: dict[str, Any],
    source: tuple[str, dict[str, Any]],
    author: list[Any],
    budget: int,
    mark: dict[str, Any],
) -> bool:
    """Make the forked room in parts, hidden until the last; False (and no room left behind) if a part is
    refused: the name was taken, the source went or a blob did."""
    hidden = {**meta, "importing": {"fork": mark}}
    parts = split_items(items, refs, budget)
    previous: dict[str, Any] | None = None
    try:
        with _deadline(room, "fork"):
            for index, (part_items, part_refs) in enumerate(parts):
                shown = meta if index == len(parts) - 1 else hidden
                command = fork_command(room, part_items, part_refs, shown, source, author, previous)
                result = await store.propose(command)
                if not result.get("ok"):
                    raise RequestError(ErrorCode.INTERNAL, result.get("message", "refused"))
                if not result.get("succeeded"):
                    if previous is not None:
                        await store.propose(abandon_import_command(room, previous))
                    return False
                previous = shown
    except BaseException:
        if previous is hidden:
            with trio.CancelScope(shield=True), trio.move_on_after(10):
                await store.propose(abandon_import_command(room, hidden))
        raise
    return True


async def restore_in_parts(
    store: RoomStore,
    room: str,
    meta: dict[str, Any],
    marker: dict[str, Any],
    cap: int | None,
    lock_owner: dict[str, Any],
    budget: int,
    check_locks: Callable[[list[list[Any]]], None] = lambda ops: None,
) -> int:
    """Bring the room to the checkpoint ``marker`` names ("target"), a part at a time, each the first ops
    of what still differs (read again after each part, so a write between parts is caught up with);
    returns the tree seq of the last part. ``lock_owner``: keys locked by anyone else are not changed
    (``check_locks`` refuses them before a part is built). Should it fail once a part has committed (a
    key locked meanwhile, a room that keeps changing, the time limit), the restore is handed to the
    leader's next pass (its record loses its builder) and the error raised."""
    node = store.node
    target = checkpoint_items(node, room, read_checkpoint(node, room, marker["target"]))
    entry = {key: marker[key] for key in ("c", "u", "t", "r")} | {"o": marker["undo"]}
    failures = 0
    path = list(restoring_path(room))
    try:
        with _deadline(room, "restore"):
            while True:
                last = store.last_log_seq(room)
                refs = live_refs(node, room)  # the room as it is now: no await until the part is proposed
                ops = restore_ops(target, (dict(store.items(room)), refs))
                if not ops:
                    if node.read_local(restoring_path(room)) is not None:
                        clear = {"op": "delete", "path": path}
                        await store.propose({"compare": [same_room(room, meta)], "then": [clear]})
                    return last
                check_locks(ops)
                chunk = split([(op, op_cost(op)) for op in ops], budget)[0]
                done = len(chunk) == len(ops)
                command = restore_part_command(
                    room, meta, chunk, refs, last, entry, cap, lock_owner, None if done else marker
                )
                result = await store.propose(command)
                if not result.get("ok"):
                    raise RequestError(ErrorCode.INTERNAL, result.get("message", "refused"))
                if not result.get("succeeded"):
                    failures += 1
                    if failures >= ATTEMPTS or store.find_meta(room) != meta:
                        raise RequestError(ErrorCode.UNAVAILABLE, "the room kept changing: try again")
                    await store.fence()
                    continue
                if done:
                    return result["results"][-1]["seq"]
                failures = 0
    except RequestError:
        found = node.read_local(restoring_path(room))
        if found is not None and found[1] == marker and marker.get("builder") is not None:
            handed = {**marker, "builder": None}  # the leader's next pass finishes it
            compare = [same_room(room, meta), {"payload_equals": [path, marker]}]
            with trio.CancelScope(shield=True), trio.move_on_after(10):
                await store.propose(
                    {"compare": compare, "then": [{"op": "put", "path": path, "payload": handed}]}
                )
        raise


@contextmanager
def _deadline(room: str, what: str) -> Iterator[None]:
    """A builder's time limit: past it the leader takes over what it left (``PARTIAL_SECONDS``)."""
    with trio.move_on_after(BUILD_SECONDS) as scope:
        yield
    if scope.cancelled_caught:
        raise RequestError(ErrorCode.UNAVAILABLE, f"the {what} of room {room!r} took too long: try again")
