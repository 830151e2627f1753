"""Datablock -> key/value serialisation.

Each ``_ser_<kind>`` function returns ``{part: document}`` for one datablock.
Documents are plain Python data with a fixed key order, so that serialising
an unchanged datablock always gives the same bytes.
"""

from __future__ import annotations

import array
import hashlib
import itertools
import os
from collections.abc import Callable

import bpy

from . import ids, rna
from .codec import encode_value, make_key, pack_f32, pack_i32

# ---------------------------------------------------------------- context


class SerialiseContext:
    """Lookups shared by all datablocks of one serialisation pass."""

    def __init__(self) -> None:
        self.master_scene: dict[int, str] = {}
        self.coll_parents: dict[int, list[str]] = {}
        for scene in bpy.data.scenes:
            if not ids.is_synced(scene):
                continue
            scene_uuid = ids.get_uuid(scene)
            self.master_scene[scene.collection.as_pointer()] = scene_uuid
            for child in scene.collection.children:
                self.coll_parents.setdefault(child.as_pointer(), []).append(scene_uuid)
        for coll in bpy.data.collections:
            if not ids.is_synced(coll):
                continue
            coll_uuid = ids.get_uuid(coll)
            for child in coll.children:
                self.coll_parents.setdefault(child.as_pointer(), []).append(coll_uuid)

    def collection_ref(self, coll: bpy.types.Collection) -> str | None:
        """uuid of a collection, or of the scene whose master collection it is."""
        scene_uuid = self.master_scene.get(coll.as_pointer())
        if scene_uuid is not None:
            return scene_uuid
        return ids.get_uuid(coll) if ids.is_synced(coll) else None


def ref(id_data: bpy.types.ID | None) -> str | None:
    if id_data is None or not ids.is_synced(id_data):
        return None
    return ids.get_uuid(id_data)


def _floats(values) -> list[float]:
    return [float(v) for v in values]


def _matrix(m) -> list[float]:
    return [float(m[r][c]) for r in range(4) for c in range(4)]


def _fget(coll, attr: str, count: int, width: int) -> array.array:
    buf = array.array("f", bytes(4 * count * width))
    if count:
        coll.foreach_get(attr, buf)
    return buf


def _iget(coll, attr: str, count: int, width: int) -> array.array:
    buf = array.array("i", bytes(4 * count * width))
    if count:
        coll.foreach_get(attr, buf)
    return buf


# ---------------------------------------------------------------- objects

OBJECT_VIS = ("hide_viewport", "hide_render", "hide_select")


def _ser_obj(ob: bpy.types.Object, ctx: SerialiseContext) -> dict[str, object]:
    data_kind = ids.OBJECT_DATA_KIND.get(ob.type)
    collections = sorted({r for r in (ctx.collection_ref(c) for c in ob.users_collection) if r is not None})
    view_layer = bpy.context.view_layer
    try:
        hidden = bool(ob.hide_get(view_layer=view_layer))
    except RuntimeError:  # object not in this view layer
        hidden = False
    slots = [[slot.link, ref(slot.material) if slot.link == "OBJECT" else None] for slot in ob.material_slots]
    meta = {
        "name": ob.name,
        "type": ob.type,
        "data_kind": data_kind,
        "data": ref(ob.data) if data_kind else None,
        "parent": ref(ob.parent),
        "parent_type": ob.parent_type,
        "hide_viewport": ob.hide_viewport,
        "hide_render": ob.hide_render,
        "hide_select": ob.hide_select,
        "hide": hidden,
        "collections": collections,
        "material_slots": slots,
        "empty_display_type": ob.empty_display_type,
        "empty_display_size": float(ob.empty_display_size),
        "display_type": ob.display_type,
    }
    transform = {
        "location": _floats(ob.location),
        "rotation_mode": ob.rotation_mode,
        "rotation_euler": _floats(ob.rotation_euler),
        "rotation_quaternion": _floats(ob.rotation_quaternion),
        "rotation_axis_angle": _floats(ob.rotation_axis_angle),
        "scale": _floats(ob.scale),
        "delta_location": _floats(ob.delta_location),
        "delta_rotation_euler": _floats(ob.delta_rotation_euler),
        "delta_scale": _floats(ob.delta_scale),
        "parent_inverse": _matrix(ob.matrix_parent_inverse),
    }
    modifiers = [
        {
            "name": mod.name,
            "type": mod.type,
            "show_viewport": mod.show_viewport,
            "show_render": mod.show_render,
            "props": rna.read_props(
                mod, skip=("show_viewport", "show_render", "show_in_editmode", "show_on_cage", "type")
            ),
        }
        for mod in ob.modifiers
    ]
    ad = ob.animation_data
    action = ad.action if ad is not None else None
    anim = {
        "action": ref(action),
        "slot": ad.action_slot.identifier if action is not None and ad.action_slot is not None else None,
    }
    parts = {"meta": meta, "transform": transform, "modifiers": modifiers, "anim": anim}
    if ob.type == "ARMATURE":
        parts["pose"] = ser_pose(ob)
    return parts


