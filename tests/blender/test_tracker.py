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


# ---- the event path and the incremental audit (no walk of the whole scene) -----------------------------


@pytest.fixture
def reported():
    """What a ``depsgraph_update_post`` handler reports, as the add-on collects it."""
    seen: list = []

    @bpy.app.handlers.persistent
    def on_update(scene, depsgraph):
        seen.extend(sync.ids_from_depsgraph(depsgraph))

    bpy.app.handlers.depsgraph_update_post.append(on_update)
    yield seen
    bpy.app.handlers.depsgraph_update_post.remove(on_update)


def take(seen: list) -> list:
    bpy.context.view_layer.update()
    out = list(seen)
    seen.clear()
    return out


def parts_of(changed) -> list[tuple[str, str]]:
    return sorted(sync.parse_key(k)[0::2] for k in changed)


def test_event_path_finds_each_edit_without_a_full_scan(reported, monkeypatch):
    """Every edit below is found by ``scan(reported)`` alone: the audit never runs and no full scan."""
    from blender_addon.sync import tracker as tracker_module

    build_everything()
    tracker = sync.ChangeTracker()
    tracker.scan()
    take(reported)
    serialised: list[str] = []
    real = tracker_module.serialise_parts
    monkeypatch.setattr(
        tracker_module,
        "serialise_parts",
        lambda kind, i, ctx: serialised.append(i.name) or real(kind, i, ctx),
    )

    ob = bpy.data.objects["Tri"]
    ob.location.x += 1.0
    assert tracker.scan(take(reported)) == (
        {key_of(ob, "location"): tracker.values[key_of(ob, "location")]},
        [],
    )
    assert serialised == ["Tri"]  # the one reported datablock, not the scene

    me = ob.data
    me.vertices[0].co.z = 3.0
    me.update()
    changed, deleted = tracker.scan(take(reported))
    assert key_of(me, "geometry") in changed and deleted == []

    ob.name = "Renamed"
    changed, _ = tracker.scan(take(reported))
    assert list(changed) == [key_of(ob, "name")]

    mat = bpy.data.materials["Shiny"]
    mat.roughness = 0.6
    changed, _ = tracker.scan(take(reported))
    assert list(changed) == [key_of(mat, "set", "roughness")]

    added = link(bpy.data.objects.new("Added", None))
    changed, _ = tracker.scan(take(reported))
    assert key_of(added, "meta") in changed

    uuid = sync.get_uuid(ob)
    bpy.data.objects.remove(ob)
    changed, deleted = tracker.scan(take(reported))
    assert changed == {} and deleted and all(k.startswith(f"obj/{uuid}/") for k in deleted)
    assert deleted[-1] == f"obj/{uuid}/meta"
    assert tracker.audit_visits == 0


def test_undo_and_redo_are_found_by_the_event_path(reported):
    """After an undo or redo step the depsgraph reports what the step touched; datablocks that came
    back or went are found by reading every uuid once (``forget_counts``: the add-on's undo_post)."""
    ob = link(bpy.data.objects.new("Undone", None))
    tracker = sync.ChangeTracker()
    tracker.scan()
    take(reported)
    bpy.ops.ed.undo_push(message="start")
    bpy.data.objects["Undone"].location.x = 3.0
    bpy.ops.ed.undo_push(message="moved")
    tracker.scan(take(reported))
    key = key_of(ob, "location")
    assert sync.decode_value(tracker.values[key])[0] == 3.0

    bpy.ops.ed.undo()
    tracker.forget_counts()
    changed, deleted = tracker.scan(take(reported))
    assert list(changed) == [key] and deleted == []
    assert sync.decode_value(changed[key])[0] == 0.0

    bpy.ops.ed.redo()
    tracker.forget_counts()
    changed, deleted = tracker.scan(take(reported))
    assert list(changed) == [key] and sync.decode_value(changed[key])[0] == 3.0

    uuid = sync.get_uuid(bpy.data.objects["Undone"])
    bpy.data.objects.remove(bpy.data.objects["Undone"])
    bpy.ops.ed.undo_push(message="removed")
    _, deleted = tracker.scan(take(reported))
    assert f"obj/{uuid}/meta" in deleted
    bpy.ops.ed.undo()
    tracker.forget_counts()
    changed, _ = tracker.scan(take(reported))
    assert f"obj/{uuid}/meta" in changed  # it came back under its uuid


def synced_count() -> int:
    from blender_addon.sync.index import iter_synced

    return sum(1 for _ in iter_synced())


