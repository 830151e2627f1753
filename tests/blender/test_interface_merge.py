"""Two artists changing one node group's interface at the same moment (sync/merges.py, merge_interface):
both keep their sockets while each socket the other edit's values name by position keeps its place."""

from __future__ import annotations

import pytest

pytest.importorskip("bpy", reason="bpy (Blender as a Python module) is not installed")

from hypothesis import given, settings
from hypothesis import strategies as st

from blender_addon.sync import merges
from blender_addon.sync.codec import decode_value, encode_value

pytestmark = pytest.mark.blender


def sock(
    name: str, io: str = "INPUT", kind: str = "NodeSocketFloat", parent: int | None = None, **props
) -> dict:
    return {
        "item_type": "SOCKET",
        "name": name,
        "parent": parent,
        "in_out": io,
        "socket_type": kind,
        "props": {"default_value": 0.0, **props},
    }


def panel(name: str, parent: int | None = None, **props) -> dict:
    return {"item_type": "PANEL", "name": name, "parent": parent, "props": {"default_closed": False, **props}}


BASE = [
    sock("Geometry", "OUTPUT", "NodeSocketGeometry"),
    sock("Geometry", kind="NodeSocketGeometry"),
    sock("Height"),
]


def names(items: list[dict] | None) -> list[tuple]:
    assert items is not None
    return [(d["item_type"], d["name"], d.get("in_out"), d["parent"]) for d in items]


def test_sockets_both_added_stay_theirs_first():
    ours = [*BASE, sock("Shift")]
    theirs = [*BASE, sock("Slide"), sock("Result", "OUTPUT")]
    merged = merges.merge_interface(BASE, ours, theirs)
    assert names(merged) == [
        ("SOCKET", "Geometry", "OUTPUT", None),
        ("SOCKET", "Result", "OUTPUT", None),
        ("SOCKET", "Geometry", "INPUT", None),
        ("SOCKET", "Height", "INPUT", None),
        ("SOCKET", "Slide", "INPUT", None),
        ("SOCKET", "Shift", "INPUT", None),
    ]


def test_a_socket_we_added_before_theirs_goes_after_them():
    merged = merges.merge_interface(BASE, [*BASE[:2], sock("First"), BASE[2]], [*BASE, sock("Slide")])
    assert [d["name"] for d in merged or ()] == ["Geometry", "Geometry", "Height", "Slide", "First"]


def test_a_socket_of_one_name_and_type_added_by_both_is_two_sockets():
    merged = merges.merge_interface(BASE, [*BASE, sock("Value", default_value=1.0)], [*BASE, sock("Value")])
    assert [(d["name"], d["props"]["default_value"]) for d in merged or ()][3:] == [
        ("Value", 0.0),
        ("Value", 1.0),
    ]


def test_settings_merge_per_setting_and_a_clash_is_theirs():
    ours = [*BASE[:2], sock("Height", default_value=2.0, min_value=-1.0)]
    theirs = [*BASE[:2], sock("Height", min_value=-5.0, description="up"), sock("Slide")]
    merged = merges.merge_interface(BASE, ours, theirs)
    assert merged is not None
    assert merged[2]["props"] == {"default_value": 2.0, "min_value": -5.0, "description": "up"}
    assert [d["name"] for d in merged] == ["Geometry", "Geometry", "Height", "Slide"]


def test_a_socket_added_into_a_panel_after_theirs():
    base = [*BASE, panel("Look"), sock("Tint", parent=3)]
    ours = [*base, sock("Gloss", parent=3)]
    theirs = [*BASE, sock("Slide"), panel("Look"), sock("Tint", parent=4)]
    merged = merges.merge_interface(base, ours, theirs)
    assert names(merged) == [
        ("SOCKET", "Geometry", "OUTPUT", None),
        ("SOCKET", "Geometry", "INPUT", None),
        ("SOCKET", "Height", "INPUT", None),
        ("SOCKET", "Slide", "INPUT", None),
        ("PANEL", "Look", None, None),
        ("SOCKET", "Tint", "INPUT", 4),
        ("SOCKET", "Gloss", "INPUT", 4),
    ]


