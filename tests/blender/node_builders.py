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


def _zone(nodes, kind: str):
    """A paired zone: (input node, output node) of ``kind`` (``Repeat``, ``Simulation``...)."""
    zin, zout = nodes.new(f"GeometryNode{kind}Input"), nodes.new(f"GeometryNode{kind}Output")
    zin.pair_with_output(zout)
    return zin, zout


def build_node_items() -> None:
    """Geometry nodes whose sockets come from item lists, all on the path of an object's modifier.

    A repeat zone with two state items before its geometry (``Step`` halves ``Offset`` each of 3 turns:
    up 1.75), a capture attribute of two items (position and index: up by each point's index), a menu
    switch of three items set to ``Side`` (+2 in x), an index switch of three items at 2 (+0.3 in y), a bake
    node carrying ``Factor`` into a simulation zone's ``Speed`` state, and a for-each zone with items in its
    three lists; beside that path, format string, field to grid, viewer and evaluate closure nodes with
    items. A material holds bundle nodes, the world a closure zone and a compositor group a file output
    node (an item with its own image format), with items of their own.
    """
    group = _geometry_group("Items")
    nodes, links = group.nodes, group.links
    gin, gout = nodes.new("NodeGroupInput"), nodes.new("NodeGroupOutput")

    rin, rout = _zone(nodes, "Repeat")
    rout.repeat_items.new("FLOAT", "Step")
    rout.repeat_items.new("VECTOR", "Offset")
    rout.repeat_items.move(0, 2)  # the geometry last: a new zone's geometry item sits where Step goes
    rin.inputs["Iterations"].default_value = 3
    rin.inputs["Step"].default_value = 0.5
    rin.inputs["Offset"].default_value = (0.0, 0.0, 1.0)
    lift = nodes.new("GeometryNodeSetPosition")
    halve = nodes.new("ShaderNodeVectorMath")
    halve.operation = "SCALE"
    links.new(gin.outputs[0], rin.inputs["Geometry"])
    links.new(rin.outputs["Geometry"], lift.inputs["Geometry"])
    links.new(rin.outputs["Offset"], lift.inputs["Offset"])
    links.new(rin.outputs["Offset"], halve.inputs[0])
    links.new(rin.outputs["Step"], halve.inputs["Scale"])
    links.new(lift.outputs[0], rout.inputs["Geometry"])
    links.new(halve.outputs[0], rout.inputs["Offset"])
    links.new(rin.outputs["Step"], rout.inputs["Step"])

    capture = nodes.new("GeometryNodeCaptureAttribute")
    capture.capture_items.new("VECTOR", "Pos")
    capture.capture_items.new("INT", "Idx")
    links.new(rout.outputs["Geometry"], capture.inputs["Geometry"])
    links.new(nodes.new("GeometryNodeInputPosition").outputs[0], capture.inputs["Pos"])
    links.new(nodes.new("GeometryNodeInputIndex").outputs[0], capture.inputs["Idx"])
    up = nodes.new("ShaderNodeCombineXYZ")
    add = nodes.new("ShaderNodeVectorMath")
    place = nodes.new("GeometryNodeSetPosition")
    links.new(capture.outputs["Idx"], up.inputs["Z"])
    links.new(capture.outputs["Pos"], add.inputs[0])
    links.new(up.outputs[0], add.inputs[1])
    links.new(capture.outputs["Geometry"], place.inputs["Geometry"])
    links.new(add.outputs[0], place.inputs["Position"])

    menu = nodes.new("GeometryNodeMenuSwitch")
    menu.data_type = "VECTOR"
    menu.enum_items[0].name, menu.enum_items[1].name = "Up", "Side"
    menu.enum_items.new("Still")
    menu.inputs["Up"].default_value = (0.0, 0.0, 1.0)
    menu.inputs["Side"].default_value = (2.0, 0.0, 0.0)
    menu.inputs["Menu"].default_value = "Side"
    pick = nodes.new("GeometryNodeIndexSwitch")
    pick.data_type = "FLOAT"
    pick.index_switch_items.new()
    for i, value in enumerate((0.1, 0.2, 0.3)):
        pick.inputs[i + 1].default_value = value
    pick.inputs["Index"].default_value = 2
    sideways = nodes.new("ShaderNodeCombineXYZ")
    both = nodes.new("ShaderNodeVectorMath")
    shift = nodes.new("GeometryNodeSetPosition")
    links.new(pick.outputs[0], sideways.inputs["Y"])
    links.new(menu.outputs["Output"], both.inputs[0])
    links.new(sideways.outputs[0], both.inputs[1])
    links.new(place.outputs[0], shift.inputs["Geometry"])
    links.new(both.outputs[0], shift.inputs["Offset"])

    bake = nodes.new("GeometryNodeBake")
    bake.bake_items.new("GEOMETRY", "Geometry")
    factor = bake.bake_items.new("FLOAT", "Factor")
    factor.attribute_domain, factor.is_attribute = "FACE", True
    bake.inputs["Factor"].default_value = 4.0
    links.new(shift.outputs[0], bake.inputs["Geometry"])
    sin, sout = _zone(nodes, "Simulation")
    sout.state_items.new("FLOAT", "Speed").attribute_domain = "EDGE"
    links.new(bake.outputs["Geometry"], sin.inputs["Geometry"])
    links.new(bake.outputs["Factor"], sin.inputs["Speed"])
    drift, times, ahead = (
        nodes.new("GeometryNodeSetPosition"),
        nodes.new("ShaderNodeMath"),
        nodes.new("ShaderNodeCombineXYZ"),
    )
    times.operation = "MULTIPLY"
    links.new(sin.outputs["Speed"], times.inputs[0])
    links.new(sin.outputs["Delta Time"], times.inputs[1])
    links.new(times.outputs[0], ahead.inputs["X"])
    links.new(sin.outputs["Geometry"], drift.inputs["Geometry"])
    links.new(ahead.outputs[0], drift.inputs["Offset"])
    links.new(drift.outputs[0], sout.inputs["Geometry"])
    links.new(sin.outputs["Speed"], sout.inputs["Speed"])
    links.new(sout.outputs["Geometry"], gout.inputs[0])

    fin, fout = _zone(nodes, "ForeachGeometryElement")
    fout.domain = "FACE"
    fout.input_items.new("FLOAT", "Weight")
    fout.main_items.new("VECTOR", "Normal")
    fout.generation_items.new("FLOAT", "Area").domain = "EDGE"
    fin.inputs["Weight"].default_value = 0.25
    links.new(fin.outputs["Weight"], fout.inputs["Normal"])
    text = nodes.new("FunctionNodeFormatString")
    text.format_items.new("FLOAT", "x")
    text.format_items.new("INT", "n")
    text.inputs["x"].default_value = 1.5
    grid = nodes.new("GeometryNodeFieldToGrid")
    grid.grid_items.new("FLOAT", "Density")
    grid.grid_items.new("VECTOR", "Flow")
    viewer = nodes.new("GeometryNodeViewer")
    viewer.viewer_items.new("FLOAT", "Seen")
    links.new(text.outputs[0], nodes.new("FunctionNodeStringLength").inputs[0])
    links.new(grid.outputs["Density"], viewer.inputs["Seen"])
    evaluate = nodes.new("NodeEvaluateClosure")
    evaluate.input_items.new("FLOAT", "In")
    evaluate.output_items.new("VECTOR", "Out")

    me = bpy.data.meshes.new("ItemsGrid")
    me.from_pydata([(0, 0, 0), (1, 0, 0), (0, 1, 0), (1, 1, 0)], [], [(0, 1, 3, 2)])
    ob = bpy.data.objects.new("ItemsObject", me)
    bpy.context.scene.collection.objects.link(ob)
    ob.modifiers.new("Items", "NODES").node_group = group

    mat = bpy.data.materials.new("Bundled")
    tree = mat.node_tree
    pack = tree.nodes.new("NodeCombineBundle")
    pack.bundle_items.new("FLOAT", "Gloss")
    pack.bundle_items.new("RGBA", "Tint")
    pack.inputs["Gloss"].default_value = 0.3
    unpack = tree.nodes.new("NodeSeparateBundle")
    unpack.bundle_items.new("FLOAT", "Gloss")
    tree.links.new(pack.outputs[0], unpack.inputs[0])
    tree.links.new(unpack.outputs["Gloss"], tree.nodes["Principled BSDF"].inputs["Roughness"])

    world = bpy.data.worlds.new("Closed")
    bpy.context.scene.world = world
    cin, cout = world.node_tree.nodes.new("NodeClosureInput"), world.node_tree.nodes.new("NodeClosureOutput")
    cin.pair_with_output(cout)
    cout.input_items.new("FLOAT", "Strength")
    cout.output_items.new("SHADER", "Shader")
    world.node_tree.links.new(cin.outputs["Strength"], cout.inputs["Shader"])

    comp = bpy.data.node_groups.new("Passes", "CompositorNodeTree")
    comp.interface.new_socket("Image", in_out="INPUT", socket_type="NodeSocketColor")
    files = comp.nodes.new("CompositorNodeOutputFile")
    files.file_output_items.new("FLOAT", "Depth")
    beauty = files.file_output_items.new("RGBA", "Beauty")
    beauty.override_node_format = True
    beauty.format.file_format, beauty.format.color_depth = "OPEN_EXR", "32"
    comp.links.new(comp.nodes.new("NodeGroupInput").outputs[0], files.inputs["Beauty"])


