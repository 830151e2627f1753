"""Rooms in the replicated tree: the layout, the commands that change it and the reads of this node's copy.

Tree layout of a room:
    /rooms/<room>/meta          {"keep_open": bool, "password": {...} | None, "created_by": str,
                                 "incarnation": str (random, set at creation; absent in rooms created
                                 before it was introduced),
                                 "seq_base": int (optional: an imported room's seq before its first op),
                                 "importing": (optional: an import or fork in parts, not yet visible)
                                 {"import": {node, boot, t, client}} or {"fork": {node, boot, t}}
                                 (history_parts.py); a plain client id in rooms from before}
                                 Written only when the room is created (an import's parts rewrite it
                                 until the last), so a command built from this node's copy of a room
                                 requires the meta it read (``same_room``): a room deleted and created
                                 again under its name meanwhile has another incarnation, while its
                                 other nodes' versions and seqs start again and could match.
    /rooms/<room>/keys/<key>    the value (opaque bytes from the clients)
    /rooms/<room>/log/<seq>     {"c": client_id, "o": op_id, "ops": [...], "u": author's name, "t": unix
                                 seconds, "s": seen (optional), "p": hashes of the blobs the write made
                                 new (optional: sent with its ``applied``)}: the retained operations
                                 (retention: checkpoints.py)
    /rooms/<room>/authors/<key> [seq, client_id, author's name, unix seconds]: who last changed the live
                                key, written with the change (tree seq, without seq_base; 0: the room's
                                first state, a fork's or an import's; below 0: an imported key's change
                                before the import, carried by the file); it goes with the key (blame,
                                history.py)
    /rooms/<room>/history, checkpoints/, values/    the room's checkpoints and retention (history.py)
    /rooms/<room>/locks/<key>   {"owner": client_id, "user": name, "node": node id}: a key lock
    /rooms/<room>/plocks/<prefix>  the same payload: a lock on every key starting with <prefix> (ends in /)

A room's seq is ``seq_base`` plus the sequence number the tree gives each appended log entry: dense,
increasing, the same on every node. Writes set the keys and append to the log in one transaction, so the
live map at seq N and the tail after N always agree: a join reads the map and joins the fan-out with no
await in between.

Everything here is about the tree; nothing knows of sessions or connections. Reads are of this node's copy
(``RoomStore.fence`` first catches it up with the cluster); keys and names are data, never patterns: listings
are literal (``list_local``) and only the fixed layout above is ever matched.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from protocol import ErrorCode
from protocol.limits import covering_prefixes
from replication import Node, Proposal, ReplicationError, TreeError, WatchEvent

from .errors import RequestError

ROOMS = "rooms"


def room_path(room: str) -> tuple[str, ...]:
    return (ROOMS, room)


def meta_path(room: str) -> tuple[str, ...]:
    return (ROOMS, room, "meta")


def keys_path(room: str) -> tuple[str, ...]:
    return (ROOMS, room, "keys")


def log_path(room: str) -> tuple[str, ...]:
    return (ROOMS, room, "log")


def authors_path(room: str) -> tuple[str, ...]:
    return (ROOMS, room, "authors")


def author_ops(
    room: str, ops: list[list[Any]], client_id: str, author: str, now: int
) -> list[dict[str, Any]]:
    """Tree ops that record who last changed each key of ``ops``, to run just before the log append: the
    record names the entry by the number that append takes (``seq_of``). A deleted key's record goes."""
    last = {op[1]: op[0] for op in ops}  # the last op on a key decides
    log = list(log_path(room))
    return [
        {"op": "put", "path": [*authors_path(room), key], "payload": [client_id, author, now], "seq_of": log}
        if kind == "set"
        else {"op": "delete", "path": [*authors_path(room), key]}
        for key, kind in last.items()
    ]


def locks_path(room: str) -> tuple[str, ...]:
    return (ROOMS, room, "locks")


def lock_path(room: str, key: str) -> tuple[str, ...]:
    return (ROOMS, room, "locks", key)


def prefix_locks_path(room: str) -> tuple[str, ...]:
    return (ROOMS, room, "plocks")


def prefix_lock_path(room: str, prefix: str) -> tuple[str, ...]:
    return (ROOMS, room, "plocks", prefix)


def _free_or_ours(path: list[str], payload: dict[str, Any]) -> dict[str, Any]:
    return {"any": [{"not": {"exists": path}}, {"payload_equals": [path, payload]}]}


def _prefix_guards(room: str, keys: Iterable[str], payload: dict[str, Any]) -> list[dict[str, Any]]:
    """Conditions: no prefix covering any of ``keys`` is locked by anyone but ``payload``'s owner."""
    prefixes = sorted({prefix for key in keys for prefix in covering_prefixes(key)})
    return [_free_or_ours(list(prefix_lock_path(room, prefix)), payload) for prefix in prefixes]


