"""Production scenes through a real ``blendsync serve``: each artist a Blender process (artist.py).

Placed assets (collection instances, local and linked from a library .blend) and a library override of
a linked character: one artist builds, another edits, every artist evaluates the same geometry through
its depsgraph; a late joiner gets the same.
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
