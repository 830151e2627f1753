"""The order in which the applier applies what it is fed (apply.py): datablocks before those that link to
them, the parts that place objects in the scene first, values naming chunks after every light one, deletes
last; and where a slice of that order may end."""

from __future__ import annotations

from collections.abc import Iterable

from .chunks import holds_chunks
from .keys import PARTS, PRIMARY_PART, order_of, split_key

Op = tuple[str, bytes | None]

# The parts that place a datablock in the scene, by kind in the order they are applied: what a joiner needs
# to see and select every object where it is. The rest (object data, materials, modifiers...) comes after.
# The material lists of object data come with them: set on data whose objects are in the scene, a material
# list makes Blender rebuild the scene's relations, and its next evaluation evaluates every object again
# (~40 ms with 500 objects, once per pump while a joiner's meshes filled in). Made with its materials (each
# material's meta makes it: its node tree comes later) before its objects are linked, the data costs no
# rebuild the linking does not cost anyway.
MATERIAL_LIST_DATA = ("mesh", "curve", "mball", "volume", "pcloud", "hair", "gpencil")  # lists in their meta
# A mesh's geometry comes with it too when it is light (a value naming chunks comes after every light one,
# whatever its part): its objects are evaluated once, whole, when they are linked. Filled in after the
# linking, each object was evaluated a second time (~0.18 s of a 2,000-object join's evaluations).
PLACED_WITH_DATA = {"mesh": frozenset({PRIMARY_PART, "geometry"})}
# A scene comes whole but for its markers (they bind objects, and Blender evaluates nothing for them), and
# the world and line styles it names are made: applied once the objects are in the view layer, a scene's
# render settings made Blender evaluate every object again, and a line set taking its line style rebuilt
# the scene's relations first (130 ms at the end of a 2,000-object join).
PLACING: dict[str, frozenset[str]] = {
    "scene": frozenset(PARTS["scene"]) - {"marker"},
    "coll": frozenset({PRIMARY_PART, "name", "in"}),
    "mat": frozenset({PRIMARY_PART}),
    "world": frozenset({PRIMARY_PART}),
    "linestyle": frozenset({PRIMARY_PART}),
    **{kind: PLACED_WITH_DATA.get(kind, frozenset({PRIMARY_PART})) for kind in MATERIAL_LIST_DATA},
    "obj": frozenset({PRIMARY_PART, "name", "parent", "in", "location", "rotation", "scale", "delta"}),
}
# Items of other parts that place too: an object hidden in the room is not shown while the rest arrives.
PLACING_ITEMS: frozenset[tuple[str, str, tuple[str, ...]]] = frozenset(
    {("obj", "set", ("hide",)), ("obj", "set", ("hide_viewport",))}
)
_PLACING_RANK = {kind: i for i, kind in enumerate(PLACING)}


def _placing_rank(parsed: tuple[str, str, str, tuple[str, ...]] | None) -> int:
    """Where a key goes among the placing parts (scenes, then collections, then objects); after them."""
    if parsed is None:
        return len(PLACING)
    kind, _, part, items = parsed
    if part in PLACING.get(kind, ()) or (kind, part, items) in PLACING_ITEMS:
        return _PLACING_RANK[kind]
    return len(PLACING)


# A key's parse and order: (split_key, order_of, its order among sets but for its weight).
Ranked = tuple[tuple[str, str, str, tuple[str, ...]] | None, tuple, tuple]


_UNOWNED: Ranked = (None, order_of(None), (len(PLACING), *order_of(None)))
_PART_RANKS: dict[tuple[str, str], tuple[int, int, int, int]] = {}  # (kind, part) -> parts of its rank


