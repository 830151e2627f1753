"""Scene builders for data held inside other datablocks (listed in scene_builders.BUILDERS): shape keys of
lattices and curves, curve mapping widgets of nodes and modifiers, text boxes, image user settings, a legacy
texture's colour ramp and node tree, physics (force fields, cloth, soft body, collision)."""

from __future__ import annotations

import os
import tempfile

import bpy
from anim_builders import keyed_action


def _link(ob: bpy.types.Object) -> bpy.types.Object:
    bpy.context.scene.collection.objects.link(ob)
    return ob


def _driven_by(owner: bpy.types.ID, path: str, holder: bpy.types.Object, prop: str) -> None:
    """A driver on ``owner``'s ``path`` reading ``holder[prop]``."""
    fc = owner.animation_data_create().drivers.new(path)
    fc.driver.type = "AVERAGE"
    var = fc.driver.variables.new()
    var.targets[0].id = holder
    var.targets[0].data_path = f'["{prop}"]'


def build_lattice_curve_shapes() -> None:
    """Shape keys of a lattice bending a mesh and of a curve with a Bézier and a poly spline.

    Lattice ``Squeeze``: ``Squash`` (top points lowered, value 0.5), ``Twist`` (relative to Squash, keyed
    from 0.2 to 0.8 over frames 1-30), ``Lift`` (driven by the cage's ``lift``), and an NLA track pulsing
    Twist. Curve ``Ribbon``: ``Curl`` (a point, a handle, tilt and radius moved, value 0.6), ``Sway``
    (driven by the object's ``sway``), ``Swing`` (animated by an NLA strip)."""
    lattice = bpy.data.lattices.new("Squeeze")
    lattice.points_u = lattice.points_v = lattice.points_w = 2
    cage = _link(bpy.data.objects.new("Squeeze", lattice))
    cage["lift"] = 0.75
    cage.shape_key_add(name="Basis", from_mix=False)
    squash = cage.shape_key_add(name="Squash", from_mix=False)
    for point in squash.data[4:]:
        point.co.z -= 0.4
    squash.value = 0.5
    twist = cage.shape_key_add(name="Twist", from_mix=False)
    twist.data[0].co = (-0.8, -0.2, -0.5)
    twist.relative_key = squash
    lift = cage.shape_key_add(name="Lift", from_mix=False)
    lift.data[7].co.z += 1.0
    scene = bpy.context.scene
    for frame, value in ((1, 0.2), (30, 0.8)):
        scene.frame_set(frame)
        twist.value = value
        twist.keyframe_insert("value", frame=frame)
    scene.frame_set(1)
    key = lattice.shape_keys
    _driven_by(key, 'key_blocks["Lift"].value', cage, "lift")
    pulse = keyed_action("Pulse", "KEY", "Key", 'key_blocks["Twist"].value', [1.0, 0.0, 10.0, 0.5])
    key.animation_data.nla_tracks.new().strips.new("Pulse", 1, pulse)
    me = bpy.data.meshes.new("Squeezed")
    me.from_pydata([(-0.4, -0.4, 0.4), (0.4, -0.4, 0.4), (0.0, 0.4, 0.4), (0.0, 0.0, -0.4)], [], [(0, 1, 2)])
    body = _link(bpy.data.objects.new("Squeezed", me))
    body.modifiers.new("Lattice", "LATTICE").object = cage

    curve = bpy.data.curves.new("Ribbon", type="CURVE")
    curve.dimensions = "3D"
    curve.bevel_depth = 0.05
    bezier = curve.splines.new("BEZIER")
    bezier.bezier_points.add(2)
    for i, point in enumerate(bezier.bezier_points):
        point.co = (float(i), 0.0, 0.0)
        point.handle_left = (i - 0.3, -0.2, 0.0)
        point.handle_right = (i + 0.3, 0.2, 0.0)
    poly = curve.splines.new("POLY")
    poly.points.add(2)
    poly.points.foreach_set("co", [0, 2, 0, 1, 1, 2, 0, 1, 2, 2, 0, 1])
    ribbon = _link(bpy.data.objects.new("Ribbon", curve))
    ribbon["sway"] = 0.5
    ribbon.shape_key_add(name="Basis", from_mix=False)
    curl = ribbon.shape_key_add(name="Curl", from_mix=False)
    curl.data[1].co = (1.0, 0.5, 0.75)
    curl.data[1].handle_right = (1.5, 1.0, 1.0)
    curl.data[2].tilt = 0.5
    curl.data[4].radius = 2.0
    curl.data[5].co = (2.0, 3.0, 0.5)
    curl.value = 0.6
    sway = ribbon.shape_key_add(name="Sway", from_mix=False)
    sway.data[0].co = (0.0, -1.0, 0.0)
    swing = ribbon.shape_key_add(name="Swing", from_mix=False)
    swing.data[3].co = (0.0, 2.0, 1.0)
    key = curve.shape_keys
    _driven_by(key, 'key_blocks["Sway"].value', ribbon, "sway")
    swinging = keyed_action("Swinging", "KEY", "Key", 'key_blocks["Swing"].value', [1.0, 0.3, 20.0, 1.0])
    key.animation_data.nla_tracks.new().strips.new("Swinging", 1, swinging)


