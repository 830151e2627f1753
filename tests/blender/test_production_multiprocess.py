"""Production scenes through a real ``blendsync serve``: each artist a Blender process (artist.py).

Placed assets (collection instances, local and linked from a library .blend), a library override of a
linked character, particles, point clouds, volumes, custom split normals, rigid bodies, dynamic paint,
tiled images and grease pencil layer groups and masks: one artist builds, another edits, every artist
evaluates the same geometry through its depsgraph; a late joiner into a scene holding the first of them
gets the same.
"""

from __future__ import annotations

import importlib.util

import pytest

if importlib.util.find_spec("bpy") is None:  # found without importing it: this process needs no Blender
    pytest.skip("bpy (Blender as a Python module) is not installed", allow_module_level=True)
from test_addon_multiprocess import artists, converge, server, start_room  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.blender, pytest.mark.timeout(180)]

# artist.py runs from the repository root: the scene builders are importable from there.
BUILDERS = "import sys\nsys.path.insert(0, 'tests/blender')\nimport scene_builders\n"
INSTANCES = "__import__('scene_builders').instanced_geometry()"
BODY = "(lambda b: b.evaluated_vertices(b.override_of('Body')))(__import__('scene_builders'))"
NORMALS = "[[round(x, 4) for x in n.vector] for n in bpy.data.meshes['Shaded'].corner_normals]"
POINTS = (
    "(lambda o: [[round(x, 4) for x in p.co] + [round(p.radius, 4)] for p in o.data.points])"
    "(bpy.data.objects['Stars'].evaluated_get(bpy.context.evaluated_depsgraph_get()))"
)
CURVES = (
    "(lambda c: [[p.points_length for p in c.curves], [[round(x, 4) for x in p.position] for p in c.points]])"
    "(bpy.data.objects['Fur'].evaluated_get(bpy.context.evaluated_depsgraph_get()).data)"
)
FALLEN = (  # where the crates are after 15 frames of the rigid body simulation (each artist's own frame)
    "(lambda s, d: [s.frame_set(f) for f in range(1, 16)] and [[round(c, 3) for c in "
    "d.objects[n].evaluated_get(bpy.context.evaluated_depsgraph_get()).matrix_world.translation] "
    "for n in ('Crate', 'Crate.Light')])(bpy.context.scene, bpy.data)"
)
LAYER_TREE = (
    "[__import__('blender_addon.sync.gp_layers', fromlist=['layer_tree'])"
    ".layer_tree(bpy.data.grease_pencils['Sketch']), "
    "sorted((g.name, g.hide, g.lock) for g in bpy.data.grease_pencils['Sketch'].layer_groups), "
    "[(m.name, m.invert, m.hide) for m in bpy.data.grease_pencils['Sketch'].layers['Shading'].mask_layers]]"
)
PAINTED = (  # the canvas's evaluated paint after six frames (each artist's own frame)
    "(lambda s: [s.frame_set(f) for f in range(1, 7)] and [round(c, 3) for item in bpy.data.objects['Canvas']"
    ".evaluated_get(bpy.context.evaluated_depsgraph_get()).data.attributes['dp_paintmap'].data "
    "for c in item.color])(bpy.context.scene)"
)
# A tiled image's tiles and the digest of its tile files (on disk for one artist, packed for another).
TILED = (
    "[[(t.number, t.label) for t in bpy.data.images['Skin'].tiles], "
    "__import__('blender_addon.sync.file_sets', fromlist=['digest']).digest("
    "__import__('blender_addon.sync.kinds.images', fromlist=['image_files'])"
    ".image_files(bpy.data.images['Skin']))]"
)
GRIDS = (
    "(lambda v: [v.display.density, v.render.step_size, [(g.name, g.data_type) for g in v.grids]])"
    "(bpy.data.objects['Fog'].evaluated_get(bpy.context.evaluated_depsgraph_get()).data)"
)


