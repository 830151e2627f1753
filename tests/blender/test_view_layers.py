"""A scene's view layers travel between artists (in one process: Ana builds and sends, Ben joins and edits,
Ana applies his batch in her own scene and a late joiner the room; test_nested_data.across_artists), each view
layer on its own key, each collection's flags in a view layer on theirs."""

from __future__ import annotations

import random

import pytest

bpy = pytest.importorskip("bpy", reason="bpy (Blender as a Python module) is not installed")

from layer_builders import build_view_layers, layer_collection, observed  # noqa: E402
from replicas import applied_one_at_a_time, edit_batch, replica  # noqa: E402
from scene_builders import evaluate_scenes, reset_scene  # noqa: E402
from test_nested_data import across_artists  # noqa: E402

from blender_addon import sync  # noqa: E402

pytestmark = pytest.mark.blender


def _keys(batch: dict[str, bytes | None]) -> set[tuple[str, tuple[str, ...]]]:
    return {sync.split_key(key)[2:4] for key in batch if key.startswith("scene/")}


def _uuid(name: str) -> str:
    return bpy.data.collections[name]["blendsync_uuid"]


def _built() -> tuple[dict[str, bytes], str, list]:
    reset_scene()
    build_view_layers()
    evaluate_scenes()
    return sync.serialise_scene(), sync.scene_hash(), observed()


@pytest.mark.parametrize("order", ["scene first", "collections first", "shuffled 1", "shuffled 2"])
def test_view_layers_made_from_keys_in_any_order(order):
    """The view layers, their settings, overrides, AOVs, light groups, collection flags and line sets come out
    the same whichever keys arrive first: flags before their collection (or its link into the scene) wait
    for it, line sets and flags before their view layer wait for it."""
    values, before, seen = _built()
    ops = list(values.items())
    if order == "scene first":
        ops.sort(key=lambda op: not op[0].startswith("scene/"))
    elif order == "collections first":
        ops.sort(key=lambda op: op[0].startswith("scene/"))
    else:
        random.Random(int(order[-1])).shuffle(ops)
    applied_one_at_a_time(ops)
    evaluate_scenes()
    assert observed() == seen and sync.scene_hash() == before
    assert len(bpy.data.scenes[0].view_layers) == 2


def test_settings_changed_by_another_artist():
    """Ben renders Shadow, lowers its samples, changes passes, EEVEE's and Cycles' passes, the overrides, an
    AOV and the light groups: Shadow's key alone (and the new material's)."""

    def edit():
        shadow = bpy.context.scene.view_layers["Shadow"]
        shadow.use, shadow.samples = True, 16
        shadow.use_pass_uv, shadow.use_pass_mist = True, False
        shadow.eevee.use_pass_bloom = False
        shadow.cycles.use_pass_shadow_catcher = False
        shadow.material_override = bpy.data.materials.new("Chalk")
        shadow.world_override = None
        shadow.aovs.remove(shadow.aovs["tint"])
        shadow.lightgroups.add(name="rim")

    batch, after = across_artists(build_view_layers, edit, observed)
    assert _keys(batch) == {("vlayer", ("Shadow",))}
    shadow = after[0][1][1]
    assert shadow[:3] == ["Shadow", True, 16]
    assert "use_pass_uv" in shadow[3] and "use_pass_mist" not in shadow[3]
    assert shadow[4:10] == [False, False, "Chalk", None, [["dirt", "VALUE"]], ["key", "rim"]]


def test_a_view_layer_added_with_its_line_set_and_flags():
    """Ben adds Rim with a Freestyle line set and a collection excluded: its keys arrive together, and the
    line set applies to the view layer that arrived (no "not applied here")."""

    def edit():
        rim = bpy.context.scene.view_layers.new("Rim")
        rim.use_pass_emit = True
        rim.freestyle_settings.linesets.new("Edges")
        layer_collection(rim, "Stage").exclude = True

    batch, after = across_artists(build_view_layers, edit, observed)
    stage = _uuid("Stage")
    assert _keys(batch) >= {
        ("vlayer", ("Rim",)),
        ("vlayerorder", ()),
        ("freestyle", ("Rim",)),
        ("lineset", ("Rim", "Edges")),
        ("linesetorder", ("Rim",)),
        ("laycoll", ("Rim", stage)),
        ("laycoll", ("Rim", _uuid("Crates"))),
    }
    rim = after[0][1][2]
    assert rim[0] == "Rim" and rim[-1] == ["Edges"]
    # Every collection of Rim has its key; Trim is excluded with Stage.
    assert rim[10] == [("Stage", [True, False, False, False]), ("Trim", [True, False, False, False])]


def test_a_view_layer_removed():
    def edit():
        scene = bpy.context.scene
        scene.view_layers.remove(scene.view_layers["Shadow"])

    batch, after = across_artists(build_view_layers, edit, observed)
    assert batch[next(k for k in batch if k.endswith("/vlayer/Shadow"))] is None
    assert all(value is None for key, value in batch.items() if "Shadow" in key)
    assert [layer[0] for layer in after[0][1]] == ["Beauty"]


