"""Scene builders for the real-Blender tests: one per synchronised datablock kind."""

from __future__ import annotations

import contextlib
import math
import os
import struct
import tempfile
import wave

import bpy
from anim_builders import (
    build_assigned_actions,
    build_data_animation,
    build_driver_curves,
    build_every_kind_nla,
    build_nla,
)
from detail_builders import (
    build_curve_mappings,
    build_dynamic_paint,
    build_image_users,
    build_lattice_curve_shapes,
    build_physics,
    build_rigid_bodies,
    build_text_boxes,
    build_texture_nodes,
    build_udim_image,
)
from layer_builders import build_view_layers
from node_builders import build_geometry_nodes, build_node_items
from style_builders import build_linestyle


def reset_scene() -> None:
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)


def evaluate_scenes() -> None:
    """What an artist's Blender does before they look, or a render: every scene's animation written at its
    frame (a view layer update evaluates the window's scene only), in each of its view layers (a line style
    only another view layer draws is evaluated in that view layer's depsgraph alone; which view layer a
    joiner's window shows depends on the order the view layers arrived in)."""
    for scene in bpy.data.scenes:
        for layer in scene.view_layers:
            with bpy.context.temp_override(scene=scene, view_layer=layer):
                bpy.context.evaluated_depsgraph_get()  # made active: only it writes animated values back
                scene.frame_set(scene.frame_current)


def link(ob: bpy.types.Object, coll: bpy.types.Collection | None = None) -> bpy.types.Object:
    (coll or bpy.context.scene.collection).objects.link(ob)
    return ob


def triangle_mesh(name: str = "Tri") -> bpy.types.Mesh:
    me = bpy.data.meshes.new(name)
    me.from_pydata([(0, 0, 0), (1, 0, 0), (0, 1, 0), (1, 1, 0.5)], [], [(0, 1, 2), (1, 3, 2)])
    return me


def build_object() -> None:
    """Empties with transforms, parenting, visibility, collection links and settings of their own."""
    root = link(bpy.data.objects.new("Root", None))
    root.color = (0.25, 0.5, 1.0, 1.0)
    root.show_in_front = True
    root.pass_index = 4
    root.lock_rotation = (False, False, True)
    root.location = (1.5, -2.0, 3.25)
    root.rotation_euler = (0.1, 0.2, 0.3)
    root.scale = (1.0, 2.0, 0.5)
    root.empty_display_type = "CUBE"
    child = link(bpy.data.objects.new("Child", None))
    child.parent = root
    child.location = (0.0, 1.0, 0.0)
    child.rotation_mode = "QUATERNION"
    child.rotation_quaternion = (0.7071068, 0.7071068, 0.0, 0.0)
    hidden = link(bpy.data.objects.new("Hidden", None))
    hidden.hide_viewport = True
    hidden.hide_render = True
    hidden.hide_set(True)


def build_mesh() -> None:
    """A primitive and a data-API mesh with UVs, a colour attribute, face flags and settings of its own
    (symmetry, remesh, a manual texture space; the sphere takes its texture coordinates from it)."""
    bpy.ops.mesh.primitive_uv_sphere_add(segments=12, ring_count=6, location=(0, 0, 1))
    me = triangle_mesh()
    me.use_mirror_x, me.remesh_voxel_size = True, 0.05
    me.use_auto_texspace, me.texspace_size = False, (2.0, 2.0, 0.5)
    bpy.context.active_object.data.texture_mesh = me
    uv = me.uv_layers.new(name="UVMap")
    uv.data.foreach_set("uv", [0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0])
    col = me.color_attributes.new("Col", "FLOAT_COLOR", "POINT")
    col.data.foreach_set("color", [0.1, 0.2, 0.3, 1.0] * 4)
    me.polygons[1].use_smooth = True
    ob = link(bpy.data.objects.new("Tri", me))
    ob.location = (3, 0, 0)


def build_modifiers() -> None:
    bpy.ops.mesh.primitive_cube_add()
    cube = bpy.context.active_object
    target = link(bpy.data.objects.new("MirrorTarget", None))
    sub = cube.modifiers.new("Smooth", "SUBSURF")
    sub.levels = 2
    mirror = cube.modifiers.new("Mirror", "MIRROR")
    mirror.mirror_object = target
    mirror.use_axis = (True, True, False)


def build_material() -> None:
    """A material with a small node graph (texture, colour ramp, mix) assigned to a mesh."""
    img = bpy.data.images.new("Checker", 8, 8)
    img.generated_type = "UV_GRID"
    mat = bpy.data.materials.new("Shiny")
    mat.diffuse_color = (0.2, 0.4, 0.6, 1.0)
    mat.roughness = 0.25
    tree = mat.node_tree
    bsdf = tree.nodes["Principled BSDF"]
    bsdf.inputs["Metallic"].default_value = 0.75
    tex = tree.nodes.new("ShaderNodeTexImage")
    tex.image = img
    tex.location = (-600, 200)
    ramp = tree.nodes.new("ShaderNodeValToRGB")
    ramp.location = (-300, 200)
    ramp.color_ramp.elements.new(0.5).color = (1.0, 0.0, 0.0, 1.0)
    mix = tree.nodes.new("ShaderNodeMix")
    mix.data_type = "RGBA"
    mix.blend_type = "MULTIPLY"
    tree.links.new(tex.outputs["Color"], ramp.inputs["Fac"])
    tree.links.new(ramp.outputs["Color"], bsdf.inputs["Base Color"])
    me = triangle_mesh("Shaded")
    me.materials.append(mat)
    link(bpy.data.objects.new("Shaded", me))
    second = bpy.data.materials.new("Override")
    ob = link(bpy.data.objects.new("ObjectSlot", me))
    ob.material_slots[0].link = "OBJECT"
    ob.material_slots[0].material = second


def build_light() -> None:
    for kind, energy in (("POINT", 100.0), ("SUN", 3.0), ("SPOT", 500.0), ("AREA", 50.0)):
        light = bpy.data.lights.new(f"L-{kind}", type=kind)
        light.energy = energy
        light.color = (1.0, 0.9, 0.8)
        if kind == "SPOT":
            light.spot_size = 0.5
        if kind == "AREA":
            light.shape = "RECTANGLE"
            light.size_y = 2.0
        ob = link(bpy.data.objects.new(f"L-{kind}", light))
        ob.location = (energy / 100.0, 0, 2)


def build_camera() -> None:
    cam = bpy.data.cameras.new("Cam")
    cam.lens = 35.0
    cam.sensor_width = 24.0
    cam.dof.use_dof = True
    cam.dof.aperture_fstop = 1.8
    ortho = bpy.data.cameras.new("Ortho")
    ortho.type = "ORTHO"
    ortho.ortho_scale = 12.0
    target = link(bpy.data.objects.new("Focus", None))
    cam.dof.focus_object = target
    ob = link(bpy.data.objects.new("Cam", cam))
    ob.location = (0, -10, 2)
    link(bpy.data.objects.new("Ortho", ortho))
    bpy.context.scene.camera = ob
    # Background images: a reference plate in front, faded, moved and turned; a clip slot with no clip.
    cam.show_background_images = True
    plate = cam.background_images.new()
    plate.image = bpy.data.images.new("Plate", 4, 4)
    plate.alpha, plate.offset, plate.rotation, plate.scale = 0.4, (0.1, -0.2), 0.3, 1.5
    plate.display_depth, plate.frame_method, plate.use_flip_x = "FRONT", "CROP", True
    plate.image_user.frame_offset = 2
    clip = cam.background_images.new()
    clip.source = "MOVIE_CLIP"
    clip.use_camera_clip = False


def build_collection() -> None:
    outer = bpy.data.collections.new("Outer")
    inner = bpy.data.collections.new("Inner")
    shared = bpy.data.collections.new("Shared")
    bpy.context.scene.collection.children.link(outer)
    outer.children.link(inner)
    outer.children.link(shared)
    bpy.context.scene.collection.children.link(shared)
    inner.hide_render = True
    inner.lineart_usage = "EXCLUDE"
    shared.lineart_use_intersection_mask = True
    shared.lineart_intersection_mask[2] = True
    shared.use_lineart_intersection_priority = True
    shared.lineart_intersection_priority = 40
    a = link(bpy.data.objects.new("A", None), inner)
    shared.objects.link(a)
    link(bpy.data.objects.new("B", None), outer)


