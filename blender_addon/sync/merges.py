"""Values of one key that two artists edited at the same moment, where both edits can be kept.

Server order keeps the value ordered second whole (docs/protocol.md section 3). For the keys below, the
artist whose edit was overridden (protocol/convergence.py) merges instead: a three-way merge of the value
its edit was made from (``base``), its own (``ours``) and the one that replaced it (``theirs``), applied
after theirs and sent as a new edit (session_events.py). Each merge returns None when nothing of ours is
left to keep: then theirs stands.

- an f-curve's keyframes (``action/<u>/fcurve/…``): per frame (keyframe_merge.py);
- one node's settings (``<kind>/<u>/node/<id>``): per field, and per setting inside ``props``: two artists
  changing a Math node's operation and its clamp keep both. A node replaced by one of another type is
  theirs. Colour ramps and other held structs are one field each. The same for the other settings
  documents: a constraint (``con/<c>``, ``pbcon/<bone>/<c>``), a view layer (``vlayer/<v>``: its AOVs and
  light groups are one field each), its Freestyle settings and a line set, and the ``meta`` of a lattice
  (name, size, settings; one ours resized is theirs, as its points may be) and of a light probe (name,
  type, settings; one of another type is theirs).
- the ``meta`` of a datablock holding a file (an image, a sound, a font, a movie clip, a library, a cache
  file): per field and per setting, the file's own fields as one (file_meta_merge.py).
- a stack's order (``modorder``, ``conorder``, ``nlaorder``... : names): what each edit added or removed,
  and our reordering when they did not reorder (else theirs): one artist moving a modifier while another
  adds one keeps both. An item that either edit added goes before the item that follows it in that edit
  (at the end when nothing does), as a new modifier is added at the end.
- a datablock's material list (``meta`` of meshes, curves, grease pencils...): slots are positions (faces
  name them by index), so only what leaves every position in place is merged: the slots each edit added
  at the end (theirs first, then ours) and a slot only we changed. A list one of the edits shortened is
  theirs. The meta's other fields, as a node's.
- a node group's interface (``ngroup/<u>/iface``): both edits' sockets and panels. Blender gives an item
  no identity that travels (``Socket_<n>`` identifiers come from a counter on each replica), so an item is
  its type, name, direction and socket type, counted among repeats of those (two edits each adding one of
  the same name and type add two; a socket ours renamed in place is the base's under a new name); the
  items are merged as a stack's order, each one's settings and panel as a node's fields, then laid out
  as Blender keeps them (in each panel: a panel toggle, outputs, inputs, sub-panels; ours' new items
  after theirs). An item placed in a panel the other edit removed goes to the
  top level. Other values name a socket by its position among the group's inputs or outputs (group input
  and output nodes' links, group nodes' values, modifier inputs), and theirs arrive beside the interface
  they were made on: so only a merge that leaves each of theirs' sockets in its place is made (both
  adding sockets, or changing different items' settings); one that would move them (ours reordered
  sockets, or added a top-level one while their panels hold sockets) leaves theirs. A socket ours removed
  goes, but is applied first kept (``staged``) and removed once theirs' values are in (merge_rereads.py).
  Ours' values that name moved sockets are read again by the session once the merge is applied, and sent
  under the new positions (session_events.py, merge_rereads.py).
- one node's item lists (``<kind>/<u>/items/<node id>``: a repeat zone's, a capture attribute's...): the
  items ours added go after theirs (renamed as Blender would, ``Float.001``, where theirs took the name),
  each item's settings as a node's fields, theirs' items and order otherwise, without the items ours
  removed (kept first, ``staged``, like a removed socket); items without names (an index switch's) are a
  count, theirs' new ones then ours'; an item ours renamed in place keeps its new name; the item sockets
  are named by position, so a merge where ours reordered an item is not made. The session
  gives the items here the merged names and order before the merge is applied, so that ours keep their
  links and values (merge_rereads.py).
- an image's unsaved pixels (``img/<u>/data``, its ``painted`` field: sync/painted.py): per pixel, ours where
  only we painted it, theirs elsewhere, when both painted over the same unsaved pixels (same size and layout).
  When both started from a saved image, what it shows saved is the base (the session reads it from a copy
  of the image: sync/painted.py). When the file itself changed, theirs.
- a grease pencil's strokes (``gpencil/<u>/strokes``): per layer and frame, and stroke by stroke in a frame
  both changed: what each erased, drew or changed (gp_merge.py), in ours' layers when ours added or
  removed one and its ``meta`` stood (session_events.py). Where an instanced frame would lose the frame
  whose drawing it shows, theirs.
- a camera's background images (``cam/<u>/bg``): each background per setting, the ones both added at the end
  (theirs first, then ours); a list either edit shortened is theirs (backgrounds are positions).
- a mask's layers (``mask/<u>/layers``): per layer by name (a layer renamed in place is the base's under
  its new name), each one's settings per setting, the splines of
  a layer both changed spline by spline and a spline's points point by point (mask_merge.py); theirs'
  layers in their order, then ours' new ones: two artists rotoscoping different shapes, or different
  points of one shape, keep both.
- a movie clip's tracking data: its settings and tracking objects (``clip/<u>/tracking``) per setting and by
  name, and one track (``clip/<u>/track/<object>/<track>``) per setting and per frame of its markers
  (tracking_merge.py).
- a text's content (``text/<u>/body``): line by line, as diff3 does (three_way.merge_lines): two artists
  editing different lines of one script or shot note keep both; a stretch both changed differently holds
  theirs, then ours.

No bpy: values in, values out.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from functools import partial
from typing import Any

from . import file_meta_merge, gp_merge, keyframe_merge, mask_merge, tracking_merge
from .chunks import MissingChunks
from .codec import decode_value, encode_value
from .three_way import counted, merge_lines, merge_order, renamed_in_place, three_way, unique_names
from .three_way import settings as settings_three_way

Merge = Callable[[bytes | None, bytes | None, bytes | None], bytes | None]
NODE_FIELDS = frozenset({"name", "type", "label", "hide", "mute", "props"})  # what every node value holds
SETTINGS_FIELDS = frozenset({"props"})
SETTINGS_PARTS = {"con": 1, "pbcon": 2, "vlayer": 1, "freestyle": 1, "lineset": 2}  # part -> item segments
SETTINGS_METAS = frozenset({"lattice", "lprobe"})  # kinds whose meta holds their settings as ``props``
ORDER_PARTS = frozenset(
    {"modorder", "conorder", "pbconorder", "fxorder", "nlaorder", "shapenlaorder", "treenlaorder"}
    | {"vlayerorder", "linesetorder"}
)  # values: the names of a stack's items, in order (sync/order.py)


def _is_map(doc: object) -> bool:
    return isinstance(doc, dict)


def _decoded(values: tuple[bytes | None, ...]) -> list[object] | None:
    if any(value is None for value in values):
        return None  # made or removed by one of the edits: theirs stands
    try:
        return [decode_value(value) for value in values]  # type: ignore[arg-type]
    except (MissingChunks, ValueError, TypeError):
        return None


def _settings(docs: list[object] | None, fields: frozenset[str]) -> bytes | None:
    """A settings document (``{props, ...}``, at least ``fields``): per field, and per setting of ``props``;
    one whose ``type`` differs between the three is theirs (replaced by another kind)."""
    if docs is None or not all(
        isinstance(d, dict) and d.keys() >= fields and isinstance(d["props"], dict) for d in docs
    ):
        return None  # not a settings document as this add-on writes them
    before, mine, their_doc = docs  # type: ignore[misc]
    if len({str(d.get("type")) for d in docs}) != 1:  # type: ignore[attr-defined]
        return None
    merged = settings_three_way(before, mine, their_doc)
    return None if merged == their_doc else encode_value(merged)


def node_settings(base: bytes | None, ours: bytes | None, theirs: bytes | None) -> bytes | None:
    return _settings(_decoded((base, ours, theirs)), NODE_FIELDS)


def settings(base: bytes | None, ours: bytes | None, theirs: bytes | None) -> bytes | None:
    """A constraint's, a view layer's, its Freestyle settings' or a line set's document."""
    return _settings(_decoded((base, ours, theirs)), SETTINGS_FIELDS)


def meta_settings(base: bytes | None, ours: bytes | None, theirs: bytes | None) -> bytes | None:
    """A lattice's or light probe's meta, as a constraint's document; a lattice ours resized is theirs: its
    points (another key) may be theirs' at the old size."""
    docs = _decoded((base, ours, theirs))
    if docs is not None and all(_is_map(d) for d in docs) and docs[1].get("size") != docs[0].get("size"):
        return None
    return _settings(docs, SETTINGS_FIELDS)


