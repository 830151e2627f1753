"""Scene builders for animation beyond an object's own action (kept apart from scene_builders.py, which
lists them): NLA tracks and strips, animation of object data, materials and worlds, drivers' own
F-curves."""

from __future__ import annotations

import bpy


def keyed_action(name: str, id_type: str, slot_name: str, data_path: str, points: list[float]):
    """An action with one slot and one F-curve on ``data_path`` (index 0) through ``points`` (frame,
    value, ...); returns the action."""
    action = bpy.data.actions.new(name)
    slot = action.slots.new(id_type=id_type, name=slot_name)
    bag = action.layers.new("Layer").strips.new(type="KEYFRAME").channelbag(slot, ensure=True)
    curve = bag.fcurves.new(data_path, index=0)
    curve.keyframe_points.add(len(points) // 2)
    curve.keyframe_points.foreach_set("co", points)
    return action


def build_nla() -> None:
    """NLA: an object with two tracks (one muted) of action strips (repeat, scale, blending, a reversed
    strip) and no active action, and shape keys with a track of their own."""
    ob = bpy.data.objects.new("Dancer", None)
    bpy.context.scene.collection.objects.link(ob)
    walk = keyed_action("Walk", "OBJECT", "Dancer", "location", [1.0, 3.0, 10.0, 2.0])
    wave = walk.copy()
    wave.name = "Wave"
    ad = ob.animation_data_create()
    base = ad.nla_tracks.new()
    base.name = "Base"
    first = base.strips.new("Walk", 1, walk)
    first.repeat = 2.0
    first.blend_out = 2.0
    later = base.strips.new("Walk back", 40, walk)
    later.use_reverse = True
    later.scale = 0.5
    top = ad.nla_tracks.new(prev=base)
    top.name = "Layer on top"
    top.mute = True
    added = top.strips.new("Wave", 5, wave)
    added.blend_type = "ADD"
    added.influence = 0.5
    added.extrapolation = "HOLD_FORWARD"
    me = bpy.data.meshes.new("Mouth")
    me.from_pydata([(0, 0, 0), (1, 0, 0), (0, 1, 0)], [], [(0, 1, 2)])
    bpy.context.scene.collection.objects.link(bpy.data.objects.new("Mouth", me))
    bpy.data.objects["Mouth"].shape_key_add(name="Basis")
    smile = bpy.data.objects["Mouth"].shape_key_add(name="Smile", from_mix=False)
    smile.data[2].co = (0.0, 1.5, 0.0)
    anim = keyed_action("SmileAnim", "KEY", "Key", 'key_blocks["Smile"].value', [1.0, 0.6, 20.0, 1.0])
    me.shape_keys.animation_data_create().nla_tracks.new().strips.new("Smile", 1, anim)


def key(struct, attr: str, frames: dict[int, object]) -> None:
    """Keyframes of ``struct.attr`` as an artist sets them: go to the frame, set the value, insert a key
    (Blender makes the datablock's action and slot); back to the frame the scene was on, which evaluates
    the animation there."""
    scene = bpy.context.scene
    start = scene.frame_current
    for frame, value in frames.items():
        scene.frame_set(frame)
        setattr(struct, attr, value)
        struct.keyframe_insert(attr, frame=frame)
    scene.frame_set(start)


def build_data_animation(keyed: bool = True) -> None:
    """Object data with animation of its own: a light's energy, a camera's lens, a material's colour and
    a value node in its tree, a world's colour and its background strength (``keyed=False``: the same
    scene without keyframes)."""
    scene = bpy.context.scene
    light = bpy.data.lights.new("Lamp", "POINT")
    light.energy = 100.0
    scene.collection.objects.link(bpy.data.objects.new("Lamp", light))
    cam = bpy.data.cameras.new("Zoom")
    scene.collection.objects.link(bpy.data.objects.new("Zoom", cam))
    mat = bpy.data.materials.new("Glow")
    amount = mat.node_tree.nodes.new("ShaderNodeValue")
    amount.name = "Amount"
    mat.node_tree.links.new(amount.outputs[0], mat.node_tree.nodes["Principled BSDF"].inputs["Alpha"])
    me = bpy.data.meshes.new("Lit")
    me.from_pydata([(0, 0, 0), (1, 0, 0), (0, 1, 0)], [], [(0, 1, 2)])
    me.materials.append(mat)
    scene.collection.objects.link(bpy.data.objects.new("Lit", me))
    world = bpy.data.worlds.new("Sunset")
    scene.world = world
    if keyed:
        key_data_animation()


def key_data_animation() -> None:
    """The keyframes of :func:`build_data_animation` (frames 1 and 50; the energy cycles after 50)."""
    light = bpy.data.lights["Lamp"]
    key(light, "energy", {1: 100.0, 50: 1000.0})
    action = light.animation_data.action
    bag = action.layers[0].strips[0].channelbag(light.animation_data.action_slot)
    bag.fcurves.find("energy").modifiers.new("CYCLES")
    action.update_tag()  # as the graph editor does: evaluated with its new modifier
    key(bpy.data.cameras["Zoom"], "lens", {1: 20.0, 50: 80.0})
    mat = bpy.data.materials["Glow"]
    key(mat.node_tree.nodes["Amount"].outputs[0], "default_value", {1: 0.0, 50: 1.0})
    key(mat, "roughness", {1: 0.0, 50: 1.0})
    world = bpy.data.worlds["Sunset"]
    key(world, "color", {1: (0.0, 0.0, 0.0), 50: (1.0, 0.5, 0.25)})
    key(world.node_tree.nodes["Background"].inputs["Strength"], "default_value", {1: 1.0, 50: 3.0})


def build_driver_curves() -> None:
    """Drivers whose own F-curve maps their value: one through keyframes (0 -> 0, 1 -> 10, constant
    beyond), one through a Generator modifier (1 + 2x + 3x^2) beside a Noise modifier restricted to a
    range; both read the custom property ``amount`` (0.5) of the object they drive."""
    ob = bpy.data.objects.new("Mapped", None)
    bpy.context.scene.collection.objects.link(ob)
    ob["amount"] = 0.5
    for index in (0, 1):
        fc = ob.driver_add("location", index)
        fc.driver.type = "SUM"
        var = fc.driver.variables.new()
        var.name = "amount"
        var.targets[0].id = ob
        var.targets[0].data_path = '["amount"]'
    keyed = ob.animation_data.drivers.find("location", index=0)
    keyed.keyframe_points.clear()
    keyed.keyframe_points.add(2)
    keyed.keyframe_points.foreach_set("co", [0.0, 0.0, 1.0, 10.0])
    for point in keyed.keyframe_points:
        point.interpolation = "LINEAR"
    keyed.extrapolation = "CONSTANT"
    generated = ob.animation_data.drivers.find("location", index=1)
    generated.keyframe_points.clear()
    generator = generated.modifiers.new("GENERATOR")
    generator.poly_order = 2
    generator.coefficients = (1.0, 2.0, 3.0)
    noise = generated.modifiers.new("NOISE")
    noise.use_restricted_range = True
    noise.frame_start, noise.frame_end = 500.0, 600.0
    noise.strength = 0.25


def link_data(data: bpy.types.ID) -> bpy.types.Object:
    ob = bpy.data.objects.new(data.name, data)
    bpy.context.scene.collection.objects.link(ob)
    return ob


# What build_kind_animation animates, as (bpy.data collection or None for the window's scene, name, path).
KIND_ANIMATED = (
    ("curves", "Tube", "bevel_depth"),
    ("curves", "Tube", "extrude"),  # through an NLA track
    ("curves", "Tube", "splines[0].points[1].co"),
    ("armatures", "Bones", "display_type"),
    ("speakers", "Horn", "volume"),
    ("speakers", "Horn", "pitch"),  # through an NLA track
    (None, None, "audio_volume"),
    (None, None, "gravity"),
    ("metaballs", "Goo", "threshold"),
    ("metaballs", "Goo", "elements[0].radius"),
    ("meshes", "Bumpy", "vertices[2].co"),
    ("lattices", "Grid", "points[1].co_deform"),
    ("textures", "Noise", "noise_scale"),
    ("particles", "Dust", "hair_length"),
    ("grease_pencils", "Ink", 'layers["Lines"].opacity'),
    ("lightprobes", "Probe", "influence_distance"),
    ("volumes", "Mist", "render.clipping"),
    ("pointclouds", "Dots", '["glow"]'),
    ("hair_curves", "Strands", '["glow"]'),
)


def kind_animation_values() -> list:
    """The values KIND_ANIMATED names, as this Blender evaluates them now (plain floats and strings)."""
    out = []
    for collection, name, path in KIND_ANIMATED:
        if collection is None:
            owner = bpy.context.scene
        elif name is None:
            owner = next(iter(getattr(bpy.data, collection)), None)
            if owner is None:
                continue
        else:
            owner = getattr(bpy.data, collection)[name]
        value = owner.path_resolve(path)
        out.append(
            [round(v, 4) for v in value]
            if hasattr(value, "__len__") and not isinstance(value, str)
            else round(value, 4)
            if isinstance(value, float)
            else value
        )
    return out


def build_kind_animation() -> None:
    """Object data, a scene and other kinds animated by actions of their own (keys on frames 1 and 30),
    two of them (a curve's extrusion, a speaker's pitch) also through an NLA track: every value of
    KIND_ANIMATED."""
    from blender_addon.sync.kinds.pointclouds import new_pointcloud

    scene = bpy.context.scene
    curve = bpy.data.curves.new("Tube", type="CURVE")
    curve.splines.new("POLY").points.add(1)
    link_data(curve)
    key(curve, "bevel_depth", {1: 0.1, 30: 0.4})
    key(curve.splines[0].points[1], "co", {1: (1.0, 0.0, 0.0, 1.0), 30: (2.0, 1.0, 0.5, 1.0)})
    arm = bpy.data.armatures.new("Bones")
    link_data(arm)
    key(arm, "display_type", {1: "OCTAHEDRAL", 30: "STICK"})
    speaker = bpy.data.speakers.new("Horn")
    link_data(speaker)
    key(speaker, "volume", {1: 0.25, 30: 1.0})
    key(scene, "audio_volume", {1: 1.0, 30: 0.5})
    key(scene, "gravity", {1: (0.0, 0.0, -9.81), 30: (1.0, 0.0, -2.0)})
    goo = bpy.data.metaballs.new("Goo")
    goo.elements.new(type="BALL")
    link_data(goo)
    key(goo, "threshold", {1: 0.6, 30: 1.2})
    key(goo.elements[0], "radius", {1: 1.0, 30: 2.5})
    grid = bpy.data.lattices.new("Grid")
    link_data(grid)
    key(grid.points[1], "co_deform", {1: (0.5, -0.5, -0.5), 30: (0.9, 0.1, 0.3)})
    noise = bpy.data.textures.new("Noise", type="CLOUDS")
    bumpy = bpy.data.meshes.new("Bumpy")
    bumpy.from_pydata([(0, 0, 0), (1, 0, 0), (0, 1, 0)], [], [(0, 1, 2)])
    link_data(bumpy).modifiers.new("Displace", "DISPLACE").texture = noise
    key(noise, "noise_scale", {1: 0.25, 30: 2.0})
    key(bumpy.vertices[2], "co", {1: (0.0, 1.0, 0.0), 30: (0.5, 1.5, 1.0)})
    dust = link_data(bpy.data.meshes.new("Ground")).modifiers.new("Dust", "PARTICLE_SYSTEM").particle_system
    dust.settings.name = "Dust"
    key(dust.settings, "hair_length", {1: 0.5, 30: 1.5})
    ink = bpy.data.grease_pencils.new("Ink")
    ink.layers.new("Lines")
    link_data(ink)
    key(ink.layers["Lines"], "opacity", {1: 1.0, 30: 0.2})
    probe = bpy.data.lightprobes.new("Probe", "SPHERE")
    link_data(probe)
    key(probe, "influence_distance", {1: 1.0, 30: 4.0})
    mist = bpy.data.volumes.new("Mist")
    link_data(mist)
    key(mist.render, "clipping", {1: 0.001, 30: 0.25})
    dots = new_pointcloud(2)
    dots.name = "Dots"
    strands = bpy.data.hair_curves.new("Strands")
    strands.add_curves([2])
    for holder in (dots, strands):
        link_data(holder)
        holder["glow"] = 0.0
        key(holder, '["glow"]', {1: 0.0, 30: 3.0})
    # NLA: a track of one strip each, no active action.
    for owner, id_type, path, points in (
        (curve, "CURVE", "extrude", [1.0, 0.0, 30.0, 0.5]),
        (speaker, "SPEAKER", "pitch", [1.0, 1.0, 30.0, 2.0]),
    ):
        action = keyed_action(f"{owner.name}Strip", id_type, owner.name, path, points)
        track = owner.animation_data.nla_tracks.new()
        track.name = "Layered"
        track.strips.new("Strip", 1, action)
    scene.frame_set(scene.frame_current)


def build_every_kind_nla() -> None:
    """build_kind_animation, and a movie clip, a node group, a light, a camera, a material and a world of
    their own (no scene uses the last three); on every datablock of a kind with animation data that has no
    NLA track yet, a track ``Idle`` of one strip keying its custom property ``idle``, and a track on the
    material's and the world's node tree: every kind's ``anim``, ``nla``/``treenla`` and order keys."""
    from scene_builders import image_sequence  # scene_builders lists this module's rows

    from blender_addon.sync.index import index_all

    build_kind_animation()
    bpy.data.movieclips.load(image_sequence(), check_existing=False).name = "Idle clip"
    bpy.data.node_groups.new("Idle group", "ShaderNodeTree")
    link_data(bpy.data.lights.new("Idle lamp", "SPOT"))
    link_data(bpy.data.cameras.new("Idle camera"))
    bpy.data.materials.new("Idle material")
    bpy.data.worlds.new("Idle world")
    for _kind, id_data in index_all().values():
        if not hasattr(id_data, "animation_data") or (
            id_data.animation_data is not None and len(id_data.animation_data.nla_tracks)
        ):
            continue
        id_data["idle"] = 0.0
        action = keyed_action(
            f"Idle {id_data.name}", id_data.id_type, id_data.name, '["idle"]', [1.0, 0.0, 9.0, 1.0]
        )
        track = (id_data.animation_data or id_data.animation_data_create()).nla_tracks.new()
        track.name = "Idle"
        track.strips.new("Idle", 1, action)
    for owner in (bpy.data.materials["Idle material"], bpy.data.worlds["Idle world"]):
        # The embedded tree's own track (``treenla``): its first float socket, keyed flat.
        tree = owner.node_tree
        socket = next(
            s for n in tree.nodes for s in n.inputs if isinstance(getattr(s, "default_value", None), float)
        )
        value = socket.default_value
        path = socket.path_from_id("default_value")
        action = keyed_action(
            f"Idle {owner.name} tree", "NODETREE", tree.name, path, [1.0, value, 9.0, value]
        )
        track = tree.animation_data_create().nla_tracks.new()
        track.name = "Idle tree"
        track.strips.new("Idle tree", 1, action)
    bpy.context.scene.frame_set(bpy.context.scene.frame_current)


def build_assigned_actions() -> None:
    """An action assigned to datablocks of the kinds no other row animates with one of its own: a movie clip,
    a mask and a cache file (``anim``), a curve's shape keys (``shapeanim``), a node group and a line
    style's node tree (``treeanim``). Each keys one value flat, so that playing changes nothing: those links
    are keyed only while an action is assigned."""
    from scene_builders import alembic_file, image_sequence

    from blender_addon.sync.kinds.cache_files import open_cache_file

    cache = open_cache_file(alembic_file())
    cache.name = "Acted cache"
    clip = bpy.data.movieclips.load(image_sequence(), check_existing=False)
    clip.name = "Acted clip"
    for id_data in (clip, bpy.data.masks.new(name="Acted mask"), cache):
        id_data["acted"] = 0.0  # what a receiver holds until its animation is evaluated: none uses them
        id_data.keyframe_insert('["acted"]', frame=1)
    curve = bpy.data.curves.new("Acted curve", type="CURVE")
    curve.splines.new("POLY").points.add(2)
    ob = link_data(curve)
    ob.shape_key_add(name="Basis", from_mix=False)
    ob.shape_key_add(name="Lift", from_mix=False).keyframe_insert("value", frame=1)
    group = bpy.data.node_groups.new("Acted group", "ShaderNodeTree")
    group.nodes.new("ShaderNodeMath").inputs[0].keyframe_insert("default_value", frame=1)
    style = bpy.data.linestyles.new("Acted style")
    style.use_nodes = True
    socket = next(
        s
        for n in style.node_tree.nodes
        for s in n.inputs
        if isinstance(getattr(s, "default_value", None), float)
    )
    socket.keyframe_insert("default_value", frame=1)
