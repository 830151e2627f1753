"""A mesh's own settings (remesh, symmetry, texture space, texture mesh): each its own key while it differs
from what Blender gives a new mesh (mesh_settings.py)."""

from __future__ import annotations

import pytest

bpy = pytest.importorskip("bpy", reason="bpy (Blender as a Python module) is not installed")

from replicas import applied_one_at_a_time, concurrently, edit_batch, replica  # noqa: E402
from scene_builders import link, reset_scene, triangle_mesh  # noqa: E402

from blender_addon import sync  # noqa: E402

pytestmark = pytest.mark.blender


def setting_keys(me: bpy.types.Mesh) -> dict[str, object]:
    prefix = sync.make_key("mesh", sync.get_uuid(me), "set") + "/"
    return {
        key[len(prefix) :]: sync.decode_value(value)
        for key, value in sync.serialise_scene().items()
        if key.startswith(prefix)
    }


def test_a_mesh_made_by_blender_has_no_setting_key():
    reset_scene()
    link(bpy.data.objects.new("Tri", triangle_mesh()))
    bpy.ops.mesh.primitive_cube_add()
    bpy.ops.mesh.primitive_uv_sphere_add()
    bpy.ops.mesh.primitive_monkey_add()
    assert len(bpy.data.meshes) == 4
    for me in bpy.data.meshes:
        assert setting_keys(me) == {}, me.name


def settings_scene() -> None:
    """``Sculpt``: remesh and symmetry changed, a texture space of its own; ``Cage`` takes its texture
    coordinates from ``Sculpt``."""
    reset_scene()
    sculpt = link(bpy.data.objects.new("Sculpt", triangle_mesh("Sculpt"))).data
    sculpt.remesh_mode = "QUAD"
    sculpt.remesh_voxel_size = 0.025
    sculpt.remesh_voxel_adaptivity = 0.5
    sculpt.use_remesh_fix_poles = True
    sculpt.use_remesh_preserve_volume = False
    sculpt.use_mirror_x = sculpt.use_mirror_z = True
    sculpt.use_mirror_topology = True
    sculpt.use_mirror_vertex_groups = False
    sculpt.radial_symmetry = (1, 4, 1)
    sculpt.use_auto_texspace = False
    sculpt.texspace_location = (0.5, -0.25, 2.0)
    sculpt.texspace_size = (2.0, 3.0, 0.5)
    cage = link(bpy.data.objects.new("Cage", triangle_mesh("Cage"))).data
    cage.texture_mesh = sculpt


def check_settings() -> None:
    sculpt, cage = bpy.data.meshes["Sculpt"], bpy.data.meshes["Cage"]
    assert sculpt.remesh_mode == "QUAD" and abs(sculpt.remesh_voxel_size - 0.025) < 1e-6
    assert sculpt.remesh_voxel_adaptivity == 0.5 and sculpt.use_remesh_fix_poles
    assert not sculpt.use_remesh_preserve_volume and sculpt.use_remesh_preserve_attributes
    assert sculpt.use_mirror_x and not sculpt.use_mirror_y and sculpt.use_mirror_z
    assert sculpt.use_mirror_topology and not sculpt.use_mirror_vertex_groups
    assert tuple(sculpt.radial_symmetry) == (1, 4, 1)
    assert not sculpt.use_auto_texspace
    assert tuple(sculpt.texspace_location) == (0.5, -0.25, 2.0) and tuple(sculpt.texspace_size) == (2, 3, 0.5)
    assert cage.texture_mesh == sculpt and cage.use_auto_texspace


def test_every_setting_reaches_a_joiner_in_any_arrival_order():
    """The texture space before or after the switch that makes it manual, the texture mesh before or after
    the mesh it names."""
    settings_scene()
    before = sync.scene_hash()
    ops = list(sync.serialise_scene().items())
    assert "texspace_location" in setting_keys(bpy.data.meshes["Sculpt"])
    assert set(setting_keys(bpy.data.meshes["Cage"])) == {"texture_mesh"}
    for order in (ops, ops[::-1]):
        applied_one_at_a_time(order)
        check_settings()
        assert sync.scene_hash() == before


def test_settings_put_back_delete_their_keys_and_every_replica_puts_them_back():
    settings_scene()
    base = sync.serialise_scene()
    tracker = replica(base)

    def put_back() -> None:
        sculpt = bpy.data.meshes["Sculpt"]
        sculpt.use_mirror_x = False
        sculpt.use_auto_texspace = True
        sculpt.radial_symmetry = (1, 1, 1)
        bpy.data.meshes["Cage"].texture_mesh = None

    batch = edit_batch(tracker, put_back)
    sculpt_set = sync.make_key("mesh", sync.get_uuid(bpy.data.meshes["Sculpt"]), "set")
    cage_set = sync.make_key("mesh", sync.get_uuid(bpy.data.meshes["Cage"]), "set")
    assert sorted(batch) == sorted(
        [(f"{sculpt_set}/{attr}", None) for attr in ("radial_symmetry", "texspace_location", "texspace_size")]
        + [(f"{sculpt_set}/use_auto_texspace", None), (f"{sculpt_set}/use_mirror_x", None)]
        + [(f"{cage_set}/texture_mesh", None)]
    )
    after = sync.scene_hash()
    receiver = replica(base)
    applier = sync.apply_ops(batch, tracker=receiver)
    assert applier.errors == []
    sculpt = bpy.data.meshes["Sculpt"]
    assert not sculpt.use_mirror_x and sculpt.use_auto_texspace and tuple(sculpt.radial_symmetry) == (1, 1, 1)
    assert bpy.data.meshes["Cage"].texture_mesh is None and sculpt.use_mirror_z  # the rest stays
    assert sync.scene_hash() == after
    assert receiver.scan() == ({}, [])  # applying it echoes nothing


def test_two_settings_of_one_mesh_changed_at_the_same_moment_both_stay():
    def build() -> None:
        link(bpy.data.objects.new("Sculpt", triangle_mesh("Sculpt")))

    def edit_a() -> None:
        bpy.data.meshes["Sculpt"].use_mirror_x = True

    def edit_b() -> None:
        bpy.data.meshes["Sculpt"].remesh_voxel_size = 0.05

    def check() -> None:
        sculpt = bpy.data.meshes["Sculpt"]
        assert sculpt.use_mirror_x and abs(sculpt.remesh_voxel_size - 0.05) < 1e-6

    concurrently(build, edit_a, edit_b, check)