def _names(doc: object) -> bool:
    return isinstance(doc, list) and all(isinstance(n, str) for n in doc) and len(set(doc)) == len(doc)


def stack_order(base: bytes | None, ours: bytes | None, theirs: bytes | None) -> bytes | None:
    docs = _decoded((base, ours, theirs))
    if docs is None or not all(_names(doc) for doc in docs):
        return None
    merged = merge_order(*docs)  # type: ignore[arg-type]
    return None if merged == docs[2] else encode_value(merged)


Identity = tuple[Any, ...]  # an interface item: type, name, direction, socket type, count among repeats
_TOP: Identity = ()


def interface_identities(signatures: list[tuple]) -> list[Identity]:
    """Each interface item's identity: its signature (type, name, direction, socket type; also
    kinds/node_groups.signature) and how many equal ones come before it."""
    return [(*signature, count) for signature, count in counted(signatures, lambda signature: signature)]


def _interface(
    items: object, made_by: str = "", known: Collection = ()
) -> dict[Identity, tuple[dict, Identity]] | None:
    """identity -> (item, its panel's identity or _TOP); None when not an interface as the add-on writes.
    An item not ``known`` (in the base) is ``made_by`` this edit: two edits adding a socket of one name
    and type add two sockets."""
    if not isinstance(items, list):
        return None
    signatures = []
    for i, doc in enumerate(items):
        if not isinstance(doc, dict) or not isinstance(doc.get("props"), dict):
            return None
        signature = (doc.get("item_type"), doc.get("name"), doc.get("in_out"), doc.get("socket_type"))
        parent = doc.get("parent")
        if not all(isinstance(field, str | None) for field in signature) or not (
            parent is None or (type(parent) is int and 0 <= parent < i)
        ):
            return None
        signatures.append(signature)
    identities: list[Identity] = []
    out: dict[Identity, tuple[dict, Identity]] = {}
    for doc, ident in zip(items, interface_identities(signatures), strict=True):
        identities.append(ident if ident in known or not made_by else (*ident, made_by))
        parent = doc.get("parent")
        out[identities[-1]] = (doc, _TOP if parent is None else identities[parent])
    return out