def test_a_socket_we_moved_into_a_panel_stays_there_beside_their_settings():
    base = [*BASE, panel("Look")]
    ours = [*BASE[:2], panel("Look"), sock("Height", parent=2)]
    theirs = [*BASE[:2], sock("Height", default_value=9.0), panel("Look", default_closed=True)]
    merged = merges.merge_interface(base, ours, theirs)
    assert names(merged) == [
        *names(BASE[:2]),
        ("PANEL", "Look", None, None),
        ("SOCKET", "Height", "INPUT", 2),
    ]
    assert merged is not None and merged[3]["props"]["default_value"] == 9.0
    assert merged[2]["props"]["default_closed"] is True


def test_a_panel_theirs_removed_leaves_our_socket_at_the_top_level():
    base = [*BASE, panel("Look")]
    ours = [*base, sock("Gloss", parent=3)]
    merged = merges.merge_interface(base, ours, BASE)
    assert names(merged) == [*names(BASE), ("SOCKET", "Gloss", "INPUT", None)]


def test_panels_moved_into_each_other_end_at_the_top_level():
    base = [*BASE, panel("A"), panel("B")]
    ours = [*BASE, panel("A"), panel("B", parent=3)]  # B into A
    theirs = [*BASE, panel("B"), panel("A", parent=3)]  # A into B
    merged = merges.merge_interface(base, ours, theirs)
    assert merged is not None and len(merged) == 5
    assert all(d["parent"] is None or d["parent"] < i for i, d in enumerate(merged))


def test_repeated_names_are_told_apart_by_their_count():
    base = [*BASE, sock("Value"), sock("Value")]
    ours = [*BASE, sock("Value"), sock("Value", default_value=4.0)]
    theirs = [*BASE, sock("Value", default_value=1.0), sock("Value"), sock("Value")]
    merged = merges.merge_interface(base, ours, theirs)
    assert [d["props"]["default_value"] for d in merged or ()][3:] == [1.0, 4.0, 0.0]


def test_a_socket_we_removed_goes_after_theirs_are_applied_where_they_made_them():
    """Ours removed a socket theirs left alone while theirs added one after it: the merge lacks it, the
    staged value keeps it, so theirs' socket is where their values name it until it goes."""
    ours, theirs = BASE[:2], [*BASE, sock("Slide")]
    merged = merges.merge_interface(BASE, ours, theirs)
    assert names(merged) == [*names(BASE[:2]), ("SOCKET", "Slide", "INPUT", None)]
    staged = merges.merge_interface(BASE, ours, theirs, staged=True)
    assert staged == theirs
    key = "ngroup/0123456789abcdef0123456789abcdef/iface"
    assert decode_value(merges.staged(key, *(encode_value(d) for d in (BASE, ours, theirs)))) == theirs
    assert merges.node_interface(*(encode_value(d) for d in (BASE, ours, theirs))) == encode_value(merged)


def test_a_socket_we_renamed_in_place_keeps_its_new_name_and_its_place():
    ours = [*BASE[:2], sock("Tall", default_value=1.0)]
    merged = merges.merge_interface(BASE, ours, [*BASE, sock("Slide")])
    assert names(merged) == [
        ("SOCKET", "Geometry", "OUTPUT", None),
        ("SOCKET", "Geometry", "INPUT", None),
        ("SOCKET", "Tall", "INPUT", None),
        ("SOCKET", "Slide", "INPUT", None),
    ]
    assert merged is not None and merged[2]["props"]["default_value"] == 1.0
    # Theirs added a socket of that name too: both stay (Blender tells them apart by identifier).
    both = merges.merge_interface(BASE, ours, [*BASE, sock("Tall")])
    assert [name for _, name, io, _ in names(both) if io == "INPUT"] == ["Geometry", "Tall", "Tall"]
    # A socket of another type there: not a rename, one removed and another added (theirs).
    assert merges.merge_interface(BASE, [*BASE[:2], sock("Tall", kind="NodeSocketInt")], BASE) is None


@pytest.mark.parametrize(
    ("why", "ours", "theirs"),
    [
        (
            "we removed a socket and added another kind",
            [*BASE[:2], sock("Tall", "OUTPUT")],
            [*BASE, sock("Slide")],
        ),
        ("we removed a socket they changed", BASE[:2], [*BASE[:2], sock("Height", default_value=2.0)]),
        ("we reordered sockets", [*BASE[:1], BASE[2], BASE[1]], [*BASE, sock("Slide")]),
        (
            "our top-level socket would come before their panel's",
            [*BASE, sock("Shift")],
            [*BASE, panel("Look"), sock("Tint", parent=3)],
        ),
    ],
)
def test_a_merge_that_would_move_their_sockets_is_theirs(why, ours, theirs):
    assert merges.merge_interface(BASE, ours, theirs) is None, why