def shape_key_geometry() -> list:
    """What the depsgraph evaluates from the shape keys of build_lattice_curve_shapes: the mesh the lattice
    bends and the curve's tessellated points (rounded)."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    out = []
    for name in ("Squeezed", "Ribbon"):
        ob = bpy.data.objects[name].evaluated_get(depsgraph)
        mesh = ob.to_mesh()
        try:
            out.append([tuple(round(c, 4) + 0.0 for c in v.co) for v in mesh.vertices])
        finally:
            ob.to_mesh_clear()
    return out


def _points(mapping: bpy.types.CurveMapping, curve: int, points: list[tuple[float, float]]) -> None:
    """Give curve ``curve`` of ``mapping`` these points (sorted by x), then update it as the widget does."""
    pts = mapping.curves[curve].points
    for x, y in points[len(pts) :]:
        pts.new(x, y)
    for point, location in zip(pts, points, strict=False):
        point.location = location
    mapping.update()


def build_curve_mappings() -> None:
    """Curve mapping widgets: a Float Curve node in a geometry node group lifting a grid by its x (modifier
    on ``Lifted``); RGB Curves (clipped, a filmlike tone, black and white levels) and Vector Curves nodes in
    a material; RGB Curves and Hue Correct nodes in a compositor group; a Hook modifier (``Hooked``) and a
    Warp modifier with custom falloff curves, a Vertex Weight Edit modifier with a custom map curve."""
    group = bpy.data.node_groups.new("Lift", "GeometryNodeTree")
    group.interface.new_socket("Geometry", in_out="INPUT", socket_type="NodeSocketGeometry")
    group.interface.new_socket("Geometry", in_out="OUTPUT", socket_type="NodeSocketGeometry")
    nodes, links = group.nodes, group.links
    gin, gout = nodes.new("NodeGroupInput"), nodes.new("NodeGroupOutput")
    position, split = nodes.new("GeometryNodeInputPosition"), nodes.new("ShaderNodeSeparateXYZ")
    shape, combine = nodes.new("ShaderNodeFloatCurve"), nodes.new("ShaderNodeCombineXYZ")
    setpos = nodes.new("GeometryNodeSetPosition")
    _points(shape.mapping, 0, [(0.0, 0.0), (0.4, 0.7), (1.0, 0.2)])
    shape.mapping.curves[0].points[1].handle_type = "VECTOR"
    links.new(position.outputs[0], split.inputs[0])
    links.new(split.outputs["X"], shape.inputs["Value"])
    links.new(shape.outputs[0], combine.inputs["Z"])
    links.new(gin.outputs[0], setpos.inputs["Geometry"])
    links.new(combine.outputs[0], setpos.inputs["Offset"])
    links.new(setpos.outputs[0], gout.inputs[0])
    grid = bpy.data.meshes.new("Grid")
    grid.from_pydata([(x / 4, y / 2, 0.0) for y in range(3) for x in range(5)], [], [])
    _link(bpy.data.objects.new("Lifted", grid)).modifiers.new("Lift", "NODES").node_group = group

    mat = bpy.data.materials.new("Graded")
    rgb = mat.node_tree.nodes.new("ShaderNodeRGBCurve")
    _points(rgb.mapping, 3, [(0.0, 0.1), (0.5, 0.6), (1.0, 0.9)])
    _points(rgb.mapping, 1, [(0.0, 0.0), (0.25, 0.5), (1.0, 1.0)])
    rgb.mapping.use_clip = False
    rgb.mapping.clip_max_y = 2.0
    rgb.mapping.tone = "FILMLIKE"
    rgb.mapping.black_level = (0.1, 0.05, 0.0)
    rgb.mapping.white_level = (0.9, 1.0, 0.95)
    vector = mat.node_tree.nodes.new("ShaderNodeVectorCurve")
    _points(vector.mapping, 2, [(-1.0, 1.0), (0.0, 0.0), (1.0, 1.0)])
    vector.mapping.extend = "HORIZONTAL"
    comp = bpy.data.node_groups.new("Grade", "CompositorNodeTree")
    comp.use_fake_user = True  # kept in a saved file though nothing uses it
    _points(comp.nodes.new("CompositorNodeCurveRGB").mapping, 0, [(0.0, 0.2), (1.0, 0.8)])
    _points(comp.nodes.new("CompositorNodeHueCorrect").mapping, 1, [(0.0, 0.5), (0.5, 0.8), (1.0, 0.5)])

    me = bpy.data.meshes.new("Hooked")
    me.from_pydata([(x / 2, 0.0, 0.0) for x in range(5)], [(i, i + 1) for i in range(4)], [])
    me.materials.append(mat)
    hooked = _link(bpy.data.objects.new("Hooked", me))
    handle = _link(bpy.data.objects.new("Handle", None))
    handle.location = (0.0, 0.0, 1.0)
    hooked.vertex_groups.new(name="Weights").add(range(5), 0.5, "REPLACE")
    hook = hooked.modifiers.new("Hook", "HOOK")
    hook.vertex_group = "Weights"
    hook.object = handle
    hook.falloff_type = "CURVE"
    hook.falloff_radius = 2.0
    _points(hook.falloff_curve, 0, [(0.0, 1.0), (0.5, 0.25), (1.0, 0.0)])
    warp = hooked.modifiers.new("Warp", "WARP")
    origin = _link(bpy.data.objects.new("Origin", None))
    warp.object_from, warp.object_to = origin, handle
    warp.falloff_type = "CURVE"
    _points(warp.falloff_curve, 0, [(0.0, 0.0), (0.3, 0.9), (1.0, 1.0)])
    weights = hooked.modifiers.new("Weights", "VERTEX_WEIGHT_EDIT")
    weights.vertex_group = "Weights"
    weights.falloff_type = "CURVE"
    _points(weights.map_curve, 0, [(0.0, 0.0), (0.5, 0.9), (1.0, 1.0)])


def text_boxes(ob: bpy.types.Object, count: int) -> None:
    """Give text object ``ob`` ``count`` text boxes, as the artist's Add Textbox button does."""
    with bpy.context.temp_override(object=ob, active_object=ob):
        while len(ob.data.text_boxes) < count:
            bpy.ops.font.textbox_add()
        while len(ob.data.text_boxes) > count:
            bpy.ops.font.textbox_remove(index=len(ob.data.text_boxes) - 1)


