"""Random edits an artist makes to a scene, for the applier's fuzz test: each adds, removes or moves items in
one of the arrays and lists the applier rebuilds (modifiers, constraints, attributes, UV maps, vertex groups,
shape keys, keyframes, F-curve modifiers and an Envelope's points, NLA strips, bone collections, node links,
Grease Pencil layers and frames, colour ramps, curve mappings). An edit picks its target and what it does
from ``rng``; one that finds nothing to edit does nothing."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable

import bpy


def _local(coll: Iterable) -> list:
    return sorted((d for d in coll if d.library is None and d.override_library is None), key=lambda d: d.name)


def _pick(rng: random.Random, items: list):
    return rng.choice(items) if items else None


def _name(rng: random.Random, prefix: str) -> str:
    return f"{prefix}{rng.randrange(6)}"


def _objects(kind: str | None = None) -> list[bpy.types.Object]:
    return [ob for ob in _local(bpy.data.objects) if kind is None or ob.type == kind]


def _mesh_objects() -> list[bpy.types.Object]:
    return [ob for ob in _objects("MESH") if ob.data.library is None and len(ob.data.vertices)]


def edit_modifiers(rng: random.Random) -> None:
    ob = _pick(rng, _mesh_objects())
    if ob is None:
        return
    mods = ob.modifiers
    action = rng.randrange(3)
    if action == 0 or not len(mods):
        kind = rng.choice(["SUBSURF", "MIRROR", "ARRAY", "SMOOTH", "SOLIDIFY", "BEVEL", "DISPLACE"])
        mods.new(_name(rng, "Mod"), kind)
    elif action == 1:
        for _ in range(rng.randrange(1, 3)):
            if len(mods):
                mods.remove(mods[rng.randrange(len(mods))])
    else:
        mods.move(rng.randrange(len(mods)), rng.randrange(len(mods)))


def edit_constraints(rng: random.Random) -> None:
    ob = _pick(rng, _objects())
    if ob is None:
        return
    owner = ob
    if ob.type == "ARMATURE" and ob.pose is not None and len(ob.pose.bones) and rng.random() < 0.5:
        owner = rng.choice(list(ob.pose.bones))
    cons = owner.constraints
    action = rng.randrange(3)
    if action == 0 or not len(cons):
        con = cons.new(rng.choice(["COPY_LOCATION", "LIMIT_ROTATION", "DAMPED_TRACK", "COPY_SCALE"]))
        con.influence = rng.random()
    elif action == 1:
        cons.remove(cons[rng.randrange(len(cons))])
    else:
        cons.move(rng.randrange(len(cons)), rng.randrange(len(cons)))


def _attribute_owners() -> list:
    owners = [ob.data for ob in _mesh_objects()]
    owners += [d for d in _local(bpy.data.pointclouds) if d.users]
    owners += [d for d in _local(bpy.data.hair_curves) if d.users]
    return owners


def edit_attributes(rng: random.Random) -> None:
    data = _pick(rng, _attribute_owners())
    if data is None:
        return
    removable = [a.name for a in data.attributes if not a.is_internal and not a.is_required]
    if rng.random() < 0.5 or not removable:
        for _ in range(rng.randrange(1, 4)):
            name = _name(rng, "attr")
            if name not in data.attributes:
                domain = rng.choice(
                    {"Mesh": ["POINT", "EDGE", "FACE", "CORNER"], "Curves": ["POINT", "CURVE"]}.get(
                        type(data).__name__, ["POINT"]
                    )
                )
                attr = data.attributes.new(name, rng.choice(["FLOAT", "INT", "FLOAT_VECTOR"]), domain)
                key = "vector" if attr.data_type == "FLOAT_VECTOR" else "value"
                width = 3 if key == "vector" else 1
                attr.data.foreach_set(key, [rng.randrange(5) for _ in range(width * len(attr.data))])
    else:
        for name in rng.sample(removable, rng.randrange(1, len(removable) + 1)):
            if name in data.attributes:  # a removed UV map takes its pin/selection layers with it
                data.attributes.remove(data.attributes[name])


def edit_uv_maps(rng: random.Random) -> None:
    ob = _pick(rng, _mesh_objects())
    if ob is None:
        return
    uvs = ob.data.uv_layers
    if rng.random() < 0.5 or not len(uvs):
        name = _name(rng, "UV")
        if name not in uvs:
            uvs.new(name=name)
    else:
        for _ in range(rng.randrange(1, len(uvs) + 1)):
            uvs.remove(uvs[rng.randrange(len(uvs))])


def edit_vertex_groups(rng: random.Random) -> None:
    ob = _pick(rng, _mesh_objects())
    if ob is None:
        return
    groups = ob.vertex_groups
    action = rng.randrange(3)
    if action == 0 or not len(groups):
        name = _name(rng, "Group")
        group = groups.get(name) or groups.new(name=name)
        n = len(ob.data.vertices)
        group.add(rng.sample(range(n), rng.randrange(1, n + 1)), rng.choice([0.25, 0.5, 1.0]), "REPLACE")
    elif action == 1:
        for _ in range(rng.randrange(1, len(groups) + 1)):
            groups.remove(groups[rng.randrange(len(groups))])
    else:
        group = groups[rng.randrange(len(groups))]
        group.remove([rng.randrange(len(ob.data.vertices))])


def edit_shape_keys(rng: random.Random) -> None:
    ob = _pick(rng, _mesh_objects())
    if ob is None:
        return
    keys = ob.data.shape_keys
    blocks = list(keys.key_blocks) if keys is not None else []
    action = rng.randrange(3)
    if action == 0 or not blocks:
        block = ob.shape_key_add(name=_name(rng, "Shape"), from_mix=False)
        for point in block.data:
            point.co.z += rng.random()
        block.value = rng.random()
    elif action == 1:
        for _ in range(rng.randrange(1, len(blocks) + 1)):
            blocks = list(ob.data.shape_keys.key_blocks) if ob.data.shape_keys else []
            if blocks:
                ob.shape_key_remove(rng.choice(blocks))
    else:
        rng.choice(blocks).value = rng.random()


def _fcurves() -> list:
    curves = []
    for action in _local(bpy.data.actions):
        for layer in action.layers:
            for strip in layer.strips:
                for bag in strip.channelbags:
                    curves += list(bag.fcurves)
    for ob in _objects():
        if ob.animation_data is not None:
            curves += list(ob.animation_data.drivers)
    return curves


def edit_keyframes(rng: random.Random) -> None:
    fc = _pick(rng, _fcurves())
    if fc is None:
        return
    points = fc.keyframe_points
    if rng.random() < 0.5 or not len(points):
        for _ in range(rng.randrange(1, 4)):
            key = points.insert(rng.randrange(1, 60), rng.random() * 3)
            key.interpolation = rng.choice(["BEZIER", "LINEAR", "CONSTANT", "ELASTIC"])
    else:
        for _ in range(rng.randrange(1, len(points) + 1)):
            points.remove(points[rng.randrange(len(points))])
    fc.update()


def _envelope_points(mod, rng: random.Random) -> None:
    points = mod.control_points
    for _ in range(rng.randrange(0, 4)):
        frame = float(rng.randrange(1, 40))
        if all(p.frame != frame for p in points):
            points.add(frame)
    if len(points) and rng.random() < 0.3:
        points.remove(points[rng.randrange(len(points))])
    # foreach_set: a point's own min/max setter runs the modifier's update on the point (see sync.fcurves)
    points.foreach_set("min", [rng.random() - 1 for _ in points])
    points.foreach_set("max", [rng.random() + 1 for _ in points])


def edit_fcurve_modifiers(rng: random.Random) -> None:
    fc = _pick(rng, _fcurves())
    if fc is None:
        return
    mods = fc.modifiers
    action = rng.randrange(3)
    if action == 0 or not len(mods):
        mod = mods.new(
            rng.choice(["ENVELOPE", "ENVELOPE", "NOISE", "CYCLES", "GENERATOR", "STEPPED", "LIMITS"])
        )
        if mod.type == "ENVELOPE":
            _envelope_points(mod, rng)
    elif action == 1:
        mods.remove(mods[rng.randrange(len(mods))])
    else:
        envelopes = [m for m in mods if m.type == "ENVELOPE"]
        if envelopes:
            _envelope_points(rng.choice(envelopes), rng)
        else:
            mods[rng.randrange(len(mods))].influence = rng.random()


def edit_nla(rng: random.Random) -> None:
    owners = [ob for ob in _objects() if ob.animation_data is not None and len(ob.animation_data.nla_tracks)]
    ob = _pick(rng, owners)
    if ob is None:
        return
    tracks = ob.animation_data.nla_tracks
    action = rng.randrange(3)
    if action == 0:
        track = tracks.new()
        track.name = _name(rng, "Track")
        source = next((s.action for t in tracks for s in t.strips if s.action is not None), None)
        if source is not None:
            track.strips.new(_name(rng, "Strip"), rng.randrange(1, 200), source)
    elif action == 1:
        track = tracks[rng.randrange(len(tracks))]
        if len(track.strips) and rng.random() < 0.7:
            track.strips.remove(track.strips[rng.randrange(len(track.strips))])
        else:
            tracks.remove(track)
    else:
        track = tracks[rng.randrange(len(tracks))]
        if len(track.strips):
            strip = track.strips[rng.randrange(len(track.strips))]
            strip.influence = rng.random()
            strip.mute = not strip.mute


def edit_bone_collections(rng: random.Random) -> None:
    arm = _pick(rng, [a for a in _local(bpy.data.armatures) if a.users])
    if arm is None:
        return
    colls = arm.collections_all
    if rng.random() < 0.5 or not len(colls):
        parent = _pick(rng, list(colls)) if rng.random() < 0.5 else None
        coll = arm.collections.new(_name(rng, "Bones"), parent=parent)
        for bone in arm.bones:
            if rng.random() < 0.5:
                coll.assign(bone)
    else:
        for _ in range(rng.randrange(1, 3)):
            if len(arm.collections_all):
                arm.collections.remove(arm.collections_all[rng.randrange(len(arm.collections_all))])


def _trees() -> list:
    trees = [m.node_tree for m in _local(bpy.data.materials) if m.node_tree is not None]
    return trees + [g for g in _local(bpy.data.node_groups) if g.bl_idname == "ShaderNodeTree"]


def edit_node_links(rng: random.Random) -> None:
    tree = _pick(rng, _trees())
    if tree is None:
        return
    links = tree.links
    if rng.random() < 0.5 and len(links):
        for _ in range(rng.randrange(1, len(links) + 1)):
            links.remove(links[rng.randrange(len(links))])
        return
    nodes = list(tree.nodes)
    for _ in range(rng.randrange(1, 3)):
        src, dst = rng.choice(nodes), rng.choice(nodes)
        outs = [s for s in src.outputs if s.enabled]
        ins = [s for s in dst.inputs if s.enabled]
        if src != dst and outs and ins:
            links.new(rng.choice(outs), rng.choice(ins))


def edit_grease_pencil(rng: random.Random) -> None:
    gp = _pick(rng, [g for g in _local(bpy.data.grease_pencils) if g.users])
    if gp is None:
        return
    layers = gp.layers
    action = rng.randrange(4)
    if action == 0 or not len(layers):
        name = _name(rng, "Layer")
        if name not in layers:
            layer = layers.new(name)
            if rng.random() < 0.5:
                layers.move_bottom(layer)
    elif action == 1 and len(layers) > 1:
        layers.remove(layers[rng.randrange(len(layers))])
    else:
        layer = layers[rng.randrange(len(layers))]
        frames = layer.frames
        numbers = [f.frame_number for f in frames]
        if rng.random() < 0.6 or not numbers:
            for _ in range(rng.randrange(1, 6)):
                number = rng.randrange(1, 40)
                if number not in numbers:
                    numbers.append(number)
                    frames.new(number).drawing.add_strokes([rng.randrange(1, 4)])
        else:
            for number in rng.sample(numbers, rng.randrange(1, len(numbers) + 1)):
                frames.remove(number)


def _ramps() -> list:
    ramps = []
    for tree in _trees():
        ramps += [n.color_ramp for n in tree.nodes if n.bl_idname == "ShaderNodeValToRGB"]
    return ramps + [t.color_ramp for t in _local(bpy.data.textures) if t.use_color_ramp]


def edit_color_ramps(rng: random.Random) -> None:
    ramp = _pick(rng, _ramps())
    if ramp is None:
        return
    elements = ramp.elements
    if rng.random() < 0.4 and len(elements) > 1:
        elements.remove(elements[rng.randrange(len(elements))])
    for _ in range(rng.randrange(0, 3)):
        elements.new(round(rng.random(), 2)).color = (rng.random(), rng.random(), rng.random(), 1.0)
    for element in list(elements)[:1]:
        element.position = round(rng.random(), 2)


def _mappings() -> list:
    found = []
    for tree in [*_trees(), *(s.node_tree for s in _local(bpy.data.scenes) if s.compositing_node_group)]:
        found += [n.mapping for n in tree.nodes if hasattr(n, "mapping") and n.mapping is not None]
    return found


def edit_curve_mappings(rng: random.Random) -> None:
    mapping = _pick(rng, _mappings())
    if mapping is None:
        return
    curve = rng.choice(list(mapping.curves))
    points = curve.points
    if rng.random() < 0.4 and len(points) > 2:
        points.remove(points[rng.randrange(len(points))])
    else:
        for _ in range(rng.randrange(1, 3)):
            points.new(round(rng.random(), 2), round(rng.random(), 2))
    mapping.update()


def edit_interfaces(rng: random.Random) -> None:
    group = _pick(rng, [g for g in _local(bpy.data.node_groups)])
    if group is None:
        return
    iface = group.interface
    items = list(iface.items_tree)
    if rng.random() < 0.6 or not items:
        panels = [i for i in items if i.item_type == "PANEL"]
        if rng.random() < 0.3:
            iface.new_panel(_name(rng, "Panel"))
        else:
            parent = _pick(rng, panels) if rng.random() < 0.5 else None
            iface.new_socket(
                _name(rng, "In"),
                in_out=rng.choice(["INPUT", "OUTPUT"]),
                socket_type=rng.choice(["NodeSocketFloat", "NodeSocketColor", "NodeSocketVector"]),
                parent=parent,
            )
    else:
        for _ in range(rng.randrange(1, 3)):
            items = list(iface.items_tree)
            if items:
                iface.remove(rng.choice(items), move_content_to_parent=rng.random() < 0.5)


def edit_nodes(rng: random.Random) -> None:
    tree = _pick(rng, _trees())
    if tree is None:
        return
    nodes = tree.nodes
    if rng.random() < 0.6 or len(nodes) < 3:
        kind = rng.choice(["ShaderNodeMath", "ShaderNodeMix", "ShaderNodeValToRGB", "ShaderNodeRGBCurve"])
        node = nodes.new(kind)
        node.name = _name(rng, "Node")
        node.location = (rng.randrange(-300, 300), rng.randrange(-300, 300))
    else:
        removable = [n for n in nodes if n.bl_idname not in ("NodeGroupInput", "NodeGroupOutput")]
        if removable:
            nodes.remove(rng.choice(removable))


def edit_drivers(rng: random.Random) -> None:
    ob = _pick(rng, _objects())
    if ob is None:
        return
    ad = ob.animation_data
    drivers = list(ad.drivers) if ad is not None else []
    if rng.random() < 0.6 or not drivers:
        fc = ob.driver_add(rng.choice(["location", "scale", "rotation_euler"]), rng.randrange(3))
        fc.driver.type = "SUM"
        ob["fz"] = rng.random()  # read by the driver (its own driven values would make a cycle)
        for _ in range(rng.randrange(0, 3)):
            var = fc.driver.variables.new()
            var.targets[0].id = ob
            var.targets[0].data_path = '["fz"]'
        if len(fc.driver.variables) > 1 and rng.random() < 0.5:
            fc.driver.variables.remove(fc.driver.variables[0])
    else:
        fc = rng.choice(drivers)
        ob.driver_remove(fc.data_path, fc.array_index)


def edit_metaballs(rng: random.Random) -> None:
    ball = _pick(rng, [m for m in _local(bpy.data.metaballs) if m.users])
    if ball is None:
        return
    elements = ball.elements
    if rng.random() < 0.6 or not len(elements):
        element = elements.new(type=rng.choice(["BALL", "CAPSULE", "CUBE"]))
        element.co = (rng.random(), rng.random(), rng.random())
    else:
        elements.remove(elements[rng.randrange(len(elements))])


EDITS: dict[str, Callable[[random.Random], None]] = {
    "modifiers": edit_modifiers,
    "constraints": edit_constraints,
    "attributes": edit_attributes,
    "uv_maps": edit_uv_maps,
    "vertex_groups": edit_vertex_groups,
    "shape_keys": edit_shape_keys,
    "keyframes": edit_keyframes,
    "fcurve_modifiers": edit_fcurve_modifiers,
    "nla": edit_nla,
    "bone_collections": edit_bone_collections,
    "node_links": edit_node_links,
    "grease_pencil": edit_grease_pencil,
    "color_ramps": edit_color_ramps,
    "curve_mappings": edit_curve_mappings,
    "interfaces": edit_interfaces,
    "nodes": edit_nodes,
    "drivers": edit_drivers,
    "metaballs": edit_metaballs,
}
