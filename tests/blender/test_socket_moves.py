"""Where sockets named by position moved (sync/socket_moves.py), and another artist's keys made before the
move brought to the new positions (moved_sockets.py), on real node trees."""

from __future__ import annotations

import pytest

bpy = pytest.importorskip("bpy", reason="bpy (Blender as a Python module) is not installed")

from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from blender_addon import moved_sockets  # noqa: E402
from blender_addon.moved_sockets import MovedSockets, follow_ops, owner_of  # noqa: E402
from blender_addon.sync import ids, make_key, socket_moves  # noqa: E402
from blender_addon.sync.codec import encode_value  # noqa: E402
from blender_addon.sync.node_trees import nodes_by_id  # noqa: E402

pytestmark = pytest.mark.blender


def test_positions_follow_identifiers_and_a_removed_one_goes():
    assert socket_moves.moved_positions(("a", "b", "c", "x"), ("a", "c", "x")) == {1: None, 2: 1, 3: 2}
    assert socket_moves.moved_positions(("a", "b"), ("b", "a")) == {0: 1, 1: 0}
    assert socket_moves.moved_positions(("a", "b"), ("a", "b", "c")) == {}  # added at the end: none moved
    assert socket_moves.moved_positions(("a", "b"), ("n", "a", "b")) == {0: 1, 1: 2}
    assert socket_moves.moved_positions((), ()) == {}
    assert socket_moves.moved_positions(("a",), ()) == {0: None}
    # A repeated identifier (Blender repeats none within a side; an old file might): the n-th to the n-th.
    assert socket_moves.moved_positions(("r", "k", "r"), ("k", "r", "r")) == {0: 1, 1: 0}


layouts = st.lists(st.sampled_from("abcdefgh"), unique=True, max_size=8)


@st.composite
def changed(draw, old: list[str]) -> list[str]:
    """``old`` with some removed, some added and the rest reordered."""
    kept = draw(st.lists(st.sampled_from(old), unique=True)) if old else []
    added = draw(st.lists(st.sampled_from("ijklmn"), unique=True, max_size=3))
    return draw(st.permutations(kept + added))


@given(st.data(), layouts)
def test_two_moves_in_a_row_take_each_socket_where_one_move_would(data, old):
    mid = data.draw(changed(old))
    new = data.draw(changed(mid))
    ref = (1, "node")
    steps = [
        {ref: {"in": socket_moves.moved_positions(tuple(a), tuple(b))}} for a, b in ((old, mid), (mid, new))
    ]
    for i, ident in enumerate(old):
        expected = f"#{new.index(ident)}" if ident in new else None
        assert moved_sockets._new_socket(steps, ref, "in", f"#{i}") == expected


