"""Two artists changing one node's item lists at the same moment (sync/merges.py, merge_item_lists), and
the items here given the merged names and order before it is applied (sync/node_items.py, arrange)."""

from __future__ import annotations

import pytest

bpy = pytest.importorskip("bpy", reason="bpy (Blender as a Python module) is not installed")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from blender_addon.sync import merges, node_items  # noqa: E402
from blender_addon.sync.codec import decode_value, encode_value  # noqa: E402

pytestmark = pytest.mark.blender


def item(name: str, kind: str = "FLOAT", **settings) -> dict:
    return {"name": name, "socket_type": kind, **settings}


BASE = {"repeat_items": [item("Geometry", "GEOMETRY")], "active_index": 0}


def names(doc: dict | None, items: str = "repeat_items") -> list[str]:
    assert doc is not None
    return [d["name"] for d in doc[items]]


def test_items_added_by_both_stay_theirs_first_and_ours_renamed_as_blender_would():
    ours = {"repeat_items": [*BASE["repeat_items"], item("Float"), item("Float.001")], "active_index": 2}
    theirs = {"repeat_items": [*BASE["repeat_items"], item("Float", "INT")], "active_index": 1}
    merged = merges.merge_item_lists(BASE, ours, theirs)
    assert names(merged) == ["Geometry", "Float", "Float.002", "Float.001"]
    assert merged is not None and [d["socket_type"] for d in merged["repeat_items"]] == [
        "GEOMETRY",
        "INT",
        "FLOAT",
        "FLOAT",
    ]
    assert merged["active_index"] == 1  # both changed it: theirs


def test_an_item_setting_only_we_changed_is_ours_and_a_list_only_we_changed_is_ours():
    base = {"capture_items": [item("A"), item("B")], "active_index": 0}
    ours = {"capture_items": [item("A", domain="FACE"), item("B")], "active_index": 1}
    theirs = {"capture_items": [item("A", socket_type="INT"), item("B"), item("C")], "active_index": 0}
    merged = merges.merge_item_lists(base, ours, theirs)
    assert merged == {
        "capture_items": [item("A", "INT", domain="FACE"), item("B"), item("C")],
        "active_index": 1,
    }
    assert merges.merge_item_lists(base, ours, base) == ours


def test_their_removal_stands_beside_our_addition():
    base = {"enum_items": [item("A"), item("B")]}
    merged = merges.merge_item_lists(
        base, {"enum_items": [item("A"), item("B"), item("C")]}, {"enum_items": [item("B")]}
    )
    assert names(merged, "enum_items") == ["B", "C"]


def test_an_item_we_removed_goes_after_theirs_are_applied_where_they_made_them():
    """Ours removed an item theirs left alone: it goes from the merge, and is kept in the staged value
    (theirs' links and values name sockets by position on their layout; merge_rereads removes it after)."""
    base = {"enum_items": [item("A"), item("B"), item("C")]}
    ours = {"enum_items": [item("A"), item("C")]}
    theirs = {"enum_items": [item("A"), item("B"), item("C", description="c"), item("D")]}
    merged = merges.merge_item_lists(base, ours, theirs)
    assert merged == {"enum_items": [item("A"), item("C", description="c"), item("D")]}
    staged = merges.merge_item_lists(base, ours, theirs, staged=True)
    assert staged == {"enum_items": [item("A"), item("B"), item("C", description="c"), item("D")]}
    key = "ngroup/0123456789abcdef0123456789abcdef/items/a1b2c3"
    assert decode_value(merges.staged(key, *(encode_value(d) for d in (base, ours, theirs)))) == staged
    # Theirs changed the item ours removed: theirs' change stands, the item stays.
    changed = {"enum_items": [item("A"), item("B", description="b"), item("C"), item("D")]}
    assert names(merges.merge_item_lists(base, ours, changed), "enum_items") == ["A", "B", "C", "D"]