POSE_BONE_PROPS = (
    "rotation_mode",
    "location",
    "rotation_quaternion",
    "rotation_euler",
    "rotation_axis_angle",
    "scale",
)


def ser_pose(ob: bpy.types.Object) -> dict[str, object]:
    """Pose bone transforms of an armature object, sorted by bone name."""
    bones = ob.pose.bones if ob.pose is not None else ()
    return {
        "bones": sorted(
            (
                {"name": pb.name, **{attr: rna.plain(getattr(pb, attr)) for attr in POSE_BONE_PROPS}}
                for pb in bones
            ),
            key=lambda b: b["name"],
        )
    }


# ---------------------------------------------------------------- armatures

BONE_PROPS = (
    "use_deform",
    "envelope_distance",
    "envelope_weight",
    "head_radius",
    "tail_radius",
    "use_envelope_multiply",
    "use_inherit_rotation",
    "inherit_scale",
    "use_local_location",
    "use_relative_parent",
    "bbone_segments",
)
ROLL_DIGITS = 5  # the roll is derived from the bone matrix: rounded so float noise is not a change


def bone_roll(bone: bpy.types.Bone) -> float:
    roll = round(float(bpy.types.Bone.AxisRollFromMatrix(bone.matrix_local.to_3x3())[1]), ROLL_DIGITS)
    return 0.0 if roll == 0 else roll


def _ser_arm(arm: bpy.types.Armature, ctx: SerialiseContext) -> dict[str, object]:
    bones = []
    for bone in sorted(arm.bones, key=lambda b: b.name):
        doc: dict[str, object] = {
            "name": bone.name,
            "parent": bone.parent.name if bone.parent is not None else None,
            "head": _floats(bone.head_local),
            "tail": _floats(bone.tail_local),
            "roll": bone_roll(bone),
            "use_connect": bone.use_connect,
        }
        doc.update({attr: rna.plain(getattr(bone, attr)) for attr in BONE_PROPS})
        bones.append(doc)
    return {
        "meta": {"name": arm.name, "props": rna.read_props(arm)},
        "bones": bones,
    }


# ---------------------------------------------------------------- meshes

# data_type -> (components, foreach attribute, array typecode or "b" for bool lists)
ATTRIBUTE_LAYOUT: dict[str, tuple[int, str, str]] = {
    "FLOAT": (1, "value", "f"),
    "INT": (1, "value", "i"),
    "FLOAT_VECTOR": (3, "vector", "f"),
    "FLOAT_COLOR": (4, "color", "f"),
    "BYTE_COLOR": (4, "color", "f"),
    "FLOAT2": (2, "vector", "f"),
    "INT8": (1, "value", "l"),
    "INT16_2D": (2, "value", "l"),
    "INT32_2D": (2, "value", "i"),
    "QUATERNION": (4, "value", "f"),
    "FLOAT4X4": (16, "value", "f"),
    "BOOLEAN": (1, "value", "b"),
}


def read_attribute(attr) -> bytes | None:
    layout = ATTRIBUTE_LAYOUT.get(attr.data_type)
    if layout is None:
        return None
    width, key, code = layout
    count = len(attr.data)
    if code == "f":
        return pack_f32(_fget(attr.data, key, count, width))
    if code == "i":
        return pack_i32(_iget(attr.data, key, count, width))
    values = [False if code == "b" else 0] * (count * width)
    if count:
        attr.data.foreach_get(key, values)
    if code == "b":
        return bytes(1 if v else 0 for v in values)
    return pack_i32(values)