def built_and_edited(address, artists_, build: str, edit: str) -> list:
    """Ana builds with ``scene_builders.<build>()``, Ben joins and runs ``edit``; both converge."""
    ana, ben = artists_
    ana.call("edit", script=BUILDERS + f"scene_builders.{build}()\n")
    start_room(address, ana, [ben])
    converge([ana, ben])
    ben.call("edit", script=BUILDERS + edit)
    return converge([ana, ben])


def evaluated_everywhere(artists_, expr: str) -> list:
    values = [artist.call("eval", expr=expr)["value"] for artist in artists_]
    assert all(v == values[0] for v in values), values
    return values[0]


def test_collection_instances_of_a_linked_library(server, artists):  # noqa: F811
    _, address = server
    ana, ben, cleo = artists("ana", "ben", "cleo")
    ana.call("edit", script=BUILDERS + "scene_builders.build_instancing()\n")
    before = ana.call("eval", expr=INSTANCES)["value"]
    start_room(address, ana, [ben])
    converge([ana, ben])
    assert evaluated_everywhere([ana, ben], INSTANCES) == before
    # Ben's library is his own copy of the file, under its sha256 and uuid.
    paths = [a.call("eval", expr="[lib.filepath for lib in bpy.data.libraries]")["value"] for a in (ana, ben)]
    assert paths[0] != paths[1] and "blendsync-libs" in paths[1][0]

    # Ben moves a placed asset, re-points the local placer at the linked collection and shifts the kit.
    ben.call(
        "edit",
        script="bpy.data.objects['PropsPlacer1'].location = (7.0, 1.0, 2.0)\n"
        "kit = bpy.data.objects['KitPlacer']\n"
        "kit.instance_collection = bpy.data.collections['Props']\n"
        "bpy.data.collections['Kit'].instance_offset = (0.0, 0.0, 1.0)\n",
    )
    converge([ana, ben])
    geometry = evaluated_everywhere([ana, ben], INSTANCES)
    placed = {(row[0], row[1]): row for row in geometry}
    assert ("KitPlacer", "Rock") in placed and ("KitPlacer", "KitPart") not in placed
    assert placed[("PropsPlacer1", "Tree")][2][3::4][:3] == [7.0, 1.0, 2.0]

    # Ana points it back at the kit, whose offset now places the part one unit down.
    kit = "bpy.data.objects['KitPlacer'].instance_collection = bpy.data.collections['Kit']\n"
    ana.call("edit", script=kit)
    converge([ana, ben])
    placed = {(row[0], row[1]): row for row in evaluated_everywhere([ana, ben], INSTANCES)}
    assert placed[("KitPlacer", "KitPart")][2][3::4][:3] == [0.0, 4.0, -1.0]

    # A late joiner evaluates the same.
    cleo.call("connect", servers=address)
    cleo.call("join", room="shot")
    converge([ana, ben, cleo])
    evaluated_everywhere([ana, ben, cleo], INSTANCES)


def test_a_library_override_posed_by_another_artist(server, artists):  # noqa: F811
    _, address = server
    ana, ben = artists("ana", "ben")
    ana.call("edit", script=BUILDERS + "scene_builders.build_override()\n")
    start_room(address, ana, [ben])
    converge([ana, ben])
    rest = evaluated_everywhere([ana, ben], BODY)
    # Ben's replica made the same overrides of his own copy of the linked character.
    overrides = (
        "sorted((i.name, i.override_library.reference.library.name)"
        " for i in bpy.data.objects if i.override_library)"
    )
    assert ben.call("eval", expr=overrides)["value"] == [
        ["Body", "character.blend"],
        ["Rig", "character.blend"],
    ]

    # Ben poses the lower bone of the override; Ana moves the rig at the same time.
    ben.send(
        "edit",
        script=BUILDERS + "rig = scene_builders.override_of('Rig')\n"
        "rig.pose.bones['Lower'].rotation_quaternion = (0.9238795, 0.0, 0.3826834, 0.0)\n",
    )
    ana.send("edit", script=BUILDERS + "scene_builders.override_of('Rig').location = (0.0, 2.0, 0.0)\n")
    ana.recv(), ben.recv()
    converge([ana, ben])
    posed = evaluated_everywhere([ana, ben], BODY)
    assert posed != rest
    pose = "tuple(__import__('scene_builders').override_of('Rig').pose.bones['Lower'].rotation_quaternion)"
    assert [round(x, 5) for x in ana.call("eval", expr=pose)["value"]] == [0.92388, 0.0, 0.38268, 0.0]
    assert all(abs(v[1] - 2.0) < 1.0 for v in posed)  # moved with the rig


