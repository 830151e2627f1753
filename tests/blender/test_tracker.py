"""Change detection: each edit changes only the keys it should; applied remote values never echo."""

from __future__ import annotations

import pytest

bpy = pytest.importorskip("bpy", reason="bpy (Blender as a Python module) is not installed")

from scene_builders import build_everything, link, reset_scene, triangle_mesh  # noqa: E402

from blender_addon import sync  # noqa: E402

pytestmark = pytest.mark.blender


def key_of(id_data, part: str, *item: str) -> str:
    kinds = {
        "Object": "obj",
        "Mesh": "mesh",
        "Material": "mat",
        "Collection": "coll",
        "Text": "text",
        "TextCurve": "curve",
    }
    kind = kinds[id_data.bl_rna.identifier]
    return sync.make_key(kind, sync.get_uuid(id_data), part, *item)


@pytest.fixture
def scene_with_tracker():
    build_everything()
    tracker = sync.ChangeTracker()
    changed, deleted = tracker.scan()
    assert changed and not deleted
    return tracker


def test_first_scan_reports_everything_then_nothing(scene_with_tracker):
    tracker = scene_with_tracker
    assert tracker.values == sync.serialise_scene()
    assert tracker.scan() == ({}, [])


def test_rewriting_same_values_is_not_a_change(scene_with_tracker):
    tracker = scene_with_tracker
    for ob in bpy.data.objects:
        ob.location = tuple(ob.location)
        ob.rotation_euler = tuple(ob.rotation_euler)
    bpy.context.view_layer.update()
    assert tracker.scan() == ({}, [])


def test_move_changes_only_location(scene_with_tracker):
    tracker = scene_with_tracker
    ob = bpy.data.objects["Tri"]
    ob.location.x += 1.0
    changed, deleted = tracker.scan()
    assert list(changed) == [key_of(ob, "location")]
    assert deleted == []
    ob.scale.z = 3.0
    ob.rotation_euler.x = 0.5
    changed, deleted = tracker.scan()
    assert sorted(changed) == sorted([key_of(ob, "scale"), key_of(ob, "rotation")])


def test_vertex_edit_changes_only_geometry(scene_with_tracker):
    tracker = scene_with_tracker
    me = bpy.data.meshes["Tri"]
    me.vertices[3].co.z = 2.0
    me.update()
    changed, deleted = tracker.scan()
    assert list(changed) == [key_of(me, "geometry")]
    assert deleted == []


def test_rename_changes_only_the_name(scene_with_tracker):
    tracker = scene_with_tracker
    ob = bpy.data.objects["Tri"]
    ob.name = "Triangle"
    changed, deleted = tracker.scan()
    assert list(changed) == [key_of(ob, "name")]
    assert deleted == []


def test_material_edit_changes_only_material(scene_with_tracker):
    tracker = scene_with_tracker
    mat = bpy.data.materials["Shiny"]
    bsdf = mat.node_tree.nodes["Principled BSDF"]
    bsdf.inputs["Roughness"].default_value = 0.9
    changed, _ = tracker.scan()
    assert list(changed) == [key_of(mat, "in", bsdf["blendsync_id"], "Roughness")]
    mat.roughness = 0.8
    changed, _ = tracker.scan()
    assert list(changed) == [key_of(mat, "set", "roughness")]


def test_delete_object_deletes_its_keys(scene_with_tracker):
    tracker = scene_with_tracker
    ob = bpy.data.objects["Tri"]
    uuid = sync.get_uuid(ob)
    expected = sorted(k for k in tracker.values if k.startswith(f"obj/{uuid}/"))
    bpy.data.objects.remove(ob)
    changed, deleted = tracker.scan()
    assert changed == {}
    assert sorted(deleted) == expected
    assert deleted[-1] == f"obj/{uuid}/meta"  # the primary key goes last


def test_new_orphan_datablock_is_found(scene_with_tracker):
    tracker = scene_with_tracker
    mat = bpy.data.materials.new("Orphan")
    changed, _ = tracker.scan(dirty_ids=[])
    assert {key_of(mat, "meta"), key_of(mat, "name")} <= set(changed)
    assert all(k.startswith(f"mat/{sync.get_uuid(mat)}/") for k in changed)


