"""NLA tracks and strips at the key level, in one process: one key per track, the order a key of its own,
and any arrival order of tracks, order and actions."""

from __future__ import annotations

import pytest

bpy = pytest.importorskip("bpy", reason="bpy (Blender as a Python module) is not installed")

from anim_builders import build_nla  # noqa: E402
from scene_builders import evaluate_scenes, reset_scene  # noqa: E402

from blender_addon import sync  # noqa: E402

pytestmark = pytest.mark.blender


def apply_one_at_a_time(ops: list[tuple[str, bytes]], applier: sync.Applier | None = None) -> sync.Applier:
    applier = applier or sync.Applier()
    for op in ops:
        applier.feed([op])
        applier.step()
    assert applier.errors == [] and applier.pending_links == {}
    evaluate_scenes()
    return applier


def nla_keys(values: dict[str, bytes]) -> dict[str, bytes]:
    return {k: v for k, v in values.items() if "/nla" in k or "/shapenla" in k}


def test_an_nla_edit_changes_only_its_tracks_key_and_applies_over_a_replica():
    build_nla()
    evaluate_scenes()
    tracker = sync.ChangeTracker()
    tracker.scan()
    dancer = bpy.data.objects["Dancer"]
    d = sync.peek_uuid(dancer)
    tracks = dancer.animation_data.nla_tracks
    tracks["Layer on top"].strips["Wave"].influence = 0.25
    tracks["Layer on top"].mute = False
    assert tracker.scan([dancer])[0].keys() == {f"obj/{d}/nla/Layer on top"}
    tracks["Base"].strips.remove(tracks["Base"].strips["Walk back"])
    assert tracker.scan([dancer])[0].keys() == {f"obj/{d}/nla/Base"}
    # A new track changes the order, not the other tracks' keys (another artist's edit of them stays).
    accent = tracks.new(prev=tracks["Layer on top"])
    accent.name = "Accent"
    accent.strips.new("Accent", 60, bpy.data.actions["Wave"])
    assert tracker.scan([dancer])[0].keys() == {f"obj/{d}/nla/Accent", f"obj/{d}/nlaorder"}
    values = dict(tracker.values)
    edited = sync.scene_hash()
    reset_scene()
    apply_one_at_a_time(sorted(values.items()))
    tracks = bpy.data.objects["Dancer"].animation_data.nla_tracks
    assert [t.name for t in tracks] == ["Base", "Layer on top", "Accent"]
    assert [s.name for s in tracks["Base"].strips] == ["Walk"]
    assert sync.scene_hash() == edited


def _first(ops, *parts: str):
    """``ops`` with those whose part is one of ``parts`` first, in that order of parts."""
    rank = {part: i for i, part in enumerate(parts)}
    return sorted(ops, key=lambda op: rank.get(sync.parse_key(op[0])[2], len(parts)))


ORDERS = {
    # Strips before their actions are whole (an empty action gives a strip of one frame).
    "tracks and order before actions": lambda ops: _first(
        ops, "meta", "nlaorder", "nla", "shapes", "shapenla"
    ),
    # Every action whole, then the tracks top first (each lands on top), then the order moves them.
    "order last": lambda ops: (
        _first([op for op in ops if "nlaorder" not in op[0]][::-1], "meta", "fcurve")
        + [op for op in ops if "nlaorder" in op[0]]
    ),
    # The order before any track: it waits for the tracks it names.
    "order first": lambda ops: _first(ops, "nlaorder", "shapenlaorder"),
}


@pytest.mark.parametrize("name", sorted(ORDERS))
def test_tracks_strips_order_and_actions_apply_in_any_arrival_order(name):
    build_nla()
    evaluate_scenes()
    before = sync.scene_hash()
    values = sync.serialise_scene()
    reset_scene()
    apply_one_at_a_time(ORDERS[name](sorted(values.items())))
    assert sync.scene_hash() == before
    assert nla_keys(sync.serialise_scene()) == nla_keys(values)


def test_a_strip_moved_to_another_track_keeps_its_name_whichever_track_arrives_first():
    build_nla()
    evaluate_scenes()
    values = sync.serialise_scene()
    tracks = bpy.data.objects["Dancer"].animation_data.nla_tracks
    tracks["Base"].strips.remove(tracks["Base"].strips["Walk back"])
    tracks["Layer on top"].strips.new("Walk back", 60, bpy.data.actions["Walk"])
    evaluate_scenes()
    moved = sync.serialise_scene()
    edited = sync.scene_hash()
    reset_scene()
    applier = apply_one_at_a_time(sorted(values.items()))
    # The track that takes the strip arrives first: Blender names it Walk back.001 until Base lets go.
    changed = sorted((k, v) for k, v in moved.items() if values.get(k) != v)
    assert [k.rsplit("/", 1)[1] for k, _ in changed] == ["Base", "Layer on top"]
    apply_one_at_a_time(changed[::-1], applier)
    assert "Walk back" in bpy.data.objects["Dancer"].animation_data.nla_tracks["Layer on top"].strips
    assert sync.scene_hash() == edited


