"""Pixels painted into an image and not saved: the ``painted`` field of an image's ``data`` part.

Blender keeps what the brush (or a bake, or a script) wrote into an image in the image's buffer until the
artist saves or packs it; the image is ``is_dirty`` until then. Those pixels travel raw, as
``Image.pixels`` orders them (rows bottom first, ``channels`` values a pixel): one byte a value for a byte
buffer (Blender's 0-255, exactly), little-endian float32 for a float buffer. Raw, a stroke changes only
the chunks of the rows it touched (chunks.py), and equal stretches (a blank canvas) share their chunks.

Blender reports no change when pixels are written; the sync loop looks for painted images itself
(paint_watch.py).
"""

from __future__ import annotations

import hashlib
from typing import Any

import bpy

MAX_SIDE = 65536  # Blender's largest image side
CHANNELS = range(1, 5)


def read(img: bpy.types.Image, unsaved_only: bool = True) -> dict[str, Any] | None:
    """``size``, ``channels``, ``float`` and ``pixels`` of an image holding unsaved pixels, else None (with
    ``unsaved_only`` False: of any image that has pixels)."""
    if unsaved_only and not img.is_dirty:
        return None
    import numpy as np  # shipped with Blender

    width, height = int(img.size[0]), int(img.size[1])
    count = len(img.pixels)
    if not width or not height or count % (width * height):
        return None
    values = np.empty(count, np.float32)
    img.pixels.foreach_get(values)
    if img.is_float:
        data = values.astype("<f4", copy=False).tobytes()
    else:  # Blender reads byte b as b / 255: scaled back and rounded, it is b again
        values *= 255.0
        values += 0.5
        data = values.astype(np.uint8).tobytes()
    channels = count // (width * height)
    return {"size": [width, height], "channels": channels, "float": img.is_float, "pixels": data}


def saved(img: bpy.types.Image) -> dict[str, Any] | None:
    """What an image holding unsaved pixels shows without them (its file, or its generated pixels), as
    :func:`read` gives pixels: a copy of an image is made from its file or settings, not its buffer."""
    copy = img.copy()
    try:
        return read(copy, unsaved_only=False)
    finally:
        bpy.data.images.remove(copy)


def digest(img: bpy.types.Image) -> str | None:
    """SHA-256 of an image's unsaved pixels as they travel (None: none)."""
    doc = read(img)
    return None if doc is None else hashlib.sha256(doc["pixels"]).hexdigest()


def _checked(doc: Any) -> tuple[int, int, int, bool, bytes]:
    if not isinstance(doc, dict):
        raise ValueError("painted pixels are not a map")
    size, channels = doc.get("size"), doc.get("channels")
    is_float, pixels = doc.get("float"), doc.get("pixels")
    if (
        not isinstance(size, list | tuple)
        or len(size) != 2
        or not all(type(side) is int and 0 < side <= MAX_SIDE for side in size)
    ):
        raise ValueError(f"painted pixels of size {size!r}")
    if type(channels) is not int or channels not in CHANNELS or type(is_float) is not bool:
        raise ValueError(f"painted pixels of {channels!r} channels, float {is_float!r}")
    width, height = size
    expected = width * height * channels * (4 if is_float else 1)
    if not isinstance(pixels, bytes | bytearray) or len(pixels) != expected:
        length = len(pixels) if isinstance(pixels, bytes | bytearray) else type(pixels).__name__
        raise ValueError(f"painted pixels of {length} bytes, {expected} expected")
    return width, height, channels, is_float, bytes(pixels)


def write(img: bpy.types.Image, doc: Any) -> None:
    """Put painted pixels into an image's buffer (scaled to their size first); raises ValueError for a
    value that does not describe them, or for an image whose buffer holds another number of channels."""
    import numpy as np

    width, height, channels, is_float, pixels = _checked(doc)
    if (int(img.size[0]), int(img.size[1])) != (width, height):
        img.scale(width, height)
    if len(img.pixels) != width * height * channels:
        raise ValueError(f"painted pixels of {channels} channels for an image of {img.channels}")
    if is_float:
        values = np.frombuffer(pixels, "<f4").astype(np.float32)
    else:
        values = np.frombuffer(pixels, np.uint8).astype(np.float32)
        values /= 255.0
    img.pixels.foreach_set(values)