def _ser_mesh(me: bpy.types.Mesh, ctx: SerialiseContext) -> dict[str, object]:
    nv, ne, nl, npoly = len(me.vertices), len(me.edges), len(me.loops), len(me.polygons)
    attributes = []
    for attr in me.attributes:
        if attr.name.startswith(".") or attr.name == "position":
            continue
        data = read_attribute(attr)
        if data is None:
            continue
        attributes.append({"name": attr.name, "domain": attr.domain, "type": attr.data_type, "data": data})
    attributes.sort(key=lambda a: a["name"])
    uv = me.uv_layers
    colors = me.color_attributes
    geometry = {
        "vertices": pack_f32(_fget(me.vertices, "co", nv, 3)),
        "edges": pack_i32(_iget(me.edges, "vertices", ne, 2)),
        "face_starts": pack_i32(_iget(me.polygons, "loop_start", npoly, 1)),
        "corner_verts": pack_i32(_iget(me.loops, "vertex_index", nl, 1)),
        "corner_edges": pack_i32(_iget(me.loops, "edge_index", nl, 1)),
        "attributes": attributes,
        "active_uv": uv.active.name if uv.active is not None else None,
        "render_uv": next((layer.name for layer in uv if layer.active_render), None),
        "active_color": colors.active_color_name or None,
        "default_color": colors.default_color_name or None,
    }
    meta = {"name": me.name, "materials": [ref(m) for m in me.materials]}
    return {"meta": meta, "geometry": geometry, "shapes": ser_shape_keys(me.shape_keys)}


SHAPE_KEY_PROPS = ("slider_min", "slider_max", "value", "vertex_group", "interpolation", "mute", "lock_shape")


def ser_shape_keys(key: bpy.types.Key | None) -> dict[str, object] | None:
    """Shape keys of a mesh: settings per key block, coordinates as packed f32 x3."""
    if key is None or not len(key.key_blocks):
        return None
    blocks = []
    for kb in key.key_blocks:
        doc: dict[str, object] = {"name": kb.name}
        doc.update({attr: rna.plain(getattr(kb, attr)) for attr in SHAPE_KEY_PROPS})
        doc["relative_key"] = kb.relative_key.name if kb.relative_key is not None else None
        doc["co"] = pack_f32(_fget(kb.data, "co", len(kb.data), 3))
        blocks.append(doc)
    return {"use_relative": key.use_relative, "eval_time": float(key.eval_time), "blocks": blocks}


# ---------------------------------------------------------------- node trees

NODE_SKIP = (
    "type",
    "location",
    "location_absolute",
    "width",
    "height",
    "dimensions",
    "label",
    "parent",
    "show_options",
    "show_preview",
    "hide",
    "mute",
    "show_texture",
    "use_custom_color",
    "color",
    "color_tag",
    "warning_propagation",
    "inputs",
    "outputs",
    "internal_links",
    "is_active_output",
)


# Nodes whose sockets come from a node group's interface: their identifiers
# (``Socket_<n>``) are made by a counter and differ between replicas, so these
# sockets are named by position instead (``#<index>``).
GROUP_NODES = frozenset({"NodeGroupInput", "NodeGroupOutput", "ShaderNodeGroup"})


def socket_id(node, sock, sockets) -> str:
    """Stable name of a socket within ``sockets`` (a node's inputs or outputs)."""
    if node.bl_idname in GROUP_NODES:
        ptr = sock.as_pointer()
        for i, other in enumerate(sockets):
            if other.as_pointer() == ptr:
                return f"#{i}"
    return sock.identifier


def _socket_values(node, sockets) -> list[list[object]]:
    out = []
    for sock in sockets:
        if not hasattr(sock, "default_value"):
            continue
        value = sock.default_value
        value = ref(value) if isinstance(value, bpy.types.ID) else rna.plain(value)
        out.append([socket_id(node, sock, sockets), value])
    return out


def _color_ramp(ramp) -> dict[str, object]:
    return {
        "color_mode": ramp.color_mode,
        "interpolation": ramp.interpolation,
        "hue_interpolation": ramp.hue_interpolation,
        "elements": [[float(e.position), _floats(e.color)] for e in ramp.elements],
    }


