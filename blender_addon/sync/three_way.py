"""The three-way merges of two edits of one mapping, of one list of unique items, of a list whose items
have no identity and of a text's lines, the steps every merge of merges.py is built from.

No bpy: values in, values out.
"""

from __future__ import annotations

import difflib
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


Doc = TypeVar("Doc")


def counted(docs: list[Doc], identity: Callable[[Doc], Hashable]) -> list[tuple[Hashable, int]]:
    """Each document's identity and how many equal ones come before it: a list's items are then unique
    (strokes, points, a node group's interface items)."""
    seen: dict[Hashable, int] = {}
    out = []
    for doc in docs:
        ident = identity(doc)
        seen[ident] = count = seen.get(ident, -1) + 1
        out.append((ident, count))
    return out


def _runs(base: dict, edit: list) -> dict[tuple[int, int], list]:
    """The runs of items ``edit`` added, by the held items around them: (index in base of the held item
    before, or -1; of the one after, or len(base))."""
    out: dict[tuple[int, int], list] = {}
    previous, run = -1, []
    for item in edit:
        at = base.get(item)
        if at is None:
            run.append(item)
            continue
        if run:
            out[(previous, at)] = run
        previous, run = at, []
    if run:
        out[(previous, len(base))] = run
    return out


def merge_in_place(
    base: list[Doc],
    ours: list[Doc],
    theirs: list[Doc],
    identity: Callable[[Doc], Hashable],
    both: Callable[[Doc, Doc, Doc], Doc] | None = None,
) -> list[Doc]:
    """Two edits of a list whose items have no identity that travels (strokes, spline points): an item is
    its content (``identity``), counted among equal ones, so an item changed is the old one removed and a
    new one in its place. The held items both kept stay in order; each edit's new items go between the
    held items they were between in that edit (theirs first where both put some), whether or not the other
    edit kept those. Where both replaced the items between the same two held ones, each edit's first new
    items there stand for those, one for one, and ``both(base's, ours', theirs')`` is put in their place
    (without ``both``, every version is: neither edit is lost). When an edit reordered held items,
    ``merge_order``'s rule, without pairing."""
    idents = [counted(docs, identity) for docs in (base, ours, theirs)]
    doc_of: dict[tuple[Hashable, int], Doc] = {}
    for docs, names in zip((theirs, ours, base), (idents[2], idents[1], idents[0]), strict=True):
        for doc, name in zip(docs, names, strict=True):
            doc_of.setdefault(name, doc)  # one both drew: theirs' document (they are equal)
    position = {name: i for i, name in enumerate(idents[0])}
    held = [[position[name] for name in edit if name in position] for edit in idents[1:]]
    if any(indices != sorted(indices) for indices in held):
        return [doc_of[name] for name in merge_order(*idents)]
    kept = set(idents[1]) & set(idents[2])
    ours_runs, theirs_runs = _runs(position, idents[1]), _runs(position, idents[2])
    ours_new, theirs_new = (set(edit) - position.keys() for edit in idents[1:])
    before: dict[int, list[Doc]] = {}  # base index (len(base): the end) -> what goes before it
    placed: set = set()
    for gap, run in theirs_runs.items():
        # Both removed every held item between the two around this gap (both hold those two): the first
        # new items of each edit there (not one both made: theirs places it) stand for them, one for one.
        ours_run = ours_runs.get(gap, []) if both is not None else []
        mine = [name for name in ours_run if name not in theirs_new]
        their = [name for name in run if name not in ours_new]
        pairs = min(len(their), len(mine), gap[1] - gap[0] - 1)
        slot = before.setdefault(gap[1], [])
        for i, replaced in enumerate(idents[0][gap[0] + 1 : gap[0] + 1 + pairs]):
            slot.append(both(doc_of[replaced], doc_of[mine[i]], doc_of[their[i]]))  # type: ignore[misc]
        paired = set(mine[:pairs]) | set(their[:pairs])
        slot.extend(doc_of[name] for name in run if name not in paired)
        placed.update(run, paired)
    for gap, run in ours_runs.items():
        before.setdefault(gap[1], []).extend(doc_of[name] for name in run if name not in placed)
    out: list[Doc] = []
    for i, name in enumerate(idents[0]):
        out += before.get(i, ())
        if name in kept:
            out.append(doc_of[name])
    return out + before.get(len(idents[0]), [])


def renamed_in_place(before: list[str], after: list[str]) -> dict[str, str]:
    """The items of a list renamed in place between two versions (names in order): old name -> new, where
    a position holds a name ``before`` lacked and its old name is gone from ``after``."""
    return {
        was: now
        for was, now in zip(before, after, strict=False)
        if was != now and was not in after and now not in before
    }


def _matched(base: list[str], other: list[str]) -> dict[int, int]:
    """Where each line of ``base`` that ``other`` kept is in ``other`` (a longest common subsequence)."""
    found: dict[int, int] = {}
    for a, b, size in difflib.SequenceMatcher(None, base, other, autojunk=False).get_matching_blocks():
        found.update((a + k, b + k) for k in range(size))
    return found


def merge_lines(base: list[str], ours: list[str], theirs: list[str]) -> list[str]:
    """Two edits of a text, line by line (as diff3 does): the lines both kept are anchors; between two
    anchors, the stretch only one edit changed is that edit's, one both changed alike is that, and one
    both changed differently is theirs then ours (neither edit is lost; which was meant cannot be told)."""
    in_ours, in_theirs = _matched(base, ours), _matched(base, theirs)
    out: list[str] = []
    at = (0, 0, 0)
    for i in [*(i for i in range(len(base)) if i in in_ours and i in in_theirs), len(base)]:
        end = (i, in_ours.get(i, len(ours)), in_theirs.get(i, len(theirs)))
        was, mine, their = base[at[0] : end[0]], ours[at[1] : end[1]], theirs[at[2] : end[2]]
        out += their if mine == was else mine if their in (was, mine) else their + mine
        if i < len(base):
            out.append(base[i])
        at = (end[0] + 1, end[1] + 1, end[2] + 1)
    return out
