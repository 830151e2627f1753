"""The three-way merge of two edits of one mapping, the step every merge of merges.py is built from.

No bpy: values in, values out.
"""

from __future__ import annotations

from collections.abc import Callable

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
