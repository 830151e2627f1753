"""Live edit mode beyond meshes, between real Blender processes through a real ``blendsync serve``: while Ana
edits a curve, text, lattice, armature, metaball, hair curves, point cloud or Grease Pencil in edit mode, Ben
sees each edit; the parts edit mode changes are leased to her (Ben's write to them is refused) until she
leaves edit mode or her Blender dies."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from test_addon_multiprocess import artists, converge, server, start_room  # noqa: F401 - fixtures

pytestmark = [pytest.mark.blender, pytest.mark.timeout(180)]


def _enter(name: str) -> str:
    return (
        f"ob = bpy.data.objects[{name!r}]\n"
        "bpy.context.view_layer.objects.active = ob\n"
        "for other in bpy.context.view_layer.objects:\n"
        "    other.select_set(other == ob)\n"
        "bpy.ops.object.mode_set(mode='EDIT')\n"
    )


@dataclass(frozen=True)
class Case:
    build: str  # makes object ``name`` (data ``data``) in object mode
    name: str
    data: str
    edit: str  # run in edit mode: an edit Ben should see at once
    seen: str  # on Ben: true once he sees ``edit``
    last: str  # Ana's last edit, just before she leaves edit mode
    last_seen: str  # on Ben: true once he sees ``last``
    refused: str  # Ben's write to a leased part


CASES = {
    "curve": Case(
        build="cu = bpy.data.curves.new('PathData', 'CURVE')\n"
        "cu.dimensions = '3D'\n"
        "sp = cu.splines.new('POLY')\n"
        "sp.points.add(2)\n"
        "for i, p in enumerate(sp.points):\n"
        "    p.co = (i, 0.0, 0.0, 1.0)\n"
        "bpy.context.scene.collection.objects.link(bpy.data.objects.new('Path', cu))\n",
        name="Path",
        data="PathData",
        edit="cu = bpy.data.curves['PathData']\n"
        "cu.splines[0].points[1].co.z = 2.5\n"
        "bpy.ops.curve.select_all(action='SELECT')\n"
        "bpy.ops.curve.subdivide()\n",
        seen="len(bpy.data.curves['PathData'].splines[0].points) == 5"
        " and bpy.data.curves['PathData'].splines[0].points[2].co.z == 2.5",
        last="bpy.data.curves['PathData'].splines[0].points[0].co.y = -1.5\n",
        last_seen="bpy.data.curves['PathData'].splines[0].points[0].co.y == -1.5",
        refused="bpy.data.curves['PathData'].splines[0].points[0].co.x = 9.0\n",
    ),
    "text": Case(
        build="cu = bpy.data.curves.new('TitleData', 'FONT')\n"
        "cu.body = 'Shot'\n"
        "bpy.context.scene.collection.objects.link(bpy.data.objects.new('Title', cu))\n",
        name="Title",
        data="TitleData",
        edit="bpy.ops.font.text_insert(text=' 12')\n",
        seen="bpy.data.curves['TitleData'].body == 'Shot 12'",
        last="bpy.ops.font.text_insert(text='A')\n",
        last_seen="bpy.data.curves['TitleData'].body == 'Shot 12A'",
        refused="bpy.data.curves['TitleData'].body = 'Take'\n",
    ),
    "lattice": Case(
        build="lt = bpy.data.lattices.new('CageData')\n"
        "bpy.context.scene.collection.objects.link(bpy.data.objects.new('Cage', lt))\n",
        name="Cage",
        data="CageData",
        edit="bpy.data.lattices['CageData'].points[0].co_deform.z = 2.0\n",
        seen="bpy.data.lattices['CageData'].points[0].co_deform.z == 2.0",
        last="bpy.data.lattices['CageData'].points[1].co_deform.x = 3.0\n",
        last_seen="bpy.data.lattices['CageData'].points[1].co_deform.x == 3.0",
        refused="bpy.data.lattices['CageData'].points[2].co_deform.y = 4.0\n",
    ),
    "armature": Case(
        build="arm = bpy.data.armatures.new('RigData')\n"
        "ob = bpy.data.objects.new('Rig', arm)\n"
        "bpy.context.scene.collection.objects.link(ob)\n"
        + _enter("Rig")
        + "lower = arm.edit_bones.new('Lower')\n"
        "lower.tail = (0.0, 0.0, 1.0)\n"
        "arm.collections.new('Deform')\n"
        "bpy.ops.object.mode_set(mode='OBJECT')\n",
        name="Rig",
        data="RigData",
        edit="arm = bpy.data.armatures['RigData']\n"
        "arm.edit_bones['Lower'].tail.z = 1.5\n"
        "upper = arm.edit_bones.new('Upper')\n"
        "upper.head, upper.tail, upper.roll = (0.0, 0.0, 1.5), (0.0, 0.5, 2.5), 0.25\n"
        "upper.parent, upper.use_connect = arm.edit_bones['Lower'], True\n"
        "upper['stiffness'] = 0.5\n"
        "arm.collections['Deform'].assign(upper)\n",
        seen="bpy.data.armatures['RigData'].bones['Lower'].tail_local.z == 1.5"
        " and 'Upper' in bpy.data.armatures['RigData'].bones"
        " and bpy.data.armatures['RigData'].bones['Upper'].parent.name == 'Lower'"
        " and bpy.data.armatures['RigData'].bones['Upper'].get('stiffness') == 0.5"
        " and [c.name for c in bpy.data.armatures['RigData'].bones['Upper'].collections] == ['Deform']",
        last="bpy.data.armatures['RigData'].edit_bones['Upper'].tail.x = 0.75\n",
        last_seen="bpy.data.armatures['RigData'].bones['Upper'].tail_local.x == 0.75",
        refused="from blender_addon.sync.kinds.armatures import armature_edit_mode\n"
        "arm = bpy.data.armatures['RigData']\n"
        "with armature_edit_mode(arm):\n"
        "    arm.edit_bones['Lower'].head.x = 0.5\n",
    ),
    "metaball": Case(
        build="mb = bpy.data.metaballs.new('BlobData')\n"
        "mb.elements.new()\n"
        "bpy.context.scene.collection.objects.link(bpy.data.objects.new('Blob', mb))\n",
        name="Blob",
        data="BlobData",
        edit="mb = bpy.data.metaballs['BlobData']\n"
        "mb.elements[0].co.x = 2.0\n"
        "mb.elements.new(type='CAPSULE').co = (0.0, 1.0, 0.0)\n",
        seen="[e.type for e in bpy.data.metaballs['BlobData'].elements] == ['BALL', 'CAPSULE']"
        " and bpy.data.metaballs['BlobData'].elements[0].co.x == 2.0",
        last="bpy.data.metaballs['BlobData'].elements[1].radius = 1.5\n",
        last_seen="bpy.data.metaballs['BlobData'].elements[1].radius == 1.5",
        refused="bpy.data.metaballs['BlobData'].elements[0].radius = 0.5\n",
    ),
    "hair": Case(
        build="hc = bpy.data.hair_curves.new('FurData')\n"
        "hc.add_curves([2, 3])\n"
        "bpy.context.scene.collection.objects.link(bpy.data.objects.new('Fur', hc))\n",
        name="Fur",
        data="FurData",
        edit="hc = bpy.data.hair_curves['FurData']\nhc.points[0].position.z = 2.5\nhc.add_curves([4])\n",
        seen="len(bpy.data.hair_curves['FurData'].curves) == 3"
        " and bpy.data.hair_curves['FurData'].points[0].position.z == 2.5",
        last="bpy.data.hair_curves['FurData'].points[1].position.y = -1.5\n",
        last_seen="bpy.data.hair_curves['FurData'].points[1].position.y == -1.5",
        refused="bpy.data.hair_curves['FurData'].points[2].position.x = 9.0\n",
    ),
    "pointcloud": Case(
        build="from blender_addon.sync.kinds.pointclouds import new_pointcloud\n"
        "pc = new_pointcloud(3)\n"
        "pc.name = 'DustData'\n"
        "bpy.context.scene.collection.objects.link(bpy.data.objects.new('Dust', pc))\n",
        name="Dust",
        data="DustData",
        edit="bpy.data.pointclouds['DustData'].points[0].co.z = 2.5\n",
        seen="bpy.data.pointclouds['DustData'].points[0].co.z == 2.5",
        last="bpy.data.pointclouds['DustData'].points[1].co.y = -1.5\n",
        last_seen="bpy.data.pointclouds['DustData'].points[1].co.y == -1.5",
        refused="bpy.data.pointclouds['DustData'].points[2].co.x = 9.0\n",
    ),
    "grease_pencil": Case(
        build="gp = bpy.data.grease_pencils.new('SketchData')\n"
        "gp.layers.new('Ink').frames.new(1).drawing.add_strokes([3])\n"
        "bpy.context.scene.collection.objects.link(bpy.data.objects.new('Sketch', gp))\n",
        name="Sketch",
        data="SketchData",
        edit="drawing = bpy.data.grease_pencils['SketchData'].layers['Ink'].frames[0].drawing\n"
        "drawing.strokes[0].points[1].position.z = 2.5\n"
        "drawing.add_strokes([2])\n",
        seen="len(bpy.data.grease_pencils['SketchData'].layers['Ink'].frames[0].drawing.strokes) == 2"
        " and bpy.data.grease_pencils['SketchData'].layers['Ink'].frames[0].drawing.strokes[0].points[1]"
        ".position.z == 2.5",
        last="bpy.data.grease_pencils['SketchData'].layers['Ink'].frames[0].drawing.strokes[0].points[0]"
        ".position.y = -1.5\n",
        last_seen="bpy.data.grease_pencils['SketchData'].layers['Ink'].frames[0].drawing.strokes[0].points[0]"
        ".position.y == -1.5",
        refused="bpy.data.grease_pencils['SketchData'].layers['Ink'].frames[0].drawing.strokes[0].points[2]"
        ".position.x = 9.0\n",
    ),
}


def ben_sees(ben, expr: str) -> bool:
    return ben.call("pump_until", expr=expr, timeout=10)["met"]


def ana_edits(address: str, ana, ben, case: Case) -> None:
    """Ana builds the case's object, shares a room with Ben and makes her first edit in edit mode: Ben
    sees it and her lease of the data."""
    ana.call("edit", script=case.build)
    start_room(address, ana, [ben])
    converge([ana, ben])
    ana.call("edit", script=_enter(case.name) + case.edit)
    ana.call("pump_until_idle", quiet=0.3)
    assert ben_sees(ben, case.seen)  # while Ana is still in edit mode
    ana_id = ana.call("eval", expr="session.client_id")["value"]
    assert ben.call("eval", expr="session.editors()")["value"] == {ana_id: [case.data]}


@pytest.mark.parametrize("name", sorted(CASES))
def test_edit_mode_is_live_and_leased_until_the_editor_leaves(server, artists, name):  # noqa: F811
    case = CASES[name]
    _, address = server
    ana, ben = artists("ana", "ben")
    ana_edits(address, ana, ben, case)
    assert ana.call("eval", expr=f"bpy.data.objects[{case.name!r}].mode")["value"] == "EDIT"

    # Ben's write to what Ana edits is refused while she holds the lease.
    ben.call("edit", script=case.refused)
    ben.call("pump_until_idle", quiet=0.3)
    assert any("locked" in m for m in ben.call("state")["messages"])

    # Her last edit goes out as she leaves edit mode, and the lease with it.
    ana.call("edit", script=case.last + "bpy.ops.object.mode_set(mode='OBJECT')\n")
    converge([ana, ben])
    assert ben.call("eval", expr=case.last_seen)["value"]
    assert ben.call("eval", expr="session.editors()")["value"] == {}
    before = ben.call("state")
    ben.call("edit", script=case.refused)
    converge([ana, ben])
    after = ben.call("state")
    assert after["seq"] > before["seq"] and after["messages"] == before["messages"]  # no new refusal


def test_the_lease_of_an_armature_in_edit_mode_is_released_when_the_editor_drops(server, artists):  # noqa: F811
    case = CASES["armature"]
    _, address = server
    ana, ben = artists("ana", "ben")
    ana_edits(address, ana, ben, case)
    ana.proc.kill()
    ana.proc.wait(10)
    assert ben.call("pump_until", expr="session.editors() == {}", timeout=10)["met"]
    before = ben.call("state")
    ben.call("edit", script=case.refused)
    ben.call("pump_until_idle", quiet=0.3)
    after = ben.call("state")
    assert after["unacked"] == 0 and after["seq"] > before["seq"]  # acknowledged: it is in the room
    assert after["messages"] == before["messages"]  # no new refusal
    assert ben.call("eval", expr="bpy.data.armatures['RigData'].bones['Lower'].head_local.x")["value"] == 0.5