def ser_node_tree(tree: bpy.types.NodeTree | None) -> dict[str, object] | None:
    if tree is None:
        return None
    nodes = []
    for node in tree.nodes:
        doc = {
            "name": node.name,
            "type": node.bl_idname,
            "label": node.label,
            "parent": node.parent.name if node.parent is not None else None,
            "location": _floats(node.location),
            "width": float(node.width),
            "hide": node.hide,
            "mute": node.mute,
            "props": rna.read_props(node, skip=NODE_SKIP),
            "inputs": _socket_values(node, node.inputs),
            "outputs": _socket_values(node, node.outputs),
        }
        ramp = getattr(node, "color_ramp", None)
        if ramp is not None:
            doc["color_ramp"] = _color_ramp(ramp)
        nodes.append(doc)
    nodes.sort(key=lambda n: n["name"])
    links = sorted(
        [
            link.from_node.name,
            socket_id(link.from_node, link.from_socket, link.from_node.outputs),
            link.to_node.name,
            socket_id(link.to_node, link.to_socket, link.to_node.inputs),
            link.is_muted,
        ]
        for link in tree.links
    )
    return {"nodes": nodes, "links": links}


# ---------------------------------------------------------------- node groups

INTERFACE_SKIP = (
    "item_type",
    "parent",
    "position",
    "index",
    "identifier",
    "in_out",
    "socket_type",
    "bl_socket_idname",
    "interface_items",
    "persistent_uid",
)


def ser_interface(tree: bpy.types.NodeTree) -> list[dict[str, object]]:
    """A node group's interface: sockets and panels in ``items_tree`` order, parents by position."""
    items = list(tree.interface.items_tree)
    position = {item.as_pointer(): i for i, item in enumerate(items)}
    out = []
    for item in items:
        parent = item.parent
        doc: dict[str, object] = {
            "item_type": item.item_type,
            "name": item.name,
            "parent": position.get(parent.as_pointer()) if parent is not None else None,
        }
        if item.item_type == "SOCKET":
            doc["in_out"] = item.in_out
            doc["socket_type"] = item.socket_type
        doc["props"] = rna.read_props(item, skip=INTERFACE_SKIP)
        out.append(doc)
    return out


def _ser_ngroup(tree: bpy.types.NodeTree, ctx: SerialiseContext) -> dict[str, object]:
    return {
        "meta": {"name": tree.name, "interface": ser_interface(tree)},
        "nodes": ser_node_tree(tree),
    }


# ---------------------------------------------------------------- shading, lights, cameras

MATERIAL_SKIP = ("node_tree", "grease_pencil", "paint_active_slot", "line_priority")


def _ser_mat(mat: bpy.types.Material, ctx: SerialiseContext) -> dict[str, object]:
    meta: dict[str, object] = {"name": mat.name, "props": rna.read_props(mat, skip=MATERIAL_SKIP)}
    if mat.is_grease_pencil:  # grease pencil materials carry their stroke and fill style
        meta["grease_pencil"] = rna.read_props(mat.grease_pencil)
    return {"meta": meta, "nodes": ser_node_tree(mat.node_tree)}


def _ser_world(world: bpy.types.World, ctx: SerialiseContext) -> dict[str, object]:
    return {
        "meta": {"name": world.name, "color": _floats(world.color), "props": rna.read_props(world)},
        "nodes": ser_node_tree(world.node_tree),
    }


def _ser_light(light: bpy.types.Light, ctx: SerialiseContext) -> dict[str, object]:
    return {"meta": {"name": light.name, "type": light.type, "props": rna.read_props(light, skip=("type",))}}


CAMERA_SKIP = ("angle", "angle_x", "angle_y")


def _ser_cam(cam: bpy.types.Camera, ctx: SerialiseContext) -> dict[str, object]:
    return {
        "meta": {
            "name": cam.name,
            "props": rna.read_props(cam, skip=CAMERA_SKIP, nested=("dof", "stereo")),
        }
    }


# ---------------------------------------------------------------- collections and scenes


def _ser_coll(coll: bpy.types.Collection, ctx: SerialiseContext) -> dict[str, object]:
    return {
        "meta": {
            "name": coll.name,
            "parents": sorted(set(ctx.coll_parents.get(coll.as_pointer(), []))),
            "hide_viewport": coll.hide_viewport,
            "hide_render": coll.hide_render,
            "hide_select": coll.hide_select,
            "color_tag": coll.color_tag,
        }
    }