def build_text_boxes() -> None:
    """A text object flowing through three text boxes side by side (``Columns``), each placed and sized."""
    curve = bpy.data.curves.new("Columns", type="FONT")
    curve.body = "blendsync keeps every artist's scene the same, " * 4
    ob = _link(bpy.data.objects.new("Columns", curve))
    text_boxes(ob, 3)
    for i, box in enumerate(curve.text_boxes):
        box.x, box.y = 5.0 * i, -0.5 * i
        box.width, box.height = 4.0 + i, 2.0


def build_image_users() -> None:
    """Image user settings (which frames of an animated image are shown when) of an image texture node and
    an environment node in a material, and of a legacy image texture (``Flipbook``) driving a displace
    modifier, all using one image file."""
    from scene_builders import image_sequence  # scene_builders lists these builders

    frames = bpy.data.images.load(image_sequence(count=1), check_existing=False)
    frames.name = "Frames"
    mat = bpy.data.materials.new("Flicker")
    image = mat.node_tree.nodes.new("ShaderNodeTexImage")
    image.image = frames
    user = image.image_user
    user.frame_duration, user.frame_start, user.frame_offset = 3, 5, 1
    user.use_auto_refresh = user.use_cyclic = True
    env = mat.node_tree.nodes.new("ShaderNodeTexEnvironment")
    env.image = frames
    env.image_user.frame_duration = 2
    env.image_user.frame_offset = -1
    flipbook = bpy.data.textures.new("Flipbook", type="IMAGE")
    flipbook.image = frames
    flipbook.image_user.frame_duration = 3
    flipbook.image_user.use_cyclic = True
    me = bpy.data.meshes.new("Screen")
    me.from_pydata([(0, 0, 0), (1, 0, 0), (0, 1, 0)], [], [(0, 1, 2)])
    me.materials.append(mat)
    screen = _link(bpy.data.objects.new("Screen", me))
    screen.modifiers.new("Displace", "DISPLACE").texture = flipbook