def test_a_view_layer_renamed_keeps_its_settings_flags_and_line_sets():
    """A rename is the old name's keys deleted and the new name's made: the receivers end with the view layer
    under its new name, with everything it held."""

    def edit():
        bpy.context.scene.view_layers["Shadow"].name = "Occlusion"

    batch, after = across_artists(build_view_layers, edit, observed)
    assert ("vlayer", ("Occlusion",)) in _keys(batch) and ("vlayer", ("Shadow",)) in _keys(batch)
    _, _, seen = _built()
    seen[0][1][1][0] = "Occlusion"
    assert after == seen


def test_the_only_view_layer_renamed():
    """A scene of one view layer: the receivers cannot remove it, the new name takes it over."""

    def build():
        bpy.context.scene.view_layers[0].use_pass_z = True

    def edit():
        bpy.context.scene.view_layers[0].name = "Main"

    batch, after = across_artists(build, edit, observed)
    assert batch[next(k for k in batch if k.endswith("/vlayer/ViewLayer"))] is None
    assert [layer[0] for layer in after[0][1]] == ["Main"] and "use_pass_z" in after[0][1][0][3]


def test_view_layers_put_in_another_order():
    def edit():
        bpy.context.scene.view_layers.move(1, 0)

    batch, after = across_artists(build_view_layers, edit, observed)
    assert _keys(batch) == {("vlayerorder", ())}
    assert [layer[0] for layer in after[0][1]] == ["Shadow", "Beauty"]


def test_collection_flags_changed_with_a_new_collection():
    """Ben takes Crates back into Shadow, excludes Stage there and makes a collection Fx, a
    holdout in Beauty (the collection's keys and the flags' in one batch)."""

    def edit():
        scene = bpy.context.scene
        shadow, beauty = scene.view_layers["Shadow"], scene.view_layers["Beauty"]
        layer_collection(shadow, "Crates").exclude = False
        layer_collection(shadow, "Stage").exclude = True
        bpy.data.collections["Stage"].children.link(bpy.data.collections.new("Fx"))
        layer_collection(beauty, "Fx").holdout = True

    batch, after = across_artists(build_view_layers, edit, observed)
    laycoll = {item: batch[key] for key in batch if (item := sync.split_key(key)[2:4])[0] == "laycoll"}
    # Blender excludes Trim with Stage, and gives Fx Stage's flags in each view layer.
    assert set(laycoll) == {
        ("laycoll", (layer, _uuid(name)))
        for layer, name in (("Shadow", "Crates"), ("Shadow", "Stage"), ("Shadow", "Trim"))
    } | {("laycoll", (layer, _uuid("Fx"))) for layer in ("Beauty", "Shadow")}
    beauty, shadow = after[0][1]
    assert beauty[10] == [("Fx", [False, True, False, True]), ("Stage", [False, False, False, True])]
    assert shadow[10] == [
        ("Fx", [True, False, False, False]),
        ("Stage", [True, False, False, False]),
        ("Trim", [True, True, True, False]),
    ]


def test_flags_and_a_collection_from_two_artists_merge():
    """Ana makes a collection while Ben excludes another in Shadow: applied in either order, every replica
    ends with both."""
    values, _, _ = _built()

    def ana_edit():
        bpy.context.scene.collection.children.link(bpy.data.collections.new("Lamps"))

    def ben_edit():
        layer_collection(bpy.context.scene.view_layers["Shadow"], "Stage").exclude = True

    batches = []
    for edit in (ana_edit, ben_edit):
        tracker = replica(values)
        batches.append(edit_batch(tracker, edit))
    results = []
    for first, second in (batches, batches[::-1]):
        tracker = replica(values)
        for batch in (first, second):
            applier = sync.apply_ops(batch, tracker=tracker)
            assert applier.errors == [] and applier.pending_links == {}
        # Nothing echoes: the view layers' keys for the collection that arrived are the room's.
        assert tracker.scan() == ({}, [])
        evaluate_scenes()
        results.append((sync.scene_hash(), observed()))
    assert results[0] == results[1]
    shadow = results[0][1][0][1][1]
    assert ("Stage", [True, False, False, False]) in shadow[10]
    assert "Lamps" in bpy.data.collections


def test_the_view_layer_an_artist_looks_through_is_their_own():
    values, _, _ = _built()
    tracker = replica(values)
    bpy.context.window.view_layer = bpy.context.scene.view_layers["Shadow"]
    bpy.context.view_layer.update()
    assert tracker.scan() == ({}, [])


def test_a_collection_linked_by_another_artist_sends_no_flags_back():
    """A collection's link arrives before the sender's keys of its flags (a batch of its keys only): the
    receiver's view layers hold the collection with the flags Blender gave it, which are not sent (the
    sender's flags, arriving next, would be overwritten by them)."""
    values, _, _ = _built()

    def edit():
        bpy.data.collections["Stage"].children.link(bpy.data.collections.new("Fx"))
        layer_collection(bpy.context.scene.view_layers["Beauty"], "Fx").holdout = True

    batch = edit_batch(replica(values), edit)
    links = [op for op in batch if op[0].startswith("coll/")]
    flags = [op for op in batch if not op[0].startswith("coll/")]
    tracker = replica(values)
    for ops in (links, flags):
        applier = sync.apply_ops(ops, tracker=tracker)
        assert applier.errors == [] and applier.pending_links == {}
        assert tracker.scan() == ({}, [])
    beauty = observed()[0][1][0]
    assert ("Fx", [False, True, False, True]) in beauty[10]  # Stage's hide, given by Blender, and the holdout
