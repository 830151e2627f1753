"""Canonical scene description and hash.

The description is read from Blender directly (not from the key/value
serialisation), keyed by uuid, with floats rounded to 1e-5 and every
unordered relation sorted.  Two replicas that hold the same scene give the
same :func:`scene_hash`, whatever order their datablocks were created in.
"""

from __future__ import annotations

import hashlib
import json

import bpy

from . import ids, rna
from .serialise import (
    BONE_PROPS,
    CAMERA_SKIP,
    CURVE_SKIP,
    GP_LAYER_SKIP,
    LATTICE_SIZE,
    MATERIAL_SKIP,
    METABALL_ELEMENT,
    NODE_SKIP,
    SHAPE_KEY_PROPS,
    TEXSPACE_SKIP,
    TEXTURE_SKIP,
    bone_roll,
    clip_content,
    clip_digest,
    curve_type,
    font_content,
    image_content,
    library_content,
    ser_interface,
    ser_pose,
    socket_id,
    sound_content,
)

PRECISION = 5


def rounded(value: object) -> object:
    """Round every float to 1e-5 (and -0.0 to 0.0), recursively."""
    if isinstance(value, bool) or value is None or isinstance(value, int | str):
        return value
    if isinstance(value, float):
        out = round(value, PRECISION)
        return 0.0 if out == 0 else out
    if isinstance(value, dict):
        return {str(k): rounded(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [rounded(v) for v in value]
    if isinstance(value, bytes):
        return hashlib.sha256(value).hexdigest()
    return rounded(rna.plain(value))


def _uid(id_data: bpy.types.ID | None) -> str | None:
    if id_data is None or not ids.is_synced(id_data):
        return None
    return ids.get_uuid(id_data)


def _vec(values) -> list[float]:
    return [float(v) for v in values]


def _coll_ref(coll: bpy.types.Collection, masters: dict[int, str]) -> str | None:
    return masters.get(coll.as_pointer()) or _uid(coll)


def _describe_object(ob: bpy.types.Object, masters: dict[int, str]) -> dict:
    ad = ob.animation_data
    return {
        "name": ob.name,
        "type": ob.type,
        "data": _uid(ob.data) if ob.data is not None else None,
        "parent": _uid(ob.parent),
        "parent_type": ob.parent_type,
        "matrix_basis": [_vec(row) for row in ob.matrix_basis],
        "matrix_parent_inverse": [_vec(row) for row in ob.matrix_parent_inverse],
        "rotation_mode": ob.rotation_mode,
        "visibility": [ob.hide_viewport, ob.hide_render, ob.hide_select],
        "collections": sorted(r for r in (_coll_ref(c, masters) for c in ob.users_collection) if r),
        "material_slots": [[s.link, _uid(s.material)] for s in ob.material_slots],
        "modifiers": [[m.name, m.type, rna.read_props(m)] for m in ob.modifiers],
        "action": _uid(ad.action) if ad is not None else None,
        "slot": ad.action_slot.identifier if ad is not None and ad.action_slot is not None else None,
        "empty": [ob.empty_display_type, ob.empty_display_size] if ob.type == "EMPTY" else None,
        "pose": ser_pose(ob) if ob.type == "ARMATURE" else None,
    }


def _describe_arm(arm: bpy.types.Armature) -> dict:
    bones = {
        bone.name: {
            "parent": bone.parent.name if bone.parent is not None else None,
            "head": _vec(bone.head_local),
            "tail": _vec(bone.tail_local),
            "roll": bone_roll(bone),
            "use_connect": bone.use_connect,
            "props": [rna.plain(getattr(bone, attr)) for attr in BONE_PROPS],
        }
        for bone in arm.bones
    }
    return {"name": arm.name, "props": rna.read_props(arm), "bones": bones}


def _describe_mesh(me: bpy.types.Mesh) -> dict:
    attributes = {}
    for attr in me.attributes:
        if attr.name.startswith(".") or attr.name == "position":
            continue
        if attr.data_type in ("FLOAT_VECTOR", "FLOAT2"):
            values = [_vec(d.vector) for d in attr.data]
        elif attr.data_type in ("FLOAT_COLOR", "BYTE_COLOR"):
            values = [_vec(d.color) for d in attr.data]
        elif attr.data_type == "STRING":
            continue
        else:
            values = [rna.plain(d.value) for d in attr.data]
        attributes[attr.name] = [attr.domain, attr.data_type, values]
    return {
        "name": me.name,
        "vertices": [_vec(v.co) for v in me.vertices],
        "edges": [list(e.vertices) for e in me.edges],
        "faces": [list(p.vertices) for p in me.polygons],
        "uv_layers": sorted(layer.name for layer in me.uv_layers),
        "attributes": attributes,
        "materials": [_uid(m) for m in me.materials],
        "shapes": _describe_shapes(me.shape_keys),
    }


def _describe_shapes(key: bpy.types.Key | None) -> dict | None:
    if key is None or not len(key.key_blocks):
        return None
    blocks = [
        [
            kb.name,
            [rna.plain(getattr(kb, attr)) for attr in SHAPE_KEY_PROPS],
            kb.relative_key.name if kb.relative_key is not None else None,
            [_vec(d.co) for d in kb.data],
        ]
        for kb in key.key_blocks
    ]
    return {"use_relative": key.use_relative, "eval_time": key.eval_time, "blocks": blocks}


def _describe_tree(tree: bpy.types.NodeTree | None) -> dict | None:
    if tree is None:
        return None
    nodes = {}
    for node in tree.nodes:
        nodes[node.name] = {
            "type": node.bl_idname,
            "parent": node.parent.name if node.parent else None,
            "location": _vec(node.location),
            "props": rna.read_props(node, skip=NODE_SKIP),
            "inputs": [
                [
                    socket_id(node, s, node.inputs),
                    _uid(s.default_value)
                    if isinstance(s.default_value, bpy.types.ID)
                    else rna.plain(s.default_value),
                ]
                for s in node.inputs
                if hasattr(s, "default_value")
            ],
            "outputs": [
                [socket_id(node, s, node.outputs), rna.plain(s.default_value)]
                for s in node.outputs
                if hasattr(s, "default_value") and not isinstance(s.default_value, bpy.types.ID)
            ],
            "ramp": [[e.position, _vec(e.color)] for e in node.color_ramp.elements]
            if getattr(node, "color_ramp", None) is not None
            else None,
        }
    links = sorted(
        [
            lk.from_node.name,
            socket_id(lk.from_node, lk.from_socket, lk.from_node.outputs),
            lk.to_node.name,
            socket_id(lk.to_node, lk.to_socket, lk.to_node.inputs),
        ]
        for lk in tree.links
    )
    return {"nodes": nodes, "links": links}


def _describe_action(action: bpy.types.Action) -> dict:
    curves = []
    for layer in action.layers:
        for strip in layer.strips:
            for bag in strip.channelbags:
                for fc in bag.fcurves:
                    curves.append(
                        [
                            bag.slot.identifier if bag.slot else None,
                            fc.data_path,
                            fc.array_index,
                            [
                                [_vec(k.co), k.interpolation, _vec(k.handle_left), _vec(k.handle_right)]
                                for k in fc.keyframe_points
                            ],
                        ]
                    )
    curves.sort(key=lambda c: (c[0] or "", c[1], c[2]))
    return {"name": action.name, "slots": sorted(s.identifier for s in action.slots), "fcurves": curves}


def _describe_curve(curve: bpy.types.Curve) -> dict:
    splines = []
    for spline in curve.splines:
        if spline.type == "BEZIER":
            points = [
                [_vec(p.co), _vec(p.handle_left), _vec(p.handle_right), p.radius, p.tilt]
                for p in spline.bezier_points
            ]
        else:
            points = [[_vec(p.co), p.radius, p.tilt] for p in spline.points]
        splines.append([spline.type, spline.use_cyclic_u, spline.resolution_u, points])
    return {
        "name": curve.name,
        "type": curve_type(curve),
        "props": rna.read_props(curve, skip=CURVE_SKIP),
        "splines": splines,
        "body": curve.body if curve_type(curve) == "FONT" else None,
        "materials": [_uid(m) for m in curve.materials],
    }


def _describe_image(img: bpy.types.Image) -> dict:
    content = image_content(img)
    return {
        "name": img.name,
        "size": list(img.size),
        "content": hashlib.sha256(content).hexdigest() if content is not None else None,
        "generated": None
        if content is not None
        else [img.generated_type, img.generated_width, img.generated_height, _vec(img.generated_color)],
    }


def _describe_sound(sound: bpy.types.Sound) -> dict:
    content = sound_content(sound)
    return {
        "name": sound.name,
        "content": hashlib.sha256(content).hexdigest() if content is not None else None,
        "flags": [sound.use_mono, sound.use_memory_cache],
    }


def _describe_font(font: bpy.types.VectorFont) -> dict:
    content = font_content(font)
    return {
        "name": font.name,
        "builtin": font.filepath == ids.BUILTIN_FONT,
        "content": hashlib.sha256(content).hexdigest() if content is not None else None,
    }


GP_ATTRIBUTE_KEY = {
    "FLOAT": "value",
    "INT": "value",
    "INT8": "value",
    "FLOAT_VECTOR": "vector",
    "FLOAT_COLOR": "color",
}


def _describe_gpencil(gp: bpy.types.GreasePencil) -> dict:
    layers = []
    for layer in gp.layers:
        frames = []
        for frame in sorted(layer.frames, key=lambda f: f.frame_number):
            drawing = frame.drawing
            attributes = {}
            for attr in drawing.attributes if drawing is not None else ():
                key = GP_ATTRIBUTE_KEY.get(attr.data_type)
                if attr.name.startswith(".") or key is None:
                    continue
                attributes[attr.name] = [attr.domain, [rna.plain(getattr(item, key)) for item in attr.data]]
            frames.append(
                [
                    frame.frame_number,
                    frame.keyframe_type,
                    [o.value for o in drawing.curve_offsets],
                    attributes,
                ]
            )
        layers.append([layer.name, rna.read_props(layer, skip=GP_LAYER_SKIP), frames])
    return {
        "name": gp.name,
        "materials": [_uid(m) for m in gp.materials],
        "props": rna.read_props(gp),
        "layers": layers,
    }


def _describe_clip(clip: bpy.types.MovieClip) -> dict:
    files = clip_content(clip)
    return {
        "name": clip.name,
        "source": clip.source,
        "content": clip_digest(files) if files is not None else None,
        "frames": [clip.frame_start, clip.frame_offset],  # size and duration are runtime (load-state) values
        "colorspace": clip.colorspace_settings.name,
    }


def _describe_lib(lib: bpy.types.Library, masters: dict[int, str]) -> dict:
    content = library_content(lib)
    linked = []
    for id_data in ids.library_linked(lib):
        if isinstance(id_data, bpy.types.Collection):
            parents = [_uid(c) for c in bpy.data.collections if ids.is_synced(c) and id_data in c.children[:]]
            parents += [
                _uid(s) for s in bpy.data.scenes if ids.is_synced(s) and id_data in s.collection.children[:]
            ]
        elif isinstance(id_data, bpy.types.Object):
            parents = [r for r in (_coll_ref(c, masters) for c in id_data.users_collection) if r]
        else:
            parents = []
        linked.append([id_data.id_type, id_data.name, sorted(parents)])
    return {
        "name": lib.name,
        "content": hashlib.sha256(content).hexdigest() if content is not None else None,
        "linked": sorted(linked),
    }


def _describe_mball(mb: bpy.types.MetaBall) -> dict:
    return {
        "name": mb.name,
        "props": rna.read_props(mb, skip=TEXSPACE_SKIP),
        "elements": [[rna.plain(getattr(e, attr)) for attr in METABALL_ELEMENT] for e in mb.elements],
        "materials": [_uid(m) for m in mb.materials],
    }


def _describe_lattice(lattice: bpy.types.Lattice) -> dict:
    return {
        "name": lattice.name,
        "size": [getattr(lattice, attr) for attr in LATTICE_SIZE],
        "props": rna.read_props(lattice, skip=LATTICE_SIZE),
        "points": [[_vec(p.co_deform), p.weight_softbody] for p in lattice.points],
    }


def scene_description() -> dict:
    """The canonical description that :func:`scene_hash` hashes (useful to diff two replicas)."""
    ids.index_all(assign=True)
    masters = {s.collection.as_pointer(): ids.get_uuid(s) for s in bpy.data.scenes if ids.is_synced(s)}
    out: dict[str, dict] = {kind: {} for kind in ids.DATA_COLLECTIONS}
    for kind, id_data in ids.iter_synced():
        uid = ids.get_uuid(id_data)
        if kind == "obj":
            doc = _describe_object(id_data, masters)
        elif kind == "mesh":
            doc = _describe_mesh(id_data)
        elif kind == "mat":
            doc = {
                "name": id_data.name,
                "props": rna.read_props(id_data, skip=MATERIAL_SKIP),
                "tree": _describe_tree(id_data.node_tree),
                "grease_pencil": rna.read_props(id_data.grease_pencil) if id_data.is_grease_pencil else None,
            }
        elif kind == "world":
            doc = {
                "name": id_data.name,
                "color": _vec(id_data.color),
                "tree": _describe_tree(id_data.node_tree),
            }
        elif kind == "ngroup":
            doc = {"name": id_data.name, "interface": ser_interface(id_data), "tree": _describe_tree(id_data)}
        elif kind == "light":
            doc = {"name": id_data.name, "type": id_data.type, "props": rna.read_props(id_data)}
        elif kind == "cam":
            doc = {"name": id_data.name, "props": rna.read_props(id_data, skip=CAMERA_SKIP, nested=("dof",))}
        elif kind == "arm":
            doc = _describe_arm(id_data)
        elif kind == "coll":
            doc = {
                "name": id_data.name,
                "children": sorted(_uid(c) for c in id_data.children if ids.is_synced(c)),
                "objects": sorted(_uid(o) for o in id_data.objects if ids.is_synced(o)),
                "flags": [id_data.hide_viewport, id_data.hide_render, id_data.hide_select],
            }
        elif kind == "scene":
            doc = {
                "name": id_data.name,
                "frames": [id_data.frame_start, id_data.frame_end, id_data.frame_current],
                "camera": _uid(id_data.camera),
                "world": _uid(id_data.world),
                "active_clip": _uid(id_data.active_clip),
                "children": sorted(_uid(c) for c in id_data.collection.children if ids.is_synced(c)),
                "objects": sorted(_uid(o) for o in id_data.collection.objects if ids.is_synced(o)),
            }
        elif kind == "img":
            doc = _describe_image(id_data)
        elif kind == "action":
            doc = _describe_action(id_data)
        elif kind == "curve":
            doc = _describe_curve(id_data)
        elif kind == "text":
            doc = {"name": id_data.name, "content": id_data.as_string()}
        elif kind == "sound":
            doc = _describe_sound(id_data)
        elif kind == "font":
            doc = _describe_font(id_data)
        elif kind == "clip":
            doc = _describe_clip(id_data)
        elif kind == "lib":
            doc = _describe_lib(id_data, masters)
        elif kind == "tex":
            doc = {
                "name": id_data.name,
                "type": id_data.type,
                "props": rna.read_props(id_data, skip=TEXTURE_SKIP),
            }
        elif kind == "mball":
            doc = _describe_mball(id_data)
        elif kind == "lattice":
            doc = _describe_lattice(id_data)
        elif kind == "gpencil":
            doc = _describe_gpencil(id_data)
        elif kind == "lprobe":
            doc = {"name": id_data.name, "type": id_data.type, "props": rna.read_props(id_data)}
        elif kind == "speaker":
            doc = {"name": id_data.name, "props": rna.read_props(id_data)}
        else:  # pragma: no cover - every kind is handled above
            continue
        out[kind][uid] = rounded(doc)
    return out


def scene_hash() -> str:
    """sha256 (hex) of the canonical JSON of :func:`scene_description`."""
    text = json.dumps(scene_description(), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()