def test_a_geometry_change_keeps_the_meshs_own_action_tracks_and_drivers():
    """Blender's Mesh.clear_geometry frees the mesh's animation data: a geometry key arriving after the
    mesh's ``anim``, ``nla`` and ``driver`` keys (a vertex moved by another artist) must keep them."""
    from anim_builders import keyed_action, link_data
    from scene_builders import add_driver, triangle_mesh

    me = triangle_mesh("Waving")
    link_data(me)
    me["level"], me["idle"], me["gain"] = 0.0, 0.0, 0.0
    me.animation_data_create().action = keyed_action(
        "Level", "MESH", "Waving", '["level"]', [1.0, 0.0, 9.0, 1.0]
    )
    me.animation_data.action_slot = me.animation_data.action.slots[0]
    track = me.animation_data.nla_tracks.new()
    track.name = "Idle"
    track.strips.new("Idle", 1, keyed_action("Idle", "MESH", "Waving", '["idle"]', [1.0, 0.0, 9.0, 2.0]))
    add_driver(
        me,
        '["gain"]',
        0,
        "2 * base",
        [("base", "SINGLE_PROP", [{"id_type": "MESH", "id": me, "data_path": '["level"]'}])],
    )
    evaluate_scenes()
    values = sync.serialise_scene()
    reset_scene()
    applier = apply_one_at_a_time(sorted(values.items()))
    me = bpy.data.meshes["Waving"]
    me.vertices[0].co.x = 5.0  # as a remote geometry edit: only its key comes again
    geometry = next(k for k in values if k.startswith("mesh/") and k.endswith("/geometry"))
    moved = sync.serialise_scene()[geometry]
    reset_scene()
    applier = apply_one_at_a_time(sorted(values.items()))
    apply_one_at_a_time([(geometry, moved)], applier)
    me = bpy.data.meshes["Waving"]
    assert me.vertices[0].co.x == 5.0
    assert me.animation_data is not None
    assert me.animation_data.action.name == "Level"
    assert [t.name for t in me.animation_data.nla_tracks] == ["Idle"]
    assert [d.data_path for d in me.animation_data.drivers] == ['["gain"]']
    assert {k: v for k, v in sync.serialise_scene().items() if k != geometry} == {
        k: v for k, v in values.items() if k != geometry
    }


def test_a_strips_animated_influence_travels_and_playing_it_sends_nothing():
    build_nla()
    dancer = bpy.data.objects["Dancer"]
    walk = dancer.animation_data.nla_tracks["Base"].strips["Walk"]
    walk.use_animated_influence = True
    curve = walk.fcurves.find("influence")
    curve.keyframe_points.clear()
    curve.keyframe_points.add(2)
    curve.keyframe_points.foreach_set("co", [1.0, 0.0, 21.0, 1.0])
    for point in curve.keyframe_points:
        point.interpolation = "LINEAR"
    scene = bpy.context.scene
    scene.frame_set(1)
    tracker = sync.ChangeTracker()
    tracker.scan()
    d = sync.peek_uuid(dancer)
    for frame in (6, 11, 16):  # playing: the influence Blender writes into the strip is not an edit
        scene.frame_set(frame)
        assert tracker.scan([dancer])[0] == {}
    assert walk.influence == pytest.approx(0.75)
    # An edit of the strip's curve travels on the track's key.
    curve.keyframe_points[1].co = (21.0, 0.5)
    assert tracker.scan([dancer])[0].keys() == {f"obj/{d}/nla/Base"}
    scene.frame_set(11)
    location, edited = list(dancer.location), sync.scene_hash()
    values = dict(tracker.values)
    reset_scene()
    apply_one_at_a_time(sorted(values.items()))
    scene = bpy.context.scene
    scene.frame_set(11)
    dancer = bpy.data.objects["Dancer"]
    walk = dancer.animation_data.nla_tracks["Base"].strips["Walk"]
    assert walk.use_animated_influence
    assert [tuple(k.co) for k in walk.fcurves.find("influence").keyframe_points] == [(1.0, 0.0), (21.0, 0.5)]
    assert walk.influence == pytest.approx(0.25)
    assert list(dancer.location) == pytest.approx(location)
    assert sync.scene_hash() == edited
