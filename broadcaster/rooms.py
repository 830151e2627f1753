"""The room model, stored in the replicated tree, and its per-node runtime (members, fan-out).

Tree layout of a room:
    /rooms/<room>/meta          {"keep_open": bool, "password": {...} | None, "created_by": str,
                                 "seq_base": int (optional: an imported room's seq before its first op),
                                 "importing": client_id (optional: an import in parts, not yet visible)}
    /rooms/<room>/keys/<key>    the value (opaque bytes from the clients)
    /rooms/<room>/log/<seq>     {"c": client_id, "o": op_id, "ops": [...]}: a capped tail of operations
    /rooms/<room>/locks/<key>   {"owner": client_id, "user": name, "node": node id}: a key lock

A room's seq is ``seq_base`` plus the sequence number the tree gives each appended log entry: dense,
increasing, the same on every node. Writes set the keys and append to the log in one transaction, so the
live map at seq N and the tail after N always agree: a join reads the map and joins the fan-out with no
await in between.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from protocol import Ack, Applied, pack_body
from protocol.framing import frame_bytes

if TYPE_CHECKING:
    from .session import Session

ROOMS = "rooms"


def room_path(room: str) -> tuple[str, ...]:
    return (ROOMS, room)


def meta_path(room: str) -> tuple[str, ...]:
    return (ROOMS, room, "meta")


def keys_path(room: str) -> tuple[str, ...]:
    return (ROOMS, room, "keys")


def log_path(room: str) -> tuple[str, ...]:
    return (ROOMS, room, "log")


def locks_path(room: str) -> tuple[str, ...]:
    return (ROOMS, room, "locks")


def lock_path(room: str, key: str) -> tuple[str, ...]:
    return (ROOMS, room, "locks", key)


def create_room_command(room: str, meta: dict[str, Any]) -> dict[str, Any]:
    return {
        "compare": [{"not": {"exists": list(meta_path(room))}}],
        "then": [{"op": "put", "path": list(meta_path(room)), "payload": meta}],
    }


def delete_room_command(room: str) -> dict[str, Any]:
    return {
        "compare": [{"exists": list(meta_path(room))}],
        "then": [{"op": "delete", "path": list(room_path(room))}],
    }


def write_command(
    room: str,
    client_id: str,
    op_id: int,
    ops: list[list[Any]],
    tail: int,
    guard: tuple[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Apply set/delete operations to the live map and append them to the room's log, atomically.

    With ``guard`` = (room, lock payload of the writer), the write also requires that no key it touches is
    locked by anyone else (used only while the room has locks: it makes the command larger).
    """
    compare: list[dict[str, Any]] = [{"exists": list(meta_path(room))}]
    if guard is not None:
        for op in ops:
            path = list(lock_path(room, op[1]))
            compare.append({"any": [{"not": {"exists": path}}, {"payload_equals": [path, guard[1]]}]})
    then: list[dict[str, Any]] = []
    for op in ops:
        path = [*keys_path(room), op[1]]
        if op[0] == "set":
            then.append({"op": "put", "path": path, "payload": op[2]})
        else:
            then.append({"op": "delete", "path": path})
    then.append(
        {
            "op": "append",
            "path": list(log_path(room)),
            "payload": {"c": client_id, "o": op_id, "ops": ops},
            "cap": tail,
        }
    )
    return {"compare": compare, "then": then}


def import_command(
    room: str, items: list[list[Any]], previous_meta: dict[str, Any] | None, meta: dict[str, Any]
) -> dict[str, Any]:
    """One part of an import: the first creates the room (which must not exist), later ones require the
    meta the previous part left. Every part writes its keys and the meta in one transaction."""
    if previous_meta is None:
        compare = [{"not": {"exists": list(meta_path(room))}}]
    else:
        compare = [{"payload_equals": [list(meta_path(room)), previous_meta]}]
    then = [{"op": "put", "path": list(meta_path(room)), "payload": meta}]  # first: nodes track it by meta
    then += [{"op": "put", "path": [*keys_path(room), key], "payload": value} for key, value in items]
    return {"compare": compare, "then": then}


def appended_seq(result: dict[str, Any]) -> int | None:
    """The seq a write_command got, from its transaction result (None if the room was gone)."""
    if not result.get("ok") or not result.get("succeeded"):
        return None
    return result["results"][-1]["seq"]


def encode_frame(event: Any) -> bytes:
    return frame_bytes(pack_body(event.to_body()))


@dataclass(eq=False)
class Room:
    """A room as seen by this node: its local members, and byte accounting for the room list."""

    name: str
    members: dict[str, Session] = field(default_factory=dict)  # client_id -> session
    key_sizes: dict[str, int] = field(default_factory=dict)
    total_bytes: int = 0
    seq_base: int = 0  # an imported room's seq before its first operation here
    locks: dict[str, str] = field(default_factory=dict)  # key -> owner client_id (committed)
    locks_pending: int = 0  # lock requests from this node not yet committed
    pending_keys: int = 0  # keys and bytes added by this node's uncommitted writes (for the room limits)
    pending_bytes: int = 0

    def note_key(self, key: str, size: int | None) -> None:
        self.total_bytes -= self.key_sizes.pop(key, 0)
        if size is not None:
            self.key_sizes[key] = size
            self.total_bytes += size

    def fan_out(self, seq: int, entry: dict[str, Any]) -> None:
        """Send one committed operation to every local member: an ack to its author, the op to the rest.

        The author's ack is queued at the op's place in the stream, so each client sees acks and others'
        operations in one seq order (the convergence rule depends on it).
        """
        author = entry["c"]
        frame = None
        for client_id, session in list(self.members.items()):  # a slow consumer may be removed
            if client_id == author:
                session.send_frame(encode_frame(Ack(op_id=entry["o"], seq=seq)))
            else:
                if frame is None:
                    frame = encode_frame(
                        Applied(room=self.name, seq=seq, client_id=author, op_id=entry["o"], ops=entry["ops"])
                    )
                session.send_frame(frame)
