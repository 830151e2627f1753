"""Images (kind ``img``): generated images as settings, images with a file as the encoded file's bytes."""

from __future__ import annotations

import hashlib
import os

import bpy

from ..arrays import floats
from ..assign import rename, set_changed
from ..context import ApplyContext, ReadContext
from .base import Kind


def accepts(img: bpy.types.Image) -> bool:
    return img.type in {"IMAGE", "UV_TEST"} and img.source in {"FILE", "GENERATED"}


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


def serialise(img: bpy.types.Image, ctx: ReadContext) -> dict[str, object]:
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
            "color": floats(img.generated_color),
            "float": img.use_generated_float,
        },
        "sha256": hashlib.sha256(content).hexdigest() if content is not None else None,
    }
    parts: dict[str, object] = {"meta": meta}
    if content is not None:
        parts["data"] = {"sha256": meta["sha256"], "bytes": content}
    return parts


def describe(img: bpy.types.Image, ctx: ReadContext) -> dict:
    content = image_content(img)
    return {
        "name": img.name,
        "size": list(img.size),
        "content": hashlib.sha256(content).hexdigest() if content is not None else None,
        "generated": None
        if content is not None
        else [img.generated_type, img.generated_width, img.generated_height, floats(img.generated_color)],
    }


def create(uuid: str, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    gen = doc["generated"]
    if gen is None:  # the encoded file arrives in the data part
        return bpy.data.images.new(doc["name"], 1, 1, alpha=True)
    return bpy.data.images.new(
        doc["name"], gen["width"], gen["height"], alpha=True, float_buffer=gen["float"]
    )


def apply_meta(img: bpy.types.Image, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    rename(img, doc["name"])
    gen = doc["generated"]
    if gen is not None:
        set_changed(img, "source", "GENERATED")
        set_changed(img, "generated_type", gen["type"])
        set_changed(img, "generated_width", gen["width"])
        set_changed(img, "generated_height", gen["height"])
        set_changed(img, "generated_color", gen["color"])
        set_changed(img, "use_generated_float", gen["float"])
    set_changed(img.colorspace_settings, "name", doc["colorspace"])
    set_changed(img, "alpha_mode", doc["alpha_mode"])
    return img


def apply_data(img: bpy.types.Image, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    content = image_content(img)
    data = doc["bytes"]
    if content is not None and hashlib.sha256(content).hexdigest() == doc["sha256"]:
        return img
    had_file = img.packed_file is not None
    img.pack(data=data, data_len=len(data))
    img.source = "FILE"
    if had_file:
        img.reload()
    return img


KIND = Kind(
    name="img",
    collection="images",
    rna_type="Image",
    parts={"meta": apply_meta, "data": apply_data},
    create=create,
    serialise=serialise,
    describe=describe,
    accepts=accepts,
)
