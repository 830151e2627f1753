"""A room's history in the replicated tree: blame from the log, checkpoints, and the state at a seq.

Besides the layout in roomstore.py, a room with history has:
    /rooms/<room>/history            {"days": int, "ops": int}: the room's own retention (0: the server's)
                                     Its payload_version orders every change to checkpoints and values:
                                     each such command is a cas on it, so two nodes never race.
    /rooms/<room>/checkpoints/<id>   {"name", "by", "c", "t", "seq", "auto", "keys": {key: value name}}
                                     A checkpoint made in parts (history_parts.py) has "keys" {} and its
                                     key map in children <id>/<part> ({key: value name} each), "count"
                                     its keys; while it is being made, "partial": its builder (listed
                                     nowhere, read by nothing but its deletion).
    /rooms/<room>/restoring          {"target", "undo", "c", "u", "t", "r", "builder"}: a restore in
                                     parts under way (history_parts.py)
    /rooms/<room>/values/<name>      a value some checkpoint holds: checkpoints share unchanged values, so
                                     one of an unchanged room costs its key map. A value without blob
                                     references is named by the SHA-256 hex of its bytes and stored as
                                     them; one with references by that, "-" and the SHA-256 hex of its
                                     sorted references, stored as {"value": bytes, "refs": [hash, ...]},
                                     and it holds those blobs (holder "v:", blobs.py) for as long as it
                                     exists: a checkpoint's blobs stay while the checkpoint does.

Every log entry names its author and time besides its ops: {"c": client_id, "o": op_id, "ops": [...],
"u": user or client name, "t": unix seconds when the accepting node submitted it}; a restore's entry also
has "r": {"checkpoint": id} or {"seq": n}. The same transaction records, per key it changes, who changed it
last (/rooms/<room>/authors/<key>, roomstore.py): blame reads those records, so it names a key's author
however long ago the change was and whatever the log still retains. A fork's keys are recorded at seq 0
(its maker's), an import's with the authors its file carries (their seqs in the exported room, at most
its seq_base) or else its importer's at seq 0, each in the transaction that writes it. A live key
without a record (written, or imported, before rooms had them) is looked up in the retained log, newest
first.

Log entries do not hold the blobs their values reference (only live keys, uploads and checkpoint values
do): the state at a retained seq may name a blob that a later write let go. Restore and fork check every
reference of the state they bring back and refuse (no_such_blob) before changing anything if one is gone;
a checkpoint's state is always complete.

Every command here is built from this node's copy of the room and commits later: each requires the room's
meta as it was read (roomstore.same_room), so none lands in a room deleted and created again under the
same name meanwhile, whose history version, checkpoint ids and log seqs start again and could match.

This module builds commands and reads this node's copy; checkpoints.py answers the requests.
"""

from __future__ import annotations

import hashlib
from typing import Any

from protocol import ErrorCode
from replication import format_path

from .blob_layout import (
    blob_path,
    exists_conditions,
    hold_ops,
    key_hold_changes,
    room_refs_path,
    value_holder,
)
from .errors import RequestError
from .roomstore import (
    ROOMS,
    author_ops,
    authors_path,
    keys_path,
    lock_guards,
    log_path,
    meta_path,
    new_incarnation,
    room_path,
    same_room,
)

MAX_BLAME_RESULTS = 10_000


def history_path(room: str) -> tuple[str, ...]:
    return (ROOMS, room, "history")


def checkpoints_path(room: str) -> tuple[str, ...]:
    return (ROOMS, room, "checkpoints")


def values_path(room: str) -> tuple[str, ...]:
    return (ROOMS, room, "values")


def restoring_path(room: str) -> tuple[str, ...]:
    return (ROOMS, room, "restoring")


def seq_name(number: int) -> str:
    """The tree's name for the ``number``-th appended child (docs/tree.md, ``append``)."""
    return f"{number:020d}"


Refs = dict[str, tuple[bytes, ...]]  # key -> the sorted blobs its value references (keys with none absent)


def value_name(value: bytes, refs: tuple[bytes, ...] = ()) -> str:
    """A checkpoint value's name under values/: the same bytes with other references are another value."""
    digest = hashlib.sha256(value).hexdigest()
    return f"{digest}-{hashlib.sha256(b''.join(refs)).hexdigest()}" if refs else digest


def op_refs(op: list[Any]) -> tuple[bytes, ...]:
    return tuple(sorted(op[3])) if op[0] == "set" and len(op) == 4 and op[3] else ()


def set_op(key: str, value: bytes, refs: tuple[bytes, ...]) -> list[Any]:
    return ["set", key, value, list(refs)] if refs else ["set", key, value]


