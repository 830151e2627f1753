"""The session's side of sync/socket_moves.py: the socket moves each of our batches carried, kept until
no edit that had not seen them can still arrive, and another artist's keys brought to the new positions.

A batch of ours that moved sockets (an item or an interface socket removed or reordered) is kept by
op id until it is acknowledged, then by its seq. Another artist's batch whose ``seen`` is below that
seq, or that arrives while ours is unacknowledged (ordered before it), was made on the old positions:
its socket values and links at moved positions are applied here at the new ones, the keys it named at
the old ones get what we hold there again, and both go out as our edit made having seen it. Either
order of the two batches ends with both edits: the removal, and the other artist's value on the item
he meant.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import bpy

from . import sync
from .sync import socket_moves
from .sync.kinds import BY_NAME

# An acknowledged move is kept this long for batches made before it (an artist reconnecting resends
# edits made before it with their old ``seen``), and at most this many.
KEEP_SECONDS = 600.0
KEEP_COUNT = 64
# An unacknowledged batch the server never answers is dropped after this (it was refused or resent).
PENDING_SECONDS = 60.0


def owner_of(kind: str, uuid: str, part: str) -> bpy.types.ID | None:
    """What holds the sockets a key of ``kind/uuid``'s ``part`` names: the node tree of a node group, a
    material or a world; the object for its modifiers' inputs."""
    collection = getattr(bpy.data, BY_NAME[kind].collection, None) if kind in BY_NAME else None
    for id_data in collection or ():
        if sync.peek_uuid(id_data) == uuid:
            if part == "modin" or isinstance(id_data, bpy.types.NodeTree):
                return id_data
            return getattr(id_data, "node_tree", None)
    return None


def _new_socket(
    moves: Iterable[Mapping[socket_moves.NodeRef, socket_moves.Moves]],
    ref: socket_moves.NodeRef,
    side: str,
    socket: str,
) -> str | None:
    """``socket`` (``#<old index>``) through ``moves`` in order; None when it went."""
    if not socket.startswith("#") or not socket[1:].isdigit():
        return socket
    index: int | None = int(socket[1:])
    for step in moves:
        positions = step.get(ref, {}).get(side)
        if positions and index in positions:
            index = positions[index]
            if index is None:
                return None
    return f"#{index}"


# Parts whose keys name sockets by position: (item segments of the socket's holder, of its socket, side).
SIDES = {
    "in": ((0, 1, "in"),),
    "out": ((0, 1, "out"),),
    "link": ((0, 1, "out"), (2, 3, "in")),
    "modin": ((0, 1, "modin"),),
}


def follow_ops(
    ops: list[list[Any]],
    moves: list[dict[socket_moves.NodeRef, socket_moves.Moves]],
    owner_of: Callable[[str, str, str], bpy.types.ID | None],
) -> tuple[dict[str, Any], set[str]]:
    """Another artist's ``ops``, made before ``moves`` (ours, oldest first): ``{key at the new positions:
    its value (None: deleted)}`` for the socket values, links and modifier inputs they name by a position
    that moved, and the keys they named so (what each holds here is ours again). A tree one of whose
    nodes' item lists the ops also set is left to the item lists' merge, and ops that set an interface to
    the interface's (sync/merges.py): sockets they added are at positions our moves do not know (a zone's
    input node has its output's items)."""
    parsed_ops = [(op, sync.split_key(op[1]) if op[0] in ("set", "delete") else None) for op in ops]
    if any(parsed is not None and parsed[2] == "iface" for _, parsed in parsed_ops):
        return {}, set()
    listed = {(p[0], p[1]) for _, p in parsed_ops if p is not None and p[2] == "items"}
    owners: dict[tuple[str, str, str], int | None] = {}
    moved: dict[str, Any] = {}
    named: set[str] = set()
    for op, parsed in parsed_ops:
        if parsed is None or parsed[2] not in SIDES or parsed[:2] in listed:
            continue
        kind, uuid, part, item = parsed
        if (kind, uuid, part) not in owners:
            owner = owner_of(kind, uuid, part)
            owners[(kind, uuid, part)] = None if owner is None else owner.as_pointer()
        pointer = owners[(kind, uuid, part)]
        if pointer is None:
            continue
        new: list[str | None] = list(item)
        for holder, at, side in SIDES[part]:
            new[at] = _new_socket(moves, (pointer, item[holder]), side, item[at])
        if tuple(new) == item:
            continue
        named.add(op[1])
        if None not in new:
            moved[sync.make_key(kind, uuid, part, *new)] = op[2] if op[0] == "set" else None
    return moved, named


class MovedSockets:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._pending: dict[int, tuple[float, dict]] = {}  # op id -> (when sent, moves)
        self._acked: list[tuple[int, float, dict]] = []  # (seq, when acked, moves), oldest first
        socket_moves.forget()  # a room's trees are read again as they are applied

    @staticmethod
    def discard() -> None:
        """Reads that were not the artist's (the applier reading back what it applied) moved nothing."""
        socket_moves.take()

    def sent(self, op_ids: list[int]) -> None:
        """Our batches just sent, with the moves read since the last call."""
        moves = socket_moves.take()
        if moves and op_ids:
            self._pending[op_ids[-1]] = (time.monotonic(), moves)

    def acked(self, op_id: int, seq: int) -> None:
        entry = self._pending.pop(op_id, None)
        if entry is not None:
            self._acked = [*self._acked[-(KEEP_COUNT - 1) :], (seq, time.monotonic(), entry[1])]

    def refused(self, op_ids) -> None:
        for op_id in op_ids:
            self._pending.pop(op_id, None)

    def follow(
        self, ops: list[list[Any]], seen: int | None, ours: Mapping[str, bytes], owner_of: Callable = owner_of
    ) -> dict[str, bytes | None]:
        """What to apply here and send for another artist's ``ops`` made having seen ``seen``: their keys at
        moved positions at the new ones, and ours again at the old ones (``ours``: what we hold); empty when
        none of our moves is news to them."""
        now = time.monotonic()
        self._acked = [entry for entry in self._acked if now - entry[1] < KEEP_SECONDS]
        self._pending = {k: v for k, v in self._pending.items() if now - v[0] < PENDING_SECONDS}
        if seen is None:
            return {}
        unseen = [moves for seq, _, moves in self._acked if seq > seen]
        unseen += [moves for _, (_, moves) in sorted(self._pending.items())]
        if not unseen:
            return {}
        moved, named = follow_ops(ops, unseen, owner_of)
        if not named:
            return {}
        return {**{key: ours.get(key) for key in named}, **moved}