def lock_guards(room: str, keys: Iterable[str], payload: dict[str, Any]) -> list[dict[str, Any]]:
    """Conditions: none of ``keys`` is locked by anyone but ``payload``'s owner, itself or by a prefix
    covering it (a write's, a restore's: the same rule inside the transaction)."""
    keys = list(keys)
    return [_free_or_ours(list(lock_path(room, key)), payload) for key in keys] + _prefix_guards(
        room, keys, payload
    )


# ---- commands ----------------------------------------------------------------------------------------------


def new_incarnation() -> str:
    """A new room's creation id (meta "incarnation"): no other room of that name, before or after, has it."""
    return secrets.token_hex(8)


def same_room(room: str, meta: dict[str, Any]) -> dict[str, Any]:
    """A condition: the room is still the one whose meta this node read. The meta is written only at
    creation and holds the room's incarnation, so a room deleted and created again under its name fails
    it (a meta from before incarnations existed is matched whole: rooms created since all differ)."""
    return {"payload_equals": [list(meta_path(room)), meta]}


def create_room_command(room: str, meta: dict[str, Any]) -> dict[str, Any]:
    """Create a room with ``meta`` and a new incarnation."""
    return {
        "compare": [{"not": {"exists": list(meta_path(room))}}],
        "then": [
            {
                "op": "put",
                "path": list(meta_path(room)),
                "payload": {**meta, "incarnation": new_incarnation()},
            }
        ],
    }


def delete_room_command(room: str, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """Delete the room; with ``meta`` (the one a decision to delete was made from) only if it is still
    that room, not one created again under its name meanwhile."""
    exists = {"exists": list(meta_path(room))} if meta is None else same_room(room, meta)
    return {"compare": [exists], "then": [{"op": "delete", "path": list(room_path(room))}]}


def write_command(
    room: str,
    client_id: str,
    op_id: int,
    ops: list[list[Any]],
    tail: int | None,
    guard: tuple[str, dict[str, Any]] | None = None,
    author: str = "",
    now: int = 0,
    seen: int | None = None,
    pushed: list[bytes] | None = None,
    created_index: int = 0,
) -> dict[str, Any]:
    """Apply set/delete operations to the live map and append them to the room's log, atomically.

    With ``created_index`` (the log index that made the room's meta, as the writer's node knew it), the
    write requires that same meta: not one of a room deleted and made again under the name meanwhile.

    ``seen`` (the author's last seq when it made the edit, docs/protocol.md §3) travels in the log entry so
    that every node passes it on in ``applied``; so do the hashes of the blobs the write makes new
    (``pushed``, Blobs.push_list), whose bytes every node reads from its own blob table for ``applied``.

    With ``guard`` = (room, lock payload of the writer), the write also requires that no key it touches is
    locked by anyone else, itself or by a prefix (used only while the room has locks: it makes the command
    larger).
    """
    meta = list(meta_path(room))
    compare: list[dict[str, Any]] = [
        {"created_index": [meta, created_index]} if created_index else {"exists": meta}
    ]
    if guard is not None:
        compare += lock_guards(room, (op[1] for op in ops), guard[1])
    then: list[dict[str, Any]] = []
    for op in ops:
        path = [*keys_path(room), op[1]]
        if op[0] == "set":
            then.append({"op": "put", "path": path, "payload": op[2]})
        else:
            then.append({"op": "delete", "path": path})
    then += author_ops(room, ops, client_id, author, now)
    entry: dict[str, Any] = {"c": client_id, "o": op_id, "ops": ops, "u": author, "t": now}
    if seen is not None:
        entry["s"] = seen
    if pushed:
        entry["p"] = pushed
    append: dict[str, Any] = {"op": "append", "path": list(log_path(room)), "payload": entry}
    if tail is not None:  # None: the room keeps its whole log (retention)
        append["cap"] = tail
    then.append(append)
    return {"compare": compare, "then": then}


def appended_seq(result: dict[str, Any]) -> int | None:
    """The seq a write_command got, from its transaction result (None if the room was gone)."""
    if not result.get("ok") or not result.get("succeeded"):
        return None
    return result["results"][-1]["seq"]


def import_command(
    room: str,
    items: list[list[Any]],
    previous_meta: dict[str, Any] | None,
    meta: dict[str, Any],
    author: list[Any],
    carried: dict[str, list[Any]] | None = None,
) -> dict[str, Any]:
    """One part of an import: the first creates the room (which must not exist), later ones require the
    meta the previous part left. Every part writes its keys, their author records and the meta in one
    transaction, so no committed part leaves a key without a record. A key's record is its ``carried``
    one (from the file: [seq, client_id, name, time], the seq relative to the room's seq_base, so 0 or
    less) or else ``author``'s ([client_id, name, time]) at seq 0: the imported state, the room's first."""
    carried = carried or {}
    if previous_meta is None:
        compare = [{"not": {"exists": list(meta_path(room))}}]
    else:
        compare = [{"payload_equals": [list(meta_path(room)), previous_meta]}]
    then = [{"op": "put", "path": list(meta_path(room)), "payload": meta}]  # first: nodes track it by meta
    for key, value in items:
        then.append({"op": "put", "path": [*keys_path(room), key], "payload": value})
        record = carried.get(key) or [0, *author]
        then.append({"op": "put", "path": [*authors_path(room), key], "payload": record})
    return {"compare": compare, "then": then}


def abandon_import_command(room: str, staged_meta: dict[str, Any]) -> dict[str, Any]:
    """Remove an unfinished import in parts (only if its hidden meta is still the staged one)."""
    return {
        "compare": [{"payload_equals": [list(meta_path(room)), staged_meta]}],
        "then": [{"op": "delete", "path": list(meta_path(room))[:-1]}],
    }


def lock_payload(client_id: str, user: str, node_id: Any) -> dict[str, Any]:
    return {"owner": client_id, "user": user, "node": node_id}


def lock_command(
    room: str,
    keys: list[str],
    payload: dict[str, Any],
    prefixes: Sequence[str] = (),
    meta: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Lock every key and prefix for ``payload``'s owner, if the room exists (with ``meta``: is still the
    one the owner is in) and none of them, nor a prefix covering one of them, is someone else's. (A key or
    prefix lock of someone else *under* a new prefix is refused from this node's copy before the command: a
    lock granted on another node in the same moment can overlap, and then neither owner can write the
    overlap until one releases.)"""
    exists = {"exists": list(meta_path(room))} if meta is None else same_room(room, meta)
    compare: list[dict[str, Any]] = [exists]
    then = []
    for key in keys:
        path = list(lock_path(room, key))
        compare.append(_free_or_ours(path, payload))
        then.append({"op": "put", "path": path, "payload": payload})
    compare += _prefix_guards(room, [*keys, *prefixes], payload)
    for prefix in prefixes:
        then.append({"op": "put", "path": list(prefix_lock_path(room, prefix)), "payload": payload})
    return {"compare": compare, "then": then}


def unlock_command(room: str, key: str, payload: dict[str, Any], *, prefix: bool = False) -> dict[str, Any]:
    """Delete a key's (or a prefix's) lock if it is still this owner's."""
    path = list(prefix_lock_path(room, key) if prefix else lock_path(room, key))
    return {"compare": [{"payload_equals": [path, payload]}], "then": [{"op": "delete", "path": path}]}


