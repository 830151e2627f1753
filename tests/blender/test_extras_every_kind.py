"""Custom properties and drivers on every kind, not only on objects and object data: a scene, a collection,
a world, a node group and the other kinds (an image, a text, a texture, particle settings, a lattice, a
speaker; a mesh's own drivers) keep them after a round trip, each property and each driver a key of its
own."""

from __future__ import annotations

import pytest

bpy = pytest.importorskip("bpy", reason="bpy (Blender as a Python module) is not installed")

from scene_builders import (  # noqa: E402
    add_extras,
    build_collection,
    build_image,
    build_lattice,
    build_mesh,
    build_node_group,
    build_particles,
    build_scene,
    build_speaker,
    build_text,
    build_texture,
    build_world,
    evaluate_scenes,
)

from blender_addon import sync  # noqa: E402
from blender_addon.sync.kinds import BY_NAME  # noqa: E402

pytestmark = pytest.mark.blender

# kind family -> (builder, bpy.data collection, name of the datablock the builder makes)
FAMILIES = {
    "scene": (build_scene, "scenes", None),  # the window's scene
    "collection": (build_collection, "collections", "Outer"),
    "world": (build_world, "worlds", "Sky"),
    "node group": (build_node_group, "node_groups", "Tint"),
    "image": (build_image, "images", "Grid"),
    "text": (build_text, "texts", "notes.py"),
    "texture": (build_texture, "textures", "Clouds"),
    "particle settings": (build_particles, "particles", "Grass"),
    "lattice": (build_lattice, "lattices", "Cage"),
    "speaker": (build_speaker, "speakers", "Radio"),
    "mesh": (build_mesh, "meshes", "Tri"),  # custom properties travelled before; now its own drivers too
}


def _datablock(collection: str, name: str | None) -> bpy.types.ID:
    return bpy.context.scene if name is None else getattr(bpy.data, collection)[name]


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_custom_properties_and_drivers_travel_on_every_kind(family):
    build, collection, name = FAMILIES[family]
    build()
    id_data = _datablock(collection, name)
    driven = add_extras(id_data)
    evaluate_scenes()
    uuid = sync.get_uuid(id_data)
    kind = next(k.name for k in BY_NAME.values() if k.collection == collection)
    before = sync.scene_hash()
    values = sync.serialise_scene()
    own = sorted(k for k in values if k.startswith(f"{kind}/{uuid}/prop/") or f"{uuid}/driver/" in k)
    expected = [f"{kind}/{uuid}/prop/{n}" for n in ("base", "gain", "note", "offsets", "settings")]
    if driven:
        assert own == [f'{kind}/{uuid}/driver/["gain"]/0', *expected]
    else:
        assert own == [e for e in expected if not e.endswith("/gain")]
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    applier = sync.apply_ops(list(values.items()))
    assert applier.errors == [] and applier.pending_links == {}
    received = next(i for i in getattr(bpy.data, collection) if sync.peek_uuid(i) == uuid)
    assert received["note"] == "take 3" and list(received["offsets"]) == [1, 2, 3]
    assert received["settings"].to_dict() == {"mode": "fast", "level": 2}
    assert received.id_properties_ui("base").as_dict()["description"] == "the base value"
    if driven:
        (fc,) = received.animation_data.drivers
        assert fc.driver.expression == "2 * base" and fc.driver.variables[0].targets[0].id == received
    evaluate_scenes()  # the drivers write what they wrote on the sending side
    assert sync.scene_hash() == before
    assert sync.serialise_scene() == values


def test_a_driven_scene_property_evaluates_the_same_and_one_edit_is_one_key():
    build_scene()
    scene = bpy.context.scene
    add_extras(scene)
    evaluate_scenes()
    assert scene["gain"] == 3.0
    uuid = sync.get_uuid(scene)
    values = sync.serialise_scene()
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    sync.apply_ops(list(values.items()))
    scene = next(s for s in bpy.data.scenes if sync.peek_uuid(s) == uuid)
    scene["base"] = 4.0
    evaluate_scenes()
    assert scene["gain"] == 8.0  # the receiver's driver reads the receiver's property
    edited = sync.serialise_scene()
    changed = sorted(k for k in edited if edited[k] != values.get(k))
    assert changed == [f"scene/{uuid}/prop/base"]  # not the driven gain