def build_scene() -> None:
    scene = bpy.context.scene
    scene.name = "Shot010"
    scene.frame_start = 10
    scene.frame_end = 250
    scene.frame_current = 42
    scene.render.fps = 30
    scene.render.resolution_x = 1280
    scene.render.resolution_y = 720
    scene.render.film_transparent = True
    scene.view_settings.exposure = 0.25
    scene.render.image_settings.file_format = "JPEG"
    cam = link(bpy.data.objects.new("ShotCam", bpy.data.cameras.new("ShotCam")))
    scene.camera = cam
    scene.timeline_markers.new("F_10", frame=10).camera = cam
    other = bpy.data.scenes.new("Other")
    other.frame_end = 99
    other.collection.objects.link(bpy.data.objects.new("OnlyInOther", None))


def build_world() -> None:
    world = bpy.data.worlds.new("Sky")
    world.color = (0.05, 0.1, 0.2)
    tree = world.node_tree
    bg = tree.nodes["Background"]
    bg.inputs["Strength"].default_value = 2.5
    sky = tree.nodes.new("ShaderNodeTexSky")
    tree.links.new(sky.outputs["Color"], bg.inputs["Color"])
    bpy.context.scene.world = world


def build_image() -> None:
    img = bpy.data.images.new("Painted", 4, 4)
    img.pixels.foreach_set([0.25, 0.5, 0.75, 1.0] * 16)
    img.pack()
    gen = bpy.data.images.new("Grid", 16, 8)
    gen.generated_type = "COLOR_GRID"


def build_action() -> None:
    ob = link(bpy.data.objects.new("Animated", None))
    ob.location = (0, 0, 0)
    ob.keyframe_insert("location", frame=1)
    ob.location = (4, 2, 0)
    ob.keyframe_insert("location", frame=24)
    ob.rotation_euler = (0, 0, 1.5)
    ob.keyframe_insert("rotation_euler", index=2, frame=12)
    fc = next(
        f
        for f in ob.animation_data.action.layers[0].strips[0].channelbags[0].fcurves
        if f.data_path == "location" and f.array_index == 0
    )
    fc.keyframe_points[0].interpolation = "LINEAR"
    bpy.data.actions.new("Unused")


def build_curve() -> None:
    bpy.ops.curve.primitive_bezier_circle_add(radius=2.0)
    curve = bpy.data.curves.new("Path", type="CURVE")
    curve.dimensions = "3D"
    curve.bevel_depth = 0.1
    poly = curve.splines.new("POLY")
    poly.points.add(2)
    poly.points.foreach_set("co", [0, 0, 0, 1, 1, 0, 0, 1, 1, 1, 1, 1])
    nurbs = curve.splines.new("NURBS")
    nurbs.points.add(3)
    nurbs.points.foreach_set("co", [0, 0, 0, 1, 1, 2, 0, 1, 2, 0, 1, 1, 3, 1, 0, 1])
    nurbs.order_u = 3
    nurbs.use_endpoint_u = True
    link(bpy.data.objects.new("Path", curve))


def build_font() -> None:
    bpy.ops.object.text_add(location=(0, 0, 1))
    ob = bpy.context.active_object
    ob.data.body = "blendsync"
    ob.data.size = 1.5
    ob.data.extrude = 0.1
    ob.data.align_x = "CENTER"


def shipped_font(index: int = 0) -> str:
    """A small font file shipped with Blender (its datafiles/fonts directory), smallest first."""
    folder = bpy.utils.system_resource("DATAFILES", path="fonts")
    files = sorted(
        (os.path.join(folder, f) for f in os.listdir(folder) if f.endswith((".ttf", ".otf", ".woff2"))),
        key=lambda p: (os.path.getsize(p), p),
    )
    return files[index]


def build_fonts() -> None:
    """A text object using a packed font, a font read from disk (bold) and the built-in font (italic)."""
    bpy.ops.object.text_add(location=(0, 0, -1))
    curve = bpy.context.active_object.data
    curve.body = "fonts"
    packed = bpy.data.fonts.load(shipped_font(0), check_existing=False)
    packed.pack()
    packed.name = "Packed"
    curve.font = packed
    curve.font_bold = bpy.data.fonts.load(shipped_font(1), check_existing=False)
    curve.font_bold.name = "OnDisk"


def build_grease_pencil() -> None:
    """Grease pencil data: two layers with settings, frames with strokes and point attributes (one frame an
    instance of another), materials."""
    gp = bpy.data.grease_pencils.new("Sketch")
    for name, color in (("Ink", (0.0, 0.0, 0.0, 1.0)), ("Fill", (0.2, 0.6, 1.0, 1.0))):
        mat = bpy.data.materials.new(name)
        bpy.data.materials.create_gpencil_data(mat)
        mat.grease_pencil.color = color
        gp.materials.append(mat)
    gp.materials["Fill"].grease_pencil.show_fill = True
    lines = gp.layers.new("Lines")
    lines.opacity = 0.75
    lines.tint_factor = 0.25
    shading = gp.layers.new("Shading")
    shading.hide = True
    shading.lock = True
    drawing = lines.frames.new(1).drawing
    drawing.add_strokes([3, 2])
    drawing.attributes["position"].data.foreach_set("vector", [0, 0, 0, 1, 0, 0, 1, 1, 0, 0, 0, 1, 0, 1, 1])
    drawing.attributes.new("radius", "FLOAT", "POINT").data.foreach_set("value", [0.1, 0.2, 0.3, 0.05, 0.05])
    drawing.attributes.new("opacity", "FLOAT", "POINT").data.foreach_set("value", [1, 0.5, 0.25, 1, 1])
    drawing.attributes.new("material_index", "INT", "CURVE").data.foreach_set("value", [0, 1])
    lines.frames.new(5).drawing.add_strokes([4])
    lines.frames.copy(1, 8, instance_drawing=True)  # a hold: frame 1's drawing shown again
    shading.frames.new(2).keyframe_type = "BREAKDOWN"
    add_layer_groups(gp)
    sketch = link(bpy.data.objects.new("Sketch", gp))
    sketch.location = (0, 2, 0)
    add_layer_masks(sketch)
    add_effects(sketch)


def add_layer_groups(gp: bpy.types.GreasePencil) -> None:
    """Layer groups: "Lines" in a group "Figure" that also holds a hidden group "Details" with a layer of
    its own, the group below "Shading"."""
    figure = gp.layer_groups.new("Figure")
    figure.color_tag = "COLOR3"
    gp.layers.move_to_layer_group(gp.layers["Lines"], figure)
    details = gp.layer_groups.new("Details", parent_group=figure)
    details.hide, details.use_onion_skinning = True, False
    eyes = gp.layers.new("Eyes", layer_group=details)
    eyes.opacity = 0.5
    eyes.frames.new(3).drawing.add_strokes([2])
    gp.layer_groups.move_bottom(figure)


def add_layer_masks(ob: bpy.types.Object) -> None:
    """ "Shading" masked by "Eyes" (inverted) and then "Lines" (Blender's Add Mask operator, on the active
    layer), the artist's active layer put back."""
    layers = ob.data.layers
    active = layers.active
    layers.active = layers["Shading"]
    with bpy.context.temp_override(object=ob, active_object=ob):
        bpy.ops.grease_pencil.layer_mask_add(name="Eyes")
        bpy.ops.grease_pencil.layer_mask_add(name="Lines")
    layers["Shading"].mask_layers["Eyes"].invert = True
    layers["Shading"].use_masks = True
    layers.active = active


def add_effects(ob: bpy.types.Object) -> None:
    """Visual effects on a grease pencil object: a glow, a shadow cast from an empty, a wave, moved into
    an order of their own."""
    glow = ob.shader_effects.new("Glow", "FX_GLOW")
    glow.mode, glow.size, glow.glow_color = "COLOR", (7.0, 3.0), (1.0, 0.5, 0.0)
    shadow = ob.shader_effects.new("Shadow", "FX_SHADOW")
    shadow.use_object = True
    shadow.object = link(bpy.data.objects.new(f"{ob.name} light", None))
    shadow.shadow_color = (0.1, 0.0, 0.2, 0.8)
    wave = ob.shader_effects.new("Wave", "FX_WAVE")
    wave.amplitude, wave.show_render = 4.0, False
    with bpy.context.temp_override(object=ob, active_object=ob):
        bpy.ops.object.shaderfx_move_to_index(shaderfx="Wave", index=0)


def image_sequence(count: int = 3, size: int = 4, shade: float = 0.0) -> str:
    """A tiny PNG sequence in a new temporary folder; returns the path of its first frame."""
    folder = tempfile.mkdtemp(prefix="clip-")
    img = bpy.data.images.new("frame", size, size)
    img.file_format = "PNG"
    for i in range(count):
        img.pixels = [shade + i / count, 0.5, 0.25, 1.0] * (size * size)
        img.filepath_raw = os.path.join(folder, f"shot_{i + 1:04d}.png")
        img.save()
    bpy.data.images.remove(img)
    return os.path.join(folder, "shot_0001.png")


