"""Values of one key that two artists edited at the same moment, where both edits can be kept.

Server order keeps the value ordered second whole (docs/protocol.md section 3). For the keys below, the
artist whose edit was overridden (protocol/convergence.py) merges instead: a three-way merge of the value
its edit was made from (``base``), its own (``ours``) and the one that replaced it (``theirs``), applied
after theirs and sent as a new edit (session_events.py). Each merge returns None when nothing of ours is
left to keep: then theirs stands.

- an f-curve's keyframes (``action/<u>/fcurve/…``): per frame (keyframe_merge.py);
- one node's settings (``<kind>/<u>/node/<id>``): per field, and per setting inside ``props``: two artists
  changing a Math node's operation and its clamp keep both. A node replaced by one of another type is
  theirs. Colour ramps and other held structs are one field each.

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


def node_settings(base: bytes | None, ours: bytes | None, theirs: bytes | None) -> bytes | None:
    if base is None or ours is None or theirs is None:
        return None  # a node made or removed by one of the edits: theirs stands
    try:
        before, mine, their_doc = decode_value(base), decode_value(ours), decode_value(theirs)
    except (MissingChunks, ValueError, TypeError):
        return None
    docs = (before, mine, their_doc)
    if not all(isinstance(d, dict) and d.keys() >= NODE_FIELDS for d in docs) or not all(
        isinstance(d["props"], dict) for d in docs
    ):
        return None  # not a node's settings as this add-on writes them
    if len({str(d["type"]) for d in docs}) != 1:
        return None
    merged = three_way(before, mine, their_doc)
    merged["props"] = three_way(before["props"], mine["props"], their_doc["props"])
    return None if merged == their_doc else encode_value(merged)


def merger(key: str) -> Merge | None:
    """How a value of ``key`` is merged, or None (server order decides)."""
    if keyframe_merge.is_fcurve(key):
        return keyframe_merge.merge
    bits = key.split("/", 3)
    return node_settings if len(bits) == 4 and bits[2] == "node" else None