def test_an_item_ours_renamed_in_place_keeps_its_new_name_beside_theirs_new_one():
    base = {"enum_items": [item("A"), item("B")]}
    ours = {"enum_items": [item("A"), item("Bee", description="d")]}  # renamed, a setting changed too
    merged = merges.merge_item_lists(
        base, ours, {"enum_items": [item("A"), item("B", socket_type="INT"), item("C")]}
    )
    assert merged == {"enum_items": [item("A"), item("Bee", "INT", description="d"), item("C")]}
    # Theirs renamed it too, or removed it: theirs stands for that item. Theirs took the new name: theirs.
    assert names(
        merges.merge_item_lists(base, ours, {"enum_items": [item("A"), item("Bea")]}), "enum_items"
    ) == [
        "A",
        "Bea",
    ]
    assert names(merges.merge_item_lists(base, ours, {"enum_items": [item("A")]}), "enum_items") == ["A"]
    assert merges.merge_item_lists(base, ours, {"enum_items": [*base["enum_items"], item("Bee")]}) is None


@pytest.mark.parametrize(
    ("why", "ours"),
    [
        ("we removed one and added another (a rename, perhaps)", [item("B"), item("C")]),
        ("we reordered items", [item("B"), item("A")]),
        ("two items of one name", [item("A"), item("B"), item("B")]),
        ("an item without a name", [item("A"), item("B"), {"socket_type": "FLOAT"}]),
        ("an item not a map", [item("A"), item("B"), 3]),
        ("not a list", {"A": 1}),
    ],
)
def test_a_merge_that_would_move_sockets_or_cannot_be_read_is_theirs(why, ours):
    base = {"enum_items": [item("A"), item("B")]}
    assert (
        merges.merge_item_lists(base, {"enum_items": ours}, {"enum_items": [*base["enum_items"], item("C")]})
        is None
    ), why


def test_the_key_merges_encoded_values_and_nothing_of_ours_is_no_merge():
    key = "ngroup/0123456789abcdef0123456789abcdef/items/a1b2c3"
    merge = merges.merger(key)
    assert merge is merges.node_items
    for other in ("mat", "world"):
        assert merges.merger(key.replace("ngroup", other)) is merges.node_items
    assert merges.merger("tex/0123456789abcdef0123456789abcdef/items/a1b2c3") is None
    assert merges.merger("ngroup/0123456789abcdef0123456789abcdef/items") is None
    base = encode_value(BASE)
    theirs = encode_value({**BASE, "repeat_items": [*BASE["repeat_items"], item("Float")]})
    assert merge(base, base, theirs) is None
    assert merge(base, b"\xc1", theirs) is None and merge(None, base, theirs) is None
    merged = merge(
        base, encode_value({**BASE, "repeat_items": [*BASE["repeat_items"], item("Float")]}), theirs
    )
    assert names(decode_value(merged)) == ["Geometry", "Float", "Float.001"]


ITEM_NAMES = st.lists(st.sampled_from(["A", "B", "C", "D", "Float"]), unique=True, max_size=4)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_their_items_keep_their_places_and_ours_follow(data):
    base = [item(n) for n in data.draw(ITEM_NAMES)]
    added = [n for n in data.draw(ITEM_NAMES) if n not in [d["name"] for d in base]]
    ours = base + [item(n, "INT") for n in added]  # names theirs may take too
    theirs = [d for d in base if data.draw(st.booleans())] + [
        item(n) for n in data.draw(ITEM_NAMES) if n not in [d["name"] for d in base]
    ]
    merged = merges.merge_item_lists({"l": base}, {"l": ours}, {"l": theirs})
    assert merged is not None
    got = merged["l"]
    assert got[: len(theirs)] == theirs
    assert len(got) == len(theirs) + len(added)
    assert len({d["name"] for d in got}) == len(got)  # Blender keeps them unique
    assert [d["socket_type"] for d in got[len(theirs) :]] == ["INT"] * len(added)


def _zone(items: list[str]):
    group = bpy.data.node_groups.new("Zone", "GeometryNodeTree")
    zone_in, zone_out = (
        group.nodes.new("GeometryNodeRepeatInput"),
        group.nodes.new("GeometryNodeRepeatOutput"),
    )
    zone_in.pair_with_output(zone_out)
    for name in items:
        zone_out.repeat_items.new("FLOAT", name)
    return group, zone_in, zone_out