def _ser_scene(scene: bpy.types.Scene, ctx: SerialiseContext) -> dict[str, object]:
    render = scene.render
    return {
        "meta": {
            "name": scene.name,
            "frame_start": scene.frame_start,
            "frame_end": scene.frame_end,
            "frame_step": scene.frame_step,
            "fps": render.fps,
            "fps_base": float(render.fps_base),
            "resolution": [render.resolution_x, render.resolution_y, render.resolution_percentage],
            "camera": ref(scene.camera),
            "world": ref(scene.world),
            "active_clip": ref(scene.active_clip),
        },
        "frame": {"current": scene.frame_current},
    }


# ---------------------------------------------------------------- images, texts


def image_content(img: bpy.types.Image) -> bytes | None:
    """The encoded image file (PNG, JPEG...) behind an image, if there is one."""
    if img.packed_file is not None:
        return bytes(img.packed_file.data)
    if img.source == "FILE" and img.filepath:
        path = bpy.path.abspath(img.filepath, library=img.library)
        if os.path.isfile(path):
            with open(path, "rb") as fh:
                return fh.read()
    return None


def _ser_img(img: bpy.types.Image, ctx: SerialiseContext) -> dict[str, object]:
    content = image_content(img)
    meta = {
        "name": img.name,
        "source": img.source if content is not None else "GENERATED",
        "size": [int(img.size[0]), int(img.size[1])],
        "colorspace": img.colorspace_settings.name,
        "alpha_mode": img.alpha_mode,
        "generated": None
        if content is not None
        else {
            "type": img.generated_type,
            "width": img.generated_width,
            "height": img.generated_height,
            "color": _floats(img.generated_color),
            "float": img.use_generated_float,
        },
        "sha256": hashlib.sha256(content).hexdigest() if content is not None else None,
    }
    parts: dict[str, object] = {"meta": meta}
    if content is not None:
        parts["data"] = {"sha256": meta["sha256"], "bytes": content}
    return parts


def _ser_text(text: bpy.types.Text, ctx: SerialiseContext) -> dict[str, object]:
    return {"meta": {"name": text.name}, "body": {"content": text.as_string()}}


# ---------------------------------------------------------------- actions


def _keyframes(fc) -> dict[str, object]:
    points = fc.keyframe_points
    n = len(points)
    return {
        "co": pack_f32(_fget(points, "co", n, 2)),
        "handle_left": pack_f32(_fget(points, "handle_left", n, 2)),
        "handle_right": pack_f32(_fget(points, "handle_right", n, 2)),
        "interpolation": [p.interpolation for p in points],
        "easing": [p.easing for p in points],
        "handle_left_type": [p.handle_left_type for p in points],
        "handle_right_type": [p.handle_right_type for p in points],
    }


def _channelbags(action: bpy.types.Action):
    for layer in action.layers:
        for strip in layer.strips:
            yield from getattr(strip, "channelbags", ())


def _ser_action(action: bpy.types.Action, ctx: SerialiseContext) -> dict[str, object]:
    meta = {
        "name": action.name,
        "slots": [[slot.identifier, slot.target_id_type] for slot in action.slots],
        "use_frame_range": action.use_frame_range,
        "frame_range": _floats(action.frame_range) if action.use_frame_range else None,
    }
    bags = []
    for bag in _channelbags(action):
        fcurves = sorted(
            (
                {
                    "data_path": fc.data_path,
                    "index": fc.array_index,
                    "group": fc.group.name if fc.group is not None else None,
                    "extrapolation": fc.extrapolation,
                    "mute": fc.mute,
                    "keys": _keyframes(fc),
                }
                for fc in bag.fcurves
            ),
            key=lambda f: (f["data_path"], f["index"]),
        )
        bags.append({"slot": bag.slot.identifier if bag.slot is not None else None, "fcurves": fcurves})
    bags.sort(key=lambda b: b["slot"] or "")
    return {"meta": meta, "curves": {"channelbags": bags}}


# ---------------------------------------------------------------- curves and text objects

CURVE_SKIP = (
    "body",
    "body_format",
    "shape_keys",
    "texspace_location",
    "texspace_size",
    "eval_time",
    "active_textbox",
)


def curve_type(curve: bpy.types.Curve) -> str:
    return {"TextCurve": "FONT", "SurfaceCurve": "SURFACE"}.get(curve.bl_rna.identifier, "CURVE")


