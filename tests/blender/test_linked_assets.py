"""Linked assets on a replica: collection instances (local and linked from a library) and library overrides
of a linked character evaluate to the same geometry."""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

bpy = pytest.importorskip("bpy", reason="bpy (Blender as a Python module) is not installed")

from replicas import applied_one_at_a_time  # noqa: E402
from scene_builders import (  # noqa: E402
    build_instancing,
    build_linked_pointers,
    build_override,
    evaluated_vertices,
    instanced_geometry,
    link,
    override_of,
    reset_scene,
    triangle_mesh,
    write_library,
)

from blender_addon import sync  # noqa: E402

pytestmark = pytest.mark.blender


def test_collection_instances_place_the_same_geometry():
    build_instancing()
    bpy.context.view_layer.update()
    geometry = instanced_geometry()
    assert {(i[0], i[1]) for i in geometry} >= {("KitPlacer", "KitPart"), ("PropsPlacer1", "Rock")}
    before = sync.scene_hash()
    values = sync.serialise_scene()
    reset_scene()
    applier = sync.apply_ops(list(values.items()))
    assert applier.errors == [] and applier.pending_links == {}
    bpy.context.view_layer.update()
    assert instanced_geometry() == geometry
    assert sync.scene_hash() == before


def test_an_instance_of_a_collection_the_library_does_not_link_yet_waits_for_it():
    """The instancer's key arrives before the library's key that links the collection it places."""
    path = write_library()
    with bpy.data.libraries.load(path, link=True) as (_source, target):
        target.objects = ["Tree"]
    link(bpy.data.objects["Tree"])
    values = sync.serialise_scene()
    reset_scene()
    applier = sync.apply_ops(list(values.items()))
    lib = bpy.data.libraries[0]
    # The sender links the Props collection and places it.
    with bpy.data.libraries.load(lib.filepath, link=True) as (_source, target):
        target.collections = ["Props"]
    placer = link(bpy.data.objects.new("Placer", None))
    placer.instance_type = "COLLECTION"
    placer.instance_collection = bpy.data.collections["Props"]
    bpy.context.view_layer.update()
    geometry, edited_hash = instanced_geometry(), sync.scene_hash()
    edited = sync.serialise_scene()
    bpy.data.objects.remove(placer)
    bpy.data.collections.remove(bpy.data.collections["Props"])
    changed = [(k, v) for k, v in edited.items() if values.get(k) != v]
    lib_ops = [op for op in changed if op[0].startswith("lib/")]
    assert lib_ops
    sync.apply_ops([op for op in changed if op not in lib_ops], applier=applier)
    assert any(token.startswith("meta:") for token in applier.pending_links)
    sync.apply_ops(lib_ops, applier=applier)
    assert applier.errors == [] and applier.pending_links == {}
    bpy.context.view_layer.update()
    assert instanced_geometry() == geometry
    assert sync.scene_hash() == edited_hash


def test_two_libraries_with_the_same_content_stay_two():
    """One .blend copied to two places: Blender makes one library per path, so each keeps its own file."""
    first = write_library()
    second = os.path.join(tempfile.mkdtemp(prefix="lib-copy-"), "assets.blend")
    shutil.copy(first, second)
    for i, path in enumerate((first, second)):
        with bpy.data.libraries.load(path, link=True) as (_source, target):
            target.collections = ["Props"]
        placer = link(bpy.data.objects.new(f"Placer{i}", None))
        placer.instance_type = "COLLECTION"
        placer.instance_collection = target.collections[0]
    before = sync.scene_hash()
    values = sync.serialise_scene()
    reset_scene()
    applier = sync.apply_ops(list(values.items()))
    assert applier.errors == []
    assert len(bpy.data.libraries) == 2
    assert sync.scene_hash() == before


def _overrides() -> list[bpy.types.ID]:
    return [i for attr in ("objects", "collections") for i in getattr(bpy.data, attr) if i.override_library]


