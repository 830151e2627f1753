"""The three-way merge of one f-curve's keyframes (sync/keyframe_merge.py): per frame, theirs stands except
where only our edit changed it (added, changed or removed against the value it was made from)."""

from __future__ import annotations

import pytest

pytest.importorskip("bpy", reason="bpy (Blender as a Python module) is not installed")

from hypothesis import given, settings
from hypothesis import strategies as st

from blender_addon import sync
from blender_addon.sync import keyframe_merge

pytestmark = pytest.mark.blender

FRAMES = st.integers(min_value=-20, max_value=40).map(float)


def keyframe(frame: float, value: float, kind: str = "BEZIER") -> tuple:
    handles = (frame - 0.5, value), (frame + 0.5, value)
    return ((frame, value), *handles, kind, "AUTO", "AUTO_CLAMPED", "VECTOR")


def curve(frames: dict[float, tuple], mute: bool = False) -> bytes:
    doc = {"group": "Object Transforms", "extrapolation": "CONSTANT", "mute": mute, "modifiers": []}
    return sync.encode_value({**doc, "keys": keyframe_merge._keys(frames)})


def frames_of(value: bytes) -> dict[float, tuple]:
    return keyframe_merge._frames(sync.decode_value(value))


@st.composite
def edit(draw, base: dict[float, tuple], tag: float) -> dict[float, tuple]:
    """``base`` with some frames removed, changed (value ``tag``) and added."""
    out = dict(base)
    for frame in draw(st.lists(st.sampled_from(sorted(base)), unique=True)) if base else []:
        if draw(st.booleans()):
            del out[frame]
        else:
            out[frame] = keyframe(frame, tag)
    for frame in draw(st.lists(FRAMES, max_size=4, unique=True)):
        out[frame] = keyframe(frame, tag, "LINEAR")
    return out


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_every_frame_is_theirs_unless_only_our_edit_changed_it(data):
    base = {f: keyframe(f, 0.0) for f in data.draw(st.lists(FRAMES, max_size=6, unique=True))}
    ours = data.draw(edit(base, 1.0))
    theirs = data.draw(edit(base, 2.0))
    merged = keyframe_merge.merge(curve(base), curve(ours), curve(theirs, mute=True))
    result = theirs if merged is None else frames_of(merged)
    for frame in base.keys() | ours.keys() | theirs.keys():
        ours_changed = ours.get(frame) != base.get(frame)
        theirs_changed = theirs.get(frame) != base.get(frame)
        expected = ours.get(frame) if ours_changed and not theirs_changed else theirs.get(frame)
        assert result.get(frame) == expected, frame
    if merged is not None:
        assert list(result) == sorted(result)  # in time order, as Blender keeps them
        assert sync.decode_value(merged)["mute"] is True  # the f-curve's own settings are theirs


def test_both_new_keys_stay_a_removal_stands_and_a_clash_is_theirs():
    base = {5.0: keyframe(5.0, 3.0), 8.0: keyframe(8.0, 3.0)}
    ours = {1.0: keyframe(1.0, 1.0), 5.0: keyframe(5.0, 7.0)}  # a key added, one changed, one removed
    theirs = {**base, 10.0: keyframe(10.0, 9.0), 5.0: keyframe(5.0, 4.0)}  # one added, the same one changed
    merged = frames_of(keyframe_merge.merge(curve(base), curve(ours), curve(theirs)))
    assert merged == {1.0: ours[1.0], 5.0: theirs[5.0], 10.0: theirs[10.0]}


def test_nothing_to_keep_or_unreadable_values_leave_theirs_standing():
    base = {5.0: keyframe(5.0, 3.0)}
    theirs = curve({**base, 10.0: keyframe(10.0, 9.0)})
    assert keyframe_merge.merge(curve(base), curve(base), theirs) is None  # no change of ours
    assert keyframe_merge.merge(curve(base), curve({}), None) is None  # they removed the f-curve
    assert keyframe_merge.merge(curve(base), None, theirs) is None  # we removed it
    for bad in (sync.encode_value("keys"), sync.encode_value({"keys": {"interpolation": [1]}}), b"\xc1"):
        assert keyframe_merge.merge(curve(base), bad, theirs) is None
    short = sync.decode_value(curve({1.0: keyframe(1.0, 1.0)}))
    short["keys"]["easing"] = []
    assert keyframe_merge.merge(curve(base), sync.encode_value(short), theirs) is None
    assert keyframe_merge.merge(None, curve({1.0: keyframe(1.0, 1.0)}), theirs) is not None  # a new f-curve


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("action/0123456789abcdef0123456789abcdef/fcurve/OBLamp/location/2", True),
        ("action/0123456789abcdef0123456789abcdef/meta", False),
        ("obj/0123456789abcdef0123456789abcdef/fcurve/x/y", False),
        ("action", False),
        ("", False),
    ],
)
def test_which_keys_are_f_curves(key, expected):
    assert keyframe_merge.is_fcurve(key) is expected