def test_audit_finds_an_edit_the_depsgraph_does_not_report_within_one_pass(reported):
    build_everything()
    orphan = bpy.data.materials.new("Orphan")  # used by nothing: the depsgraph never reports it
    tracker = sync.ChangeTracker()
    tracker.scan()
    take(reported)
    orphan.roughness = 0.125
    assert tracker.scan(take(reported)) == ({}, [])  # not reported
    budget = 3
    pass_length = sum(len(getattr(bpy.data, kind.collection)) for kind in _registry())
    found: dict = {}
    calls = 0
    roughness = key_of(orphan, "set", "roughness")
    while roughness not in found:
        changed, deleted = tracker.audit(budget)
        calls += 1
        assert deleted == []
        found.update(changed)
        assert calls <= -(-pass_length // budget) + 1
    assert sync.decode_value(found[roughness]) == pytest.approx(0.125)
    assert synced_count() <= pass_length


def _registry():
    from blender_addon.sync.kinds import REGISTRY

    return REGISTRY


def test_audit_looks_at_no_more_datablocks_per_call_than_its_budget():
    build_everything()
    for i in range(40):
        link(bpy.data.objects.new(f"E{i}", None))
    tracker = sync.ChangeTracker()
    tracker.scan()
    cycles = tracker.audit_cycles
    calls = 0
    while tracker.audit_cycles == cycles:
        tracker.audit(5)
        calls += 1
        assert 0 <= tracker.audit_visits <= 5
    assert calls > synced_count() // 5  # a whole pass took many bounded calls, not one


def test_audit_never_serialises_a_heavy_mesh_and_the_depsgraph_still_reports_it(reported, monkeypatch):
    from blender_addon.sync import tracker as tracker_module

    bpy.ops.mesh.primitive_grid_add(x_subdivisions=299, y_subdivisions=299, size=4, calc_uvs=False)
    big = bpy.context.active_object.data  # 90,000 vertices
    link(bpy.data.objects.new("Small", None))
    tracker = sync.ChangeTracker()
    tracker.scan()
    take(reported)
    assert tracker.is_heavy(sync.get_uuid(big))
    serialised: list[str] = []
    real = tracker_module.serialise_parts
    monkeypatch.setattr(
        tracker_module, "serialise_parts", lambda kind, i, ctx: serialised.append(kind) or real(kind, i, ctx)
    )
    cycles = tracker.audit_cycles
    while tracker.audit_cycles < cycles + 3:
        tracker.audit(2)
    assert "obj" in serialised and "mesh" not in serialised
    big.vertices[0].co.z = 1.0
    big.update()
    changed, _ = tracker.scan(take(reported))
    assert key_of(big, "geometry") in changed


def test_delete_and_add_in_one_step_keep_the_length_and_are_found_by_the_audit():
    build_everything()
    gone = bpy.data.materials.new("Gone")
    tracker = sync.ChangeTracker()
    tracker.scan()
    uuid = sync.get_uuid(gone)
    bpy.data.materials.remove(gone)
    new = bpy.data.materials.new("New")  # same length of bpy.data.materials as before
    assert tracker.scan([]) == ({}, [])
    found: dict = {}
    deleted: list = []
    for _ in range(synced_count() + 2):
        changed, audit_deleted = tracker.audit(4)
        more_changed, more_deleted = tracker.scan([])  # the audit asks the next scan to walk materials
        found.update(changed)
        found.update(more_changed)
        deleted += audit_deleted + more_deleted
        if key_of(new, "meta") in found and f"mat/{uuid}/meta" in deleted:
            break
    assert key_of(new, "meta") in found
    assert f"mat/{uuid}/meta" in deleted


def test_undo_that_keeps_a_collections_length_is_found_after_forget_counts(reported):
    """Undo brings back one orphan material and takes away another: same length of bpy.data.materials,
    nothing reported by the depsgraph. ``forget_counts`` (the add-on's undo_post) makes the next scan
    read every uuid."""
    first = bpy.data.materials.new("First")
    first.use_fake_user = True
    tracker = sync.ChangeTracker()
    tracker.scan()
    first_meta = key_of(first, "meta")
    bpy.ops.ed.undo_push(message="first")
    bpy.data.materials.remove(first)
    assert first_meta in tracker.scan(take(reported))[1]
    second = bpy.data.materials.new("Second")
    second.use_fake_user = True
    second_meta = key_of(second, "meta")
    assert second_meta in tracker.scan(take(reported))[0]
    bpy.ops.ed.undo_push(message="second")

    bpy.ops.ed.undo()
    assert [m.name for m in bpy.data.materials] == ["First"]
    tracker.forget_counts()
    changed, deleted = tracker.scan(take(reported))
    assert first_meta in changed and second_meta in deleted


def test_object_swapped_for_another_in_one_step_is_found_by_the_event_path(reported):
    """One object removed and another linked before a scan: the length of bpy.data.objects is the same,
    so the collection Blender reports tells: the new child appears, the old one is gone."""
    coll = bpy.data.collections.new("Set")
    bpy.context.scene.collection.children.link(coll)
    old = link(bpy.data.objects.new("Old", None), coll)
    tracker = sync.ChangeTracker()
    tracker.scan()
    take(reported)
    uuid = sync.get_uuid(old)
    bpy.data.objects.remove(old)
    new = link(bpy.data.objects.new("New", None), coll)
    changed, deleted = tracker.scan(take(reported))
    assert key_of(new, "meta") in changed
    assert f"obj/{uuid}/meta" in deleted


def test_a_material_edit_does_not_rehash_the_heavy_mesh_that_uses_it(monkeypatch):
    """Blender reports every user of an edited material with a shading-only update; a heavy mesh among
    them is not serialised (its keys change only with geometry updates), a light one still is."""
    from blender_addon.sync import tracker as tracker_module

    seen: list = []
    light: list = []

    @bpy.app.handlers.persistent
    def on_update(scene, depsgraph):
        seen.extend(sync.ids_from_depsgraph(depsgraph))
        light.extend(sync.shading_only_ids(depsgraph))

    bpy.ops.mesh.primitive_grid_add(x_subdivisions=299, y_subdivisions=299, size=4, calc_uvs=False)
    big = bpy.context.active_object.data  # 90,000 vertices
    small = link(bpy.data.objects.new("Small", triangle_mesh())).data
    mat = bpy.data.materials.new("Used")
    big.materials.append(mat)
    small.materials.append(mat)
    tracker = sync.ChangeTracker()
    tracker.scan()
    bpy.context.view_layer.update()
    bpy.app.handlers.depsgraph_update_post.append(on_update)
    try:
        serialised: list[tuple[str, str]] = []
        real = tracker_module.serialise_parts
        monkeypatch.setattr(
            tracker_module,
            "serialise_parts",
            lambda kind, i, ctx: serialised.append((kind, i.name)) or real(kind, i, ctx),
        )
        mat.roughness = 0.9
        bpy.context.view_layer.update()
        assert big in light and small in light
        changed, _ = tracker.scan(seen, light)
        assert list(changed) == [key_of(mat, "set", "roughness")]
        assert ("mesh", big.name) not in serialised and ("mesh", small.name) in serialised
    finally:
        bpy.app.handlers.depsgraph_update_post.remove(on_update)


def test_playing_the_animation_of_every_kind_changes_no_key():
    """Actions and NLA strips animating a curve, an armature, a speaker, the scene, a metaball, a lattice
    point, a texture, particle settings (hair length, which Blender stores as the normal factor), grease
    pencil, a light probe, a volume, a point cloud and hair curves write on every frame: those values are
    derived (derived.py), so playing changes no key but the scene's current frame, which is each artist's
    own (sent only while following the shared view, view_state.py)."""
    from anim_builders import build_every_kind_nla, kind_animation_values

    build_every_kind_nla()
    scene = bpy.context.scene
    scene.frame_set(1)
    tracker = sync.ChangeTracker()
    tracker.scan()
    seen = []
    for frame in range(2, 61, 3):
        scene.frame_set(frame)
        seen.append(kind_animation_values())
        changed, deleted = tracker.scan()
        assert deleted == []
        assert [key for key in changed if sync.parse_key(key)[2] != "view"] == [], f"frame {frame}"
    assert all(a != b for a, b in zip(seen[0], seen[-1], strict=True))  # every value did move


def test_new_datablocks_are_looked_for_only_when_asked():
    """``len()`` of bpy.data collections walks them: the sync loop skips it in most idle pumps."""
    reset_scene()
    tracker = sync.ChangeTracker()
    tracker.scan([])
    bpy.data.materials.new("Unused")
    assert tracker.scan([], look_for_new=False) == ({}, [])
    changed, deleted = tracker.scan([])
    assert changed and all(key.startswith("mat/") for key in changed) and deleted == []


def test_the_object_using_a_mesh_is_the_one_found_last_while_it_uses_it():
    from blender_addon.sync.serialise import read_context as fresh_context  # a new pass

    reset_scene()
    mesh, other = triangle_mesh("Shared"), triangle_mesh("Other")
    first = link(bpy.data.objects.new("Middle", mesh))
    assert fresh_context().object_user(mesh) == first
    # An object earlier in bpy.data's order using it too: the one found before stays.
    link(bpy.data.objects.new("Alpha", mesh))
    assert fresh_context().object_user(mesh) == first
    # Renamed: found again by a walk (the first user in order now).
    first.name = "Zulu"
    assert fresh_context().object_user(mesh).name == "Alpha"
    # Its data swapped: the remembered name no longer counts.
    bpy.data.objects["Alpha"].data = other
    bpy.data.objects["Zulu"].data = other
    assert fresh_context().object_user(mesh) is None
    assert fresh_context().object_user(other).name in {"Alpha", "Zulu"}
