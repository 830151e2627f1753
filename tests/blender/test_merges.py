"""Which concurrent edits of one key merge, and how one node's settings do (sync/merges.py)."""

from __future__ import annotations

import pytest

pytest.importorskip("bpy", reason="bpy (Blender as a Python module) is not installed")

from hypothesis import given, settings
from hypothesis import strategies as st

from blender_addon import sync
from blender_addon.sync import keyframe_merge, merges

pytestmark = pytest.mark.blender

FIELDS = st.sampled_from(["a", "b", "c", "d", "e"])
VALUES = st.one_of(st.integers(-3, 3), st.text(max_size=2), st.none())


@st.composite
def edited(
    draw,
    base: dict,
) -> dict:
    out = dict(base)
    for field in draw(st.lists(FIELDS, unique=True, max_size=4)):
        if field in out and draw(st.booleans()):
            del out[field]
        else:
            out[field] = draw(VALUES)
    return out


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_every_field_is_theirs_unless_only_ours_changed_it(data):
    base = data.draw(st.dictionaries(FIELDS, VALUES, max_size=5))
    ours, theirs = data.draw(edited(base)), data.draw(edited(base))
    merged = merges.three_way(base, ours, theirs)
    missing = object()
    for field in base.keys() | ours.keys() | theirs.keys():
        mine, before, their = (d.get(field, missing) for d in (ours, base, theirs))
        expected = mine if mine != before and their == before else their
        assert merged.get(field, missing) == expected, field


def node(props: dict, type_: str = "ShaderNodeMath", **fields) -> bytes:
    doc = {"name": "Math", "type": type_, "label": "", "hide": False, "mute": False, "props": props}
    return sync.encode_value({**doc, **fields})


def test_two_settings_of_one_node_both_stay_and_a_clash_is_theirs():
    base = node({"operation": "ADD", "use_clamp": False})
    ours = node({"operation": "MULTIPLY", "use_clamp": False}, label="mine")
    theirs = node({"operation": "ADD", "use_clamp": True}, label="theirs")
    merged = sync.decode_value(merges.node_settings(base, ours, theirs))
    assert merged["props"] == {"operation": "MULTIPLY", "use_clamp": True}
    assert merged["label"] == "theirs"  # both changed it: theirs


def test_a_node_made_removed_or_replaced_by_another_type_is_theirs():
    base = node({"operation": "ADD"})
    ours = node({"operation": "MULTIPLY"})
    assert merges.node_settings(None, ours, node({"operation": "ADD"})) is None  # ours made it
    assert merges.node_settings(base, ours, None) is None  # they removed it
    assert merges.node_settings(base, None, base) is None  # we removed it
    assert merges.node_settings(base, ours, node({}, "ShaderNodeMix")) is None  # replaced by another type
    assert merges.node_settings(base, base, node({"operation": "SINE"})) is None  # nothing of ours
    for bad in (
        b"\xc1",
        sync.encode_value([1, 2]),
        sync.encode_value({"props": 1, "type": "ShaderNodeMath"}),
    ):
        assert merges.node_settings(base, bad, node({"operation": "SINE"})) is None


@pytest.mark.parametrize(
    ("key", "merge"),
    [
        ("action/0123456789abcdef0123456789abcdef/fcurve/OBLamp/location/2", keyframe_merge.merge),
        ("mat/0123456789abcdef0123456789abcdef/node/a1b2c3", merges.node_settings),
        ("ngroup/0123456789abcdef0123456789abcdef/node/x", merges.node_settings),
        ("mat/0123456789abcdef0123456789abcdef/at/a1b2c3", None),
        ("obj/0123456789abcdef0123456789abcdef/location", None),
        ("mat/0123456789abcdef0123456789abcdef/node", None),
        ("", None),
    ],
)
def test_which_keys_merge(key, merge):
    assert merges.merger(key) is merge