def test_arrange_keeps_our_items_sockets_while_theirs_come_in_before():
    group, zone_in, zone_out = _zone(["Float", "Spare"])
    math = group.nodes.new("ShaderNodeMath")
    group.links.new(zone_in.outputs["Float"], math.inputs[0])
    zone_in.inputs["Float"].default_value = 2.0
    ours_socket = zone_in.inputs["Float"].identifier
    # base: Geometry, Spare; ours added Float; theirs removed Spare and added a Float of theirs and Count
    wanted = [item("Geometry", "GEOMETRY"), item("Float", "INT"), item("Count", "INT"), item("Float.001")]
    assert node_items.arrange(zone_out.repeat_items, ["Geometry", "Spare"], wanted)
    assert [i.name for i in zone_out.repeat_items] == ["Geometry", "Float", "Count", "Float.001"]
    assert zone_in.inputs["Float.001"].identifier == ours_socket
    assert zone_in.inputs["Float.001"].default_value == 2.0
    assert [(link.from_socket.name, link.to_socket.identifier) for link in group.links] == [
        ("Float.001", "Value")
    ]
    bpy.data.node_groups.remove(group)


def test_arrange_renames_in_place_the_item_theirs_renamed_keeping_its_socket():
    """Theirs renamed Spare to Speed while ours added Float: Spare is renamed here, not removed and made
    again (a new socket's default would be read back and sent over theirs' value)."""
    group, zone_in, zone_out = _zone(["Spare", "Float"])
    zone_in.inputs["Spare"].default_value = 9.0
    spare = zone_in.inputs["Spare"].identifier
    wanted = [item("Geometry", "GEOMETRY"), item("Speed"), item("Float")]
    assert node_items.arrange(zone_out.repeat_items, ["Geometry", "Speed"], wanted, {"Spare": "Speed"})
    assert [i.name for i in zone_out.repeat_items] == ["Geometry", "Speed", "Float"]
    assert zone_in.inputs["Speed"].identifier == spare and zone_in.inputs["Speed"].default_value == 9.0
    bpy.data.node_groups.remove(group)


def test_arrange_refuses_more_items_of_ours_than_the_merge_holds():
    group, _, zone_out = _zone(["Float"])
    assert not node_items.arrange(zone_out.repeat_items, [], [item("Float")])  # Geometry and Float are ours
    assert [i.name for i in zone_out.repeat_items] == ["Geometry", "Float"]  # left as it was
    bpy.data.node_groups.remove(group)


def test_arrange_refuses_a_list_whose_items_have_no_names():
    group = bpy.data.node_groups.new("Switch", "GeometryNodeTree")
    switch = group.nodes.new("GeometryNodeIndexSwitch")
    assert not node_items.arrange(switch.index_switch_items, [], [{}, {}])
    bpy.data.node_groups.remove(group)


def test_items_without_names_are_a_count_theirs_new_ones_then_ours():
    """An index switch's items have no names (a count): both adding some keeps them all, theirs' first;
    one of them removing an item cannot be told apart (theirs stands)."""
    base, ours = {"index_switch_items": [{}, {}]}, {"index_switch_items": [{}] * 3}
    theirs = {"index_switch_items": [{}] * 4}
    assert merges.merge_item_lists(base, ours, theirs) == {"index_switch_items": [{}] * 5}
    assert merges.merge_item_lists(base, {"index_switch_items": [{}]}, theirs) is None
    assert merges.merge_item_lists(base, ours, {"index_switch_items": [{}]}) is None


def test_arrange_makes_theirs_new_items_before_ours_without_names():
    group = bpy.data.node_groups.new("Switch", "GeometryNodeTree")
    switch = group.nodes.new("GeometryNodeIndexSwitch")
    switch.data_type = "FLOAT"
    switch.index_switch_items.new()  # ours: a third item, with its value
    switch.inputs[3].default_value = 7.0
    ours_socket = switch.inputs[3].identifier
    assert node_items.arrange_unnamed(switch.index_switch_items, 2, 5)  # theirs added two
    assert len(switch.index_switch_items) == 5
    assert switch.inputs[5].identifier == ours_socket and switch.inputs[5].default_value == 7.0
    assert not node_items.arrange_unnamed(switch.index_switch_items, 2, 4)  # fewer than here: refused
    bpy.data.node_groups.remove(group)
