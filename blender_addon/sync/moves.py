"""What this artist's edit moved from under the keys another artist's edit names: sockets named by
position, and renamed modifiers, constraints, effects, view layers and tracks.

Sockets of group input and output nodes, group nodes and nodes with item lists are named by position
(``#<index>``, node_trees.py), and so are a geometry nodes modifier's inputs (modifiers.py). An artist
removing an item or an interface socket moves the sockets after it; another artist who gave one of those
sockets a value or a link at the same moment named it by its old position, and that key would land one
socket off (or on nothing). Blender's own socket identifiers (``Item_<n>``, ``Socket_<n>``) do not
travel but are stable here, so each read of such a node or modifier records them: between two reads of
the scan, the identifiers say where each old position went (``note``, ``take``). The session keeps those
moves beside the batch that carried them and brings another artist's keys that had not seen it to the
new positions (moved_keys.py).

Modifiers', constraints', shader effects', view layers' and tracks' keys name them (``mod/<name>``,
``con/<name>``, ``fxset/<name>/<setting>``, ``vlayer/<name>``, ``track/<object>/<name>``...): renaming
one replaces them, and another artist's setting of it under the old name would make the old one again or
be lost. Each read records their names by what Blender keeps across a rename (a modifier's
``persistent_uid``; a constraint's, effect's, view layer's or track's struct, with its type where it has
one; stable on one machine), and a name that changed is a rename (``note_names``, taken as side
``names`` of ``(owner, what)``: old name -> new).
"""

from __future__ import annotations

import bpy

Positions = dict[int, int | None]  # old position -> new one (None: the socket is gone); moved ones only
Moves = dict[str, dict]  # side ("in", "out", "modin") -> its Positions; "names" -> {old name: new}
NodeRef = tuple[int, str]  # (pointer of the owner, node id, modifier name or what ``note_names`` names)

_layouts: dict[NodeRef, dict[str, tuple[str, ...]]] = {}  # side -> its sockets' identifiers
_names: dict[NodeRef, dict[object, str]] = {}  # (owner, what) -> {what tells one apart: its name}
_renamed: dict[NodeRef, dict[str, str]] = {}  # since the last take(): old name -> new
_since: dict[NodeRef, dict[str, tuple[str, ...]]] = {}  # layouts as of the last take(), of those changed


def moved_positions(old: tuple[str, ...], new: tuple[str, ...]) -> Positions:
    """Where each of ``old``'s sockets is in ``new``, by identifier (the n-th of a repeated one to the
    n-th), for those whose position changed; empty when none did."""
    where: dict[tuple[str, int], int] = {}
    counts: dict[str, int] = {}
    for i, ident in enumerate(new):
        where[(ident, counts.get(ident, 0))] = i
        counts[ident] = counts.get(ident, 0) + 1
    out: Positions = {}
    counts.clear()
    for i, ident in enumerate(old):
        target = where.get((ident, counts.get(ident, 0)))
        counts[ident] = counts.get(ident, 0) + 1
        if target != i:
            out[i] = target
    return out


def note(owner: bpy.types.ID, name: str, layout: dict[str, tuple[str, ...]]) -> None:
    """A read of what ``owner`` names ``name`` (a node id, a modifier's name) whose sockets are named by
    position: its sockets' identifiers on each side (``in``, ``out``, ``modin``)."""
    ref = (owner.as_pointer(), name)
    before = _layouts.get(ref)
    _layouts[ref] = layout
    if before is not None and before != layout:
        _since.setdefault(ref, before)


def note_node(tree: bpy.types.NodeTree, nid: str, node: bpy.types.Node) -> None:
    note(
        tree,
        nid,
        {"in": tuple(s.identifier for s in node.inputs), "out": tuple(s.identifier for s in node.outputs)},
    )


def note_names(owner: bpy.types.ID, what: str, names: dict[object, str]) -> None:
    """A read of ``owner``'s ``what`` (``modifiers``, ``constraints``, ``constraints/<bone>``, ``effects``,
    ``view_layers``, ``tracks/<tracking object>``): each one's name by what tells it apart across a rename."""
    ref = (owner.as_pointer(), what)
    before = _names.get(ref)
    if not names and before is None:
        return  # most objects have no modifiers or constraints: nothing kept for them
    _names[ref] = names
    for uid, name in names.items():
        old = None if before is None else before.get(uid)
        if old is not None and old != name:
            renamed = _renamed.setdefault(ref, {})
            first = next((was for was, now in renamed.items() if now == old), old)  # renamed twice
            renamed[first] = name
            if first == name:  # and back
                del renamed[first]


def take() -> dict[NodeRef, Moves]:
    """How the sockets moved and what was renamed since the last call, where they did."""
    out: dict[NodeRef, Moves] = {ref: {"names": names} for ref, names in _renamed.items() if names}
    _renamed.clear()
    for ref, before in _since.items():
        now = _layouts[ref]
        moves = {side: moved for side in now if (moved := moved_positions(before.get(side, ()), now[side]))}
        if moves:
            out.setdefault(ref, {}).update(moves)
    _since.clear()
    return out


def forget() -> None:
    _layouts.clear()
    _since.clear()
    _names.clear()
    _renamed.clear()