def interface_items(doc: object) -> set[Identity]:
    """The identities of an interface value's items (none when it is not one as the add-on writes)."""
    return set(_interface(doc) or ())


def _rank(doc: dict) -> int:
    """Where Blender keeps an item among its panel's: a panel toggle, outputs, inputs, panels."""
    if doc.get("item_type") != "SOCKET":
        return 3
    if doc["props"].get("is_panel_toggle") is True:
        return 0
    return 1 if doc.get("in_out") == "OUTPUT" else 2


def _renamed_as_before(
    before: dict[Identity, tuple[dict, Identity]], mine: dict[Identity, tuple[dict, Identity]]
) -> dict[Identity, tuple[dict, Identity]]:
    """``mine`` with each socket it renamed in place (same place, kind, direction, type and panel as in
    ``before``, a name ``before`` lacks, its old name gone) under its identity in ``before``: a rename is
    a setting of the socket, not one removed and another added."""
    names = [{doc.get("name") for doc, _ in items.values()} for items in (before, mine)]
    out = {}
    for (old, (old_doc, old_panel)), (ident, (doc, panel)) in zip(before.items(), mine.items(), strict=False):
        if (
            ident != old
            and ident[0] == old[0] == "SOCKET"
            and ident[2:4] == old[2:4]
            and panel == old_panel
            and doc.get("name") not in names[0]
            and old_doc.get("name") not in names[1]
        ):
            out[ident] = old
    return {out.get(ident, ident): entry for ident, entry in mine.items()}