def build_movieclip() -> None:
    """A movie clip made of a three-frame image sequence on disk, the scene's active clip, tracked: its
    camera's lens and distortion, settings, two camera tracks and an object's track."""
    clip = bpy.data.movieclips.load(image_sequence(), check_existing=False)
    clip.name = "Plate"
    clip.frame_start = 10
    clip.colorspace_settings.name = "Linear Rec.709"
    bpy.context.scene.active_clip = clip
    track_clip(clip)


def track_clip(clip: bpy.types.MovieClip) -> None:
    """Tracking data on every structure the tracking part carries."""
    tracking = clip.tracking
    tracking.camera.sensor_width, tracking.camera.focal_length_pixels = 23.76, 3.5
    tracking.camera.distortion_model, tracking.camera.brown_k1 = "BROWN", -0.07
    tracking.camera.principal_point = (0.1, -0.05)
    tracking.settings.default_pattern_size, tracking.settings.use_tripod_solver = 15, True
    tracking.stabilization.use_2d_stabilization, tracking.stabilization.target_scale = True, 1.25
    corner = tracking.tracks.new(name="Corner", frame=1)
    for frame, co in ((2, (0.31, 0.42)), (3, (0.33, 0.45)), (7, (0.4, 0.5))):
        corner.markers.insert_frame(frame, co=co)
    corner.markers.find_frame(3).mute = True
    corner.markers.find_frame(7).is_keyed = False
    corners = ((-0.02, -0.03), (0.02, -0.03), (0.025, 0.03), (-0.02, 0.03))
    corner.markers.find_frame(2).pattern_corners = corners
    corner.markers.find_frame(2).search_min = (-0.08, -0.07)
    corner.motion_model, corner.use_custom_color, corner.color = "Affine", True, (1.0, 0.2, 0.1)
    corner.weight, corner.offset = 0.6, (0.01, -0.02)
    tracking.tracks.new(name="Antenna", frame=2).markers.insert_frame(4, co=(0.7, 0.2))
    car = tracking.objects.new("Car")
    car.scale, car.keyframe_b = 2.5, 12
    car.tracks.new(name="Corner", frame=3).markers[0].co = (0.6, 0.6)


def build_mask() -> None:
    """A mask "Roto": a cyclic, inverted garbage layer of four points (one with vector handles, one
    parented to a movie clip's track) and a detail layer of two splines."""
    clip = bpy.data.movieclips.load(image_sequence(), check_existing=False)
    clip.name = "RotoPlate"
    mask = bpy.data.masks.new(name="Roto")
    mask.frame_end = 48
    garbage = mask.layers.new(name="Garbage")
    garbage.alpha, garbage.invert, garbage.falloff = 0.8, True, "SPHERE"
    outline = garbage.splines.new()
    outline.use_cyclic, outline.offset_mode = True, "SMOOTH"
    outline.points.add(3)  # a new spline has one point
    for point, (x, y) in zip(outline.points, ((0.1, 0.1), (0.9, 0.15), (0.85, 0.9), (0.2, 0.8)), strict=True):
        point.co = (x, y)
        point.handle_left = (x - 0.05, y)
        point.handle_right = (x + 0.05, y + 0.02)
        point.weight = 0.5 + x / 2
    outline.points[2].handle_type = "VECTOR"
    tracked = outline.points[0].parent
    tracked.id_type, tracked.id, tracked.type = "MOVIECLIP", clip, "POINT_TRACK"
    tracked.parent, tracked.sub_parent = "Camera", "Corner"
    detail = mask.layers.new(name="Detail")
    detail.blend = "SUBTRACT"
    for count, shift in ((3, 0.0), (5, 0.3)):
        spline = detail.splines.new()
        spline.points.add(count - 1)
        for i, point in enumerate(spline.points):
            point.co = (0.3 + 0.1 * i, 0.4 + shift)


def alembic_file(height: float = 3.0) -> str:
    """An Alembic file (in a new temporary folder) of a triangle ``/Tri/Tri`` whose third vertex rises from
    z 0 at frame 1 to ``height`` at frame 10 (a shape key's animation, baked per frame)."""
    path = os.path.join(tempfile.mkdtemp(prefix="cache-"), "rise.abc")
    me = bpy.data.meshes.new("Tri")
    me.from_pydata([(0, 0, 0), (1, 0, 0), (0, 1, 0)], [], [(0, 1, 2)])
    ob = link(bpy.data.objects.new("Tri", me))
    ob.shape_key_add(name="Basis")
    up = ob.shape_key_add(name="Up", from_mix=False)
    up.data[2].co = (0.0, 1.0, height)
    up.value = 0.0
    up.keyframe_insert("value", frame=1)
    up.value = 1.0
    up.keyframe_insert("value", frame=10)
    # The whole scene goes into the file: only /Tri/Tri is read from it.
    assert bpy.ops.wm.alembic_export(filepath=path, start=1, end=10) == {"FINISHED"}
    action = me.shape_keys.animation_data.action
    bpy.data.objects.remove(ob)
    bpy.data.meshes.remove(me)  # and its shape keys
    bpy.data.actions.remove(action)
    return path


def build_cache_file() -> None:
    """An object "Cached" whose mesh is read from an Alembic cache "Rise" by a Mesh Sequence Cache
    modifier (the usual way to bring in an animation baked elsewhere), the cache scaled."""
    from blender_addon.sync.kinds.cache_files import open_cache_file

    cache = open_cache_file(alembic_file())
    cache.name = "Rise"
    cache.scale = 2.0
    ob = link(bpy.data.objects.new("Cached", bpy.data.meshes.new("CachedMesh")))
    modifier = ob.modifiers.new("Cache", "MESH_SEQUENCE_CACHE")
    modifier.cache_file = cache
    modifier.object_path = "/Tri/Tri"


def write_library(rock_height: float = 0.5) -> str:
    """A small .blend (in a new temporary folder) holding a "Props" collection with a "Rock" and a "Tree",
    and a material "Stone"."""
    folder = tempfile.mkdtemp(prefix="lib-")
    path = os.path.join(folder, "assets.blend")
    made = []
    props = bpy.data.collections.new("Props")
    stone = bpy.data.materials.new("Stone")
    for name in ("Rock", "Tree"):
        me = bpy.data.meshes.new(name)
        me.from_pydata([(0, 0, 0), (1, 0, 0), (0, 1, rock_height)], [], [(0, 1, 2)])
        ob = bpy.data.objects.new(name, me)
        props.objects.link(ob)
        made += [me, ob]
    bpy.data.libraries.write(path, {props, stone}, fake_user=True, compress=True)
    bpy.data.batch_remove([props, stone, *made])
    return path


def build_library() -> None:
    """A library: a collection linked into a local collection, and one of its objects into the scene."""
    path = write_library()
    with bpy.data.libraries.load(path, link=True) as (_source, target):
        target.collections = ["Props"]
        target.objects = ["Tree"]
    local = bpy.data.collections.new("Set")
    bpy.context.scene.collection.children.link(local)
    local.children.link(bpy.data.collections["Props"])
    bpy.context.scene.collection.objects.link(bpy.data.objects["Tree"])


def build_instancing() -> None:
    """Empties instancing a local collection (off to the side, with an offset) and a linked one."""
    kit = bpy.data.collections.new("Kit")
    kit.instance_offset = (0.5, 0.0, 0.0)
    link(bpy.data.objects.new("KitPart", triangle_mesh("KitPart")), kit)
    local = link(bpy.data.objects.new("KitPlacer", None))
    local.instance_type = "COLLECTION"
    local.instance_collection = kit
    local.location = (0.0, 4.0, 0.0)
    with bpy.data.libraries.load(write_library(), link=True) as (_source, target):
        target.collections = ["Props"]
    (props,) = target.collections  # a second library with a "Props" may be there (build_everything)
    for i in range(2):
        placed = link(bpy.data.objects.new(f"PropsPlacer{i}", None))
        placed.instance_type = "COLLECTION"
        placed.instance_collection = props
        placed.location = (3.0 * i, -4.0, 0.0)
        placed.rotation_euler = (0.0, 0.0, 0.5 * i)