SPLINE_FLAGS = (
    "type",
    "use_cyclic_u",
    "use_cyclic_v",
    "use_endpoint_u",
    "use_endpoint_v",
    "use_bezier_u",
    "use_bezier_v",
    "order_u",
    "order_v",
    "resolution_u",
    "resolution_v",
    "use_smooth",
    "material_index",
    "tilt_interpolation",
    "radius_interpolation",
)
NON_NURBS_FLAGS = tuple(
    f for f in SPLINE_FLAGS if not f.startswith(("order_", "use_endpoint_", "use_bezier_"))
)


def _ser_spline(spline) -> dict[str, object]:
    flags = SPLINE_FLAGS if spline.type == "NURBS" else NON_NURBS_FLAGS
    doc: dict[str, object] = {flag: rna.plain(getattr(spline, flag)) for flag in flags}
    if spline.type == "BEZIER":
        pts = spline.bezier_points
        n = len(pts)
        doc["bezier"] = {
            "co": pack_f32(_fget(pts, "co", n, 3)),
            "handle_left": pack_f32(_fget(pts, "handle_left", n, 3)),
            "handle_right": pack_f32(_fget(pts, "handle_right", n, 3)),
            "handle_left_type": [p.handle_left_type for p in pts],
            "handle_right_type": [p.handle_right_type for p in pts],
            "radius": pack_f32(_fget(pts, "radius", n, 1)),
            "tilt": pack_f32(_fget(pts, "tilt", n, 1)),
        }
    else:
        pts = spline.points
        n = len(pts)
        doc["points"] = {
            "co": pack_f32(_fget(pts, "co", n, 4)),
            "radius": pack_f32(_fget(pts, "radius", n, 1)),
            "tilt": pack_f32(_fget(pts, "tilt", n, 1)),
            "weight": pack_f32(_fget(pts, "weight", n, 1)),
            "count_u": spline.point_count_u,
            "count_v": spline.point_count_v,
        }
    return doc


def _ser_curve(curve: bpy.types.Curve, ctx: SerialiseContext) -> dict[str, object]:
    kind = curve_type(curve)
    parts: dict[str, object] = {
        "meta": {
            "name": curve.name,
            "curve_type": kind,
            "materials": [ref(m) for m in curve.materials],
            "props": rna.read_props(curve, skip=CURVE_SKIP),
        },
        "splines": [_ser_spline(s) for s in curve.splines],
    }
    if kind == "FONT":
        parts["text"] = {"body": curve.body}
    return parts


# ---------------------------------------------------------------- sounds, textures


def sound_content(sound: bpy.types.Sound) -> bytes | None:
    """The encoded sound file (WAV, OGG, MP3...) behind a sound, if there is one."""
    if sound.packed_file is not None:
        return bytes(sound.packed_file.data)
    path = ids.sound_path(sound)
    if path is None:
        return None
    with open(path, "rb") as fh:
        return fh.read()


def _ser_sound(sound: bpy.types.Sound, ctx: SerialiseContext) -> dict[str, object]:
    content = sound_content(sound) or b""
    return {
        "meta": {
            "name": sound.name,
            "ext": os.path.splitext(sound.filepath)[1].lower() or ".wav",
            "use_mono": sound.use_mono,
            "use_memory_cache": sound.use_memory_cache,
            "sha256": hashlib.sha256(content).hexdigest(),
            "bytes": content,
        }
    }


def font_content(font: bpy.types.VectorFont) -> bytes | None:
    """The font file (TTF, OTF, WOFF2...) behind a font; None for the built-in font."""
    if font.packed_file is not None:
        return bytes(font.packed_file.data)
    path = ids.font_path(font)
    if path is None:
        return None
    with open(path, "rb") as fh:
        return fh.read()


def _ser_font(font: bpy.types.VectorFont, ctx: SerialiseContext) -> dict[str, object]:
    builtin = font.filepath == ids.BUILTIN_FONT
    content = None if builtin else font_content(font) or b""
    return {
        "meta": {
            "name": font.name,
            "builtin": builtin,
            "ext": None if builtin else os.path.splitext(font.filepath)[1].lower() or ".ttf",
            "sha256": None if content is None else hashlib.sha256(content).hexdigest(),
            "bytes": content,
        }
    }


CLIP_SKIP = ("filepath", "source", "use_proxy", "use_proxy_custom_directory")