def test_a_library_override_is_made_again_from_the_linked_character():
    build_override()
    bpy.context.view_layer.update()
    body = evaluated_vertices(override_of("Body"))
    assert body[4] != [0.2, 0.0, 2.0]  # the posed upper bone bends the body
    before = sync.scene_hash()
    values = sync.serialise_scene()
    reset_scene()
    applier = sync.apply_ops(list(values.items()))
    assert applier.errors == [] and applier.pending_links == {}
    bpy.context.view_layer.update()
    lib = bpy.data.libraries[0]
    assert sorted(i.name for i in _overrides()) == ["Body", "Character", "Rig"]
    assert all(i.override_library.reference.library == lib for i in _overrides())
    assert evaluated_vertices(override_of("Body")) == body
    assert sync.scene_hash() == before
    assert sync.serialise_scene() == values


def test_an_override_keys_a_part_it_holds_as_a_new_object_would():
    """An object's parent has no key while it has none (Kind.unkeyed), but an override is made from the
    object it overrides, which has one here: cleared on the override, the parent is keyed, and a receiver's
    override, made with the linked body's parent, loses it too."""
    build_override()
    body = override_of("Body")
    assert body.parent is not None
    body.parent = None
    before = sync.scene_hash()
    values = sync.serialise_scene()
    assert sync.decode_value(values[sync.make_key("obj", sync.get_uuid(body), "parent")])["parent"] is None
    reset_scene()
    applier = sync.apply_ops(list(values.items()))
    assert applier.errors == []
    assert override_of("Body").parent is None and sync.scene_hash() == before


def test_an_override_keys_a_material_slot_linked_to_its_data():
    """A slot linked to the object's data has no key (what a new object's slots are), but an override's
    has: made from the linked object, whose slot links to the object here, a receiver's override takes
    the link to the data from the key."""
    path = os.path.join(tempfile.mkdtemp(prefix="slots-"), "crates.blend")
    coll = bpy.data.collections.new("Crates")
    me = triangle_mesh("CrateMesh")
    me.materials.append(bpy.data.materials.new("Wood"))
    crate = bpy.data.objects.new("Crate", me)
    coll.objects.link(crate)
    crate.material_slots[0].link = "OBJECT"
    crate.material_slots[0].material = bpy.data.materials.new("Paint")
    bpy.data.libraries.write(path, {coll}, fake_user=True)
    reset_scene()
    with bpy.data.libraries.load(path, link=True) as (_source, target):
        target.collections = ["Crates"]
    (linked,) = target.collections
    linked.override_hierarchy_create(bpy.context.scene, bpy.context.view_layer, do_fully_editable=True)
    override = override_of("Crate")
    assert override.material_slots[0].link == "OBJECT"
    override.material_slots[0].link = "DATA"
    before = sync.scene_hash()
    values = sync.serialise_scene()
    assert sync.decode_value(values[sync.make_key("obj", sync.get_uuid(override), "slot", "0")]) == [
        "DATA",
        None,
    ]
    reset_scene()
    applier = sync.apply_ops(list(values.items()))
    assert applier.errors == []
    assert override_of("Crate").material_slots[0].link == "DATA" and sync.scene_hash() == before


def test_overrides_arriving_before_their_library_and_root_wait_for_them():
    """Worst orders, one key at a time: members before their root collection, each before the library."""
    build_override()
    bpy.context.view_layer.update()
    body = evaluated_vertices(override_of("Body"))
    before = sync.scene_hash()
    values = sync.serialise_scene()

    def rank(op: tuple[str, bytes]) -> int:
        key = op[0]
        return ("obj/" in key and "/meta" not in key, "obj/" in key, "coll/" in key, True).index(True)

    for library_first in (False, True):
        ops = sorted(values.items(), key=rank)
        ops.sort(key=lambda op: op[0].startswith("lib/") != library_first)
        applied_one_at_a_time(ops)
        bpy.context.view_layer.update()
        assert sorted(i.name for i in _overrides()) == ["Body", "Character", "Rig"]  # none made twice
        assert evaluated_vertices(override_of("Body")) == body
        assert sync.scene_hash() == before