def instanced_geometry() -> list:
    """What the depsgraph instances: instancer, instanced object, world matrix (rounded), vertex count."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    return sorted(
        (
            inst.parent.name,
            inst.object.name,
            [round(x, 4) + 0.0 for row in inst.matrix_world for x in row],
            len(inst.object.data.vertices) if inst.object.type == "MESH" else -1,
        )
        for inst in depsgraph.object_instances
        if inst.is_instance
    )


def _edit_bones(rig: bpy.types.Object):
    view_layer = bpy.context.view_layer
    view_layer.objects.active = rig
    return bpy.context.temp_override(
        window=bpy.context.window_manager.windows[0], view_layer=view_layer, active_object=rig, object=rig
    )


@contextlib.contextmanager
def edit_mode(ob: bpy.types.Object):
    """``ob`` in edit mode for the duration of the block."""
    with _edit_bones(ob):
        bpy.ops.object.mode_set(mode="EDIT")
        try:
            yield
        finally:
            bpy.ops.object.mode_set(mode="OBJECT")


def write_character() -> str:
    """A .blend (in a new temporary folder) with a "Character" collection: a two-bone "Rig" and a "Body"
    mesh parented to it, weighted to both bones and deformed by an armature modifier."""
    folder = tempfile.mkdtemp(prefix="char-")
    path = os.path.join(folder, "character.blend")
    # Local datablocks already holding these names (another builder's "Rig") step aside meanwhile.
    names = ("collections", "Character"), ("armatures", "RigData"), ("objects", "Rig"), ("meshes", "BodyMesh")
    aside = []
    for attr, name in (*names, ("objects", "Body")):
        held = getattr(bpy.data, attr).get(name)
        if held is not None and held.library is None:
            held.name = f"{name}.aside"
            aside.append((held, name))
    coll = bpy.data.collections.new("Character")
    bpy.context.scene.collection.children.link(coll)
    arm = bpy.data.armatures.new("RigData")
    rig = link(bpy.data.objects.new("Rig", arm), coll)
    with _edit_bones(rig):
        bpy.ops.object.mode_set(mode="EDIT")
        lower = arm.edit_bones.new("Lower")
        lower.tail = (0.0, 0.0, 1.0)
        upper = arm.edit_bones.new("Upper")
        upper.head, upper.tail = (0.0, 0.0, 1.0), (0.0, 0.0, 2.0)
        upper.parent, upper.use_connect = lower, True
        bpy.ops.object.mode_set(mode="OBJECT")
    me = bpy.data.meshes.new("BodyMesh")
    me.from_pydata(
        [(x, 0.0, z * 0.5) for x in (0.2, -0.2) for z in range(5)],
        [],
        [(i, i + 1, i + 6, i + 5) for i in range(4)],
    )
    body = link(bpy.data.objects.new("Body", me), coll)
    for name, low in (("Lower", True), ("Upper", False)):
        group = body.vertex_groups.new(name=name)
        group.add([v.index for v in me.vertices if (v.co.z < 1.0) == low], 1.0, "REPLACE")
    body.modifiers.new("Armature", "ARMATURE").object = rig
    body.parent = rig
    bpy.data.libraries.write(path, {coll}, fake_user=True)
    bpy.data.batch_remove([coll, rig, arm, body, me])
    for held, name in aside:
        held.name = name
    return path


def write_assets() -> str:
    """A .blend (in a new temporary folder) holding materials "Bark" and "Moss", an empty "Anchor" and an
    image "Grain"."""
    folder = tempfile.mkdtemp(prefix="assets-")
    path = os.path.join(folder, "materials.blend")
    bark = bpy.data.materials.new("Bark")
    bark.diffuse_color = (0.5, 0.25, 0.1, 1.0)
    moss = bpy.data.materials.new("Moss")
    anchor = bpy.data.objects.new("Anchor", None)
    anchor.location = (0.0, 3.0, 1.0)
    grain = bpy.data.images.new("Grain", 4, 4)
    grain.generated_color = (0.2, 0.7, 0.3, 1.0)
    bpy.data.libraries.write(path, {bark, moss, anchor, grain}, fake_user=True)
    bpy.data.batch_remove([bark, moss, anchor, grain])
    return path


def build_linked_pointers() -> None:
    """Local datablocks pointing at datablocks linked from a library: a mesh's material and an object's
    material slot, an array modifier's offset object, a constraint's target, a node's image, a custom
    property and a driver's target."""
    with bpy.data.libraries.load(write_assets(), link=True) as (_source, target):
        target.materials = ["Bark"]
        target.objects = ["Anchor"]
        target.images = ["Grain"]
    (bark,), (anchor,), (grain,) = target.materials, target.objects, target.images
    crate = link(bpy.data.objects.new("Crate", triangle_mesh("Crate")))
    crate.data.materials.append(bark)
    array = crate.modifiers.new("Array", "ARRAY")
    array.use_relative_offset, array.use_object_offset, array.offset_object = False, True, anchor
    lid = link(bpy.data.objects.new("Lid", triangle_mesh("Lid")))
    lid.data.materials.append(None)
    lid.material_slots[0].link = "OBJECT"
    lid.material_slots[0].material = bark
    lid["skin"] = bark
    follower = link(bpy.data.objects.new("Follower", None))
    follower.constraints.new("COPY_LOCATION").target = anchor
    add_driver(follower, "scale", 2, "z", [("z", "TRANSFORMS", [{"id": anchor, "transform_type": "LOC_Z"}])])
    label = bpy.data.materials.new("Label")
    label.node_tree.nodes.new("ShaderNodeTexImage").image = grain


def build_override() -> None:
    """A linked character made local as a library override (the rig and body), posed and moved."""
    with bpy.data.libraries.load(write_character(), link=True) as (_source, target):
        target.collections = ["Character"]
    (linked,) = target.collections
    linked.override_hierarchy_create(bpy.context.scene, bpy.context.view_layer, do_fully_editable=True)
    rig = override_of("Rig")
    rig.location = (1.0, 0.0, 0.0)
    upper = rig.pose.bones["Upper"]
    upper.rotation_mode = "XYZ"
    upper.rotation_euler = (0.8, 0.0, 0.0)


def override_of(name: str) -> bpy.types.Object:
    """The local override of the linked object ``name`` (other local objects may share its name)."""
    return next(
        ob
        for ob in bpy.data.objects
        if ob.override_library is not None and ob.override_library.reference.name == name
    )


def evaluated_vertices(ob: bpy.types.Object) -> list:
    """World-space vertex positions of an object after modifiers (rounded)."""
    evaluated = ob.evaluated_get(bpy.context.evaluated_depsgraph_get())
    return [[round(c, 4) + 0.0 for c in evaluated.matrix_world @ v.co] for v in evaluated.data.vertices]


def build_particles() -> None:
    """A ground with hair (instancing a pebble along each strand) and an emitter, each with settings."""
    pebble = link(bpy.data.objects.new("Pebble", triangle_mesh("Pebble")))
    pebble.scale = (0.1, 0.1, 0.1)
    ground = link(bpy.data.objects.new("Ground", triangle_mesh("Ground")))
    hair = ground.modifiers.new("Grass", "PARTICLE_SYSTEM").particle_system
    hair.seed = 7
    grass = hair.settings
    grass.name = "Grass"
    grass.type = "HAIR"
    grass.count = 12
    grass.hair_length = 0.5
    grass.render_type = "OBJECT"
    grass.instance_object = pebble
    sparks = ground.modifiers.new("Sparks", "PARTICLE_SYSTEM").particle_system
    sparks.settings.name = "Sparks"
    sparks.settings.count = 5
    sparks.settings.frame_start = sparks.settings.frame_end = 1
    sparks.settings.physics_type = "NO"
    sparks.settings.render_type = "OBJECT"
    sparks.settings.instance_object = pebble