def test_a_linked_material_assigned_by_another_artist(server, artists):  # noqa: F811
    """Ben links another material from his copy of the library and puts it in a slot: Ana's Blender links
    it from hers and evaluates the object with it."""
    _, address = server
    ana, ben = artists("ana", "ben")
    edit = (
        "lib = next(lib for lib in bpy.data.libraries if lib.name == 'materials.blend')\n"
        "with bpy.data.libraries.load(lib.filepath, link=True) as (_source, target):\n"
        "    target.materials = ['Moss']\n"
        "bpy.data.objects['Lid'].material_slots[0].material = target.materials[0]\n"
    )
    built_and_edited(address, [ana, ben], "build_linked_pointers", edit)
    slot = (
        "(lambda m: [m.name, m.library.name, m.library.filepath])(bpy.data.objects['Lid']"
        ".evaluated_get(bpy.context.evaluated_depsgraph_get()).material_slots[0].material)"
    )
    (name, library, ana_path), (_, _, ben_path) = (a.call("eval", expr=slot)["value"] for a in (ana, ben))
    assert (name, library) == ("Moss", "materials.blend")
    assert ana_path != ben_path and "blendsync-libs" in ben_path  # each from their own copy of the file


def test_object_data_made_editable_in_an_override_arrives_as_an_override(server, artists):  # noqa: F811
    """Ana makes the character's mesh and armature editable in her override: Ben's are overrides of his
    own copy of the library too, and the body he poses deforms the same for both."""
    _, address = server
    ana, ben = artists("ana", "ben")
    make_editable = "".join(
        f"scene_builders.override_of({name!r}).data.override_create(remap_local_usages=True)\n"
        for name in ("Body", "Rig")
    )
    ana.call("edit", script=BUILDERS + "scene_builders.build_override()\n" + make_editable)
    start_room(address, ana, [ben])
    converge([ana, ben])
    data_overrides = (
        "sorted((o.name, o.data.override_library.reference.library.name, o.data.library is None)"
        " for o in bpy.data.objects if o.data is not None and o.data.override_library)"
    )
    expected = [["Body", "character.blend", True], ["Rig", "character.blend", True]]
    assert evaluated_everywhere([ana, ben], data_overrides) == expected
    rest = evaluated_everywhere([ana, ben], BODY)
    ben.call(
        "edit",
        script=BUILDERS + "rig = scene_builders.override_of('Rig')\n"
        "rig.pose.bones['Lower'].rotation_quaternion = (0.9238795, 0.0, 0.3826834, 0.0)\n",
    )
    converge([ana, ben])
    assert evaluated_everywhere([ana, ben], BODY) != rest


