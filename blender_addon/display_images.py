"""Image textures for the browser viewer: the image that feeds a simple material's Base Color, as a PNG or
JPEG of at most ``MAX_SIDE`` pixels a side (docs/values.md, "Material summary", "Base colour image").

*Simple* means: the material's first Principled BSDF takes its Base Color from the Color output of an Image
Texture node (flat projection), whose Vector input is unlinked (the mesh's UVs) or comes from a UV Map node
or a Texture Coordinate node's UV output, optionally through Mapping nodes (point or texture type,
unlinked location, rotation and scale, rotation about Z only). Reroutes are followed. Anything else draws
the Base Color's own value.

The add-on sends what it has: a packed or file image that is a PNG or JPEG no larger than ``MAX_SIDE`` goes
as its file's bytes (the same bytes as its ``img/<u>/data`` value, so the same chunks: the server stores
them once); any other (larger, another format, generated, or painted and not saved) is encoded here as a
PNG from its pixels, downscaled to fit, to keep viewers cheap.
"""

from __future__ import annotations

import hashlib
import math
import struct
import zlib
from typing import Any

import bpy

from .sync.kinds.images import image_content

MAX_SIDE = 2048
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"
NON_COLOR = {"Non-Color", "Raw", "Generic Data"}
IDENTITY = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]  # a 2 x 3 affine map of UVs, row-major


class ImageCache:
    """Display images by the image's pointer: encoding one is costly, and a material is summarised on
    every change of any of its settings. An image's entry goes when Blender says the image changed."""

    def __init__(self) -> None:
        self._images: dict[int, dict[str, Any] | None] = {}

    def forget(self, image: bpy.types.Image) -> None:
        self._images.pop(image.as_pointer(), None)

    def clear(self) -> None:
        self._images.clear()

    def get(self, image: bpy.types.Image) -> dict[str, Any] | None:
        pointer = image.as_pointer()
        if pointer not in self._images:
            self._images[pointer] = display_image(image)
        return self._images[pointer]


def _link(socket: Any) -> Any:
    """The link into an input socket, through reroutes; None when unlinked (or muted)."""
    while socket.is_linked:
        links = [link for link in socket.links if link.is_valid and not link.is_muted]
        if not links:
            return None
        link = links[0]
        if link.from_node.bl_idname != "NodeReroute":
            return link
        socket = link.from_node.inputs[0]
    return None


def base_color_image(principled: Any, cache: ImageCache) -> dict[str, Any] | None:
    """The ``base_color_image`` of a Principled BSDF node (docs/values.md), or None when not simple."""
    link = _link(principled.inputs["Base Color"])
    if link is None:
        return None
    node = link.from_node
    if node.bl_idname != "ShaderNodeTexImage" or link.from_socket.identifier != "Color":
        return None
    if node.image is None or node.projection != "FLAT":
        return None
    transform = uv_transform(node.inputs["Vector"])
    if transform is None:
        return None
    picture = cache.get(node.image)
    if picture is None:
        return None
    options = {"extension": node.extension, "interpolation": node.interpolation, "uv_transform": transform}
    return {**picture, **options}


def _compose(a: list[float], b: list[float]) -> list[float]:
    """The affine map ``a`` after ``b`` (both 2 x 3, row-major)."""
    return [
        a[0] * b[0] + a[1] * b[3],
        a[0] * b[1] + a[1] * b[4],
        a[0] * b[2] + a[1] * b[5] + a[2],
        a[3] * b[0] + a[4] * b[3],
        a[3] * b[1] + a[4] * b[4],
        a[3] * b[2] + a[4] * b[5] + a[5],
    ]


def uv_transform(socket: Any) -> list[float] | None:
    """What the nodes into an Image Texture's Vector input do to the mesh's UVs, or None if not simple."""
    link = _link(socket)
    if link is None:
        return list(IDENTITY)
    node = link.from_node
    if node.bl_idname == "ShaderNodeUVMap":
        return list(IDENTITY)
    if node.bl_idname == "ShaderNodeTexCoord":
        return list(IDENTITY) if link.from_socket.identifier == "UV" else None
    if node.bl_idname != "ShaderNodeMapping" or node.vector_type not in {"POINT", "TEXTURE"}:
        return None
    inner = uv_transform(node.inputs["Vector"])
    sockets = [node.inputs[name] for name in ("Location", "Rotation", "Scale")]
    if inner is None or any(s.is_linked for s in sockets):
        return None
    location, rotation, scale = (list(s.default_value) for s in sockets)
    if rotation[0] or rotation[1]:
        return None  # a turn out of the UV plane
    c, s = math.cos(rotation[2]), math.sin(rotation[2])
    sx, sy = scale[0], scale[1]
    if node.vector_type == "POINT":  # out = R (S v) + L
        outer = [c * sx, -s * sy, location[0], s * sx, c * sy, location[1]]
    else:  # TEXTURE, the inverse: out = S^-1 R^-1 (v - L)
        if not sx or not sy:
            return None
        ux, uy = -location[0], -location[1]
        outer = [c / sx, s / sx, (c * ux + s * uy) / sx, -s / sy, c / sy, (-s * ux + c * uy) / sy]
    return _compose(outer, inner)


def display_image(image: bpy.types.Image) -> dict[str, Any] | None:
    """``hash``, ``width``, ``height``, ``data`` (PNG or JPEG bytes) and ``linear`` of an image."""
    width, height = int(image.size[0]), int(image.size[1])
    if not width or not height:
        return None  # a missing file: nothing to show
    linear = image.colorspace_settings.name in NON_COLOR
    data = None if image.is_dirty else image_content(image)
    if data is None or not data.startswith((PNG_MAGIC, JPEG_MAGIC)) or max(width, height) > MAX_SIDE:
        data, width, height = encode_png(image, linear)
    return {
        "hash": hashlib.sha256(data).hexdigest(),
        "width": width,
        "height": height,
        "data": data,
        "linear": linear,
    }


def encode_png(image: bpy.types.Image, linear: bool) -> tuple[bytes, int, int]:
    """The image's pixels as an 8-bit RGBA PNG of at most MAX_SIDE a side (nearest pixel)."""
    import numpy as np  # shipped with Blender

    width, height = int(image.size[0]), int(image.size[1])
    pixels = np.empty(width * height * 4, np.float32)
    image.pixels.foreach_get(pixels)
    pixels = pixels.reshape(height, width, 4)
    step = max(1, math.ceil(max(width, height) / MAX_SIDE))
    pixels = pixels[::step, ::step]
    if image.is_float and not linear:  # float buffers hold linear values: encode them as sRGB
        rgb = np.clip(pixels[..., :3], 0.0, None)
        pixels = pixels.copy()
        pixels[..., :3] = np.where(rgb <= 0.0031308, rgb * 12.92, 1.055 * np.power(rgb, 1 / 2.4) - 0.055)
    rows = np.clip(np.rint(pixels * 255.0), 0, 255).astype(np.uint8)[::-1]  # PNG rows go top first
    out_height, out_width = rows.shape[0], rows.shape[1]
    raw = np.concatenate([np.zeros((out_height, 1), np.uint8), rows.reshape(out_height, -1)], axis=1)

    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))

    header = struct.pack(">IIBBBBB", out_width, out_height, 8, 6, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw.tobytes(), 6)) + chunk(b"IEND", b"")
    png = PNG_MAGIC + body
    return png, out_width, out_height