def test_posing_an_override_on_a_replica_changes_only_its_pose_key():
    build_override()
    values = sync.serialise_scene()
    reset_scene()
    sync.apply_ops(list(values.items()))
    rig = override_of("Rig")
    rig.pose.bones["Lower"].rotation_quaternion = (0.9238795, 0.0, 0.3826834, 0.0)
    bpy.context.view_layer.update()
    posed = evaluated_vertices(override_of("Body"))
    edited = sync.serialise_scene()
    changed = sorted(k for k in edited if edited[k] != values.get(k))
    assert changed == [f"obj/{sync.get_uuid(rig)}/pose/Lower"]
    reset_scene()
    sync.apply_ops(list(values.items()))
    sync.apply_ops([(k, edited[k]) for k in changed])
    bpy.context.view_layer.update()
    assert evaluated_vertices(override_of("Body")) == posed


def test_an_object_using_linked_data_gets_the_same_data():
    """A local object whose mesh is linked from a library: the receiver links it and uses it."""
    with bpy.data.libraries.load(write_library(), link=True) as (_source, target):
        target.meshes = ["Rock"]
    ob = link(bpy.data.objects.new("LocalRock", target.meshes[0]))
    ob.location = (0.0, 0.0, 2.0)
    bpy.context.view_layer.update()
    vertices = evaluated_vertices(ob)
    before = sync.scene_hash()
    values = sync.serialise_scene()
    # The object's keys first, its library last: the object is made once the library has linked its mesh.
    applied_one_at_a_time(sorted(values.items(), key=lambda op: op[0].startswith("lib/")))
    ob = bpy.data.objects["LocalRock"]
    assert ob.type == "MESH" and ob.data.library == bpy.data.libraries[0]
    bpy.context.view_layer.update()
    assert evaluated_vertices(ob) == vertices
    assert sync.scene_hash() == before


def _pointers() -> dict[str, object]:
    """Where each pointer of build_linked_pointers points (the linked datablock's library and name), and
    what the depsgraph makes of them."""
    crate, lid, follower = (bpy.data.objects[n] for n in ("Crate", "Lid", "Follower"))
    image_node = next(n for n in bpy.data.materials["Label"].node_tree.nodes if n.type == "TEX_IMAGE")

    def where(id_data):
        return None if id_data is None else (id_data.library.name if id_data.library else None, id_data.name)

    return {
        "mesh material": where(crate.data.materials[0]),
        "slot": where(lid.material_slots[0].material),
        "modifier": where(crate.modifiers["Array"].offset_object),
        "constraint": where(follower.constraints[0].target),
        "node image": where(image_node.image),
        "custom property": where(lid.get("skin")),
        "driver": where(follower.animation_data.drivers[0].driver.variables[0].targets[0].id),
        "crate": evaluated_vertices(crate),
        "follower": [round(x, 4) for row in follower.matrix_world for x in row],
    }


def test_pointers_to_linked_datablocks_travel_as_links_into_the_library():
    """Every pointer property: a slot, a mesh's material, a modifier, a constraint, a node, a custom property
    and a driver pointing at linked datablocks arrive pointing at the receiver's copies of them."""
    build_linked_pointers()
    bpy.context.view_layer.update()
    pointers = _pointers()
    assert pointers["slot"] == ("materials.blend", "Bark") and pointers["follower"][11] == 1.0
    before = sync.scene_hash()
    values = sync.serialise_scene()
    # The library's key last: every pointer waits for it.
    applied_one_at_a_time(sorted(values.items(), key=lambda op: op[0].startswith("lib/")))
    bpy.context.view_layer.update()
    assert _pointers() == pointers
    assert sync.scene_hash() == before
    assert sync.serialise_scene() == values