def build_texture_nodes() -> None:
    """Legacy textures used by displace modifiers: ``Banded`` clouds through a constant colour ramp of three
    stops; ``Patterned`` made of nodes (a checker through RGB curves and a colour ramp into the output), one
    of its sockets keyed and on an NLA track of the tree."""
    banded = bpy.data.textures.new("Banded", type="CLOUDS")
    banded.use_color_ramp = True
    ramp = banded.color_ramp
    ramp.interpolation = "CONSTANT"
    ramp.elements[0].color = (0.1, 0.0, 0.2, 1.0)
    ramp.elements.new(0.4).color = (1.0, 0.5, 0.0, 1.0)
    patterned = bpy.data.textures.new("Patterned", type="CLOUDS")
    patterned.use_nodes = True
    tree = patterned.node_tree
    checker, output = tree.nodes["Checker"], tree.nodes["Output"]
    checker.inputs["Size"].default_value = 0.3
    curves = tree.nodes.new("TextureNodeCurveRGB")
    _points(curves.mapping, 3, [(0.0, 0.2), (0.5, 0.3), (1.0, 0.9)])
    bands = tree.nodes.new("TextureNodeValToRGB")
    bands.color_ramp.elements.new(0.6).color = (0.0, 1.0, 0.0, 1.0)
    tree.links.new(checker.outputs[0], curves.inputs[0])
    tree.links.new(curves.outputs[0], bands.inputs[0])
    tree.links.new(bands.outputs[0], output.inputs[0])
    size = checker.inputs["Size"]
    pulse = keyed_action(
        "Checkers", "NODETREE", "Tree", 'nodes["Checker"].inputs[2].default_value', [1, 0.3, 9, 0.6]
    )
    tree.animation_data_create().nla_tracks.new().strips.new("Checkers", 1, pulse)
    size.keyframe_insert("default_value", frame=1)
    me = bpy.data.meshes.new("Plate")
    me.from_pydata([(0, 0, 0), (1, 0, 0), (0, 1, 0)], [], [(0, 1, 2)])
    plate = _link(bpy.data.objects.new("Plate", me))
    for tex in (banded, patterned):
        plate.modifiers.new(tex.name, "DISPLACE").texture = tex


def texture_samples() -> list:
    """What build_texture_nodes' textures evaluate to at a few points (rounded)."""
    points = [(x / 5, y / 3, 0.25) for x in range(5) for y in range(3)]
    return [
        [[round(c, 4) for c in bpy.data.textures[name].evaluate(p)] for p in points]
        for name in ("Banded", "Patterned")
    ]