def merge_interface(base: list, ours: list, theirs: list, staged: bool = False) -> list[dict] | None:
    """Both edits' items of a node group's interface, laid out as Blender keeps them; None when one of
    the three is not an interface as the add-on writes it, or when the merge would move theirs' sockets.
    Items ours removed go, unless theirs changed them (then theirs stands); ``staged``: they are kept,
    for theirs' values to be applied on the layout they were made on (merge_rereads.py)."""
    before = _interface(base)
    mine = None if before is None else _interface(ours, "ours", before)
    their_items = None if before is None else _interface(theirs, "theirs", before)
    if before is None or mine is None or their_items is None:
        return None
    mine = _renamed_as_before(before, mine)
    removed = [ident for ident in before if ident not in mine]
    kept_for_now = mine
    if removed:
        if len(mine) + len(removed) != len(before) or any(
            ident in their_items and their_items[ident] != before[ident] for ident in removed
        ):
            return None  # ours also added (a rename, perhaps), or theirs changed what ours removed
        order = list(mine)
        for i, ident in enumerate(before):  # back where it was, after the base item before it
            if ident in removed:
                order.insert(0 if i == 0 else order.index(list(before)[i - 1]) + 1, ident)
        kept_for_now = {ident: mine.get(ident) or before[ident] for ident in order}
    laid_out = _laid_out(before, kept_for_now, their_items)
    if laid_out is None:
        return None
    return laid_out if staged or not removed else _laid_out(before, mine, their_items, check=False)


def _laid_out(
    before: dict[Identity, tuple[dict, Identity]],
    mine: dict[Identity, tuple[dict, Identity]],
    their_items: dict[Identity, tuple[dict, Identity]],
    check: bool = True,
) -> list[dict] | None:
    """The merged interface; None (``check``) when theirs' sockets would not keep their places."""
    order = merge_order(list(before), list(mine), list(their_items))
    items: dict[Identity, dict] = {}
    parents: dict[Identity, Identity] = {}
    for ident in order:
        if ident in before and ident in mine and ident in their_items:
            (old, old_panel), (doc, panel) = before[ident], mine[ident]
            their_doc, their_panel = their_items[ident]
            items[ident] = settings_three_way(old, doc, their_doc)
            parents[ident] = panel if panel != old_panel and their_panel == old_panel else their_panel
        else:  # added by one edit
            doc, panel = their_items[ident] if ident in their_items else mine[ident]
            items[ident], parents[ident] = dict(doc), panel
    for ident, panel in parents.items():  # its panel removed by the other edit
        if panel != _TOP and (panel not in items or items[panel].get("item_type") != "PANEL"):
            parents[ident] = _TOP
    for ident in order:  # two panels each moved into the other
        seen, panel = {ident}, parents[ident]
        while panel != _TOP:
            if panel in seen:
                parents[ident] = _TOP
                break
            seen.add(panel)
            panel = parents[panel]
    children: dict[Identity, list[Identity]] = {}
    for ident in order:
        children.setdefault(parents[ident], []).append(ident)

    def placed(panel: Identity) -> list[Identity]:  # in Blender's order; ours' new items after theirs
        return sorted(children.get(panel, []), key=lambda i: (_rank(items[i]), i not in their_items))

    out: list[dict] = []
    laid: list[Identity] = []
    stack: list[tuple[Identity, int | None]] = [(ident, None) for ident in reversed(placed(_TOP))]
    while stack:  # depth first, as items_tree lists them
        ident, parent = stack.pop()
        out.append({**items[ident], "parent": parent})
        laid.append(ident)
        stack.extend((child, len(out) - 1) for child in reversed(placed(ident)))
    for direction in ("INPUT", "OUTPUT") if check else ():
        # Theirs' links and values name its sockets by position, and they are applied on the merged
        # interface: each of its sockets must keep its place (ours' come after them).
        sockets = [ident for ident in their_items if ident[0] == "SOCKET" and ident[2] == direction]
        merged = [ident for ident in laid if ident[0] == "SOCKET" and ident[2] == direction]
        if merged[: len(sockets)] != sockets:
            return None
    return out


def node_interface(base: bytes | None, ours: bytes | None, theirs: bytes | None) -> bytes | None:
    docs = _decoded((base, ours, theirs))
    merged = None if docs is None else merge_interface(*docs)  # type: ignore[arg-type]
    return None if merged is None or docs is None or merged == docs[2] else encode_value(merged)