def _each_if_unchanged(held: Sequence[tuple[Sequence[str], Any]], op: dict[str, Any]) -> dict[str, Any]:
    """``op`` on each (path, payload) lock that still has that payload (one released and taken again
    meanwhile, by anyone, is left alone), whatever became of the others."""
    return {
        "then": [
            {**op, "path": list(path), "if": {"payload_equals": [list(path), old]}} for path, old in held
        ]
    }


def release_locks_command(held: Sequence[tuple[Sequence[str], Any]]) -> dict[str, Any]:
    """Delete each (path, payload) lock that is unchanged."""
    return _each_if_unchanged(held, {"op": "delete"})


def adopt_locks_command(held: Sequence[tuple[Sequence[str], Any]], payload: dict[str, Any]) -> dict[str, Any]:
    """Make each (path, payload) lock ``payload``'s (its session's, now on this node) if it is unchanged."""
    return _each_if_unchanged(held, {"op": "put", "payload": payload})


def break_locks_command(room: str, keys: list[str], prefixes: Sequence[str] = ()) -> dict[str, Any]:
    then = [{"op": "delete", "path": list(lock_path(room, key))} for key in keys]
    then += [{"op": "delete", "path": list(prefix_lock_path(room, prefix))} for prefix in prefixes]
    return {"then": then}


async def fence(node: Node) -> None:
    """Catch ``node`` up with everything committed before now (a ReadIndex round through the leader,
    docs/raft.md); unavailable when no quorum answers. The rooms and the share links both wait on it."""
    try:
        await node.barrier("fence")
    except ReplicationError as exc:
        raise RequestError(ErrorCode.UNAVAILABLE, f"cannot reach a quorum: {exc}") from None


# ---- the store ---------------------------------------------------------------------------------------------