def test_custom_properties_and_drivers_of_a_scene_world_and_collection(server, artists):  # noqa: F811
    """Ben gives the scene a driven property, the world and a collection custom properties; Ana's Blender
    has them, and her driver evaluates from her value when she changes it."""
    _, address = server
    ana, ben = artists("ana", "ben")
    edit = (
        "scene_builders.add_extras(bpy.context.scene)\n"
        "scene_builders.add_extras(bpy.data.worlds['Sky'])\n"
        "bpy.data.collections['Outer']['shot'] = 'sh010'\n"
        "scene_builders.evaluate_scenes()\n"
    )
    ana.call("edit", script=BUILDERS + "scene_builders.build_world()\nscene_builders.build_collection()\n")
    start_room(address, ana, [ben])
    converge([ana, ben])
    ben.call("edit", script=BUILDERS + edit)
    converge([ana, ben])
    props = (
        "[bpy.data.collections['Outer'].get('shot'), bpy.data.worlds['Sky'].get('note'),"
        " len(bpy.context.scene.animation_data.drivers)]"
    )
    assert evaluated_everywhere([ana, ben], props) == ["sh010", "take 3", 1]
    # A custom property set from Python tags nothing: tagged here as an edit in the UI is; the receiving
    # side tags the owner of a property it writes (Blender's evaluated copy has it only then).
    ana.call("edit", script="bpy.context.scene['base'] = 4.0\nbpy.context.scene.update_tag()\n")
    converge([ana, ben])
    assert evaluated_everywhere([ana, ben], "bpy.context.scene['gain']") == 8.0


def test_particles_edited_by_another_artist(server, artists):  # noqa: F811
    _, address = server
    ana, ben = artists("ana", "ben")
    edit = (
        "bpy.data.particles['Grass'].count = 20\n"
        "bpy.data.objects['Ground'].particle_systems['Grass'].seed = 3\n"
        "bpy.data.particles['Sparks'].instance_object = None\n"
        "bpy.data.particles['Sparks'].render_type = 'HALO'\n"
    )
    built_and_edited(address, [ana, ben], "build_particles", edit)
    geometry = evaluated_everywhere([ana, ben], INSTANCES)
    assert len(geometry) == 20  # grass only: the sparks no longer place pebbles
    settings = "sorted(p.name for p in bpy.data.particles)"
    assert evaluated_everywhere([ana, ben], settings) == ["Grass", "Sparks"]


# The structs of particle settings as each artist's Blender holds them (boid brain, fluid, curve, slots...)
PARTICLE_PHYSICS = (
    "[[s.name, s.ruleset_type, [[r.type, r.name, r.object.name if getattr(r, 'object', None) else None]"
    " for r in s.rules]] for s in bpy.data.particles['Flock'].boids.states]"
    " + [bpy.data.particles['Drops'].fluid.stiffness, bpy.data.particles['Tufts'].effector_weights.gravity,"
    " [tuple(p.location) for p in bpy.data.particles['Tufts'].clump_curve.curves[0].points],"
    " [[i, s.texture.name, s.length_factor]"
    "  for i, s in enumerate(bpy.data.particles['Tufts'].texture_slots) if s],"
    " bpy.data.particles['Tufts'].force_field_1.type]"
)


def test_particle_physics_edited_by_another_artist(server, artists):  # noqa: F811
    _, address = server
    ana, ben = artists("ana", "ben")
    edit = (
        "flock = bpy.data.particles['Flock']\n"
        "with bpy.context.temp_override(particle_settings=flock):\n"
        "    flock.boids.active_boid_state_index = 1\n"
        "    bpy.ops.boid.rule_add(type='FOLLOW_LEADER')\n"
        "flock.boids.states[1].rules[0].name = 'Chase'\n"
        "tufts = bpy.data.particles['Tufts']\n"
        "tufts.clump_curve.curves[0].points[1].location = (0.5, 0.25)\n"
        "tufts.texture_slots[2].length_factor = 0.75\n"
        "tufts.force_field_1.type = 'NONE'\n"
        "bpy.data.particles['Drops'].fluid.stiffness = 4.0\n"
        "for s in (flock, tufts, bpy.data.particles['Drops']):\n"
        "    s.update_tag()\n"
    )
    built_and_edited(address, [ana, ben], "build_particle_physics", edit)
    *states, stiffness, gravity, clump, slots, field = evaluated_everywhere([ana, ben], PARTICLE_PHYSICS)
    assert states == [
        ["State", "FUZZY", [["SEPARATE", "Separate", None], ["FLOCK", "Flock", None]]],
        ["Hunting", "RANDOM", [["GOAL", "Chase", "Target"], ["FOLLOW_LEADER", "Follow Leader", None]]],
    ]
    assert [stiffness, gravity, field] == [4.0, 0.25, "NONE"]
    assert clump[1] == [0.5, 0.25] and slots == [[2, "Patches", 0.75]]