BAD = [
    ("not a list", {"a": 1}),
    ("an item not a map", [1]),
    ("no props", [{"item_type": "SOCKET", "name": "A", "parent": None}]),
    ("props not a map", [{**sock("A"), "props": [1]}]),
    ("a name not text", [{**sock("A"), "name": 3}]),
    ("a parent after the item", [sock("A", parent=0)]),
    ("a parent past the end", [panel("P"), sock("A", parent=7)]),
    ("a negative parent", [panel("P"), sock("A", parent=-1)]),
    ("a parent that is a boolean", [panel("P"), {**sock("A"), "parent": True}]),
    ("a parent that is a float", [panel("P"), {**sock("A"), "parent": 0.0}]),
]


@pytest.mark.parametrize(("why", "bad"), BAD, ids=[why for why, _ in BAD])
def test_a_value_the_add_on_does_not_write_is_not_merged(why, bad):
    for three in ((bad, BASE, BASE), (BASE, bad, BASE), (BASE, BASE, bad)):
        assert merges.merge_interface(*three) is None, why


def test_the_key_merges_as_encoded_values_and_nothing_of_ours_is_no_merge():
    key = "ngroup/0123456789abcdef0123456789abcdef/iface"
    merge = merges.merger(key)
    assert merge is merges.node_interface
    assert merges.merger("ngroup/0123456789abcdef0123456789abcdef/iface/x") is None
    assert merges.merger("mat/0123456789abcdef0123456789abcdef/iface") is None
    base, theirs = encode_value(BASE), encode_value([*BASE, sock("Slide")])
    assert merge(base, base, theirs) is None  # nothing of ours to keep: theirs stands
    assert merge(None, base, theirs) is None and merge(base, None, theirs) is None
    assert merge(base, b"\xc1", theirs) is None  # not a value
    merged = merge(base, encode_value([*BASE, sock("Shift")]), theirs)
    assert [d["name"] for d in decode_value(merged)][3:] == ["Slide", "Shift"]


NAMES = st.sampled_from(["A", "B", "C", "Value"])
SOCKETS = st.builds(
    lambda name, io, value: sock(name, io, default_value=value),
    NAMES,
    st.sampled_from(["INPUT", "OUTPUT"]),
    st.integers(0, 3).map(float),
)


def _laid_out(items: list[dict]) -> list[dict]:
    """Sockets as Blender lists them at the top level: outputs, then inputs."""
    return sorted(items, key=lambda d: d["in_out"] != "OUTPUT")


@st.composite
def edited(draw, base: list[dict]) -> list[dict]:
    out = [dict(d, props=dict(d["props"])) for d in base]
    for i in draw(st.lists(st.integers(0, max(0, len(out) - 1)), max_size=3)):
        if out:
            out[i]["props"]["default_value"] = float(draw(st.integers(4, 6)))
    return _laid_out(out + draw(st.lists(SOCKETS, max_size=3)))


def _sequence(items: list[dict], io: str) -> list[tuple]:
    seen: dict[tuple, int] = {}
    out = []
    for d in items:
        if d["in_out"] == io:
            seen[d["name"]] = seen.get(d["name"], 0) + 1
            out.append((d["name"], seen[d["name"]]))
    return out


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_sockets_added_by_both_all_stay_and_theirs_keep_their_places(data):
    base = _laid_out(data.draw(st.lists(SOCKETS, max_size=4)))
    ours, theirs = data.draw(edited(base)), data.draw(edited(base))
    merged = merges.merge_interface(base, ours, theirs)
    assert merged is not None
    for io in ("INPUT", "OUTPUT"):
        mine, their, got = (_sequence(items, io) for items in (ours, theirs, merged))
        assert got[: len(their)] == their  # each of theirs where their values name it
        added = len(mine) - len(_sequence(base, io))
        assert len(got) >= len(their) and len(got) - len(their) <= added
    assert merged == _laid_out(merged) and all(d["parent"] is None for d in merged)
    assert merges.merge_interface(base, base, theirs) == theirs
    assert merges.merge_interface(base, ours, base) == ours