def clip_content(clip: bpy.types.MovieClip) -> list[list[object]] | None:
    """``[file name, bytes]`` of every file of a movie clip, in name order."""
    files = ids.clip_files(clip)
    if files is None:
        return None
    out: list[list[object]] = []
    for path in files:
        with open(path, "rb") as fh:
            out.append([os.path.basename(path), fh.read()])
    return out


def clip_digest(files: list[list[object]]) -> str:
    digest = hashlib.sha256()
    for name, data in files:
        digest.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    return digest.hexdigest()


def _ser_clip(clip: bpy.types.MovieClip, ctx: SerialiseContext) -> dict[str, object]:
    files = clip_content(clip) or []
    first = os.path.basename(bpy.path.abspath(clip.filepath, library=clip.library))
    return {
        "meta": {
            "name": clip.name,
            "source": clip.source,
            "file": first,
            "colorspace": clip.colorspace_settings.name,
            "props": rna.read_props(clip, skip=CLIP_SKIP, nested=("colorspace_settings",)),
            "sha256": clip_digest(files),
            "files": files,
        }
    }


TEXTURE_SKIP = ("type", "use_nodes", "node_tree")


def _ser_tex(tex: bpy.types.Texture, ctx: SerialiseContext) -> dict[str, object]:
    return {"meta": {"name": tex.name, "type": tex.type, "props": rna.read_props(tex, skip=TEXTURE_SKIP)}}


# ---------------------------------------------------------------- metaballs, lattices, probes, speakers

TEXSPACE_SKIP = ("texspace_location", "texspace_size")
METABALL_ELEMENT = (
    "type",
    "co",
    "rotation",
    "radius",
    "size_x",
    "size_y",
    "size_z",
    "stiffness",
    "use_negative",
    "use_scale_stiffness",
    "hide",
)


def _ser_mball(mb: bpy.types.MetaBall, ctx: SerialiseContext) -> dict[str, object]:
    elements = [{attr: rna.plain(getattr(e, attr)) for attr in METABALL_ELEMENT} for e in mb.elements]
    return {
        "meta": {
            "name": mb.name,
            "materials": [ref(m) for m in mb.materials],
            "props": rna.read_props(mb, skip=TEXSPACE_SKIP),
        },
        "elements": elements,
    }


LATTICE_SIZE = ("points_u", "points_v", "points_w")


def _ser_lattice(lattice: bpy.types.Lattice, ctx: SerialiseContext) -> dict[str, object]:
    n = len(lattice.points)
    return {
        "meta": {
            "name": lattice.name,
            "size": [getattr(lattice, attr) for attr in LATTICE_SIZE],
            "props": rna.read_props(lattice, skip=LATTICE_SIZE),
        },
        "points": {
            "co_deform": pack_f32(_fget(lattice.points, "co_deform", n, 3)),
            "weight_softbody": pack_f32(_fget(lattice.points, "weight_softbody", n, 1)),
        },
    }


# ---------------------------------------------------------------- grease pencil

GP_LAYER_SKIP = ("matrix_local", "matrix_parent_inverse")


def drawing_attributes(drawing) -> list[dict[str, object]]:
    """Every point and stroke attribute of a drawing (position, radius, opacity, material_index...)."""
    out = []
    for attr in drawing.attributes:
        if attr.name.startswith("."):
            continue
        data = read_attribute(attr)
        if data is not None:
            out.append({"name": attr.name, "domain": attr.domain, "type": attr.data_type, "data": data})
    out.sort(key=lambda a: a["name"])
    return out


def stroke_sizes(drawing) -> list[int]:
    offsets = [o.value for o in drawing.curve_offsets]
    return [b - a for a, b in itertools.pairwise(offsets)]


def _ser_gpencil(gp: bpy.types.GreasePencil, ctx: SerialiseContext) -> dict[str, object]:
    layers = []
    for layer in gp.layers:
        frames = []
        for frame in sorted(layer.frames, key=lambda f: f.frame_number):
            drawing = frame.drawing
            frames.append(
                {
                    "frame_number": frame.frame_number,
                    "keyframe_type": frame.keyframe_type,
                    "sizes": pack_i32(stroke_sizes(drawing)) if drawing is not None else b"",
                    "attributes": drawing_attributes(drawing) if drawing is not None else [],
                }
            )
        layers.append({"name": layer.name, "frames": frames})
    return {
        "meta": {
            "name": gp.name,
            "materials": [ref(m) for m in gp.materials],
            "props": rna.read_props(gp),
            "layers": [
                {"name": layer.name, "props": rna.read_props(layer, skip=GP_LAYER_SKIP)}
                for layer in gp.layers
            ],
        },
        "strokes": {"layers": layers},
    }