def test_a_point_cloud_edited_by_another_artist(server, artists):  # noqa: F811
    _, address = server
    ana, ben = artists("ana", "ben")
    edit = (
        "pc = bpy.data.pointclouds['Stars']\n"
        "pc.attributes['radius'].data[0].value = 0.75\n"
        "pc.attributes['position'].data[5].vector = (9.0, 8.0, 7.0)\n"
        "pc.update_tag()\n"
    )
    built_and_edited(address, [ana, ben], "build_pointcloud", edit)
    points = evaluated_everywhere([ana, ben], POINTS)
    assert points[0][3] == 0.75 and points[5][:3] == [9.0, 8.0, 7.0]


def test_hair_curves_edited_by_another_artist(server, artists):  # noqa: F811
    _, address = server
    ana, ben = artists("ana", "ben")
    edit = (
        "fur = bpy.data.hair_curves['Fur']\n"
        "fur.add_curves([2])\n"
        "fur.attributes['position'].data[6].vector = (5.0, 5.0, 5.0)\n"
        "fur.update_tag()\n"
    )
    built_and_edited(address, [ana, ben], "build_hair_curves", edit)
    sizes, points = evaluated_everywhere([ana, ben], CURVES)
    assert sizes == [3, 2, 2] and points[6] == [5.0, 5.0, 5.0]


def test_a_volume_edited_by_another_artist(server, artists):  # noqa: F811
    _, address = server
    ana, ben = artists("ana", "ben")
    edit = "vol = bpy.data.volumes['Fog']\nvol.display.density = 2.0\nvol.render.step_size = 0.5\n"
    built_and_edited(address, [ana, ben], "build_volume", edit)
    assert evaluated_everywhere([ana, ben], GRIDS) == [2.0, 0.5, [["density", "FLOAT"]]]


def test_custom_normals_edited_by_another_artist(server, artists):  # noqa: F811
    _, address = server
    ana, ben = artists("ana", "ben")
    edit = (
        "bpy.data.meshes['Shaded'].normals_split_custom_set([(0.0, 0.0, 1.0)] * 3 + [(1.0, 0.0, 0.0)] * 3)\n"
    )
    built_and_edited(address, [ana, ben], "build_custom_normals", edit)
    normals = evaluated_everywhere([ana, ben], NORMALS)
    assert normals[0] == [0.0, 0.0, 1.0] and normals[3] == [1.0, 0.0, 0.0]


def test_rigid_bodies_edited_by_another_artist_fall_alike(server, artists):  # noqa: F811
    """Ben makes the light crate heavier, takes the ramp out of the simulation and removes the hinge; the
    crates fall to the same places on both artists."""
    _, address = server
    ana, ben = artists("ana", "ben")
    edit = (
        "bpy.data.objects['Crate.Light'].rigid_body.mass = 2.0\n"
        "layer = bpy.context.view_layer\n"
        "for name, op in (('Ramp', bpy.ops.rigidbody.object_remove), "
        "('Hinge', bpy.ops.rigidbody.constraint_remove)):\n"
        "    layer.objects.active = bpy.data.objects[name]\n"
        "    op()\n"
    )
    built_and_edited(address, [ana, ben], "build_rigid_bodies", edit)
    checks = (
        "[bpy.data.objects['Ramp'].rigid_body is None,"
        " bpy.data.objects['Hinge'].rigid_body_constraint is None,"
        " bpy.data.objects['Crate.Light'].rigid_body.mass]"
    )
    assert evaluated_everywhere([ana, ben], checks) == [True, True, 2.0]
    fallen = evaluated_everywhere([ana, ben], FALLEN)
    assert fallen[0] != [0.0, 0.0, 0.5]  # it fell