def tree_summary(tree: bpy.types.NodeTree) -> dict:
    """What an artist sees of a node tree, by names (socket identifiers differ between replicas): each
    node's type, paired zone output, item lists (every writable item property), sockets (name, type,
    value) and the links."""

    def value(sock):
        v = getattr(sock, "default_value", None)
        return v if isinstance(v, int | float | str | None) else tuple(round(x, 5) for x in v)

    def items(node):
        lists = {}
        for prop in node.bl_rna.properties:
            if prop.type != "COLLECTION" or not prop.identifier.endswith("_items"):
                continue
            lists[prop.identifier] = [
                {p.identifier: getattr(it, p.identifier) for p in it.bl_rna.properties if not p.is_readonly}
                | {"#": i}
                for i, it in enumerate(getattr(node, prop.identifier))
            ]
        return lists

    nodes = {
        node.name: {
            "type": node.bl_idname,
            "paired": getattr(getattr(node, "paired_output", None), "name", None),
            "items": items(node),
            "inputs": [(s.name, s.bl_idname, value(s)) for s in node.inputs],
            "outputs": [(s.name, s.bl_idname, value(s)) for s in node.outputs],
        }
        for node in tree.nodes
    }
    links = sorted(
        (lk.from_node.name, lk.from_socket.name, lk.to_node.name, lk.to_socket.name) for lk in tree.links
    )
    return {"nodes": nodes, "links": links}


def _file_output(tree: bpy.types.NodeTree) -> bpy.types.Node:
    """The tree's file output node (by what it holds: its place in the node list is the order its
    receiver made the nodes in)."""
    return next(node for node in tree.nodes if hasattr(node, "file_output_items"))


def items_trees() -> dict[str, dict]:
    """tree_summary of the trees build_node_items makes."""
    return {
        "group": tree_summary(bpy.data.node_groups["Items"]),
        "material": tree_summary(bpy.data.materials["Bundled"].node_tree),
        "world": tree_summary(bpy.data.worlds["Closed"].node_tree),
        "compositor": tree_summary(bpy.data.node_groups["Passes"]),
        "beauty format": [
            (f.file_format, f.color_depth)
            for f in (item.format for item in _file_output(bpy.data.node_groups["Passes"]).file_output_items)
        ],
    }