def test_repointing_a_slot_at_a_linked_material_changes_only_its_key():
    build_linked_pointers()
    values = sync.serialise_scene()
    reset_scene()
    sync.apply_ops(list(values.items()))
    lid = bpy.data.objects["Lid"]
    lid.material_slots[0].material = bpy.data.materials["Label"]
    local = sync.serialise_scene()
    lid.material_slots[0].material = next(m for m in bpy.data.materials if m.library is not None)
    edited = sync.serialise_scene()
    assert edited == values  # back on the linked material: the same value as the sender's
    changed = sorted(k for k in local if local[k] != values.get(k))
    assert changed == [f"obj/{sync.get_uuid(lid)}/slot/0"]
    sync.apply_ops([(k, local[k]) for k in changed])
    assert lid.material_slots[0].material.name == "Label"


def _data_overrides() -> list[tuple[str, str, str]]:
    """Object data made editable: (object, its data, the library of the data's reference)."""
    return sorted(
        (ob.name, ob.data.name, ob.data.override_library.reference.library.name)
        for ob in bpy.data.objects
        if ob.data is not None and ob.data.library is None and ob.data.override_library is not None
    )


def _override_data() -> None:
    """The character's mesh and armature made editable in the override (as Blender's "Make Editable")."""
    for name in ("Body", "Rig"):
        override_of(name).data.override_create(remap_local_usages=True)


@pytest.mark.parametrize("order", ["as serialised", "objects and library first", "library last"])
def test_an_override_of_object_data_is_made_from_the_receivers_library(order):
    build_override()
    _override_data()
    bpy.context.view_layer.update()
    made = _data_overrides()
    assert made == [("Body", "BodyMesh", "character.blend"), ("Rig", "RigData", "character.blend")]
    body = evaluated_vertices(override_of("Body"))
    before = sync.scene_hash()
    values = sync.serialise_scene()
    reset_scene()
    ops = list(values.items())
    if order != "as serialised":
        # One key at a time; objects before their data (each gets a stand-in first, which the override
        # replaces), the library first or last.
        ops.sort(key=lambda op: (op[0].startswith("lib/") != (order != "library last"), "obj/" not in op[0]))
        applier = sync.Applier()
        for op in ops:
            applier.feed([op])
            applier.step()
    else:
        applier = sync.apply_ops(ops)
    assert applier.errors == [] and applier.pending_links == {}
    bpy.context.view_layer.update()
    assert _data_overrides() == made
    assert not [m for m in bpy.data.meshes if m.name.startswith("pending-")]  # stand-ins replaced
    assert evaluated_vertices(override_of("Body")) == body
    assert sync.scene_hash() == before
    assert sync.serialise_scene() == values


def test_linked_names_with_pattern_characters_and_the_longest_name_travel_as_data():
    """A link names its datablock by name: ``/``, ``*``, ``**`` and the longest name Blender keeps: data."""
    folder = tempfile.mkdtemp(prefix="names-")
    path = os.path.join(folder, "odd.blend")
    made = [bpy.data.materials.new(name) for name in ("a/*/**", "é" * 200)]
    names = [m.name for m in made]  # Blender cuts the long one to its limit
    assert len(names[1].encode()) < 400
    bpy.data.libraries.write(path, set(made), fake_user=True)
    bpy.data.batch_remove(made)
    with bpy.data.libraries.load(path, link=True) as (_source, target):
        target.materials = list(names)
    ob = link(bpy.data.objects.new("Odd", triangle_mesh("Odd")))
    for mat in target.materials:
        ob.data.materials.append(mat)
    values = sync.serialise_scene()
    reset_scene()
    applier = sync.apply_ops(list(values.items()))
    assert applier.errors == [] and applier.pending_links == {}
    received = [m.name for m in bpy.data.objects["Odd"].data.materials]
    assert received == names and all(m.library is not None for m in bpy.data.objects["Odd"].data.materials)