def staged(key: str, base: bytes | None, ours: bytes | None, theirs: bytes | None) -> bytes | None:
    """What a merge of ``key`` that removes items ours removed is applied as first (those items kept, so
    theirs' values naming sockets by position land where theirs made them; merge_rereads.py removes them
    afterwards); None for every other merge."""
    merge = merger(key)
    if merge is not node_items and merge is not node_interface:
        return None
    docs = _decoded((base, ours, theirs))
    if docs is None:
        return None
    if merge is node_items:
        out = merge_item_lists(*docs, staged=True) if all(isinstance(d, dict) for d in docs) else None  # type: ignore[arg-type]
    else:
        out = merge_interface(*docs, staged=True)  # type: ignore[arg-type]
    return None if out is None else encode_value(out)


def _unique(name: str, taken: set[str]) -> str:
    """``name``, or Blender's way of making it unique in a list: ``name.001``, ``name.002``..."""
    stem, dot, digits = name.rpartition(".")
    stem = stem if dot and digits.isdigit() and len(digits) >= 3 else name
    count = 0
    while name in taken:
        count += 1
        name = f"{stem}.{count:03d}"
    return name


def merge_item_lists(base: dict, ours: dict, theirs: dict, staged: bool = False) -> dict | None:
    """One node's item lists (``items/<node id>``): theirs, with each item's settings only ours changed,
    the items ours added after theirs (renamed as Blender would where theirs took the name) and without
    the items ours removed that theirs left as they were. ``staged``: those items kept, at theirs' places
    (theirs' links and values name the sockets by position: they are applied on that layout, and the
    items go afterwards, merge_rereads.py). Items without names (an index switch's) are a count: theirs'
    new ones, then ours'. An item ours renamed in place keeps its new name where theirs kept the old one
    (and took no item of that name). None when ours reordered an item (the sockets are named by
    position), removed one and added another, either removed an item without a name, or a list is not
    one the add-on writes."""
    merged = three_way(base, ours, theirs)
    for name in base.keys() & ours.keys() & theirs.keys():
        before, mine, their = base[name], ours[name], theirs[name]
        if len({isinstance(value, list) for value in (before, mine, their)}) != 1:
            return None  # a list in one of them only: not values the add-on writes
        if not isinstance(mine, list) or mine == before:
            continue
        if all(unnamed(items) for items in (before, mine, their)):  # an index switch's: a count
            if len(mine) < len(before) or len(their) < len(before):
                return None  # one of them removed an item: which one cannot be told
            merged[name] = their + mine[len(before) :]  # theirs' new items, then ours'
            continue
        names = [unique_names(items) for items in (before, mine, their)]
        if names[0] is None or names[1] is None or names[2] is None:
            return None
        renamed = renamed_in_place(names[0], names[1])
        if any(now in names[2] for now in renamed.values()):
            return None  # theirs took a name ours gave one of its items
        was = {now: old for old, now in renamed.items()}
        names[1] = [was.get(n, n) for n in names[1]]  # ours' names as the base knew them
        held = [n for n in names[1] if n in names[0]]
        added = [(n, doc) for n, doc in zip(names[1], mine, strict=True) if n not in names[0]]
        if held != [n for n in names[0] if n in held] or (added and len(held) < len(names[0])):
            return None  # ours reordered, renamed, or removed one and added another
        by_name = [
            dict(zip(n, items, strict=True)) for n, items in zip(names, (before, mine, their), strict=True)
        ]
        out = []
        for n, doc in zip(names[2], their, strict=True):
            if n not in by_name[0]:
                out.append(doc)  # theirs added it
            elif n in by_name[1]:
                item = three_way(by_name[0][n], {**by_name[1][n], "name": n}, doc)
                out.append({**item, "name": renamed[n]} if n in renamed else item)
            elif staged or doc != by_name[0][n]:
                out.append(doc)  # ours removed it: kept for now, or theirs changed it (theirs stands)
        taken = set(names[2]) | {n for n, _ in added}  # ours keep their names where theirs took none
        for n, doc in added:
            if n in by_name[2]:
                n = _unique(n, taken)
                taken.add(n)
            out.append({**doc, "name": n})
        merged[name] = out
    return merged


def unnamed(items: object) -> bool:
    """A list of items without names or settings (an index switch's: its items are positions)."""
    return isinstance(items, list) and all(item == {} for item in items)