class RoomStore:
    """The rooms in this node's replicated tree: proposals (errors mapped to request errors) and reads."""

    def __init__(self, node: Node):
        self.node = node

    @property
    def node_id(self) -> Any:
        node_id = getattr(self.node, "node_id", None)
        return node_id if node_id is not None else self.node.status().get("id")

    def subscribe(self, callback: Callable[[WatchEvent], None]) -> Any:
        """``callback`` in commit order for every change under /rooms."""
        return self.node.subscribe((ROOMS, "**"), callback)

    # ---- changes -------------------------------------------------------------------------------------------

    async def propose(self, command: dict[str, Any]) -> dict[str, Any]:
        try:
            return await self.node.propose(command)
        except ReplicationError as exc:
            raise RequestError(ErrorCode.UNAVAILABLE, str(exc)) from None
        except TreeError as exc:
            if exc.code == "too_large":  # one transaction past the log entry limit
                raise RequestError(ErrorCode.LIMIT_EXCEEDED, f"max_entry_bytes: {exc}") from None
            raise RequestError(ErrorCode.INVALID_KEY, str(exc)) from None

    def submit(self, command: dict[str, Any], **envelope: Any) -> Proposal:
        """Queue a command without waiting (raises ReplicationError or TreeError as the node does)."""
        return self.node.submit(command, **envelope)

    async def fence(self) -> None:
        """Catch this node up with everything committed before now (a ReadIndex round in a cluster)."""
        await fence(self.node)

    # ---- reads of this node's copy -------------------------------------------------------------------------

    def meta_created_index(self, room: str) -> int:
        """The log index that made the room's meta (0 for no such room)."""
        found = self.node.read_local(meta_path(room))
        return 0 if found is None else found[0].created_index

    def find_meta(self, room: str) -> dict[str, Any] | None:
        """The room's meta, hidden imports included; None if there is no such room."""
        found = self.node.read_local(meta_path(room))
        return None if found is None else found[1]

    def meta(self, room: str) -> dict[str, Any]:
        """The meta of a visible room, or a no_such_room error."""
        meta = self.find_meta(room)
        if meta is None or meta.get("importing"):
            raise RequestError(ErrorCode.NO_SUCH_ROOM, f"no room {room!r}")
        return meta

    def metas(self) -> list[tuple[str, Any]]:
        """(room, meta) for every room in the tree."""
        return [(path[1], meta) for path, _, meta in self.node.match_local((ROOMS, "*", "meta"))]

    def items(self, room: str) -> list[tuple[str, bytes]]:
        """The room's live keys and values, in key order."""
        return [(key, value) for key, _, value in self.node.list_local(keys_path(room))]

    def key_count(self, room: str) -> int:
        found = self.node.read_local(keys_path(room))
        return found[0].child_count if found else 0

    def log_entries(
        self, room: str, after: int = 0, limit: int | None = None
    ) -> list[tuple[int, dict[str, Any]]]:
        """The held tail of the room's log as (tree seq, entry), without the room's seq_base: the entries
        after tree seq ``after`` (the first ``limit`` of them), found without listing the rest."""
        found = self.node.seq_children_local(log_path(room), after, limit)
        return [(number, payload) for number, _, payload in found]

    def last_log_seq(self, room: str) -> int:
        """The tree seq of the room's last appended log entry (0 if none), without the room's seq_base."""
        found = self.node.read_local(log_path(room))
        return found[0].next_seq - 1 if found is not None else 0

    def locks(self, room: str) -> list[tuple[str, dict[str, Any]]]:
        return [(key, payload) for key, _, payload in self.node.list_local(locks_path(room))]

    def prefix_locks(self, room: str) -> list[tuple[str, dict[str, Any]]]:
        return [(prefix, payload) for prefix, _, payload in self.node.list_local(prefix_locks_path(room))]

    def locks_of(self, room: str, client_id: str) -> list[tuple[tuple[str, ...], dict[str, Any]]]:
        """The locks and prefix locks ``client_id`` holds in ``room``: (path, payload)."""
        held = [(lock_path(room, key), p) for key, p in self.locks(room) if p.get("owner") == client_id]
        held += [
            (prefix_lock_path(room, k), p) for k, p in self.prefix_locks(room) if p.get("owner") == client_id
        ]
        return held

    def locks_by_node(self) -> dict[Any, list[tuple[tuple[str, ...], dict[str, Any]]]]:
        """Every lock and prefix lock, in any room, by the node of the session holding it: (path, payload)."""
        held: dict[Any, list[tuple[tuple[str, ...], dict[str, Any]]]] = {}
        for subtree in ("locks", "plocks"):
            for path, _, payload in self.node.match_local((ROOMS, "*", subtree, "*")):
                if isinstance(payload, dict):
                    held.setdefault(payload.get("node"), []).append((tuple(path), payload))
        return held