def grid_mesh(name: str, size: int = 6) -> bpy.types.Mesh:
    """A flat grid of ``size`` x ``size`` vertices (enough for a cloth to fold)."""
    mesh = bpy.data.meshes.new(name)
    verts = [(x * 0.2, y * 0.2, 1.0) for y in range(size) for x in range(size)]
    faces = [
        (y * size + x, y * size + x + 1, (y + 1) * size + x + 1, (y + 1) * size + x)
        for y in range(size - 1)
        for x in range(size - 1)
    ]
    mesh.from_pydata(verts, [], faces)
    return mesh


def add_field(ob: bpy.types.Object) -> None:
    with bpy.context.temp_override(object=ob, active_object=ob):
        bpy.ops.object.forcefield_toggle()


def udim_tiles(numbers=(1001, 1002, 1011), size: int = 4) -> str:
    """Tile PNGs ``skin.<number>.png`` of distinct colours in a new folder; the path with ``<UDIM>``."""
    folder = tempfile.mkdtemp(prefix="udim-")
    img = bpy.data.images.new("tile", size, size)
    img.file_format = "PNG"
    for i, number in enumerate(numbers):
        img.pixels = [0.2 * i, 1.0 - 0.2 * i, 0.5, 1.0] * (size * size)
        img.filepath_raw = os.path.join(folder, f"skin.{number}.png")
        img.save()
    bpy.data.images.remove(img)
    return os.path.join(folder, "skin.<UDIM>.png")


def build_udim_image() -> None:
    """A tiled (UDIM) image of three tile files on disk, one tile labelled, in a material on a mesh."""
    skin = bpy.data.images.new("Skin", 1, 1)
    skin.source = "TILED"
    skin.filepath = udim_tiles()
    skin.reload()
    skin.tiles[1].label = "Face"
    mat = bpy.data.materials.new("Head")
    mat.node_tree.nodes.new("ShaderNodeTexImage").image = skin
    mesh = grid_mesh("Head", 2)
    mesh.materials.append(mat)
    _link(bpy.data.objects.new("Head", mesh))


def build_dynamic_paint() -> None:
    """A canvas with two surfaces (a spreading paint and ripples) and a brush that paints from a distance,
    each made with Blender's Dynamic Paint operators."""
    canvas = _link(bpy.data.objects.new("Canvas", grid_mesh("Canvas")))
    brush = _link(bpy.data.objects.new("Brush", grid_mesh("Brush", 2)))
    brush.location = (0.3, 0.3, 0.1)
    for ob, kind in ((canvas, "CANVAS"), (brush, "BRUSH")):
        ob.modifiers.new("Paint", "DYNAMIC_PAINT").ui_type = kind
        with bpy.context.temp_override(object=ob, active_object=ob):
            bpy.ops.dpaint.type_toggle(type=kind)
    with bpy.context.temp_override(object=canvas, active_object=canvas):
        bpy.ops.dpaint.surface_slot_add()
    paint, ripples = canvas.modifiers["Paint"].canvas_settings.canvas_surfaces
    paint.name, paint.frame_end, paint.use_spread, paint.spread_speed = "Wet paint", 20, True, 0.5
    canvas.modifiers["Paint"].canvas_settings.canvas_surfaces.active_index = 0
    with bpy.context.temp_override(object=canvas, active_object=canvas):
        bpy.ops.dpaint.output_toggle(output="A")  # the colour attribute the paint is written to
    ripples.name = "Ripples"
    ripples.surface_type, ripples.wave_speed = "WAVE", 2.0
    settings = brush.modifiers["Paint"].brush_settings
    settings.paint_source, settings.paint_distance = "DISTANCE", 0.5
    settings.paint_color = (1.0, 0.2, 0.0)
    settings.proximity_falloff = "RAMP"  # the paint ramp shapes the falloff: green far, red near
    ramp = settings.paint_ramp
    ramp.elements[0].color = (0.0, 1.0, 0.0, 1.0)
    ramp.elements.new(0.6).color = (0.2, 0.2, 1.0, 0.5)
    ramp.interpolation = "EASE"
    settings.velocity_ramp.elements[1].position = 0.8