def build_particle_physics() -> None:
    """Particle settings whose structs travel: a flock with a boid brain of two states (a goal rule aiming
    at a target), drops with fluid (SPH) settings, and hair with a clump curve, effector weights, a wind
    force field and a texture slot (a texture, not the first slot)."""
    target = link(bpy.data.objects.new("Target", None))
    ground = link(bpy.data.objects.new("Field", triangle_mesh("Field")))

    def emitter(modifier: str, name: str, count: int, physics: str) -> bpy.types.ParticleSettings:
        settings = ground.modifiers.new(modifier, "PARTICLE_SYSTEM").particle_system.settings
        settings.name, settings.count, settings.render_type = name, count, "NONE"  # places nothing
        settings.physics_type = physics
        return settings

    flock = emitter("Birds", "Flock", 3, "BOIDS")
    flock.boids.air_speed_max = 7.5
    with bpy.context.temp_override(particle_settings=flock):
        bpy.ops.boid.state_add()
        bpy.ops.boid.rule_add(type="GOAL")
    hunting = flock.boids.states[1]
    hunting.name = "Hunting"
    hunting.ruleset_type = "RANDOM"
    hunting.rules[-1].object = target
    hunting.rules[-1].use_predict = True
    drops = emitter("Rain", "Drops", 2, "FLUID")
    drops.fluid.stiffness = 2.5
    drops.fluid.solver = "CLASSICAL"
    hair = ground.modifiers.new("Tufts", "PARTICLE_SYSTEM").particle_system.settings
    hair.name = "Tufts"
    hair.type = "HAIR"
    hair.count = 4
    hair.child_type = "INTERPOLATED"
    hair.use_clump_curve = True
    hair.clump_curve.curves[0].points.new(0.5, 0.8)
    hair.effector_weights.gravity = 0.25
    hair.force_field_1.type = "WIND"
    hair.force_field_1.strength = 2.0
    slot = hair.texture_slots.create(2)
    slot.texture = bpy.data.textures.new("Patches", "CLOUDS")
    slot.use_map_length = True
    slot.length_factor = 0.5


def build_pointcloud() -> None:
    """A point cloud of six points with positions, radii and a colour attribute, and a material."""
    from blender_addon.sync.kinds.pointclouds import new_pointcloud

    pc = new_pointcloud(6)
    pc.name = "Stars"
    pc.attributes["position"].data.foreach_set("vector", [c for i in range(6) for c in (i, i * 0.5, 1.0)])
    pc.attributes.new("radius", "FLOAT", "POINT").data.foreach_set(
        "value", [0.05 * (i + 1) for i in range(6)]
    )
    pc.attributes.new("glow", "FLOAT_COLOR", "POINT").data.foreach_set("color", [0.9, 0.8, 0.1, 1.0] * 6)
    pc.materials.append(bpy.data.materials.new("Starlight"))
    link(bpy.data.objects.new("Stars", pc)).location = (0.0, 0.0, 3.0)


def build_hair_curves() -> None:
    """Hair curves on a surface: two curves of three and two points, radii, a curve attribute, settings."""
    surface = link(bpy.data.objects.new("Scalp", triangle_mesh("Scalp")))
    hair = bpy.data.hair_curves.new("Fur")
    hair.add_curves([3, 2])
    hair.attributes["position"].data.foreach_set(
        "vector", [0, 0, 0, 0, 0, 0.5, 0.1, 0, 1, 1, 0, 0, 1, 0.2, 0.4]
    )
    hair.attributes.new("radius", "FLOAT", "POINT").data.foreach_set("value", [0.02, 0.015, 0.01, 0.02, 0.01])
    hair.attributes.new("clump", "FLOAT", "CURVE").data.foreach_set("value", [0.25, 0.75])
    hair.surface = surface
    hair.use_mirror_x = True
    hair.materials.append(bpy.data.materials.new("FurColour"))
    link(bpy.data.objects.new("Fur", hair)).parent = surface


def write_vdb() -> str:
    """A small .vdb file (a 4x4x4 density cube made by geometry nodes) in a new temporary folder."""
    group = bpy.data.node_groups.new("MakeFog", "GeometryNodeTree")
    group.interface.new_socket("Geometry", in_out="OUTPUT", socket_type="NodeSocketGeometry")
    cube = group.nodes.new("GeometryNodeVolumeCube")
    for axis in "XYZ":
        cube.inputs[f"Resolution {axis}"].default_value = 4
    group.links.new(cube.outputs[0], group.nodes.new("NodeGroupOutput").inputs[0])
    maker = link(bpy.data.objects.new("MakeFog", bpy.data.volumes.new("MakeFog")))
    maker.modifiers.new("Fog", "NODES").node_group = group
    bpy.context.view_layer.update()
    path = os.path.join(tempfile.mkdtemp(prefix="vdb-"), "fog.vdb")
    maker.evaluated_get(bpy.context.evaluated_depsgraph_get()).data.grids.save(path)
    volume = maker.data
    bpy.data.objects.remove(maker)
    bpy.data.batch_remove([volume, group])
    return path


def build_volume() -> None:
    """A volume read from a .vdb file on disk, with display and render settings and a material."""
    vol = bpy.data.volumes.new("Fog")
    vol.filepath = write_vdb()
    vol.display.density = 0.5
    vol.render.step_size = 0.25
    vol.materials.append(bpy.data.materials.new("Smoke"))
    link(bpy.data.objects.new("Fog", vol)).location = (-3.0, 0.0, 0.0)


def build_custom_normals() -> None:
    """A mesh with custom split normals (stored in its ``custom_normal`` corner attribute)."""
    me = triangle_mesh("Shaded")
    me.normals_split_custom_set([(0.0, 0.6, 0.8)] * 3 + [(0.6, 0.0, 0.8)] * 3)
    link(bpy.data.objects.new("Shaded", me))


def build_text() -> None:
    text = bpy.data.texts.new("notes.py")
    text.from_string("import bpy\n\nprint('shared notes')\n")
    bpy.data.texts.new("empty.txt")


def build_metaball() -> None:
    """Metaball data with several element types, settings and a material."""
    mb = bpy.data.metaballs.new("Blobs")
    mb.resolution = 0.15
    mb.threshold = 0.8
    ball = mb.elements.new(type="BALL")
    ball.co = (0.0, 0.0, 0.5)
    ball.radius = 1.25
    capsule = mb.elements.new(type="CAPSULE")
    capsule.co = (1.0, 0.5, 0.0)
    capsule.size_x = 0.75
    capsule.rotation = (0.9238795, 0.0, 0.3826834, 0.0)
    hole = mb.elements.new(type="ELLIPSOID")
    hole.use_negative = True
    hole.stiffness = 3.5
    mb.materials.append(bpy.data.materials.new("Goo"))
    link(bpy.data.objects.new("Blobs", mb)).location = (0, 3, 0)


def build_lattice() -> None:
    """A deformed lattice and a mesh bent by it through a modifier."""
    lattice = bpy.data.lattices.new("Cage")
    lattice.points_u, lattice.points_v, lattice.points_w = 3, 3, 2
    lattice.interpolation_type_u = "KEY_LINEAR"
    lattice.use_outside = True
    lattice.points[4].co_deform = (0.1, 0.2, -0.9)
    lattice.points[17].co_deform.z += 0.5
    lattice.points[2].weight_softbody = 0.25
    cage = link(bpy.data.objects.new("Cage", lattice))
    cage.scale = (2.0, 2.0, 1.0)
    ob = link(bpy.data.objects.new("Bent", triangle_mesh("Bent")))
    mod = ob.modifiers.new("Lattice", "LATTICE")
    mod.object = cage
    mod.strength = 0.75


def build_lightprobe() -> None:
    """One light probe of each type with settings of its own."""
    sphere = bpy.data.lightprobes.new("Sphere", "SPHERE")
    sphere.influence_distance = 3.5
    sphere.clip_start = 0.25
    plane = bpy.data.lightprobes.new("Plane", "PLANE")
    plane.influence_distance = 0.5
    volume = bpy.data.lightprobes.new("Volume", "VOLUME")
    volume.resolution_x = 6
    volume.intensity = 1.5
    for i, probe in enumerate((sphere, plane, volume)):
        link(bpy.data.objects.new(probe.name, probe)).location = (i * 2.0, -3.0, 1.0)