# ---- reads ---------------------------------------------------------------------------------------------


def blame(
    node: Any, room: str, seq_base: int, prefix: str, since: int | None, limit: int
) -> tuple[list[list[Any]], bool]:
    """Who last changed each live key starting with ``prefix``: sorted [key, seq, client_id, name, time]
    (time 0 when the change predates authorship), and whether ``limit`` cut the list. Keys last changed
    before ``since`` are not listed, nor deleted ones."""
    rows: list[list[Any]] = []
    recorded: set[str] = set()
    keys, authors = node.read_local(keys_path(room)), node.read_local(authors_path(room))
    # Records exist only for live keys: equal counts mean none is missing, the usual case.
    complete = keys is None or keys[0].child_count == (authors[0].child_count if authors else 0)
    take = limit + 1 if complete and since is None else None  # enough to tell that limit cut the list
    for key, (seq, client_id, name, when) in node.list_prefixed_local(authors_path(room), prefix, take):
        recorded.add(key)
        if since is None or when >= since:
            rows.append([key, seq + seq_base, client_id, name, when])
    if not complete:
        missing = {key for key, _ in node.list_prefixed_local(keys_path(room), prefix)}
        rows += _blame_from_log(node, room, seq_base, missing - recorded, since)
        rows.sort()
    return rows[:limit], len(rows) > limit


LOG_PAGE = 1000  # log entries read at a time, newest first, for keys without a record


def _blame_from_log(
    node: Any, room: str, seq_base: int, missing: set[str], since: int | None
) -> list[list[Any]]:
    """The last retained change of each key in ``missing``: the log read backwards a page at a time, until
    every key is found or the retained log ends."""
    rows: list[list[Any]] = []
    found = node.read_local(log_path(room))
    oldest = node.seq_children_local(log_path(room), 0, 1)
    if found is None or not oldest or not missing:
        return rows
    high, low = found[0].next_seq - 1, oldest[0][0]
    while missing and high >= low:
        start = max(low - 1, high - LOG_PAGE)
        for number, _, entry in reversed(node.seq_children_local(log_path(room), start, high - start)):
            if number > high:  # past a gap: read already
                continue
            when = entry.get("t", 0)
            for op in reversed(entry["ops"]):
                key = op[1]
                if key in missing:
                    missing.discard(key)
                    if since is None or when >= since:
                        rows.append([key, number + seq_base, entry["c"], entry.get("u", ""), when])
        high = start
    return rows


def history_version(node: Any, room: str) -> tuple[int, dict[str, Any]]:
    found = node.read_local(history_path(room))
    if found is None:
        return 0, {}
    return found[0].payload_version, found[1] if isinstance(found[1], dict) else {}


def checkpoint_records(node: Any, room: str) -> list[tuple[int, dict[str, Any]]]:
    """Every complete checkpoint of the room as (id, record), oldest first (its key map may be in parts:
    ``key_map`` reads it whole)."""
    return [
        (int(name), payload)
        for name, _, payload in node.list_local(checkpoints_path(room))
        if not payload.get("partial")
    ]


def partial_checkpoints(node: Any, room: str) -> list[tuple[int, dict[str, Any]]]:
    """The checkpoints still being made in parts (or left so by a builder that died)."""
    return [
        (int(name), payload)
        for name, _, payload in node.list_local(checkpoints_path(room))
        if payload.get("partial")
    ]


def checkpoint_list(node: Any, room: str) -> list[dict[str, Any]]:
    """Every complete checkpoint of the room, oldest first, without its key map."""
    return [describe_checkpoint(number, payload) for number, payload in checkpoint_records(node, room)]


def key_map(node: Any, room: str, number: int, payload: dict[str, Any]) -> dict[str, str]:
    """A checkpoint's whole key map: its record's, and its parts' for one made in parts."""
    if "count" not in payload and not payload.get("partial"):
        return payload["keys"]
    merged = dict(payload["keys"])
    for _, _, part in node.list_local((*checkpoints_path(room), seq_name(number))):
        merged.update(part)
    return merged


def describe_checkpoint(number: int, payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": number,
        "name": payload["name"],
        "by": payload["by"],
        "client_id": payload["c"],
        "time": payload["t"],
        "seq": payload["seq"],
        "auto": payload["auto"],
        "keys": payload.get("count", len(payload["keys"])),
    }


def read_checkpoint(node: Any, room: str, number: int) -> dict[str, Any]:
    """A complete checkpoint's record, its ``keys`` the whole key map."""
    found = node.read_local((*checkpoints_path(room), seq_name(number))) if number >= 1 else None
    if found is None or found[1].get("partial"):
        raise RequestError(ErrorCode.NO_SUCH_CHECKPOINT, f"no checkpoint {number} in room {room!r}")
    return {**found[1], "keys": key_map(node, room, number, found[1])}


