"""Images painted the way Blender's brush leaves them (pixels written into the buffer, nothing reported),
for the tests of painted images in one process and between artists."""

from __future__ import annotations

import hashlib

import bpy
import numpy as np
from scene_builders import link, triangle_mesh


def pixels_of(img: bpy.types.Image) -> np.ndarray:
    values = np.empty(len(img.pixels), np.float32)
    img.pixels.foreach_get(values)
    return values


def stroke(img: bpy.types.Image | str, x: int, y: int, side: int, colour: tuple[float, ...]) -> None:
    """A square dab of ``colour`` (as many values as the image has channels) at pixel (x, y)."""
    img = bpy.data.images[img] if isinstance(img, str) else img
    width, height = img.size
    values = pixels_of(img).reshape(height, width, -1)
    values[y : y + side, x : x + side] = colour
    img.pixels.foreach_set(values.ravel())


def canvas(name: str, size: int = 32, float_buffer: bool = False, packed: bool = False) -> bpy.types.Image:
    """An image in a material on a triangle (with UVs, the active object): generated, or packed as a PNG."""
    img = bpy.data.images.new(name, size, size, alpha=True, float_buffer=float_buffer)
    if packed:
        stroke(img, 0, 0, size, (0.2, 0.4, 0.6, 1.0))
        img.pack()  # saved: packed as a PNG, no unsaved pixels
        assert not img.is_dirty and img.packed_file is not None
    mat = bpy.data.materials.new(name)
    node = mat.node_tree.nodes.new("ShaderNodeTexImage")
    node.image = img
    mat.node_tree.nodes.active = node
    mesh = triangle_mesh(name)
    mesh.uv_layers.new()
    mesh.materials.append(mat)
    ob = link(bpy.data.objects.new(name, mesh))
    bpy.context.view_layer.objects.active = ob
    return img


def pixels_sha(name: str) -> str:
    """What an image shows, saved or not."""
    return hashlib.sha256(pixels_of(bpy.data.images[name]).tobytes()).hexdigest()