@pytest.fixture
def zone():
    """A geometry node group with a repeat zone holding the items Spare and Keep, and a Math node; the
    group's uuid given, its nodes their ids."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    tree = bpy.data.node_groups.new("Zone", "GeometryNodeTree")
    zone_in = tree.nodes.new("GeometryNodeRepeatInput")
    zone_out = tree.nodes.new("GeometryNodeRepeatOutput")
    zone_in.pair_with_output(zone_out)
    tree.nodes.new("ShaderNodeMath")
    for name in ("Spare", "Keep"):
        zone_out.repeat_items.new("FLOAT", name)
    ids.get_uuid(tree)
    nodes_by_id(tree)
    socket_moves.forget()
    yield tree
    socket_moves.forget()


def _ids(tree) -> dict[str, str]:
    return {node.bl_idname: nid for nid, node in nodes_by_id(tree, assign=False).items()}


def _note_all(tree) -> None:
    for nid, node in nodes_by_id(tree, assign=False).items():
        if node.bl_idname.startswith("GeometryNodeRepeat"):
            socket_moves.note_node(tree, nid, node)


def _remove_spare(tree) -> dict:
    _note_all(tree)
    out = tree.nodes["Repeat Output"]
    out.repeat_items.remove(out.repeat_items["Spare"])
    _note_all(tree)
    return socket_moves.take()


def test_removing_a_middle_item_moves_the_sockets_after_it_on_both_nodes_of_the_zone(zone):
    before = [s.name for s in zone.nodes["Repeat Input"].inputs]
    spare, keep = before.index("Spare"), before.index("Keep")
    moves = _remove_spare(zone)
    nid = _ids(zone)
    pointer = zone.as_pointer()
    assert moves[(pointer, nid["GeometryNodeRepeatInput"])]["in"][spare] is None
    assert moves[(pointer, nid["GeometryNodeRepeatInput"])]["in"][keep] == spare
    assert moves[(pointer, nid["GeometryNodeRepeatOutput"])]["out"][keep] == spare
    _note_all(zone)  # read again unchanged: nothing more moved
    assert socket_moves.take() == {}


def test_another_artists_value_and_link_follow_the_item_and_the_removed_ones_are_ours_again(zone):
    sockets = [s.name for s in zone.nodes["Repeat Input"].inputs]
    spare, keep = sockets.index("Spare"), sockets.index("Keep")
    nid = _ids(zone)
    rin, math = nid["GeometryNodeRepeatInput"], nid["ShaderNodeMath"]
    moves = _remove_spare(zone)
    uuid = ids.peek_uuid(zone)

    def key(part: str, *item: str) -> str:
        return make_key("ngroup", uuid, part, *item)

    value = encode_value(4.0)
    ops = [
        ["set", key("in", rin, f"#{keep}"), value],
        ["set", key("in", rin, f"#{spare}"), encode_value(7.0)],  # the removed item's
        ["set", key("link", rin, f"#{keep}", math, "Value_001"), encode_value(False)],
        ["delete", key("in", math, "Value")],  # not named by position: left as it is
        ["set", key("node", rin), encode_value({})],
    ]
    moved, named = follow_ops(ops, [moves], owner_of)
    assert moved == {
        key("in", rin, f"#{spare}"): value,
        key("link", rin, f"#{spare}", math, "Value_001"): encode_value(False),
    }
    assert named == {key("in", rin, f"#{keep}"), key("in", rin, f"#{spare}"), ops[2][1]}
    # Made having seen the move, or beside a change of the zone's items, or of an interface: left alone.
    item_list = ["set", key("items", nid["GeometryNodeRepeatOutput"]), encode_value({})]
    assert follow_ops([*ops, item_list], [moves], owner_of) == ({}, set())
    interface = ["set", make_key("ngroup", ids.new_uuid(), "iface"), encode_value([])]
    assert follow_ops([*ops, interface], [moves], owner_of) == ({}, set())
    assert follow_ops(ops, [], owner_of) == ({}, set())


def test_the_session_brings_only_batches_that_had_not_seen_our_move(zone):
    nid = _ids(zone)
    rin = nid["GeometryNodeRepeatInput"]
    sockets = [s.name for s in zone.nodes["Repeat Input"].inputs]
    spare, keep = sockets.index("Spare"), sockets.index("Keep")
    uuid = ids.peek_uuid(zone)
    at_keep, at_spare = (
        make_key("ngroup", uuid, "in", rin, f"#{keep}"),
        make_key("ngroup", uuid, "in", rin, f"#{spare}"),
    )
    ops = [["set", at_keep, encode_value(4.0)]]
    ours = {at_spare: encode_value(1.0)}  # Keep's value here, at its new position

    moved = MovedSockets()
    _note_all(zone)
    moved.discard()
    out = zone.nodes["Repeat Output"]
    out.repeat_items.remove(out.repeat_items["Spare"])
    _note_all(zone)
    moved.sent([7, 8])  # the batches of one scan: the move goes with the last
    expected = {at_spare: encode_value(4.0), at_keep: None}
    assert moved.follow(ops, seen=3, ours=ours) == expected  # ours unacknowledged: theirs ordered first
    assert moved.follow(ops, seen=None, ours=ours) == {}  # an author's seen unknown: nothing assumed
    moved.acked(8, seq=20)
    assert moved.follow(ops, seen=19, ours=ours) == expected
    assert moved.follow(ops, seen=20, ours=ours) == {}  # made having seen our batch
    moved.reset()
    assert moved.follow(ops, seen=3, ours=ours) == {}

    _note_all(zone)
    zone.nodes["Repeat Output"].repeat_items.new("FLOAT", "Spare")
    _note_all(zone)
    moved.sent([9])
    moved.refused([9])  # refused: nothing of it is in the room
    assert moved.follow(ops, seen=3, ours=ours) == {}


def test_moves_kept_are_bounded(zone, monkeypatch):
    moved = MovedSockets()
    for seq in range(moved_sockets.KEEP_COUNT + 10):
        socket_moves._layouts[(seq, "n")] = {"in": ("a",)}
        socket_moves._since[(seq, "n")] = {"in": ("b", "a")}
        moved.sent([seq])
        moved.acked(seq, seq)
    assert len(moved._acked) == moved_sockets.KEEP_COUNT
    clock = [moved_sockets.time.monotonic() + moved_sockets.KEEP_SECONDS + 1]
    monkeypatch.setattr(moved_sockets.time, "monotonic", lambda: clock[0])
    moved.follow([], seen=0, ours={})
    assert moved._acked == []