def rank(key: str) -> Ranked:
    parsed = split_key(key)
    if parsed is None:
        return _UNOWNED
    kind, uuid, part, items = parsed
    # What a key's rank takes from its kind and part, made once for each (a join ranks tens of thousands).
    found = _PART_RANKS.get((kind, part))
    if found is None:
        kind_order, leading, _, part_order = order_of((kind, uuid, part))
        placing = _placing_rank((kind, uuid, part, ()))
        found = _PART_RANKS[kind, part] = (kind_order, leading, part_order, placing)
    kind_order, leading, part_order, placing = found
    if items:  # an item key may place where its part does not (PLACING_ITEMS)
        placing = _placing_rank(parsed)
    return parsed, (kind_order, leading, uuid, part_order), (placing, kind_order, leading, uuid, part_order)


def set_order(ranked: Ranked, value: bytes) -> tuple:
    """Where a set goes among the sets (:func:`sort_ops`): values that name chunks after every light one,
    then by ``ranked``'s order among sets."""
    return (holds_chunks(value), *ranked[2])


def sort_ops(
    ops: Iterable[Op], ranks: dict[str, Ranked] | None = None, orders: dict[str, tuple] | None = None
) -> list[Op]:
    """Collapse to the last operation per key and order them for application.

    ``ranks`` keeps each key's :func:`rank` from one call to the next (a queue fed in several batches
    is sorted again each time; parsing every key dominated). ``orders`` gets each set's sort key.

    Sets come first: the parts that place scenes, collections and objects
    (:data:`PLACING`), then the rest, datablocks before those that link to them and each
    datablock's primary part before its other parts, values that name chunks
    last; then deletes, linking datablocks first.  A part set for a datablock whose primary key is
    deleted in the same batch is dropped.
    """
    last: dict[str, bytes | None] = {}
    for key, value in ops:
        last.pop(key, None)
        last[key] = value
    ranks = {} if ranks is None else ranks
    for key in last:
        if key not in ranks:
            ranks[key] = rank(key)  # once per key: a join sorts tens of thousands
    parsed = {key: ranks[key][0] for key in last}
    gone = set()
    for key, value in last.items():
        bits = parsed[key]
        if value is None and bits is not None and bits[2] == PRIMARY_PART:
            gone.add((bits[0], bits[1]))
    sets, deletes = [], []
    for key, value in last.items():
        if value is None:
            deletes.append((key, value))
            continue
        bits = parsed[key]
        if bits is not None and (bits[0], bits[1]) in gone:
            continue
        sets.append((key, value))
    # Values naming chunks (a large mesh's geometry, a file) after every light one: objects, transforms and
    # small meshes are there to work with first. What needs such a value waits for it (e.g. a mesh's shape
    # keys for its geometry), as it does when its chunks are still on their way (chunk_transfer.py).
    orders = {} if orders is None else orders
    for key, value in sets:
        orders[key] = set_order(ranks[key], value)
    # Objects are placed first (scenes, collections, materials and the data holding material lists made,
    # then objects made, linked, parented and moved; an object's data is empty, or a stand-in, until its
    # own keys fill it in), so a joiner can look and work while the rest arrives.
    sets.sort(key=lambda op: orders[op[0]])
    deletes.sort(key=lambda op: ranks[op[0]][1], reverse=True)
    return sets + deletes


def placed_whole(queue: list[Op], start: int, max_ops: int | None, ranks: dict[str, Ranked]) -> int:
    """How many values of ``queue`` (ranked in ``ranks``) from ``start`` make the applier's next slice:
    ``max_ops`` or more, as a slice does not end inside one object's placing parts. The artist may act
    between two pumps, and a move of an object made but not yet moved would be undone by its location."""
    left = len(queue) - start
    count = left if max_ops is None else max(0, min(max_ops, left))
    if count == 0 or count >= left:
        return count
    last = ranks.get(queue[start + count - 1][0])
    if last is None or last[0] is None or last[0][0] != "obj" or last[2][0] >= len(PLACING):
        return count
    while count < left:
        ranked = ranks.get(queue[start + count][0])
        if ranked is None or ranked[0] is None or ranked[2][0] >= len(PLACING):
            break
        if ranked[0][:2] != last[0][:2]:
            break
        count += 1
    return count