def build_rigid_bodies() -> None:
    """A scene's rigid body world with its own settings, a passive ramp, two active crates (one a box
    shape, light and slippery, in a second collision collection) and a hinge between them on an empty."""
    ramp = _link(bpy.data.objects.new("Ramp", grid_mesh("Ramp", 3)))
    ramp.location.z, ramp.rotation_euler.x = -2.0, 0.3
    crates = []
    for name, x in (("Crate", 0.0), ("Crate.Light", 0.8)):
        crate = _link(bpy.data.objects.new(name, grid_mesh(name, 2)))
        crate.location = (x, 0.0, 0.5)
        crates.append(crate)
    for ob, kind in ((ramp, "PASSIVE"), *((crate, "ACTIVE") for crate in crates)):
        with bpy.context.temp_override(object=ob, active_object=ob, selected_objects=[ob]):
            bpy.ops.rigidbody.object_add(type=kind)
    light = crates[1].rigid_body
    light.mass, light.friction, light.collision_shape = 0.25, 0.1, "BOX"
    light.collision_collections[1] = True
    ramp.rigid_body.restitution = 0.4
    hinge = _link(bpy.data.objects.new("Hinge", None))
    bpy.context.view_layer.objects.active = hinge  # the operator adds to the active object
    bpy.ops.rigidbody.constraint_add(type="HINGE")
    hinge.rigid_body_constraint.object1, hinge.rigid_body_constraint.object2 = crates
    hinge.rigid_body_constraint.use_breaking = True
    world = bpy.context.scene.rigidbody_world
    world.substeps_per_frame, world.solver_iterations, world.time_scale = 5, 20, 0.8
    world.point_cache.frame_end = 40
    world.effector_weights.gravity = 0.5


def build_physics() -> None:
    """A wind (an empty with a force field), a cloth pinned by a vertex group that a soft body follows, and
    a floor that collides and also pushes (a mesh with a force field)."""
    wind = _link(bpy.data.objects.new("Wind", None))
    add_field(wind)
    wind.field.type = "WIND"
    wind.field.shape = "PLANE"
    wind.field.strength, wind.field.flow = 3.5, 0.25
    # Blender seeds a new field's noise from the clock (0-127); its API writes 1-128, so a field made in a
    # second that gives 0 reaches the others as 1 (docs/addon.md): the scene's fields get seeds of their own.
    wind.field.seed = 12
    wind.rotation_euler = (0.5, 0.0, 0.0)
    sheet = _link(bpy.data.objects.new("Sheet", grid_mesh("Sheet")))
    pin = sheet.vertex_groups.new(name="Pin * /")  # pattern characters are data
    pin.add([0, 1, 2, 3, 4, 5], 1.0, "REPLACE")
    sheet.shape_key_add(name="Basis")
    rest = sheet.shape_key_add(name="Rest / *")  # the shape the cloth relaxes to (pattern characters: data)
    for point in rest.data:
        point.co.z += 0.3 * point.co.x
    cloth = sheet.modifiers.new("Cloth", "CLOTH")
    cloth.settings.rest_shape_key = rest
    cloth.settings.mass = 0.7
    cloth.settings.vertex_group_mass = "Pin * /"
    cloth.settings.effector_weights.wind = 0.4
    cloth.collision_settings.distance_min = 0.02
    cloth.point_cache.frame_end = 30
    soft = sheet.modifiers.new("Soft", "SOFT_BODY")
    soft.settings.mass = 2.5
    soft.settings.use_goal = False
    floor = _link(bpy.data.objects.new("Floor", grid_mesh("Floor", 3)))
    floor.location.z = -1.0
    floor.modifiers.new("Collision", "COLLISION")
    floor.collision.damping = 0.6
    floor.collision.thickness_outer = 0.05
    floor.field.type = "FORCE"  # the collision modifier gave it field settings
    floor.field.strength = -2.0
    floor.field.seed = 34