def write_wav(path: str, seconds: float = 0.05, rate: int = 8000, pitch: float = 440.0) -> None:
    frames = b"".join(
        struct.pack("<h", int(12000 * math.sin(2 * math.pi * pitch * i / rate)))
        for i in range(int(seconds * rate))
    )
    with wave.open(path, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(frames)


def packed_sound(name: str, pitch: float = 440.0) -> bpy.types.Sound:
    fd, path = tempfile.mkstemp(suffix=".wav")
    os.close(fd)
    try:
        write_wav(path, pitch=pitch)
        sound = bpy.data.sounds.load(path, check_existing=False)
        sound.pack()
    finally:
        os.remove(path)
    sound.name = name
    return sound


def build_speaker() -> None:
    """A packed sound played by a speaker."""
    sound = packed_sound("Beep")
    sound.use_mono = True
    speaker = bpy.data.speakers.new("Radio")
    speaker.sound = sound
    speaker.volume = 0.5
    speaker.pitch = 1.25
    speaker.cone_angle_outer = math.radians(200)
    link(bpy.data.objects.new("Radio", speaker)).location = (0, 0, 2)


def build_texture() -> None:
    """Procedural and image textures, one of them driving a displace modifier."""
    clouds = bpy.data.textures.new("Clouds", type="CLOUDS")
    clouds.noise_scale = 0.4
    clouds.noise_depth = 3
    clouds.intensity = 1.2
    picture = bpy.data.textures.new("Picture", type="IMAGE")
    picture.image = bpy.data.images.new("Checker", 8, 8)
    picture.image.generated_type = "COLOR_GRID"
    picture.extension = "REPEAT"
    ob = link(bpy.data.objects.new("Bumpy", triangle_mesh("Bumpy")))
    mod = ob.modifiers.new("Displace", "DISPLACE")
    mod.texture = clouds
    mod.strength = 0.3


def build_shape_keys() -> None:
    """A mesh with a basis and three shape keys: values, slider ranges, a relative key, a vertex group."""
    me = triangle_mesh("Face")
    ob = link(bpy.data.objects.new("Face", me))
    ob.vertex_groups.new(name="Top").add([3], 1.0, "REPLACE")
    ob.shape_key_add(name="Basis", from_mix=False)
    smile = ob.shape_key_add(name="Smile", from_mix=False)
    smile.data[3].co = (1.0, 1.0, 1.5)
    smile.slider_min = -0.5
    smile.slider_max = 2.0
    smile.value = 1.25
    wide = ob.shape_key_add(name="Wide", from_mix=False)
    wide.data[1].co = (2.0, 0.0, 0.0)
    wide.relative_key = smile
    wide.vertex_group = "Top"
    wide.interpolation = "KEY_CARDINAL"
    wide.value = 0.5
    muted = ob.shape_key_add(name="Muted", from_mix=False)
    muted.mute = True
    me.shape_keys.use_relative = True


def build_node_group() -> None:
    """A shader node group with an interface (sockets in a panel), used by a material and by another group."""
    tint = bpy.data.node_groups.new("Tint", "ShaderNodeTree")
    iface = tint.interface
    # Removed at once: the identifiers here (Socket_1...) then differ from a fresh replica's (Socket_0...).
    iface.remove(iface.new_socket("Old", in_out="INPUT", socket_type="NodeSocketFloat"))
    iface.new_socket("Color", in_out="INPUT", socket_type="NodeSocketColor")
    panel = iface.new_panel("Settings", default_closed=True)
    amount = iface.new_socket("Amount", in_out="INPUT", socket_type="NodeSocketFloat", parent=panel)
    amount.default_value = 0.5
    amount.min_value = 0.0
    amount.max_value = 1.0
    amount.subtype = "FACTOR"
    iface.new_socket("Result", in_out="OUTPUT", socket_type="NodeSocketColor")
    nodes = tint.nodes
    group_in = nodes.new("NodeGroupInput")
    group_out = nodes.new("NodeGroupOutput")
    group_out.location = (400, 0)
    mix = nodes.new("ShaderNodeMix")
    mix.data_type = "RGBA"
    mix.blend_type = "MULTIPLY"
    mix.inputs["B"].default_value = (1.0, 0.5, 0.25, 1.0)
    tint.links.new(group_in.outputs["Color"], mix.inputs["A"])
    tint.links.new(group_in.outputs["Amount"], mix.inputs["Factor"])
    tint.links.new(mix.outputs["Result"], group_out.inputs["Result"])
    # A group using the first one (groups may arrive in any order).
    outer = bpy.data.node_groups.new("Outer", "ShaderNodeTree")
    outer.interface.new_socket("Shade", in_out="OUTPUT", socket_type="NodeSocketColor")
    inner = outer.nodes.new("ShaderNodeGroup")
    inner.node_tree = tint
    inner.inputs["Amount"].default_value = 0.8
    outer.links.new(inner.outputs["Result"], outer.nodes.new("NodeGroupOutput").inputs["Shade"])
    mat = bpy.data.materials.new("Tinted")
    tree = mat.node_tree
    node = tree.nodes.new("ShaderNodeGroup")
    node.node_tree = tint
    node.inputs["Color"].default_value = (0.2, 0.8, 0.2, 1.0)
    node.inputs["Amount"].default_value = 0.3
    tree.links.new(node.outputs["Result"], tree.nodes["Principled BSDF"].inputs["Base Color"])
    other = tree.nodes.new("ShaderNodeGroup")
    other.node_tree = outer
    other.location = (-300, -300)
    me = triangle_mesh("Tinted")
    me.materials.append(mat)
    link(bpy.data.objects.new("Tinted", me))


def build_armature() -> bpy.types.Object:
    """An armature built in edit mode (connected, parented and rolled bones) and a posed rig object."""
    arm = bpy.data.armatures.new("Skeleton")
    arm.display_type = "ENVELOPE"
    rig = link(bpy.data.objects.new("Rig", arm))
    view_layer = bpy.context.view_layer
    view_layer.objects.active = rig
    with bpy.context.temp_override(
        window=bpy.context.window_manager.windows[0], view_layer=view_layer, active_object=rig, object=rig
    ):
        bpy.ops.object.mode_set(mode="EDIT")
        root = arm.edit_bones.new("Root")
        root.tail = (0.0, 0.0, 1.0)
        root.roll = 0.3
        spine = arm.edit_bones.new("Spine")
        spine.head = (0.0, 0.0, 1.0)
        spine.tail = (0.0, 0.25, 2.0)
        spine.parent = root
        spine.use_connect = True
        spine.roll = -1.1
        hand = arm.edit_bones.new("Hand")
        hand.head = (0.5, 0.0, 1.5)
        hand.tail = (1.5, 0.0, 1.5)
        hand.parent = spine
        hand.use_deform = False
        hand.envelope_distance = 0.4
        hand.head_radius = 0.2
        bpy.ops.object.mode_set(mode="OBJECT")
    pose = rig.pose.bones
    pose["Spine"].rotation_quaternion = (0.9238795, 0.3826834, 0.0, 0.0)
    pose["Hand"].rotation_mode = "XYZ"
    pose["Hand"].rotation_euler = (0.0, 0.5, 0.0)
    pose["Hand"].location = (0.0, 0.1, 0.0)
    pose["Root"].scale = (1.0, 1.5, 1.0)
    skinned = link(bpy.data.objects.new("Skinned", triangle_mesh("Skinned")))
    skinned.modifiers.new("Armature", "ARMATURE").object = rig
    return rig


def build_animated(count: int = 5, frames: int = 100, rig: bool = True) -> None:
    """A scene whose animation writes on every frame: ``count`` empties with location and rotation
    F-curves (one channel of each left static) and (``rig``) a rig with an animated pose bone and an
    animated shape key value; keys on frame 1 and ``frames``."""
    scene = bpy.context.scene
    for i in range(count):
        ob = link(bpy.data.objects.new(f"Anim{i}", None))
        ob.scale = (1.0, 1.0 + i, 1.0)  # never animated: stays an edit like any other
        for frame, (y, spin) in ((1, (0.0, 0.0)), (frames, (5.0, 3.0))):
            ob.location = (float(i), y, 1.0)
            ob.keyframe_insert("location", index=1, frame=frame)
            ob.rotation_euler = (0.0, 0.0, spin)
            ob.keyframe_insert("rotation_euler", index=2, frame=frame)
    if not rig:
        scene.frame_set(1)
        return
    hand = build_armature().pose.bones["Hand"]  # by object: a linked character may also have a "Rig"
    build_shape_keys()
    smile = bpy.data.meshes["Face"].shape_keys.key_blocks["Smile"]
    for frame, value in ((1, 0.0), (frames, 1.0)):
        hand.location = (0.0, value, 0.0)
        hand.keyframe_insert("location", frame=frame)
        smile.value = value
        smile.keyframe_insert("value", frame=frame)
    scene.frame_set(1)


def add_driver(owner, path: str, index: int, expression: str, variables) -> None:
    """A scripted driver on ``owner``'s ``path``; ``variables``: (name, type, [target settings...])."""
    fc = owner.animation_data_create().drivers.new(path, index=index)
    fc.driver.type = "SCRIPTED"
    fc.driver.expression = expression
    for name, var_type, targets in variables:
        var = fc.driver.variables.new()
        var.name = name
        var.type = var_type
        for target, settings in zip(var.targets, targets, strict=False):
            for attr, value in settings.items():
                setattr(target, attr, value)


def build_custom_props() -> None:
    """Custom properties of every value type on an object, its mesh, a material, a light, a camera, an
    armature with a bone and a pose bone; drivers reading them (object, light, camera, material,
    armature, and a shape key driven by a pose bone's rotation)."""
    rig = build_armature()  # by object: a linked character may also have a "Rig"
    arm = rig.data
    build_shape_keys()
    face = bpy.data.objects["Face"]
    face["int"] = 7
    face["float"] = 0.25
    face.id_properties_ui("float").update(min=0.0, max=2.0, description="a slider")
    face["text"] = 'hello / % "quoted"'
    face["floats"] = [1.0, 2.5, -3.0]
    face["ints"] = [1, 2, 3]
    face["flag"] = True
    face["group"] = {"a": 1, "nested": {"b": [0.5, 1.5], "c": "x"}}
    face["big"] = 2**31 - 1
    face["target"] = rig
    face.data["mesh_prop"] = 3.5
    mat = bpy.data.materials.new("Props")
    mat["mat_prop"] = "glossy"
    light = bpy.data.lights.new("PropLight", "POINT")
    light["light_prop"] = 2.0
    link(bpy.data.objects.new("PropLight", light))
    cam = bpy.data.cameras.new("PropCam")
    cam["cam_prop"] = 1
    link(bpy.data.objects.new("PropCam", cam))
    arm["arm_prop"] = 0.5
    arm.bones["Hand"]["bone_prop"] = 4
    rig.pose.bones["Hand"]["ik_fk"] = 1.0
    rig.pose.bones["Hand"].id_properties_ui("ik_fk").update(min=0.0, max=1.0)
    prop = [{"id_type": "OBJECT", "id": face, "data_path": '["float"]'}]
    add_driver(face, "location", 2, "f * 4", [("f", "SINGLE_PROP", prop)])
    add_driver(light, "energy", 0, "100 + f", [("f", "SINGLE_PROP", prop)])
    add_driver(cam, "lens", 0, "30 + f", [("f", "SINGLE_PROP", prop)])
    add_driver(mat, "roughness", 0, "f / 2", [("f", "SINGLE_PROP", prop)])
    add_driver(arm, 'bones["Root"].bbone_x', 0, "f", [("f", "SINGLE_PROP", prop)])
    hand = [{"id": rig, "bone_target": "Hand", "transform_type": "ROT_Y", "transform_space": "LOCAL_SPACE"}]
    add_driver(face.data.shape_keys, 'key_blocks["Wide"].value', 0, "r * 2", [("r", "TRANSFORMS", hand)])


def build_rig() -> None:
    """A character: an arm of three bones (bone collections, a custom bone shape, B-Bone settings) with
    an IK constraint to a target empty and a Copy Rotation on the hand, pose bone custom properties, a
    skinned mesh (vertex groups with weights, an armature modifier), a shape key driven by a pose bone,
    an empty parented to a bone, and a camera with a Track To constraint."""
    arm = bpy.data.armatures.new("CharRig")
    rig = link(bpy.data.objects.new("Char", arm))
    view_layer = bpy.context.view_layer
    view_layer.objects.active = rig
    with bpy.context.temp_override(
        window=bpy.context.window_manager.windows[0], view_layer=view_layer, active_object=rig, object=rig
    ):
        bpy.ops.object.mode_set(mode="EDIT")
        upper = arm.edit_bones.new("Upper")
        upper.head, upper.tail = (0.0, 0.0, 0.0), (0.0, 0.0, 1.0)
        lower = arm.edit_bones.new("Lower")
        lower.head, lower.tail = (0.0, 0.0, 1.0), (0.0, 0.3, 2.0)
        lower.parent, lower.use_connect = upper, True
        hand = arm.edit_bones.new("Hand")
        hand.head, hand.tail = (0.0, 0.3, 2.0), (0.0, 0.3, 2.5)
        hand.parent, hand.use_connect = lower, True
        bpy.ops.object.mode_set(mode="OBJECT")
    arm.bones["Lower"].bbone_segments = 4
    arm.bones["Lower"].bbone_x = 0.2
    arm.bones["Lower"].bbone_easein = 1.5
    # Custom B-Bone handles: the curve follows other bones than its parent and child.
    arm.bones["Lower"].bbone_handle_type_start = "ABSOLUTE"
    arm.bones["Lower"].bbone_custom_handle_start = arm.bones["Upper"]
    arm.bones["Lower"].bbone_handle_type_end = "TANGENT"
    arm.bones["Lower"].bbone_custom_handle_end = arm.bones["Hand"]
    deform = arm.collections.new("Deform")
    controls = arm.collections.new("Controls", parent=deform)
    controls.is_visible = False
    for name in ("Upper", "Lower"):
        deform.assign(arm.bones[name])
    controls.assign(arm.bones["Hand"])
    widget = link(bpy.data.objects.new("Widget", None))
    widget.empty_display_type = "CIRCLE"
    target = link(bpy.data.objects.new("HandTarget", None))
    target.location = (0.0, 1.5, 1.2)
    pose = rig.pose.bones
    pose["Hand"].custom_shape = widget
    pose["Hand"].custom_shape_scale_xyz = (2.0, 2.0, 2.0)
    pose["Lower"].bbone_curveinx = 0.3
    ik = pose["Lower"].constraints.new("IK")
    ik.target = target
    ik.chain_count = 2
    copy = pose["Hand"].constraints.new("COPY_ROTATION")
    copy.target = rig
    copy.subtarget = "Upper"
    copy.influence = 0.5
    limit = pose["Hand"].constraints.new("LIMIT_ROTATION")
    limit.use_limit_x = True
    pose["Hand"]["ik_fk"] = 1.0
    pose["Hand"].id_properties_ui("ik_fk").update(min=0.0, max=1.0)
    pose["Upper"]["stretch"] = 0.25
    pose["Upper"].rotation_mode = "XYZ"
    pose["Upper"].rotation_euler = (0.3, 0.0, 0.0)
    # The skin: a column of vertices weighted to the three bones.
    me = bpy.data.meshes.new("Skin")
    verts = [(x, 0.0, z * 0.25) for z in range(11) for x in (-0.2, 0.2)]
    faces = [(2 * i, 2 * i + 1, 2 * i + 3, 2 * i + 2) for i in range(10)]
    me.from_pydata(verts, [], faces)
    skin = link(bpy.data.objects.new("Skin", me))
    for bone, (start, end) in (("Upper", (0, 10)), ("Lower", (6, 18)), ("Hand", (16, 22))):
        group = skin.vertex_groups.new(name=bone)
        for i in range(start, end):
            group.add([i], 0.5 + 0.5 * ((i - start) / (end - start)), "REPLACE")
    skin.vertex_groups["Upper"].lock_weight = True
    skin.modifiers.new("Armature", "ARMATURE").object = rig
    skin.parent = rig
    skin.shape_key_add(name="Basis", from_mix=False)
    bulge = skin.shape_key_add(name="Bulge", from_mix=False)
    for i in range(6, 12):
        bulge.data[i].co.x *= 2.0
    bend = [{"id": rig, "bone_target": "Lower", "transform_type": "ROT_X", "transform_space": "LOCAL_SPACE"}]
    add_driver(me.shape_keys, 'key_blocks["Bulge"].value', 0, "abs(r)", [("r", "TRANSFORMS", bend)])
    prop = [{"id_type": "OBJECT", "id": rig, "data_path": 'pose.bones["Hand"]["ik_fk"]'}]
    add_driver(rig, 'pose.bones["Lower"].constraints["IK"].influence', 0, "v", [("v", "SINGLE_PROP", prop)])
    held = link(bpy.data.objects.new("Held", None))
    held.parent = rig
    held.parent_type = "BONE"
    held.parent_bone = "Hand"
    cam = link(bpy.data.objects.new("RigCam", bpy.data.cameras.new("RigCam")))
    cam.location = (5.0, -5.0, 2.0)
    track = cam.constraints.new("TRACK_TO")
    track.target = rig
    track.subtarget = "Hand"
    cam.constraints.new("LIMIT_DISTANCE").target = target
    cam.constraints.move(1, 0)


def add_extras(id_data: bpy.types.ID, expression: str = "2 * base") -> bool:
    """Custom properties (a float with UI data, a string, an array, a group) and, when the datablock has
    animation data, a driver: ``gain`` = ``expression`` of ``base``, read from the datablock itself.
    Whether it has one."""
    id_data["base"] = 1.5
    id_data.id_properties_ui("base").update(min=0.0, max=10.0, description="the base value")
    id_data["note"] = "take 3"
    id_data["offsets"] = [1, 2, 3]
    id_data["settings"] = {"mode": "fast", "level": 2}
    if not hasattr(id_data, "animation_data"):
        return False
    id_data["gain"] = 0.0
    target = {"id_type": id_data.id_type, "id": id_data, "data_path": '["base"]'}
    add_driver(id_data, '["gain"]', 0, expression, [("base", "SINGLE_PROP", [target])])
    return True


def build_extras() -> None:
    """Every other builder's scene with custom properties and drivers (add_extras) on every datablock.

    But build_scene's: with several scenes, an object's view-layer hide is read in whichever scene is the
    window's, which a replica need not share.
    """
    from blender_addon.sync.index import index_all

    done = {build_scene, build_extras}
    for build, _kind in BUILDERS.values():
        if build not in done:
            done.add(build)
            build()
    for _kind, id_data in index_all().values():
        # Driven to what a property that is not evaluated holds (a datablock that no scene shows is
        # evaluated by neither side).
        add_extras(id_data, expression="base - 1.5")
    evaluate_scenes()


BUILDERS = {
    "object": (build_object, "obj"),
    "mesh": (build_mesh, "mesh"),
    "modifiers": (build_modifiers, "obj"),
    "material": (build_material, "mat"),
    "light": (build_light, "light"),
    "camera": (build_camera, "cam"),
    "collection": (build_collection, "coll"),
    "scene": (build_scene, "scene"),
    "view_layers": (build_view_layers, "scene"),
    "world": (build_world, "world"),
    "image": (build_image, "img"),
    "action": (build_action, "action"),
    "curve": (build_curve, "curve"),
    "font": (build_font, "curve"),
    "text": (build_text, "text"),
    "fonts": (build_fonts, "font"),
    "grease_pencil": (build_grease_pencil, "gpencil"),
    "movieclip": (build_movieclip, "clip"),
    "cache_file": (build_cache_file, "cache"),
    "mask": (build_mask, "mask"),
    "linestyle": (build_linestyle, "linestyle"),
    "library": (build_library, "lib"),
    "instancing": (build_instancing, "obj"),
    "override": (build_override, "obj"),
    "linked_pointers": (build_linked_pointers, "obj"),
    "particles": (build_particles, "part"),
    "particle_physics": (build_particle_physics, "part"),
    "pointcloud": (build_pointcloud, "pcloud"),
    "hair_curves": (build_hair_curves, "hair"),
    "volume": (build_volume, "volume"),
    "custom_normals": (build_custom_normals, "mesh"),
    "metaball": (build_metaball, "mball"),
    "lattice": (build_lattice, "lattice"),
    "lightprobe": (build_lightprobe, "lprobe"),
    "speaker": (build_speaker, "speaker"),
    "sound": (build_speaker, "sound"),
    "texture": (build_texture, "tex"),
    "shape_keys": (build_shape_keys, "mesh"),
    "lattice_curve_shapes": (build_lattice_curve_shapes, "lattice"),
    "curve_mappings": (build_curve_mappings, "ngroup"),
    "text_boxes": (build_text_boxes, "curve"),
    "image_users": (build_image_users, "tex"),
    "texture_nodes": (build_texture_nodes, "tex"),
    "node_group": (build_node_group, "ngroup"),
    "armature": (build_armature, "arm"),
    "geometry_nodes": (build_geometry_nodes, "ngroup"),
    "node_items": (build_node_items, "ngroup"),
    "animated": (lambda: build_animated(count=2), "action"),
    "custom_props": (build_custom_props, "obj"),
    "rig": (build_rig, "obj"),
    "extras": (build_extras, "scene"),
    "nla": (build_nla, "obj"),
    "data_animation": (build_data_animation, "light"),
    "driver_curves": (build_driver_curves, "obj"),
    "kind_animation": (build_every_kind_nla, "speaker"),
    "assigned_actions": (build_assigned_actions, "clip"),
    "physics": (build_physics, "obj"),
    "rigid_bodies": (build_rigid_bodies, "obj"),
    "udim_image": (build_udim_image, "img"),
    "dynamic_paint": (build_dynamic_paint, "obj"),
}


def _change_sound() -> None:
    """Replace the speaker's sound content (a different tone), keeping the datablock."""
    old = bpy.data.sounds["Beep"]
    new = packed_sound("Beep.new", pitch=660.0)
    uuid = old.get("blendsync_uuid")
    old.user_remap(new)
    bpy.data.sounds.remove(old)
    new.name = "Beep"
    new["blendsync_uuid"] = uuid


# One small edit per row: the scene hash must see it.
CHANGES = {
    "particle_physics": lambda: setattr(
        bpy.data.particles["Flock"].boids.states[1].rules[-1], "use_predict", False
    ),
    "view_layers": lambda: setattr(bpy.data.scenes[0].view_layers["Shadow"], "use_pass_emit", True),
    "metaball": lambda: setattr(bpy.data.metaballs["Blobs"].elements[1], "size_x", 0.5),
    "lattice": lambda: setattr(bpy.data.lattices["Cage"].points[4], "co_deform", (0.1, 0.2, -0.5)),
    "lightprobe": lambda: setattr(bpy.data.lightprobes["Volume"], "resolution_x", 7),
    "speaker": lambda: setattr(bpy.data.speakers["Radio"], "pitch", 1.5),
    "sound": _change_sound,
    "texture": lambda: setattr(bpy.data.textures["Clouds"], "noise_scale", 0.5),
    "fonts": lambda: setattr(bpy.data.fonts["Packed"], "name", "Renamed"),
    "movieclip": lambda: setattr(bpy.data.movieclips["Plate"], "frame_offset", 3),
    "cache_file": lambda: setattr(bpy.data.cache_files["Rise"], "frame_offset", 2.0),
    "mask": lambda: setattr(bpy.data.masks["Roto"].layers["Garbage"].splines[0].points[1], "co", (0.7, 0.3)),
    "linestyle": lambda: setattr(
        bpy.data.linestyles["Ink"].color_modifiers["Fade"].color_ramp.elements[1], "position", 0.6
    ),
    "library": lambda: bpy.data.collections["Set"].children.unlink(bpy.data.collections["Props"]),
    "instancing": lambda: setattr(bpy.data.objects["KitPlacer"], "instance_collection", None),
    "particles": lambda: setattr(bpy.data.particles["Grass"], "hair_length", 0.75),
    "pointcloud": lambda: setattr(bpy.data.pointclouds["Stars"].attributes["radius"].data[2], "value", 0.5),
    "hair_curves": lambda: bpy.data.hair_curves["Fur"].attributes["clump"].data[1].__setattr__("value", 0.5),
    "volume": lambda: setattr(bpy.data.volumes["Fog"].display, "density", 0.75),
    "custom_normals": lambda: bpy.data.meshes["Shaded"].normals_split_custom_set([(0.0, 0.0, 1.0)] * 6),
    "override": lambda: setattr(override_of("Rig").pose.bones["Lower"], "location", (0, 0.5, 0)),
    "grease_pencil": lambda: (
        bpy.data.grease_pencils["Sketch"]
        .layers["Lines"]
        .frames[0]
        .drawing.attributes["radius"]
        .data[1]
        .__setattr__("value", 0.4)
    ),
    "shape_keys": lambda: setattr(bpy.data.meshes["Face"].shape_keys.key_blocks["Smile"], "value", 0.75),
    "lattice_curve_shapes": lambda: setattr(
        bpy.data.lattices["Squeeze"].shape_keys.key_blocks["Squash"], "value", 1
    ),
    "node_group": lambda: setattr(
        bpy.data.node_groups["Tint"].nodes["Mix"].inputs["B"], "default_value", (0.0, 0.0, 1.0, 1.0)
    ),
    "armature": lambda: setattr(bpy.data.armatures["Skeleton"].bones["Hand"], "envelope_weight", 0.5),
    "geometry_nodes": lambda: setattr(
        bpy.data.node_groups["Deform"].nodes["Combine XYZ"].inputs["X"], "default_value", 1.0
    ),
    "node_items": lambda: setattr(
        bpy.data.node_groups["Items"].nodes["Capture Attribute"].capture_items["Idx"], "name", "Number"
    ),
    "physics": lambda: setattr(bpy.data.objects["Sheet"].modifiers["Cloth"].settings, "mass", 0.25),
    "rigid_bodies": lambda: setattr(bpy.data.objects["Crate"].rigid_body, "friction", 0.9),
    "udim_image": lambda: setattr(bpy.data.images["Skin"].tiles[0], "label", "Body"),
    "dynamic_paint": lambda: setattr(
        bpy.data.objects["Brush"].modifiers["Paint"].brush_settings, "paint_alpha", 0.3
    ),
}


def build_everything() -> None:
    done = set()
    for build, _kind in BUILDERS.values():
        if build not in done and build is not build_extras:  # one builder may stand for two rows
            done.add(build)
            build()
    evaluate_scenes()  # as an artist sees it: animation and drivers written
