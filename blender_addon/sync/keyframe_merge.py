"""Keyframes of one f-curve keyed by two artists at the same moment: both sets are kept.

An f-curve is one key (``action/<u>/fcurve/<slot>/<path>/<index>``, kinds/actions.py), so server order
keeps one of two concurrent edits whole. The artist whose edit was overridden (protocol/convergence.py: a
later edit of the key made without having seen ours) merges: per frame, theirs stands, except at the frames
our edit added, changed or removed (against the value it was made from) and theirs left as it was; the
merged f-curve is applied here and sent as a new edit, made having seen theirs. A frame is a keyframe's
time (``co`` x, as float32). The f-curve's other settings (group, extrapolation, mute, modifiers) are
theirs. No bpy: values in, values out.
"""

from __future__ import annotations

from .chunks import MissingChunks
from .codec import decode_value, encode_value, pack_f32, unpack_f32

PAIRS = ("co", "handle_left", "handle_right")  # two float32 per keyframe
LISTS = ("interpolation", "easing", "handle_left_type", "handle_right_type")  # one item per keyframe

Keyframe = tuple[object, ...]


def is_fcurve(key: str) -> bool:
    bits = key.split("/", 3)
    return len(bits) == 4 and bits[0] == "action" and bits[2] == "fcurve"


def _frames(doc: object) -> dict[float, Keyframe]:
    """frame -> everything a keyframe holds; raises (ValueError, KeyError, TypeError) on a malformed doc."""
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), dict):
        raise ValueError("an f-curve is a map with keys")
    keys = doc["keys"]
    count = len(keys["interpolation"])
    pairs = [unpack_f32(keys[name]) for name in PAIRS]
    lists = [list(keys[name]) for name in LISTS]
    if any(len(p) != 2 * count for p in pairs) or any(len(items) != count for items in lists):
        raise ValueError("an f-curve's keyframe arrays differ in length")
    out: dict[float, Keyframe] = {}
    for i in range(count):
        out[pairs[0][2 * i]] = (
            *((p[2 * i], p[2 * i + 1]) for p in pairs),
            *(items[i] for items in lists),
        )
    return out


def _keys(frames: dict[float, Keyframe]) -> dict[str, object]:
    ordered = [frames[f] for f in sorted(frames)]
    keys: dict[str, object] = {}
    for n, name in enumerate(PAIRS):
        keys[name] = pack_f32([c for keyframe in ordered for c in keyframe[n]])  # type: ignore[union-attr]
    for n, name in enumerate(LISTS, start=len(PAIRS)):
        keys[name] = [keyframe[n] for keyframe in ordered]
    return keys


def merge(base: bytes | None, ours: bytes | None, theirs: bytes | None) -> bytes | None:
    """The value keeping theirs and our edit's keyframe changes (``base``: the value ours was made from;
    None: the f-curve was new), or None when there is nothing of ours to keep (theirs stands): they removed
    the f-curve, we removed it, our changes are all at frames they changed too, or a value is unreadable."""
    if ours is None or theirs is None:
        return None
    try:
        mine, their_doc = decode_value(ours), decode_value(theirs)
        before = _frames(decode_value(base)) if base is not None else {}
        ours_frames, theirs_frames = _frames(mine), _frames(their_doc)
    except (MissingChunks, ValueError, KeyError, TypeError):
        return None
    merged = dict(theirs_frames)
    for frame in before.keys() | ours_frames.keys():
        ours_kf, base_kf = ours_frames.get(frame), before.get(frame)
        if ours_kf == base_kf or theirs_frames.get(frame) != base_kf:
            continue  # not ours to change, or they changed it too: theirs stands
        if ours_kf is None:
            merged.pop(frame, None)
        else:
            merged[frame] = ours_kf
    if merged == theirs_frames:
        return None
    return encode_value({**their_doc, "keys": _keys(merged)})  # type: ignore[dict-item]
