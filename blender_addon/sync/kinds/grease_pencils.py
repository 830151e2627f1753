"""Grease pencil v3 data (kind ``gpencil``): settings, materials and layers; frames and their strokes.

A frame whose drawing another frame of its layer shows too (an instanced frame: Blender's Duplicate as
instance, ``frames.copy(..., instance_drawing=True)``) travels as ``instance_of``: the number of the first
frame showing that drawing, and is made on a receiver as an instance of it."""

from __future__ import annotations

import itertools

import bpy

from .. import gp_layers, ids, rna
from ..arrays import ATTRIBUTE_LAYOUT, read_attribute, write_attribute
from ..assign import rename, set_changed, set_materials
from ..attributes import remove_unlisted
from ..codec import pack_i32, unpack_i32
from ..context import ApplyContext, ReadContext
from .base import Kind

GP_LAYER_SKIP = ("matrix_local", "matrix_parent_inverse")
# data_type -> attribute of its items, for the canonical description
GP_ATTRIBUTE_KEY = {
    "FLOAT": "value",
    "INT": "value",
    "INT8": "value",
    "FLOAT_VECTOR": "vector",
    "FLOAT_COLOR": "color",
}


# ---------------------------------------------------------------- read


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


def _instances(frames: list) -> dict[int, int]:
    """Frame number -> the first frame (in frame order) showing the same drawing, for the frames after it."""
    first: dict[int, int] = {}
    out = {}
    for frame in frames:
        if frame.drawing is None:
            continue
        number = first.setdefault(frame.drawing.as_pointer(), frame.frame_number)
        if number != frame.frame_number:
            out[frame.frame_number] = number
    return out


def serialise(gp: bpy.types.GreasePencil, ctx: ReadContext) -> dict[str, object]:
    layers = []
    for layer in gp.layers:
        frames = []
        ordered = sorted(layer.frames, key=lambda f: f.frame_number)
        instances = _instances(ordered)
        for frame in ordered:
            drawing = frame.drawing
            doc: dict[str, object] = {
                "frame_number": frame.frame_number,
                "keyframe_type": frame.keyframe_type,
            }
            if frame.frame_number in instances:
                doc["instance_of"] = instances[frame.frame_number]
            else:
                doc["sizes"] = pack_i32(stroke_sizes(drawing)) if drawing is not None else b""
                doc["attributes"] = drawing_attributes(drawing) if drawing is not None else []
            frames.append(doc)
        layers.append({"name": layer.name, "frames": frames})
    return {
        "meta": {
            "name": gp.name,
            "materials": [ctx.ref(m) for m in gp.materials],
            "props": ctx.props(gp),
            "layers": [
                {"name": layer.name, "props": ctx.props(layer, skip=GP_LAYER_SKIP), **gp_layers.masks(layer)}
                for layer in gp.layers
            ],
            **gp_layers.structure(gp, ctx),
        },
        "strokes": {"layers": layers},
    }


def describe(gp: bpy.types.GreasePencil, ctx: ReadContext) -> dict:
    layers = []
    for layer in gp.layers:
        frames = []
        ordered = sorted(layer.frames, key=lambda f: f.frame_number)
        instances = _instances(ordered)
        for frame in ordered:
            drawing = frame.drawing
            if frame.frame_number in instances:
                frames.append(
                    [frame.frame_number, frame.keyframe_type, "instance of", instances[frame.frame_number]]
                )
                continue
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
        layers.append([layer.name, ctx.props(layer, skip=GP_LAYER_SKIP), frames, gp_layers.masks(layer)])
    return {
        "name": gp.name,
        "materials": [ctx.ref(m) for m in gp.materials],
        "props": ctx.props(gp),
        "layers": layers,
        **gp_layers.structure(gp, ctx),
    }


# ---------------------------------------------------------------- apply


