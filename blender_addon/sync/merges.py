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
  light groups are one field each), its Freestyle settings and a line set.
- a stack's order (``modorder``, ``conorder``, ``nlaorder``... : names): what each edit added or removed,
  and our reordering when they did not reorder (else theirs): one artist moving a modifier while another
  adds one keeps both. An item that either edit added goes before the item that follows it in that edit
  (at the end when nothing does), as a new modifier is added at the end.
- a datablock's material list (``meta`` of meshes, curves, grease pencils...): slots are positions (faces
  name them by index), so only what leaves every position in place is merged: the slots each edit added
  at the end (theirs first, then ours) and a slot only we changed. A list one of the edits shortened is
  theirs. The meta's other fields, as a node's.
- an image's unsaved pixels (``img/<u>/data``, its ``painted`` field: sync/painted.py): per pixel, ours where
  only we painted it, theirs elsewhere, when both painted over the same unsaved pixels (same size and layout).
  When both started from a saved image, what it shows saved is the base (the session reads it from a copy
  of the image: sync/painted.py). When the file itself changed, theirs.

No bpy: values in, values out.
"""

from __future__ import annotations

from collections.abc import Callable

from . import keyframe_merge
from .chunks import MissingChunks
from .codec import decode_value, encode_value

Merge = Callable[[bytes | None, bytes | None, bytes | None], bytes | None]
_ABSENT = object()
NODE_FIELDS = frozenset({"name", "type", "label", "hide", "mute", "props"})  # what every node value holds
SETTINGS_FIELDS = frozenset({"props"})
SETTINGS_PARTS = {"con": 1, "pbcon": 2, "vlayer": 1, "freestyle": 1, "lineset": 2}  # part -> item segments
ORDER_PARTS = frozenset(
    {"modorder", "conorder", "pbconorder", "fxorder", "nlaorder", "shapenlaorder", "treenlaorder"}
    | {"vlayerorder", "linesetorder"}
)  # values: the names of a stack's items, in order (sync/order.py)


def three_way(base: dict, ours: dict, theirs: dict) -> dict:
    """Theirs, with each field that only ours changed against ``base`` (set, or removed) taken from ours."""
    out = dict(theirs)
    for field in base.keys() | ours.keys():
        mine, before = ours.get(field, _ABSENT), base.get(field, _ABSENT)
        if mine == before or theirs.get(field, _ABSENT) != before:
            continue
        if mine is _ABSENT:
            out.pop(field, None)
        else:
            out[field] = mine
    return out


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
    merged = three_way(before, mine, their_doc)
    merged["props"] = three_way(before["props"], mine["props"], their_doc["props"])
    return None if merged == their_doc else encode_value(merged)


def node_settings(base: bytes | None, ours: bytes | None, theirs: bytes | None) -> bytes | None:
    return _settings(_decoded((base, ours, theirs)), NODE_FIELDS)


def settings(base: bytes | None, ours: bytes | None, theirs: bytes | None) -> bytes | None:
    """A constraint's, a view layer's, its Freestyle settings' or a line set's document."""
    return _settings(_decoded((base, ours, theirs)), SETTINGS_FIELDS)


def _names(doc: object) -> bool:
    return isinstance(doc, list) and all(isinstance(n, str) for n in doc) and len(set(doc)) == len(doc)


def merge_order(base: list[str], ours: list[str], theirs: list[str]) -> list[str]:
    """Both edits' additions and removals; our order of the items all three hold unless they changed it."""
    kept = [name for name in base if name in ours and name in theirs]
    ours_kept = [name for name in ours if name in kept]
    theirs_kept = [name for name in theirs if name in kept]
    out = ours_kept if theirs_kept == kept else theirs_kept
    for source in (theirs, ours):
        for i, name in enumerate(source):
            if name in base or name in out:
                continue  # kept, removed by the other edit, or added by both (placed by theirs)
            after = next((n for n in source[i + 1 :] if n in out), None)
            out.insert(len(out) if after is None else out.index(after), name)
    return out


def stack_order(base: bytes | None, ours: bytes | None, theirs: bytes | None) -> bytes | None:
    docs = _decoded((base, ours, theirs))
    if docs is None or not all(_names(doc) for doc in docs):
        return None
    merged = merge_order(*docs)  # type: ignore[arg-type]
    return None if merged == docs[2] else encode_value(merged)


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
    if bits[0] == "img" and part == "data" and not items:
        return image_data
    return material_list if part == "meta" and not items else None
