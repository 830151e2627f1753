"""Where sockets named by position moved and modifiers were renamed (sync/moves.py), and another
artist's keys made before that brought to where they now point (moved_keys.py), on real bpy."""

from __future__ import annotations

import pytest

bpy = pytest.importorskip("bpy", reason="bpy (Blender as a Python module) is not installed")

from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from blender_addon import moved_keys  # noqa: E402
from blender_addon.moved_keys import MovedKeys, follow_ops, owner_of  # noqa: E402
from blender_addon.sync import constraints, ids, make_key, moves, split_key, view_layers  # noqa: E402
from blender_addon.sync.codec import encode_value  # noqa: E402
from blender_addon.sync.node_trees import nodes_by_id  # noqa: E402
from blender_addon.sync.serialise import read_context  # noqa: E402

pytestmark = pytest.mark.blender


def test_positions_follow_identifiers_and_a_removed_one_goes():
    assert moves.moved_positions(("a", "b", "c", "x"), ("a", "c", "x")) == {1: None, 2: 1, 3: 2}
    assert moves.moved_positions(("a", "b"), ("b", "a")) == {0: 1, 1: 0}
    assert moves.moved_positions(("a", "b"), ("a", "b", "c")) == {}  # added at the end: none moved
    assert moves.moved_positions(("a", "b"), ("n", "a", "b")) == {0: 1, 1: 2}
    assert moves.moved_positions((), ()) == {}
    assert moves.moved_positions(("a",), ()) == {0: None}
    # A repeated identifier (Blender repeats none within a side; an old file might): the n-th to the n-th.
    assert moves.moved_positions(("r", "k", "r"), ("k", "r", "r")) == {0: 1, 1: 0}


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
    steps = [{ref: {"in": moves.moved_positions(tuple(a), tuple(b))}} for a, b in ((old, mid), (mid, new))]
    for i, ident in enumerate(old):
        expected = f"#{new.index(ident)}" if ident in new else None
        assert moved_keys._new_socket(steps, ref, "in", f"#{i}") == expected


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
    moves.forget()
    yield tree
    moves.forget()


def _ids(tree) -> dict[str, str]:
    return {node.bl_idname: nid for nid, node in nodes_by_id(tree, assign=False).items()}


def _note_all(tree) -> None:
    for nid, node in nodes_by_id(tree, assign=False).items():
        if node.bl_idname.startswith("GeometryNodeRepeat"):
            moves.note_node(tree, nid, node)


def _remove_spare(tree) -> dict:
    _note_all(tree)
    out = tree.nodes["Repeat Output"]
    out.repeat_items.remove(out.repeat_items["Spare"])
    _note_all(tree)
    return moves.take()


def test_removing_a_middle_item_moves_the_sockets_after_it_on_both_nodes_of_the_zone(zone):
    before = [s.name for s in zone.nodes["Repeat Input"].inputs]
    spare, keep = before.index("Spare"), before.index("Keep")
    found = _remove_spare(zone)
    nid = _ids(zone)
    pointer = zone.as_pointer()
    assert found[(pointer, nid["GeometryNodeRepeatInput"])]["in"][spare] is None
    assert found[(pointer, nid["GeometryNodeRepeatInput"])]["in"][keep] == spare
    assert found[(pointer, nid["GeometryNodeRepeatOutput"])]["out"][keep] == spare
    _note_all(zone)  # read again unchanged: nothing more moved
    assert moves.take() == {}