def checkpoint_items(node: Any, room: str, payload: dict[str, Any]) -> tuple[dict[str, bytes], Refs]:
    """A checkpoint's key map and the blob references of its values."""
    values = values_path(room)
    items: dict[str, bytes] = {}
    refs: Refs = {}
    for key, name in payload["keys"].items():
        found = node.read_local((*values, name))
        assert found is not None, "a checkpoint's value is kept while the checkpoint is"
        if isinstance(found[1], dict):
            items[key], refs[key] = found[1]["value"], tuple(found[1]["refs"])
        else:
            items[key] = found[1]
    return items, refs


def live_refs(node: Any, room: str) -> Refs:
    """The blob references of the room's live keys."""
    return {key: tuple(refs) for key, _, refs in node.list_local(room_refs_path(room))}


def check_blobs(node: Any, room: str, refs: Refs, source: str) -> None:
    """Refuse a restore or fork whose state names a blob that is no longer stored (nothing is changed)."""
    for key, blobs in sorted(refs.items()):
        for blob in blobs:
            if node.read_local(blob_path(blob)) is None:
                raise RequestError(
                    ErrorCode.NO_SUCH_BLOB,
                    f"{source} of room {room!r} refused: the value of key {key!r} references blob "
                    f"{blob.hex()}, which is no longer stored (the retained log does not keep blobs; "
                    "checkpoints do)",
                )


def state_at(
    node: Any, room: str, seq: int, seq_base: int, meta: dict[str, Any]
) -> tuple[dict[str, bytes], Refs]:
    """The room's key map at ``seq`` and its values' blob references: the latest checkpoint at or before
    it plus the retained log after it, or the log from the room's first op (a room that started empty).
    Refused when that is gone."""
    current = node.read_local(log_path(room))
    last = (current[0].next_seq - 1 if current is not None else 0) + seq_base
    if not seq_base <= seq <= last:
        raise RequestError(
            ErrorCode.NOT_RETAINED, f"seq {seq} is not in room {room!r} ({seq_base} to {last})"
        )
    if seq == last:
        return {key: value for key, _, value in node.list_local(keys_path(room))}, live_refs(node, room)
    base: dict[str, bytes] | None = None
    refs: Refs = {}
    start = seq_base
    # The latest state at or before seq: a restore in parts checkpoints its target, an older seq, after
    # newer checkpoints, so ids are not in seq order.
    before = [(payload["seq"], number) for number, payload in checkpoint_records(node, room)]
    best = max((found for found in before if found[0] <= seq), default=None)
    if best is not None:
        payload = read_checkpoint(node, room, best[1])
        (base, refs), start = checkpoint_items(node, room, payload), payload["seq"]
    if base is None:
        if seq_base or meta.get("seeded"):
            raise RequestError(
                ErrorCode.NOT_RETAINED, f"no checkpoint at or before seq {seq} in room {room!r}"
            )
        base = {}
    expected = start + 1
    for number, _, entry in node.seq_children_local(log_path(room), start - seq_base, seq - start):
        number += seq_base
        if number != expected:
            break
        expected += 1
        for op in entry["ops"]:
            refs.pop(op[1], None)
            if op[0] == "set":
                base[op[1]] = op[2]
                if op_refs(op):
                    refs[op[1]] = op_refs(op)
            else:
                base.pop(op[1], None)
    if expected != seq + 1:
        raise RequestError(
            ErrorCode.NOT_RETAINED,
            f"the log of room {room!r} from seq {start + 1} to {seq} is no longer retained",
        )
    return base, refs


# ---- commands ------------------------------------------------------------------------------------------


