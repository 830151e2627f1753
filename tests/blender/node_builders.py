"""Scene builders with geometry node groups (kept apart from scene_builders.py, which lists them)."""

from __future__ import annotations

import bpy


def _geometry_group(name: str) -> bpy.types.NodeTree:
    group = bpy.data.node_groups.new(name, "GeometryNodeTree")
    group.interface.new_socket("Geometry", in_out="INPUT", socket_type="NodeSocketGeometry")
    group.interface.new_socket("Geometry", in_out="OUTPUT", socket_type="NodeSocketGeometry")
    return group


def build_geometry_nodes(suffix: str = "") -> None:
    """A geometry nodes modifier: a group with an input, a nested group with Set Position and an offset.

    ``Lift`` moves points by its ``Offset`` input; ``Deform`` feeds its
    ``Height`` input into ``Lift`` through Combine XYZ; the modifier sets
    ``Height`` to 1.5, so every vertex is raised by 1.5. Names end with ``suffix``.
    """
    lift = _geometry_group("Lift" + suffix)
    lift.interface.new_socket("Offset", in_out="INPUT", socket_type="NodeSocketVector")
    nodes = lift.nodes
    lin, lout = nodes.new("NodeGroupInput"), nodes.new("NodeGroupOutput")
    lout.location = (400, 0)
    setpos = nodes.new("GeometryNodeSetPosition")
    lift.links.new(lin.outputs[0], setpos.inputs["Geometry"])
    lift.links.new(lin.outputs[1], setpos.inputs["Offset"])
    lift.links.new(setpos.outputs["Geometry"], lout.inputs[0])

    deform = _geometry_group("Deform" + suffix)
    height = deform.interface.new_socket("Height", in_out="INPUT", socket_type="NodeSocketFloat")
    height.default_value = 0.25
    nodes = deform.nodes
    din, dout = nodes.new("NodeGroupInput"), nodes.new("NodeGroupOutput")
    dout.location = (600, 0)
    combine = nodes.new("ShaderNodeCombineXYZ")
    combine.inputs["X"].default_value = 0.5
    inner = nodes.new("GeometryNodeGroup")
    inner.node_tree = lift
    inner.location = (300, 0)
    deform.links.new(din.outputs[1], combine.inputs["Z"])
    deform.links.new(din.outputs[0], inner.inputs[0])
    deform.links.new(combine.outputs["Vector"], inner.inputs[1])
    deform.links.new(inner.outputs[0], dout.inputs[0])

    me = bpy.data.meshes.new("Plate" + suffix)
    me.from_pydata([(0, 0, 0), (1, 0, 0), (0, 1, 0), (1, 1, 0)], [], [(0, 1, 3, 2)])
    ob = bpy.data.objects.new("Deformed" + suffix, me)
    bpy.context.scene.collection.objects.link(ob)
    mod = ob.modifiers.new("Deform", "NODES")
    mod.node_group = deform
    mod[height.identifier] = 1.5


def evaluated_vertices(name: str) -> list[tuple[float, float, float]]:
    """The vertex positions of an object's evaluated mesh (modifiers applied), rounded."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    ob = bpy.data.objects[name].evaluated_get(depsgraph)
    mesh = ob.to_mesh()
    try:
        return [tuple(round(c, 5) for c in v.co) for v in mesh.vertices]
    finally:
        ob.to_mesh_clear()


def build_zone_and_compositor() -> None:
    """A repeat zone (paired input/output nodes) raising a triangle three times; a compositor group."""
    group = _geometry_group("Repeat")
    nodes = group.nodes
    gin, gout = nodes.new("NodeGroupInput"), nodes.new("NodeGroupOutput")
    rin, rout = nodes.new("GeometryNodeRepeatInput"), nodes.new("GeometryNodeRepeatOutput")
    rin.pair_with_output(rout)
    rin.inputs["Iterations"].default_value = 3
    setpos = nodes.new("GeometryNodeSetPosition")
    setpos.inputs["Offset"].default_value = (0.0, 0.0, 1.0)
    group.links.new(gin.outputs[0], rin.inputs["Geometry"])
    group.links.new(rin.outputs["Geometry"], setpos.inputs["Geometry"])
    group.links.new(setpos.outputs["Geometry"], rout.inputs["Geometry"])
    group.links.new(rout.outputs["Geometry"], gout.inputs[0])
    me = bpy.data.meshes.new("Tri")
    me.from_pydata([(0, 0, 0), (1, 0, 0), (0, 1, 0)], [], [(0, 1, 2)])
    ob = bpy.data.objects.new("Repeated", me)
    bpy.context.scene.collection.objects.link(ob)
    ob.modifiers.new("Repeat", "NODES").node_group = group

    comp = bpy.data.node_groups.new("Comp", "CompositorNodeTree")
    comp.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
    blur = comp.nodes.new("CompositorNodeBlur")
    comp.links.new(blur.outputs[0], comp.nodes.new("NodeGroupOutput").inputs[0])