def _ser_lprobe(probe: bpy.types.LightProbe, ctx: SerialiseContext) -> dict[str, object]:
    return {"meta": {"name": probe.name, "type": probe.type, "props": rna.read_props(probe, skip=("type",))}}


def _ser_speaker(speaker: bpy.types.Speaker, ctx: SerialiseContext) -> dict[str, object]:
    return {"meta": {"name": speaker.name, "props": rna.read_props(speaker)}}


# ---------------------------------------------------------------- libraries


def library_content(lib: bpy.types.Library) -> bytes | None:
    """The .blend file of a library (packed or read from disk)."""
    if lib.packed_file is not None:
        return bytes(lib.packed_file.data)
    path = ids.library_path(lib)
    if path is None:
        return None
    with open(path, "rb") as fh:
        return fh.read()


def linked_entry(id_data: bpy.types.ID) -> list[str]:
    return [ids.LINKABLE[id_data.id_type], id_data.name]


def _ser_lib(lib: bpy.types.Library, ctx: SerialiseContext) -> dict[str, object]:
    content = library_content(lib) or b""
    linked = ids.library_linked(lib)
    links = []
    for id_data in linked:
        if isinstance(id_data, bpy.types.Collection):
            parents = sorted(set(ctx.coll_parents.get(id_data.as_pointer(), [])))
        elif isinstance(id_data, bpy.types.Object):
            parents = sorted({r for r in (ctx.collection_ref(c) for c in id_data.users_collection) if r})
        else:
            continue
        if parents:
            links.append([*linked_entry(id_data), parents])
    return {
        "meta": {
            "name": lib.name,
            "file": os.path.basename(bpy.path.abspath(lib.filepath)) or "library.blend",
            "sha256": hashlib.sha256(content).hexdigest(),
            "bytes": content,
            "linked": sorted(linked_entry(id_data) for id_data in linked),
            "links": sorted(links),
        }
    }


# ---------------------------------------------------------------- entry points

SERIALISERS: dict[str, Callable[[bpy.types.ID, SerialiseContext], dict[str, object]]] = {
    "text": _ser_text,
    "img": _ser_img,
    "sound": _ser_sound,
    "font": _ser_font,
    "clip": _ser_clip,
    "tex": _ser_tex,
    "action": _ser_action,
    "ngroup": _ser_ngroup,
    "mat": _ser_mat,
    "world": _ser_world,
    "mesh": _ser_mesh,
    "curve": _ser_curve,
    "mball": _ser_mball,
    "lattice": _ser_lattice,
    "gpencil": _ser_gpencil,
    "lprobe": _ser_lprobe,
    "speaker": _ser_speaker,
    "light": _ser_light,
    "cam": _ser_cam,
    "arm": _ser_arm,
    "coll": _ser_coll,
    "obj": _ser_obj,
    "scene": _ser_scene,
    "lib": _ser_lib,
}


def serialise_parts(kind: str, id_data: bpy.types.ID, ctx: SerialiseContext) -> dict[str, bytes]:
    uuid = ids.get_uuid(id_data)
    return {
        make_key(kind, uuid, part): encode_value(doc) for part, doc in SERIALISERS[kind](id_data, ctx).items()
    }


def serialise_datablock(id_data: bpy.types.ID, ctx: SerialiseContext | None = None) -> dict[str, bytes]:
    """All keys of one datablock (empty if its kind is not synchronised)."""
    if not ids.is_synced(id_data):
        return {}
    kind = ids.kind_of(id_data)
    return serialise_parts(kind, id_data, ctx or SerialiseContext())


def serialise_scene() -> dict[str, bytes]:
    """Every key of every synchronised datablock in ``bpy.data``."""
    index = ids.index_all()
    ctx = SerialiseContext()
    out: dict[str, bytes] = {}
    for _uuid, (kind, id_data) in sorted(index.items()):
        out.update(serialise_parts(kind, id_data, ctx))
    return out
