"""The three-way merges of two edits of one mapping and of one list of unique items, the steps every merge
of merges.py is built from.

No bpy: values in, values out.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import TypeVar

Item = TypeVar("Item", bound=Hashable)

_ABSENT = object()


def three_way(
    base: dict, ours: dict, theirs: dict, both: Callable[[object, object, object], object] | None = None
) -> dict:
    """Theirs, with each entry that only ours changed against ``base`` (set, or removed) taken from ours. An
    entry both changed is theirs, or ``both(base's, ours', theirs')`` when given and all three hold it."""
    out = dict(theirs)
    for name in base.keys() | ours.keys():
        mine, before, their = ours.get(name, _ABSENT), base.get(name, _ABSENT), theirs.get(name, _ABSENT)
        if mine == before:
            continue
        if their == before:
            if mine is _ABSENT:
                out.pop(name, None)
            else:
                out[name] = mine
        elif both is not None and _ABSENT not in (mine, before, their):
            out[name] = both(before, mine, their)
    return out


def unique_names(items: object) -> list[str] | None:
    """The names of a list of named documents as the add-on writes them (unique strings), or None."""
    if not isinstance(items, list) or not all(isinstance(doc, dict) for doc in items):
        return None
    names = [doc.get("name") for doc in items]
    if not all(isinstance(name, str) for name in names) or len(set(names)) != len(names):
        return None
    return names  # type: ignore[return-value]


def settings(base: dict, ours: dict, theirs: dict) -> dict:
    """A settings document (``{props, ...}``): per field, and per setting inside ``props``."""
    merged = three_way(base, ours, theirs)
    merged["props"] = three_way(base["props"], ours["props"], theirs["props"])
    return merged


def merge_order(base: list[Item], ours: list[Item], theirs: list[Item]) -> list[Item]:
    """Both edits' additions and removals of a list of unique items; our order of the items all three hold
    unless theirs changed it. An item either edit added goes before the item that followed it in that edit
    (at the end when nothing did); one both added is placed by theirs. Linear in the lists' lengths: a
    grease pencil frame's strokes are thousands of items."""
    in_base, in_ours, in_theirs = set(base), set(ours), set(theirs)
    kept = {item for item in base if item in in_ours and item in in_theirs}
    ours_kept = [item for item in ours if item in kept]
    theirs_kept = [item for item in theirs if item in kept]
    out = ours_kept if theirs_kept == [item for item in base if item in kept] else theirs_kept
    for source in (theirs, ours):
        placed = set(out)
        before: dict[Item | None, list[Item]] = {}  # an item of ``out`` (None: the end) -> added before it
        following: Item | None = None
        for item in reversed(source):
            if item in placed:
                following = item
            elif item not in in_base:  # else kept, or removed by the other edit
                before.setdefault(following, []).append(item)
        if not before:
            continue
        grown: list[Item] = []
        for item in out:
            grown.extend(reversed(before.get(item, ())))
            grown.append(item)
        grown.extend(reversed(before.get(None, ())))
        out = grown
    return out