def node_items(base: bytes | None, ours: bytes | None, theirs: bytes | None) -> bytes | None:
    docs = _decoded((base, ours, theirs))
    if docs is None or not all(isinstance(doc, dict) for doc in docs):
        return None
    merged = merge_item_lists(*docs)  # type: ignore[arg-type]
    return None if merged is None or merged == docs[2] else encode_value(merged)


def merge_slots(base: list, ours: list, theirs: list) -> list | None:
    """Position by position as ``three_way``, then the slots theirs added, then ours; None when an edit
    shortened the list (positions moved: no merge keeps them)."""
    if len(ours) < len(base) or len(theirs) < len(base):
        return None
    out = [
        mine if mine != before and their == before else their
        for before, mine, their in zip(base, ours, theirs, strict=False)
    ]
    return out + theirs[len(base) :] + ours[len(base) :]


def material_list(base: bytes | None, ours: bytes | None, theirs: bytes | None) -> bytes | None:
    docs = _decoded((base, ours, theirs))
    if docs is None or not all(isinstance(d, dict) and isinstance(d.get("materials"), list) for d in docs):
        return None  # not a meta holding a material list
    before, mine, their_doc = docs  # type: ignore[misc]
    slots = merge_slots(before["materials"], mine["materials"], their_doc["materials"])
    if slots is None:
        return None
    merged = three_way(before, mine, their_doc)
    merged["materials"] = slots
    return None if merged == their_doc else encode_value(merged)


def merge_backgrounds(base: list, ours: list, theirs: list) -> list | None:
    """A camera's background images (``cam/<u>/bg``): positions as a material list's, each background per
    setting (its image user one setting)."""
    if len(ours) < len(base) or len(theirs) < len(base):
        return None  # positions moved: theirs
    merged = [three_way(*backgrounds) for backgrounds in zip(base, ours, theirs, strict=False)]
    return merged + theirs[len(base) :] + ours[len(base) :]


def merge_pixels(base: dict, ours: dict, theirs: dict) -> dict | None:
    """Painted pixels (sync/painted.py) of one layout: each pixel ours where only ours differs from base,
    else theirs (a pixel both painted is theirs); None when the three do not share a size, channel count and
    type."""
    import numpy as np  # shipped with Blender; only painted images need it

    docs = (base, ours, theirs)
    if not all(isinstance(doc, dict) and isinstance(doc.get("pixels"), bytes) for doc in docs):
        return None
    same = all(base.get(f) == ours.get(f) == theirs.get(f) for f in ("size", "channels", "float"))
    if not same or type(base["channels"]) is not int:
        return None
    stride = base["channels"] * (4 if base["float"] else 1)  # one pixel's bytes
    arrays = [np.frombuffer(doc["pixels"], np.uint8) for doc in (base, ours, theirs)]
    if stride <= 0 or len({len(a) for a in arrays}) != 1 or len(arrays[0]) % stride:
        return None
    before, mine, their_pixels = (a.reshape(-1, stride) for a in arrays)
    only_ours = (mine != before).any(axis=1) & (their_pixels == before).all(axis=1)
    merged = np.where(only_ours[:, None], mine, their_pixels)
    return {**theirs, "pixels": merged.tobytes()}


def image_data(
    base: bytes | None, ours: bytes | None, theirs: bytes | None, saved: Callable[[], object] | None = None
) -> bytes | None:
    """``saved``: the pixels the image shows without unsaved ones (sync/painted.py), asked for when both
    edits painted an image that held none (the base value has no pixels to compare with)."""
    docs = _decoded((base, ours, theirs))
    if docs is None or not all(isinstance(d, dict) and "files" not in d for d in docs):
        return None
    before, mine, their_doc = docs
    if their_doc.get("sha256") != before.get("sha256"):
        return None  # the file changed (saved, replaced): our pixels were painted over the old one
    merged = three_way(before, mine, their_doc)  # type: ignore[arg-type]
    painted = [doc.get("painted") for doc in docs]  # type: ignore[attr-defined]
    if painted[1] != painted[0] and painted[2] != painted[0]:
        if painted[0] is None and saved is not None and mine.get("sha256") == before.get("sha256"):  # type: ignore[attr-defined]
            painted[0] = saved()
        pixels = merge_pixels(*painted)
        if pixels is None:
            return None
        merged["painted"] = pixels
    return None if merged == their_doc else encode_value(merged)


