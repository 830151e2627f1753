"""Where blobs live in the replicated tree, and the commands that store and hold them (:mod:`.blobs` is the
store that runs them: requests, pins, quotas).

Tree layout (replicated like everything else, so a blob is on a majority before an op that references it is
acked: the op's transaction requires it to exist):

    /blobs/<sha256 hex>              the blob's size; its bytes ride in the entry and stay in each node's
                                     blob table while this node exists (Node.read_blob; docs/decisions/0008);
                                     keep_while its refs node has children or a tree node holds it, so a
                                     blob goes in the very command that drops its last holder (no sweep, no
                                     race). A tree node blob holds its ``children`` (blob_put) with the
                                     tree's holds (docs/tree.md): their paths in its own record, counted in
                                     memory, so the command that drops a node drops every child nothing else
                                     holds, down the tree (docs/decisions/0010)
    /blobs/<hex>/refs/<holder>       one child per holder:
        k:<sha256(room NUL key) hex>     a live key of a room; keep_while the room's meta exists, so
                                         deleting a room releases everything it held
        p:<client_id>                    an upload not referenced yet ({"node": node id}); released when a
                                         write of that session references the blob, or ``pin_grace``
                                         seconds after the session is gone
        v:<sha256(room NUL name) hex>    a value a room's checkpoints keep (/rooms/<room>/values/<name>,
                                         history.py); keep_while that value node exists, so deleting
                                         the last checkpoint that names it (or the room) releases it
        n:<parent sha256 hex>            a tree node blob that names this one among its ``children``, as
                                         stores made before holds kept them (keep_while the parent is
                                         stored); still read, no longer written
        anything else                    other holders: ``hold_ops`` and ``release_ops`` build their ops
    /rooms/<room>/refs/<key>         the sorted hashes the key's value references: the base the next write
                                     of that key diffs against (it adds and removes only the changed holders)

Reference counting is the tree's own child count and holds, so a blob still held by a live key (or by any
other holder that used ``hold_ops``, or by a stored tree node) is never dropped, whatever the interleaving
of writers in different rooms. A key names only the roots of its trees: every blob reachable from a held
root is held through its parents.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from replication import format_path

from .roomstore import ROOMS, meta_path

BLOBS = "blobs"


def blob_path(blob: bytes) -> tuple[str, ...]:
    return (BLOBS, blob.hex())


def holders_path(blob: bytes) -> tuple[str, ...]:
    return (BLOBS, blob.hex(), "refs")


def holder_path(blob: bytes, holder: str) -> tuple[str, ...]:
    return (BLOBS, blob.hex(), "refs", holder)


def room_refs_path(room: str) -> tuple[str, ...]:
    return (ROOMS, room, "refs")


def key_refs_path(room: str, key: str) -> tuple[str, ...]:
    return (*room_refs_path(room), key)


def key_holder(room: str, key: str) -> str:
    """The holder name of a room's key (a path element cannot hold a room name and a key: they are hashed)."""
    return "k:" + hashlib.sha256(room.encode() + b"\0" + key.encode()).hexdigest()


def pin_holder(client_id: str) -> str:
    return "p:" + client_id


def node_holder(parent: bytes) -> str:
    """The holder name by which a tree node held a child before holds (still read: ``Blobs._load``)."""
    return "n:" + parent.hex()


def value_holder(room: str, name: str) -> str:
    """The holder name of a value kept by a room's checkpoints (``name``: its node under values/)."""
    return "v:" + hashlib.sha256(room.encode() + b"\0" + name.encode()).hexdigest()


# ---- commands (also for other modules: history and checkpoints hold blobs with these) ----------------------


def exists_conditions(blobs: Iterable[bytes]) -> list[dict[str, Any]]:
    """Conditions that every blob is stored: put them in the compare of a command that adds holders."""
    return [{"exists": list(blob_path(blob))} for blob in blobs]


