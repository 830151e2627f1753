"""Point clouds (kind ``pcloud``): materials, name and points (every attribute: position, radius...).

Blender's API cannot change a point cloud's number of points: a receiver
needing another count makes a point cloud of that many points (a throw-away
mesh object converted with ``object.convert``) and puts it in place of the
old one, same uuid, every user moved to it.
"""

from __future__ import annotations

import bpy

from ..assign import set_materials
from ..attributes import read_attributes, write_attributes
from ..context import ApplyContext, ReadContext
from ..replacing import replace
from ..settings import apply_name
from .base import Kind


def read_points(pc: bpy.types.PointCloud) -> dict[str, object]:
    return {"count": len(pc.points), "attributes": read_attributes(pc)}


def serialise(pc: bpy.types.PointCloud, ctx: ReadContext) -> dict[str, object]:
    return {
        "meta": {"materials": [ctx.ref(m) for m in pc.materials]},
        "name": pc.name,
        "points": read_points(pc),
    }


def describe(pc: bpy.types.PointCloud, ctx: ReadContext) -> dict:
    points = read_points(pc)
    return {
        "name": pc.name,
        "materials": [ctx.ref(m) for m in pc.materials],
        "count": points["count"],
        "attributes": [[a["name"], a["domain"], a["type"], a["data"].hex()] for a in points["attributes"]],
    }


def new_pointcloud(count: int) -> bpy.types.PointCloud:
    """A new point cloud of ``count`` points (converted from a throw-away mesh object)."""
    me = bpy.data.meshes.new("blendsync-temp")
    me.vertices.add(count)
    ob = bpy.data.objects.new("blendsync-temp", me)
    scene = bpy.context.scene
    scene.collection.objects.link(ob)
    try:
        with bpy.context.temp_override(
            window=bpy.context.window_manager.windows[0],
            scene=scene,
            view_layer=bpy.context.view_layer,
            active_object=ob,
            object=ob,
            selected_objects=[ob],
            selected_editable_objects=[ob],
        ):
            bpy.ops.object.convert(target="POINTCLOUD")
        made = ob.data
    finally:
        bpy.data.objects.remove(ob)
        if me.name in bpy.data.meshes and bpy.data.meshes[me.name] == me:
            bpy.data.meshes.remove(me)
    return made


def create(uuid: str, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    return bpy.data.pointclouds.new(ctx.new_name(uuid))


def stub(name: str, object_type: str) -> bpy.types.ID:
    return bpy.data.pointclouds.new(name)


def apply_meta(pc: bpy.types.PointCloud, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    set_materials(pc.materials, [ctx.resolve(u) for u in doc["materials"]])
    return pc


def apply_points(pc: bpy.types.PointCloud, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    if len(pc.points) != doc["count"]:
        name, materials = pc.name, list(pc.materials)
        pc = replace(pc, new_pointcloud(doc["count"]), bpy.data.pointclouds.remove)
        pc.name = name
        set_materials(pc.materials, materials)
    write_attributes(pc, doc["attributes"], ctx)
    pc.update_tag()
    return pc


KIND = Kind(
    name="pcloud",
    collection="pointclouds",
    rna_type="PointCloud",
    parts={"meta": apply_meta, "name": apply_name, "points": apply_points},
    create=create,
    serialise=serialise,
    describe=describe,
    stub=stub,
    object_types=("POINTCLOUD",),
)