def test_another_artists_value_and_link_follow_the_item_and_the_removed_ones_are_ours_again(zone):
    sockets = [s.name for s in zone.nodes["Repeat Input"].inputs]
    spare, keep = sockets.index("Spare"), sockets.index("Keep")
    nid = _ids(zone)
    rin, math = nid["GeometryNodeRepeatInput"], nid["ShaderNodeMath"]
    found = _remove_spare(zone)
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
    moved, named = follow_ops(ops, [found], owner_of)
    assert moved == {
        key("in", rin, f"#{spare}"): value,
        key("link", rin, f"#{spare}", math, "Value_001"): encode_value(False),
    }
    assert named == {key("in", rin, f"#{keep}"), key("in", rin, f"#{spare}"), ops[2][1]}
    # Made having seen the move, or beside a change of the zone's items, or of an interface: left alone.
    item_list = ["set", key("items", nid["GeometryNodeRepeatOutput"]), encode_value({})]
    assert follow_ops([*ops, item_list], [found], owner_of) == ({}, set())
    interface = ["set", make_key("ngroup", ids.new_uuid(), "iface"), encode_value([])]
    assert follow_ops([*ops, interface], [found], owner_of) == ({}, set())
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

    moved = MovedKeys()
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
    moved = MovedKeys()
    for seq in range(moved_keys.KEEP_COUNT + 10):
        moves._layouts[(seq, "n")] = {"in": ("a",)}
        moves._since[(seq, "n")] = {"in": ("b", "a")}
        moved.sent([seq])
        moved.acked(seq, seq)
    assert len(moved._acked) == moved_keys.KEEP_COUNT
    clock = [moved_keys.time.monotonic() + moved_keys.KEEP_SECONDS + 1]
    monkeypatch.setattr(moved_keys.time, "monotonic", lambda: clock[0])
    moved.follow([], seen=0, ours={})
    assert moved._acked == []


def test_a_modifier_renamed_is_told_by_its_persistent_uid_and_renamed_twice_or_back_once():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    ob = bpy.data.objects.new("Pillar", bpy.data.meshes.new("Pillar"))
    bevel, wave = ob.modifiers.new("Bevel", "BEVEL"), ob.modifiers.new("Wave", "WAVE")
    moves.forget()

    def read():
        moves.note_names(ob, "modifiers", {mod.persistent_uid: mod.name for mod in ob.modifiers})

    read()
    bevel.name, wave.name = "Soft", "Bevel"  # a name another modifier had: told apart by uid
    read()
    bevel.name = "Softer"
    read()
    assert moves.take() == {(ob.as_pointer(), "modifiers"): {"names": {"Bevel": "Softer", "Wave": "Bevel"}}}
    wave.name = "Wave"
    read()
    wave.name = "Bevel"
    read()
    assert moves.take() == {}  # there and back between two takes
    ob.modifiers.remove(bevel)
    ob.modifiers.new("Softer", "SMOOTH")  # removed and another made: no rename
    read()
    assert moves.take() == {}


def test_another_artists_settings_of_a_modifier_we_renamed_follow_the_new_name():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    ob = bpy.data.objects.new("Pillar", bpy.data.meshes.new("Pillar"))
    bpy.context.scene.collection.objects.link(ob)
    uuid = ids.get_uuid(ob)
    steps = [{(ob.as_pointer(), "modifiers"): {"names": {"Bevel": "Soft"}}}]

    def key(part: str, *item: str) -> str:
        return make_key("obj", uuid, part, *item)

    width, shown = encode_value(0.25), encode_value({"type": "BEVEL"})
    ops = [
        ["set", key("modset", "Bevel", "width"), width],
        ["set", key("mod", "Bevel"), shown],
        ["set", key("modset", "Wave", "height"), width],  # another modifier: left as it is
        ["delete", key("modin", "Bevel", "#2")],
    ]
    moved, named = follow_ops(ops, steps, owner_of)
    assert moved == {
        key("modset", "Soft", "width"): width,
        key("mod", "Soft"): shown,
        key("modin", "Soft", "#2"): None,
    }
    assert named == {ops[0][1], ops[1][1], ops[3][1]}
    assert follow_ops(ops, [], owner_of) == ({}, set())
    session = MovedKeys()
    moves._renamed[(ob.as_pointer(), "modifiers")] = {"Bevel": "Soft"}
    session.sent([4])
    assert session.follow(ops[:1], seen=1, ours={}) == {
        key("modset", "Soft", "width"): width,
        ops[0][1]: None,
    }