def test_duplicate_gets_its_own_uuid(scene_with_tracker):
    tracker = scene_with_tracker
    original = bpy.data.objects["Tri"]
    copy = original.copy()
    link(copy)
    assert sync.peek_uuid(copy) == sync.peek_uuid(original)  # Blender copied the custom property
    changed, _ = tracker.scan()
    assert sync.peek_uuid(copy) != sync.peek_uuid(original)
    assert key_of(copy, "meta") in changed
    assert not any(k.startswith(f"obj/{sync.peek_uuid(original)}/") for k in changed)


def test_depsgraph_driven_scan():
    """The add-on's handler path: depsgraph updates select what to serialise."""
    seen: list = []

    @bpy.app.handlers.persistent
    def on_update(scene, depsgraph):
        seen.extend(sync.ids_from_depsgraph(depsgraph))

    bpy.app.handlers.depsgraph_update_post.append(on_update)
    try:
        coll = bpy.data.collections.new("Set")
        bpy.context.scene.collection.children.link(coll)
        ob = link(bpy.data.objects.new("Tri", triangle_mesh()), coll)
        tracker = sync.ChangeTracker()
        tracker.scan()
        bpy.context.view_layer.update()
        seen.clear()

        ob.location.y = 5.0
        bpy.context.view_layer.update()
        changed, deleted = tracker.scan(dirty_ids=seen)
        assert list(changed) == [key_of(ob, "location")] and deleted == []

        seen.clear()
        ob.name = "Renamed"
        ob.hide_render = True
        bpy.context.view_layer.update()
        changed, deleted = tracker.scan(dirty_ids=seen)
        assert sorted(changed) == sorted([key_of(ob, "name"), key_of(ob, "set", "hide_render")])

        # Moving to another collection: one membership key appears, the other goes.
        seen.clear()
        coll.objects.unlink(ob)
        bpy.context.scene.collection.objects.link(ob)
        bpy.context.view_layer.update()
        changed, deleted = tracker.scan(dirty_ids=seen)
        assert list(changed) == [key_of(ob, "in", sync.get_uuid(bpy.context.scene))]
        assert deleted == [key_of(ob, "in", sync.get_uuid(coll))]

        seen.clear()
        uuid = sync.get_uuid(ob)
        known = [k for k in tracker.values if k.startswith(f"obj/{uuid}/")]
        bpy.data.objects.remove(ob)
        bpy.context.view_layer.update()
        changed, deleted = tracker.scan(dirty_ids=seen)
        assert changed == {} and sorted(deleted) == sorted(known)
    finally:
        bpy.app.handlers.depsgraph_update_post.remove(on_update)


def test_applied_remote_ops_do_not_echo():
    build_everything()
    remote = sync.serialise_scene()
    reset_scene()
    tracker = sync.ChangeTracker()
    tracker.scan()  # the local (empty) scene is known
    applier = sync.Applier(tracker)
    applier.apply(list(remote.items()))
    assert applier.errors == []
    assert tracker.scan() == ({}, [])
    # A later remote edit, applied through the same tracker, does not echo either.
    ob = next(o for o in bpy.data.objects if o.name == "Tri")
    key = key_of(ob, "location")
    applier.apply([(key, sync.encode_value([9.0, 9.0, 9.0]))])
    assert tuple(ob.location) == (9.0, 9.0, 9.0)
    assert tracker.scan() == ({}, [])
    # Remote deletions do not echo.
    applier.apply([(k, None) for k in sorted(tracker.values) if k.startswith(f"obj/{sync.get_uuid(ob)}/")])
    assert "Tri" not in bpy.data.objects
    assert tracker.scan() == ({}, [])
    # A local edit after all that is still reported.
    bpy.data.objects["Root"].location.z = 7.0
    changed, _ = tracker.scan()
    assert list(changed) == [key_of(bpy.data.objects["Root"], "location")]


def test_text_and_font_edits_change_only_their_content_keys(scene_with_tracker):
    tracker = scene_with_tracker
    text = bpy.data.texts["notes.py"]
    text.write("# appended\n")
    changed, _ = tracker.scan()
    assert list(changed) == [key_of(text, "body")]
    font = bpy.data.objects["Text"].data
    font.body = "edited"
    changed, _ = tracker.scan()
    assert list(changed) == [key_of(font, "text")]