def _documents(merge: Callable[[Any, Any, Any], Any], shape: Callable[[object], bool] = _is_map) -> Merge:
    """A merge of three decoded documents (None: nothing of ours to keep), theirs standing for a document
    this add-on does not write (not of ``shape``, or one the merge raises on)."""

    def merged(base: bytes | None, ours: bytes | None, theirs: bytes | None) -> bytes | None:
        docs = _decoded((base, ours, theirs))
        if docs is None or not all(shape(doc) for doc in docs):
            return None
        try:
            out = merge(*docs)
        except (ValueError, KeyError, TypeError, IndexError, AttributeError):
            return None
        return None if out is None or out == docs[2] else encode_value(out)

    return merged


gpencil_strokes = _documents(gp_merge.merge_strokes)
# The meta of a datablock holding a file, by kind (file_meta_merge.py).
FILE_METAS: dict[str, Merge] = {
    kind: _documents(partial(file_meta_merge.merge, kind)) for kind in file_meta_merge.CONTENT
}


def gpencil_strokes_beside_our_layers(
    base: bytes | None, ours: bytes | None, theirs: bytes | None
) -> bytes | None:
    """``gpencil_strokes`` when our ``meta`` (the layers) stood: ours' new layers kept with their frames."""
    return _documents(lambda *docs: gp_merge.merge_strokes(*docs, layers_stand=True))(base, ours, theirs)


def _is_list_of_maps(doc: object) -> bool:
    return isinstance(doc, list) and all(isinstance(d, dict) for d in doc)


# Longer texts are not merged (theirs stands): matching their lines could hold Blender up for seconds.
MAX_MERGED_LINES = 20_000


def merge_text(base: dict, ours: dict, theirs: dict) -> dict | None:
    """A text's ``body`` (``{content}``), line by line (``three_way.merge_lines``)."""
    texts = [doc["content"] for doc in (base, ours, theirs)]
    if not all(isinstance(text, str) for text in texts):
        return None
    ended = [not text or text.endswith("\n") for text in texts]
    lines = [
        (text if end else text + "\n").splitlines(keepends=True)
        for text, end in zip(texts, ended, strict=True)
    ]
    if max(map(len, lines)) > MAX_MERGED_LINES:
        return None
    merged = "".join(merge_lines(*lines))
    return dict(theirs, content=merged if ended[1] or ended[2] else merged[:-1])


text_body = _documents(merge_text)
mask_layers = _documents(mask_merge.merge_mask_layers, _is_list_of_maps)
camera_backgrounds = _documents(merge_backgrounds, _is_list_of_maps)
tracking = _documents(tracking_merge.merge_settings)  # a movie clip's tracking settings and objects
track = _documents(tracking_merge.merge_track)  # one of its tracks


def merger(key: str) -> Merge | None:
    """How a value of ``key`` is merged, or None (server order decides)."""
    if keyframe_merge.is_fcurve(key):
        return keyframe_merge.merge
    bits = key.split("/")
    if len(bits) < 3:
        return None
    part, items = bits[2], len(bits) - 3
    if part == "node" and items == 1:
        return node_settings
    if SETTINGS_PARTS.get(part) == items:
        return settings
    if part in ORDER_PARTS:
        return stack_order
    if bits[0] == "ngroup" and part == "iface" and not items:
        return node_interface
    if part == "items" and items == 1 and bits[0] in ("ngroup", "mat", "world"):
        return node_items
    if bits[0] == "img" and part == "data" and not items:
        return image_data
    if bits[0] == "clip" and part == "tracking" and not items:
        return tracking
    if bits[0] == "clip" and part == "track" and items == 2:
        return track
    if bits[0] == "gpencil" and part == "strokes" and not items:
        return gpencil_strokes
    if bits[0] == "mask" and part == "layers" and not items:
        return mask_layers
    if bits[0] == "cam" and part == "bg" and not items:
        return camera_backgrounds
    if bits[0] == "text" and part == "body" and not items:
        return text_body
    if part == "meta" and not items and bits[0] in SETTINGS_METAS:
        return meta_settings
    if part == "meta" and not items and bits[0] in file_meta_merge.CONTENT:
        return FILE_METAS[bits[0]]
    return material_list if part == "meta" and not items else None