def history_guard(room: str, version: int, settings: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A condition and op that make a command apply only if no other history change came first."""
    path = list(history_path(room))
    return (
        {"payload_version": [path, version]},
        {"op": "cas", "path": path, "payload": settings, "payload_version": version},
    )


def value_ops(
    node: Any, room: str, items: dict[str, bytes], refs: Refs
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, str]]:
    """Conditions and ops that store the values of ``items`` no checkpoint holds yet, each holding the
    blobs it references (which must exist), and the key map naming them. Must run under the history
    guard, in the transaction that makes a checkpoint name them."""
    values = values_path(room)
    keys: dict[str, str] = {}
    compare: list[dict[str, Any]] = []
    ops: list[dict[str, Any]] = []
    written: set[str] = set()
    for key, value in items.items():
        blobs = refs.get(key, ())
        name = value_name(value, blobs)
        keys[key] = name
        if name in written or node.read_local((*values, name)) is not None:
            continue
        written.add(name)
        path = [*values, name]
        payload = {"value": value, "refs": list(blobs)} if blobs else value
        ops.append({"op": "put", "path": path, "payload": payload})
        if blobs:  # the hold ends when the value node goes: with the last checkpoint naming it, or the room
            compare += exists_conditions(blobs)
            keep = {format_path(tuple(path)): {"exists": True}}
            ops += hold_ops(blobs, value_holder(room, name), keep_while=keep)
    return compare, ops, keys


def checkpoint_ops(
    node: Any, room: str, items: dict[str, bytes], refs: Refs, record: dict[str, Any]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Conditions and ops that append a checkpoint of ``items`` (with ``record``'s name, author, time,
    seq, auto) and store its values (``value_ops``). Must run under the history guard."""
    compare, ops, keys = value_ops(node, room, items, refs)
    ops.append({"op": "append", "path": list(checkpoints_path(room)), "payload": {**record, "keys": keys}})
    return compare, ops


def checkpoint_command(
    node: Any, room: str, meta: dict[str, Any], items: dict[str, bytes], refs: Refs, record: dict[str, Any]
) -> dict[str, Any]:
    """A checkpoint of ``items``, the room's map at ``record["seq"]`` as this node read it. Writes that
    commit between the build and the commit do not void it (it names its seq; the log goes on from there),
    so it is not conditioned on the log: a busy room is checkpointed at the first attempt. What can void
    it is guarded: a blob of a value it stores let go by such a write before it holds it (the values' blob
    conditions refuse it whole: never a checkpoint naming a missing blob), another checkpoint, deletion,
    restore or retention change (the history guard, which also keeps checkpoint ids in seq order), and the
    room's deletion (``meta``: the room read, not one created again under its name)."""
    version, settings = history_version(node, room)
    condition, guard = history_guard(room, version, settings)
    held, ops = checkpoint_ops(node, room, items, refs, record)
    compare = [same_room(room, meta), condition, *held]
    return {"compare": compare, "then": [guard, *ops]}


def no_append_after(room: str, last_seq: int) -> dict[str, Any]:
    """True while nothing was appended to the room's log after tree seq ``last_seq``."""
    return {"not": {"exists": [*log_path(room), seq_name(last_seq + 1)]}}


def restore_ops(
    target: tuple[dict[str, bytes], Refs], current: tuple[dict[str, bytes], Refs]
) -> list[list[Any]]:
    """The ops that turn the ``current`` map into ``target`` (deletes first, then sets, each in key order)."""
    (target_items, target_refs), (current_items, current_refs) = target, current
    ops: list[list[Any]] = [["delete", key] for key in sorted(current_items) if key not in target_items]
    ops += [
        set_op(key, value, target_refs.get(key, ()))
        for key, value in sorted(target_items.items())
        if current_items.get(key) != value or current_refs.get(key, ()) != target_refs.get(key, ())
    ]
    return ops


def restored_ops(
    room: str,
    ops: list[list[Any]],
    current_refs: Refs,
    entry: dict[str, Any],
    cap: int | None,
    lock_owner: dict[str, Any] | None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Conditions and ops that apply a restore's ``ops`` to the keys and append them to the log as one
    operation (``entry``: its author, time and source), as a write does: the keys' blob holds move and
    their author records name it. With ``lock_owner`` (the room has locks) no key it changes may be
    locked by another session."""
    compare: list[dict[str, Any]] = []
    if lock_owner is not None:  # a key locked itself or by a prefix, as for a write
        compare += lock_guards(room, (op[1] for op in ops), lock_owner)
    then: list[dict[str, Any]] = []
    for op in ops:
        path = [*keys_path(room), op[1]]
        then.append(
            {"op": "put", "path": path, "payload": op[2]}
            if op[0] == "set"
            else {"op": "delete", "path": path}
        )
        old, new = current_refs.get(op[1], ()), op_refs(op)
        if old or new:
            key_compare, key_then, _ = key_hold_changes(room, op[1], old, new)
            compare += key_compare
            then += key_then
    then += author_ops(room, ops, entry["c"], entry["u"], entry["t"])
    append: dict[str, Any] = {"op": "append", "path": list(log_path(room)), "payload": {**entry, "ops": ops}}
    if cap is not None:
        append["cap"] = cap
    then.append(append)
    return compare, then


def restore_command(
    node: Any,
    room: str,
    meta: dict[str, Any],
    target: tuple[dict[str, bytes], Refs],
    current: tuple[dict[str, bytes], Refs],
    last_seq: int,
    undo: dict[str, Any],
    entry: dict[str, Any],
    cap: int | None,
    lock_owner: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], list[list[Any]]]:
    """One transaction: a checkpoint of the current map (``undo``), then the ops that turn it into
    ``target`` appended to the log as one operation. Applies only if the map is still the one at tree seq
    ``last_seq`` (and, with ``lock_owner``, no key it changes is locked by another session). Returns the
    command and the ops (empty: nothing to restore, and no command to run).

    The keys' blob holds move as a write's do; the undo checkpoint holds the current values' blobs."""
    ops = restore_ops(target, current)
    version, settings = history_version(node, room)
    condition, guard = history_guard(room, version, settings)
    held, undo_ops = checkpoint_ops(node, room, *current, undo)
    changed, then = restored_ops(room, ops, current[1], entry, cap, lock_owner)
    compare = [same_room(room, meta), condition, no_append_after(room, last_seq), *held, *changed]
    return {"compare": compare, "then": [guard, *undo_ops, *then]}, ops


def fork_command(
    room: str,
    items: dict[str, bytes],
    refs: Refs,
    meta: dict[str, Any],
    source: tuple[str, dict[str, Any]],
    author: list[Any],
    previous: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A new room holding ``items``, its keys holding the blobs ``refs`` names (it did not start empty:
    restoring before its first checkpoint is refused). ``source`` is the room and meta ``items`` were read
    from: the fork is refused if that room went meanwhile (its "forked_from" would name another room). Its
    keys are ``author``'s ([client_id, name, time]) at seq 0, the room's first state.

    A fork in parts (history_parts.py) sends this once per part: the first makes the room with ``meta``
    hidden ("importing"), every later one requires the meta the one before left (``previous``), and the
    last shows the room. ``meta`` must hold the room's incarnation (``fork_meta``)."""
    if previous is None:
        compare: list[dict[str, Any]] = [{"not": {"exists": list(room_path(room))}}]
    else:
        compare = [{"payload_equals": [list(meta_path(room)), previous]}]
    compare.append(same_room(*source))
    then: list[dict[str, Any]] = [{"op": "put", "path": list(meta_path(room)), "payload": meta}]
    for key, value in sorted(items.items()):
        then.append({"op": "put", "path": [*keys_path(room), key], "payload": value})
        then.append({"op": "put", "path": [*authors_path(room), key], "payload": [0, *author]})
        if refs.get(key):
            key_compare, key_then, _ = key_hold_changes(room, key, (), refs[key])
            compare += key_compare
            then += key_then
    return {"compare": compare, "then": then}


def fork_meta(meta: dict[str, Any]) -> dict[str, Any]:
    """A forked room's meta: it did not start empty, and it is a room of its own (a new incarnation)."""
    return {**meta, "seeded": True, "incarnation": new_incarnation()}


def delete_checkpoints_command(
    node: Any, room: str, meta: dict[str, Any], numbers: list[int]
) -> dict[str, Any]:
    """Delete checkpoints and every value only they held (under the history guard). Refused while a
    restore in parts is under way: its target and undo checkpoints must stay."""
    if node.read_local(restoring_path(room)) is not None:
        raise RequestError(
            ErrorCode.CONFLICT, f"a restore of room {room!r} is under way: delete checkpoints when it ends"
        )
    version, settings = history_version(node, room)
    condition, guard = history_guard(room, version, settings)
    gone = set(numbers)
    kept: set[str] = set()
    dropped: set[str] = set()
    for name, _, payload in node.list_local(checkpoints_path(room)):  # partial ones too
        number = int(name)
        (dropped if number in gone else kept).update(key_map(node, room, number, payload).values())
    then = [guard]
    then += [{"op": "delete", "path": [*checkpoints_path(room), seq_name(n)]} for n in sorted(gone)]
    restoring = {"not": {"exists": list(restoring_path(room))}}
    then += [{"op": "delete", "path": [*values_path(room), d]} for d in sorted(dropped - kept)]
    return {"compare": [same_room(room, meta), condition, restoring], "then": then}


def retention_command(node: Any, room: str, meta: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    version, _ = history_version(node, room)
    condition, guard = history_guard(room, version, settings)
    return {"compare": [same_room(room, meta), condition], "then": [guard]}


def compact_command(room: str, meta: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """Drop log entries past the room's retention (a missing one is no error: compaction may repeat), if
    the room is still the one they were read from: another of its name numbers its log from 1 again."""
    return {
        "compare": [same_room(room, meta)],
        "then": [{"op": "delete", "path": [*log_path(room), name]} for name in names],
    }