def hold_ops(
    blobs: Iterable[bytes], holder: str, payload: Any = None, keep_while: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Ops that make ``holder`` hold each blob; with ``keep_while`` the hold ends by itself with its owner.
    Pair them with ``exists_conditions`` (a holder of a missing blob would hold nothing)."""
    ops = []
    for blob in blobs:
        op: dict[str, Any] = {"op": "put", "path": list(holder_path(blob, holder)), "payload": payload}
        if keep_while is not None:
            op["keep_while"] = keep_while
        ops.append(op)
    return ops


def release_ops(blobs: Iterable[bytes], holder: str) -> list[dict[str, Any]]:
    """Ops that end ``holder``'s hold on each blob; a blob nobody else holds goes in the same command."""
    return [{"op": "delete", "path": list(holder_path(blob, holder))} for blob in blobs]


def entry_refs(entry: dict[str, Any]) -> set[bytes]:
    """The blobs a room log entry's operations reference (for a holder that keeps log entries)."""
    return {ref for op in entry["ops"] if op[0] == "set" and len(op) == 4 for ref in op[3]}


def key_hold_changes(
    room: str, key: str, old: Iterable[bytes], new: Iterable[bytes]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[bytes]]:
    """Conditions and ops that move a room key's holds from refs ``old`` to ``new`` (the committed ones
    must still be ``old``; every gained blob must exist), and the gained blobs. For writes, restores and
    forks alike."""
    old, new = tuple(sorted(old)), tuple(sorted(new))
    path = list(key_refs_path(room, key))
    gained = sorted(set(new) - set(old))
    compare = [{"payload_equals": [path, list(old)]} if old else {"not": {"exists": path}}]
    compare += exists_conditions(gained)
    holder = key_holder(room, key)
    then = hold_ops(gained, holder, keep_while={format_path(meta_path(room)): {"exists": True}})
    then += release_ops(sorted(set(old) - set(new)), holder)
    then.append({"op": "put", "path": path, "payload": list(new)} if new else {"op": "delete", "path": path})
    return compare, then, gained


def put_blob_command(
    blob: bytes,
    size: int,
    client_id: str,
    node_id: Any,
    children: Iterable[bytes] = (),
    pinned: Iterable[bytes] = (),
) -> dict[str, Any]:
    """Store a blob (once: a stored one keeps its bytes) and pin it for the uploading session; submit it
    with the bytes (``Node.submit(..., blob=...)``). A tree node holds its ``children`` while it is stored
    (each must be stored: else the command fails whole), and the session's pins on those of them it
    ``pinned`` end: from here the node's own pin or holders keep them. (An edit's new node names mostly
    children uploaded long before, whose pins ended then: releasing them again was a third of its entry.)"""
    pin = hold_ops([blob], pin_holder(client_id), {"node": node_id})
    children = sorted(children)
    keep = {format_path(holders_path(blob)): {"child_count": [">", 0]}}
    # One branch, the store first: a blob stored already gets the same size and rule again (a few bytes).
    store: dict[str, Any] = {"op": "put", "path": list(blob_path(blob)), "payload": size, "keep_while": keep}
    # The tree's holds: one list in the node's record. Added to those it has: a node put again with other
    # children (a client's mistake) takes none away from the trees of others that share it. Each child is
    # named by its hash's bytes (the tree reads them as the hex name): half the entry's bytes per child.
    if children:
        store["add_holds"] = [[BLOBS, c] for c in children]
    return {"then": [store, *pin, *release_ops(sorted(pinned), pin_holder(client_id))]}


def stored_size(payload: Any) -> int | None:
    """The size a /blobs/<hex> node records (its bytes themselves, from storage layout 2)."""
    if isinstance(payload, bytes):
        return len(payload)
    return payload if type(payload) is int else None


def value_refs(op: list[Any]) -> tuple[bytes, ...]:
    return tuple(sorted(op[3])) if op[0] == "set" and len(op) == 4 else ()
