"""The session's side of sync/moves.py: what each of our batches moved (sockets named by position;
renamed modifiers, constraints, effects, view layers and tracks), kept until no edit that had not seen
it can still arrive, and another artist's keys brought to where they now point.

A batch of ours that moved something (an item or an interface socket removed or reordered; a modifier,
constraint, effect, view layer or track renamed) is kept by op id until it is acknowledged, then by its seq.
Another artist's batch whose ``seen`` is below that seq, or that arrives while ours is unacknowledged
(ordered before it), was made before it: what it names the old way is applied here the new way, the
keys it named the old way get what we hold there again, and both go out as our edit made having seen
it. Either order of the two batches ends with both edits: the removal (or rename), and the other
artist's value on the item he meant.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import bpy

from . import sync
from .sync import moves
from .sync.index import find
from .sync.node_trees import tree_of

# An acknowledged move is kept this long for batches made before it (an artist reconnecting resends
# edits made before it with their old ``seen``), and at most this many.
KEEP_SECONDS = 600.0
KEEP_COUNT = 64
# An unacknowledged batch the server never answers is dropped after this (it was refused or resent).
PENDING_SECONDS = 60.0

Steps = list[dict[moves.NodeRef, moves.Moves]]  # our batches' moves, oldest first

# Parts whose keys name sockets by position: (item segment of the socket's holder, of its socket, side).
SIDES = {
    "in": ((0, 1, "in"),),
    "out": ((0, 1, "out"),),
    "link": ((0, 1, "out"), (2, 3, "in")),
    "modin": ((0, 1, "modin"),),
}
# Parts whose keys name a modifier, constraint, shader effect, view layer or track: part -> (which segment,
# what names it).
NAMED = {
    "mod": (0, "modifiers"),
    "modset": (0, "modifiers"),
    "modin": (0, "modifiers"),
    "con": (0, "constraints"),
    "pbcon": (1, "constraints"),  # after its bone: ``constraints/<bone>``
    "fx": (0, "effects"),
    "fxset": (0, "effects"),
    "vlayer": (0, "view_layers"),  # a scene's
    "laycoll": (0, "view_layers"),
    "freestyle": (0, "view_layers"),
    "lineset": (0, "view_layers"),
    "linesetorder": (0, "view_layers"),
    "track": (1, "tracks"),  # a movie clip's, after its tracking object: ``tracks/<object>``
}


def owner_of(kind: str, uuid: str, part: str) -> bpy.types.ID | None:
    """What holds what a key of ``kind/uuid``'s ``part`` names: the node tree of a node group, a material
    or a world; the object for its modifiers, constraints and effects, the scene for its view layers, the
    clip for its tracks."""
    found = find(kind, uuid)
    return found if part in NAMED else tree_of(found)


def _new_socket(steps: Steps, ref: moves.NodeRef, side: str, socket: str) -> str | None:
    """``socket`` (``#<old index>``) through ``steps`` in order; None when it went."""
    if not socket.startswith("#") or not socket[1:].isdigit():
        return socket
    index: int | None = int(socket[1:])
    for step in steps:
        positions = step.get(ref, {}).get(side)
        if positions and index in positions:
            index = positions[index]
            if index is None:
                return None
    return f"#{index}"


def _new_name(steps: Steps, ref: moves.NodeRef, name: str) -> str:
    for step in steps:
        name = step.get(ref, {}).get("names", {}).get(name, name)
    return name


def _moved_item(steps: Steps, pointer: int, part: str, item: tuple[str, ...]) -> list[str | None]:
    """``item`` (a key's segments after its part) named as after ``steps``; a None segment: it went."""
    new: list[str | None] = list(item)
    if part in NAMED:
        at, what = NAMED[part]
        new[at] = _new_name(steps, (pointer, "/".join((what, *item[:at]))), item[at])
    sides = SIDES.get(part, ())
    for holder, at, side in sides if len(item) == 2 * len(sides) else ():  # an object's "in" is not one
        new[at] = _new_socket(steps, (pointer, new[holder] or ""), side, item[at])
    return new


def follow_ops(
    ops: list[list[Any]], steps: Steps, owner_of: Callable[[str, str, str], bpy.types.ID | None]
) -> tuple[dict[str, Any], set[str]]:
    """Another artist's ``ops``, made before ``steps`` (ours, oldest first): ``{key as named now: its value
    (None: deleted)}`` for the socket values, links, modifier inputs, modifiers and constraints they name
    the old way, and the keys they named so (what each holds here is ours again). A tree one of whose nodes'
    item lists the ops also set is left to the item lists' merge, and ops that set an interface to the
    interface's (sync/merges.py): sockets they added are at positions our moves do not know (a zone's
    input node has its output's items)."""
    parsed_ops = [(op, sync.split_key(op[1]) if op[0] in ("set", "delete") else None) for op in ops]
    if any(parsed is not None and parsed[2] == "iface" for _, parsed in parsed_ops):
        return {}, set()
    listed = {(p[0], p[1]) for _, p in parsed_ops if p is not None and p[2] == "items"}
    owners: dict[tuple[str, str, str], int | None] = {}
    moved: dict[str, Any] = {}
    named: set[str] = set()
    for op, parsed in parsed_ops:
        if parsed is None or (parsed[2] not in SIDES and parsed[2] not in NAMED):
            continue
        kind, uuid, part, item = parsed
        if part in SIDES and (kind, uuid) in listed:
            continue
        if (kind, uuid, part) not in owners:
            owner = owner_of(kind, uuid, part)
            owners[(kind, uuid, part)] = None if owner is None else owner.as_pointer()
        pointer = owners[(kind, uuid, part)]
        if pointer is None:
            continue
        new = _moved_item(steps, pointer, part, item)
        if tuple(new) == item:
            continue
        named.add(op[1])
        if None not in new:
            moved[sync.make_key(kind, uuid, part, *new)] = op[2] if op[0] == "set" else None  # type: ignore[arg-type]
    return moved, named


class MovedKeys:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._pending: dict[int, tuple[float, dict]] = {}  # op id -> (when sent, its moves)
        self._acked: list[tuple[int, float, dict]] = []  # (seq, when acked, its moves), oldest first
        moves.forget()  # a room's datablocks are read again as they are applied

    @staticmethod
    def discard(forget: bool = False) -> None:
        """Reads that were not the artist's (the applier reading back what it applied) moved nothing; with
        ``forget``, what was read is forgotten too (after an undo every struct is a new one, and one at a
        freed one's address would pass for it renamed)."""
        if forget:
            moves.forget()
        else:
            moves.take()

    def sent(self, op_ids: list[int]) -> None:
        """Our batches just sent, with what moved in the reads since the last call."""
        taken = moves.take()
        if taken and op_ids:
            self._pending[op_ids[-1]] = (time.monotonic(), taken)

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
        """What to apply here and send for another artist's ``ops`` made having seen ``seen``: their keys
        named the old way named the new way, and ours again at the old ones (``ours``: what we hold); empty
        when nothing we moved is news to them."""
        if not self._acked and not self._pending:
            return {}  # nothing moved: every other artist's batch, nearly always
        now = time.monotonic()
        self._acked = [entry for entry in self._acked if now - entry[1] < KEEP_SECONDS]
        self._pending = {k: v for k, v in self._pending.items() if now - v[0] < PENDING_SECONDS}
        if seen is None:
            return {}
        steps = [step for seq, _, step in self._acked if seq > seen]
        steps += [step for _, (_, step) in sorted(self._pending.items())]
        if not steps:
            return {}
        moved, named = follow_ops(ops, steps, owner_of)
        if not named:
            return {}
        return {**{key: ours.get(key) for key in named}, **moved}