def test_a_constraint_renamed_is_told_by_its_struct_and_type_and_another_artists_setting_follows():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    ob = bpy.data.objects.new("Rig", bpy.data.armatures.new("Rig"))
    bpy.context.scene.collection.objects.link(ob)
    follow = ob.constraints.new("COPY_LOCATION")
    follow.name = "Follow"
    uuid = ids.get_uuid(ob)
    moves.forget()
    ctx = read_context()
    constraints.read(ob.constraints, ctx)
    constraints.read(ob.constraints, ctx, "Arm")  # as a bone's: another owner of names
    follow.name = "Track"
    constraints.read(ob.constraints, ctx)
    found = moves.take()
    assert found == {(ob.as_pointer(), "constraints"): {"names": {"Follow": "Track"}}}
    ops = [
        ["set", make_key("obj", uuid, "con", "Follow"), encode_value({"type": "COPY_LOCATION"})],
        ["set", make_key("obj", uuid, "pbcon", "Arm", "Follow"), encode_value({"type": "COPY_LOCATION"})],
    ]
    moved, named = follow_ops(ops, [found], owner_of)
    assert moved == {make_key("obj", uuid, "con", "Track"): ops[0][2]} and named == {ops[0][1]}
    constraints.read(ob.constraints, ctx)
    MovedKeys.discard(forget=True)  # an undo: every struct is a new one
    follow.name = "Follow"
    constraints.read(ob.constraints, ctx)
    assert moves.take() == {}  # nothing to tell it by since
    bone = {(ob.as_pointer(), "constraints/Arm"): {"names": {"Follow": "Track"}}}
    moved, named = follow_ops(ops, [bone], owner_of)
    assert moved == {make_key("obj", uuid, "pbcon", "Arm", "Track"): ops[1][2]} and named == {ops[1][1]}


def test_a_view_layer_renamed_takes_another_artists_settings_flags_and_freestyle_with_it():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.view_layers.new("Pass")
    uuid = ids.get_uuid(scene)
    moves.forget()
    ctx = read_context()
    view_layers.read(scene, ctx)
    scene.view_layers["Pass"].name = "Beauty"
    view_layers.read(scene, ctx)
    found = moves.take()
    assert found == {(scene.as_pointer(), "view_layers"): {"names": {"Pass": "Beauty"}}}
    value = encode_value({"props": {}})
    coll = ids.new_uuid()
    ops = [
        ["set", make_key("scene", uuid, "vlayer", "Pass"), value],
        ["set", make_key("scene", uuid, "laycoll", "Pass", coll), value],
        ["set", make_key("scene", uuid, "lineset", "Pass", "Set"), value],
        ["set", make_key("scene", uuid, "vlayer", "Other"), value],
    ]
    moved, named = follow_ops(ops, [found], owner_of)
    assert moved == {
        make_key("scene", uuid, "vlayer", "Beauty"): value,
        make_key("scene", uuid, "laycoll", "Beauty", coll): value,
        make_key("scene", uuid, "lineset", "Beauty", "Set"): value,
    }
    assert named == {op[1] for op in ops[:3]}


segments = st.one_of(
    st.sampled_from(["#0", "#1", "#2", "#-1", "#", "#x", "Bevel", "Soft", "Pass", ""]),
    st.text(max_size=6),
)
PARTS = sorted({*moved_keys.SIDES, *moved_keys.NAMED, "items", "iface", "node", "set"})


@st.composite
def any_ops(draw) -> list[list]:
    """Operations as another artist's batch could carry them: real kinds and parts with any segments,
    and keys, verbs and values that are not."""
    out = []
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["obj", "ngroup", "mat", "scene", "nope"]))
        part = draw(st.sampled_from(PARTS))
        key = "/".join(
            [kind, "0123456789abcdef0123456789abcdef", part, *draw(st.lists(segments, max_size=4))]
        )
        key = draw(st.one_of(st.just(key), st.text(max_size=12)))
        verb = draw(st.sampled_from(["set", "delete", "touch"]))
        out.append([verb, key, draw(st.binary(max_size=4))] if verb != "delete" else [verb, key])
    return out


@given(any_ops(), st.lists(st.dictionaries(st.sampled_from(["in", "out", "modin", "names"]), st.just({}))))
def test_any_batch_is_followed_without_error_into_keys_this_layer_owns(ops, sides):
    """Whatever another artist's batch names, following our moves raises nothing and yields keys this
    layer parses, each from a key the batch named."""
    owner = bpy.data.objects.get("Follower") or bpy.data.objects.new("Follower", None)
    steps = [
        {(owner.as_pointer(), name): {side: ({1: 0, 0: None} if side != "names" else {"Bevel": "Soft"})}}
        for step in sides
        for side in step
        for name in ("modifiers", "#1", "Bevel", "")
    ]
    moved, named = follow_ops(ops, steps, lambda kind, uuid, part: owner if kind != "nope" else None)
    assert named <= {op[1] for op in ops}
    assert all(split_key(key) is not None for key in moved)