def create(uuid: str, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    return bpy.data.grease_pencils.new(doc["name"])


def stub(name: str, object_type: str) -> bpy.types.ID:
    return bpy.data.grease_pencils.new(name)


def apply_meta(gp: bpy.types.GreasePencil, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    rename(gp, doc["name"])
    set_materials(gp.materials, [ctx.resolve(u) for u in doc["materials"]])
    rna.write_props(gp, doc["props"], ctx.resolve)
    layers = gp.layers
    tree = doc.get("tree") or [d["name"] for d in doc["layers"]]
    groups_doc = doc.get("groups") or {}
    if gp_layers.layer_tree(gp) != tree:
        gp_layers.arrange(gp, tree, groups_doc, {d["name"] for d in doc["layers"]})
    for name, props in groups_doc.items():
        group = gp.layer_groups.get(name)
        if group is not None:
            rna.write_props(group, props, ctx.resolve)
    for d in doc["layers"]:
        rna.write_props(layers[d["name"]], d["props"], ctx.resolve)
    for d in doc["layers"]:  # once every layer is here: a mask names another
        gp_layers.apply_masks(gp, layers[d["name"]], d.get("masks", []), ctx)
    return gp


def _apply_drawing(drawing, doc: dict) -> None:
    sizes = list(unpack_i32(doc["sizes"]))
    if stroke_sizes(drawing) != sizes:
        if len(drawing.curve_offsets) > 1:
            drawing.remove_strokes()
        if sizes:
            drawing.add_strokes(sizes)
    remove_unlisted(drawing.attributes, {a["name"] for a in doc["attributes"]}, (RuntimeError, ValueError))
    for adoc in doc["attributes"]:
        attr = drawing.attributes.get(adoc["name"])
        if attr is not None and (attr.domain, attr.data_type) != (adoc["domain"], adoc["type"]):
            drawing.attributes.remove(attr)
            attr = None
        if attr is None:
            attr = drawing.attributes.new(adoc["name"], adoc["type"], adoc["domain"])
        if adoc["type"] in ATTRIBUTE_LAYOUT:
            write_attribute(attr, adoc["data"])
    drawing.tag_positions_changed()


def apply_strokes(gp: bpy.types.GreasePencil, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    layers = gp.layers
    if [layer.name for layer in layers] != [d["name"] for d in doc["layers"]]:
        # The layers in meta have not arrived yet (or differ): apply again once they have.
        ctx.wait_for("meta", ids.get_uuid(gp))
        return gp
    for layer, ldoc in zip(layers, doc["layers"], strict=True):
        _apply_frames(layer, ldoc["frames"])
    return gp


def _apply_frames(layer, docs: list[dict]) -> None:
    # A layer's frames live in a hash map that moves every frame when it grows: frames are handled by
    # number, and looked up only once every frame has been made (a frame looked up before a new one was
    # made pointed at freed memory).
    wanted = {f["frame_number"]: f.get("instance_of") for f in docs}
    if len(wanted) != len(docs):
        raise ValueError("a frame number is listed twice")
    for number, source in wanted.items():
        if source is not None and (source not in wanted or wanted[source] is not None):
            raise ValueError(f"frame {number} is an instance of {source}, which is not a frame of its own")
    have = _instances(sorted(layer.frames, key=lambda f: f.frame_number))
    for number in [frame.frame_number for frame in layer.frames]:
        if number not in wanted or have.get(number) != wanted[number]:  # an instance is made again
            layer.frames.remove(number)
    numbers = {frame.frame_number for frame in layer.frames}
    for number in sorted(n for n, source in wanted.items() if source is None and n not in numbers):
        layer.frames.new(number)
    for number in sorted(n for n, source in wanted.items() if source is not None and n not in numbers):
        layer.frames.copy(wanted[number], number, instance_drawing=True)
    frames = {frame.frame_number: frame for frame in layer.frames}
    for fdoc in docs:
        frame = frames[fdoc["frame_number"]]
        set_changed(frame, "keyframe_type", fdoc["keyframe_type"])
        if frame.drawing is not None and wanted[frame.frame_number] is None:
            _apply_drawing(frame.drawing, fdoc)


KIND = Kind(
    name="gpencil",
    collection="grease_pencils",
    rna_type="GreasePencil",
    parts={"meta": apply_meta, "strokes": apply_strokes},
    create=create,
    serialise=serialise,
    describe=describe,
    stub=stub,
    object_types=("GREASEPENCIL",),
)