def test_grease_pencil_layer_groups_and_masks_rearranged_by_another_artist(server, artists):  # noqa: F811
    _, address = server
    ana, ben = artists("ana", "ben")
    edit = (
        "gp = bpy.data.grease_pencils['Sketch']\n"
        "gp.layers.move_to_layer_group(gp.layers['Eyes'], None)\n"
        "gp.layer_groups['Details'].lock = True\n"
        "gp.layer_groups.move_top(gp.layer_groups['Figure'])\n"
        "gp.layers['Shading'].mask_layers['Lines'].hide = True\n"
    )
    built_and_edited(address, [ana, ben], "build_grease_pencil", edit)
    tree, groups, masks = evaluated_everywhere([ana, ben], LAYER_TREE)
    assert tree == ["Shading", "Eyes", ["Figure", ["Lines", ["Details", []]]]]
    assert groups == [["Details", True, True], ["Figure", False, False]]
    assert masks == [["Eyes", True, False], ["Lines", False, True]]


def test_dynamic_paint_changed_by_another_artist_paints_alike(server, artists):  # noqa: F811
    """Ben paints green from further away and adds a surface (Blender's operator); both paint the same."""
    _, address = server
    ana, ben = artists("ana", "ben")
    edit = (
        "brush = bpy.data.objects['Brush'].modifiers['Paint'].brush_settings\n"
        "brush.paint_color, brush.paint_distance = (0.0, 1.0, 0.0), 0.8\n"
        "canvas = bpy.data.objects['Canvas']\n"
        "with bpy.context.temp_override(object=canvas, active_object=canvas):\n"
        "    bpy.ops.dpaint.surface_slot_add()\n"
    )
    built_and_edited(address, [ana, ben], "build_dynamic_paint", edit)
    names = "[s.name for s in bpy.data.objects['Canvas'].modifiers['Paint'].canvas_settings.canvas_surfaces]"
    assert evaluated_everywhere([ana, ben], names) == ["Wet paint", "Ripples", "Surface"]
    colours = evaluated_everywhere([ana, ben], PAINTED)
    assert any(abs(colours[i] - 0.0) < 1e-3 and colours[i + 1] > 0.0 for i in range(0, len(colours), 4))


def test_a_tiled_image_relabelled_by_another_artist(server, artists):  # noqa: F811
    _, address = server
    ana, ben = artists("ana", "ben")
    relabel = "bpy.data.images['Skin'].tiles[0].label = 'Body'\n"
    built_and_edited(address, [ana, ben], "build_udim_image", relabel)
    tiles, digest = evaluated_everywhere([ana, ben], TILED)
    assert tiles == [[1001, "Body"], [1002, "Face"], [1011, "1011"]] and digest
    assert ben.call("eval", expr="len(bpy.data.images['Skin'].packed_files)")["value"] == 3


def test_a_late_joiner_into_a_production_scene(server, artists):  # noqa: F811
    _, address = server
    ana, ben, cleo = artists("ana", "ben", "cleo")
    builds = (
        "instancing",
        "override",
        "particles",
        "particle_physics",
        "hair_curves",
        "pointcloud",
        "volume",
    )
    builds += ("custom_normals",)
    ana.call("edit", script=BUILDERS + "".join(f"scene_builders.build_{b}()\n" for b in builds))
    start_room(address, ana, [ben])
    converge([ana, ben])
    ben.call(
        "edit",
        script=BUILDERS + "scene_builders.override_of('Rig').pose.bones['Lower'].location = (0, 1, 0)\n",
    )
    converge([ana, ben])
    cleo.call("connect", servers=address)
    cleo.call("join", room="shot")
    converge([ana, ben, cleo])
    everyone = [ana, ben, cleo]
    assert len(evaluated_everywhere(everyone, INSTANCES)) == 5 + 12 + 5
    for expr in (BODY, NORMALS, POINTS, CURVES, GRIDS, PARTICLE_PHYSICS):
        evaluated_everywhere(everyone, expr)
