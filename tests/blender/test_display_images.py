"""The image a material shows in the browser viewer (blender_addon/display_images.py), in one Blender:
which materials are simple enough, what their Mapping nodes do to UVs, and what bytes go (a PNG or JPEG
as it is, anything else a PNG of at most 2048 pixels a side)."""

from __future__ import annotations

import math

import bpy
import numpy as np
import pytest

from blender_addon import display_images
from blender_addon.display_images import MAX_SIDE, ImageCache, base_color_image, display_image
from blender_addon.display_mesh import material_summary
from tools.browser import decode_png


def painted(name: str, width: int, height: int) -> bpy.types.Image:
    """Left half red, right half blue."""
    img = bpy.data.images.new(name, width, height)
    px = np.zeros((height, width, 4), np.float32)
    px[..., 3] = 1.0
    px[:, : width // 2, 0] = 1.0
    px[:, width // 2 :, 2] = 1.0
    img.pixels.foreach_set(px.ravel())
    return img


def textured(img: bpy.types.Image) -> tuple[bpy.types.Material, bpy.types.Node, bpy.types.Node]:
    mat = bpy.data.materials.new("M")
    if bpy.app.version < (5, 0, 0):  # from 5.0 on a material always uses its nodes
        mat.use_nodes = True
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    tex = nodes.new("ShaderNodeTexImage")
    tex.image = img
    principled = nodes["Principled BSDF"]
    links.new(tex.outputs["Color"], principled.inputs["Base Color"])
    return mat, tex, principled


def test_a_packed_png_goes_as_it_is_and_anything_else_as_a_png_of_its_pixels_at_most_2048_a_side():
    small = painted("small", 64, 32)
    small.pack()
    picture = display_image(small)
    assert picture["data"] == bytes(small.packed_file.data)  # the same bytes (and chunks) as img/<u>/data
    assert (picture["width"], picture["height"], picture["linear"]) == (64, 32, False)
    # Generated (no file): its pixels, as they are.
    shown = decode_png(display_image(painted("generated", 40, 4))["data"])
    assert (shown.width, shown.height) == (40, 4)
    assert shown.pixel(0, 0) == (255, 0, 0) and shown.pixel(39, 3) == (0, 0, 255)
    # Larger than MAX_SIDE, even packed: downscaled by a whole factor to fit, left still red.
    for packed in (False, True):
        wide = painted(f"wide{packed}", MAX_SIDE + 1, 6)
        if packed:
            wide.pack()
        picture = display_image(wide)
        shown = decode_png(picture["data"])
        assert (shown.width, shown.height) == (picture["width"], picture["height"]) == (1025, 3)
        assert shown.pixel(0, 1) == (255, 0, 0) and shown.pixel(1024, 1) == (0, 0, 255)
    exact = display_image(painted("exact", MAX_SIDE, 2))
    assert (exact["width"], exact["height"]) == (MAX_SIDE, 2)
    # Painted and not saved: the pixels, not the stale packed file.
    small.pixels.foreach_set(np.zeros(64 * 32 * 4, np.float32))
    assert small.is_dirty
    assert decode_png(display_image(small)["data"]).pixel(0, 0) == (0, 0, 0)
    # Data, not colour: used as is.
    data = painted("data", 4, 4)
    data.colorspace_settings.name = "Non-Color"
    assert display_image(data)["linear"] is True
    # A file that is not there: nothing to show.
    missing = bpy.data.images.new("missing", 4, 4)
    missing.source = "FILE"
    missing.filepath = "/nonexistent/missing.png"
    assert display_image(missing) is None


def test_only_a_simple_material_has_an_image_and_mapping_nodes_transform_its_uvs():
    img = painted("tex", 8, 8)
    mat, tex, principled = textured(img)
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    cache = ImageCache()
    summary = material_summary(mat, cache)
    assert summary["base_color_image"]["uv_transform"] == [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    assert summary["base_color_image"]["hash"] == display_image(img)["hash"]
    # A UV Map node, a Texture Coordinate's UV, a reroute: still simple.
    for source in ("uvmap", "texcoord"):
        node = nodes.new("ShaderNodeUVMap" if source == "uvmap" else "ShaderNodeTexCoord")
        links.new(node.outputs["UV"], tex.inputs["Vector"])
        assert base_color_image(principled, cache) is not None
    reroute = nodes.new("NodeReroute")
    links.new(tex.outputs["Color"], reroute.inputs[0])
    links.new(reroute.outputs[0], principled.inputs["Base Color"])
    assert base_color_image(principled, cache) is not None
    # Generated coordinates are not the UVs.
    coords = nodes.new("ShaderNodeTexCoord")
    links.new(coords.outputs["Generated"], tex.inputs["Vector"])
    assert base_color_image(principled, cache) is None
    # Mapping: point type moves, turns (about Z) and scales UVs; texture type undoes it.
    point = nodes.new("ShaderNodeMapping")
    point.vector_type = "POINT"
    point.inputs["Location"].default_value = (0.5, 0.25, 0.0)
    point.inputs["Rotation"].default_value = (0.0, 0.0, math.pi / 2)
    point.inputs["Scale"].default_value = (2.0, 3.0, 1.0)
    links.new(point.outputs[0], tex.inputs["Vector"])
    a, b, c, d, e, f = base_color_image(principled, cache)["uv_transform"]
    u, v = 1.0, 1.0  # scaled (2, 3), turned a quarter (-3, 2), moved (-2.5, 2.25)
    assert (a * u + b * v + c, d * u + e * v + f) == pytest.approx((-2.5, 2.25))
    texture = nodes.new("ShaderNodeMapping")
    texture.vector_type = "TEXTURE"
    for name in ("Location", "Rotation", "Scale"):
        texture.inputs[name].default_value = point.inputs[name].default_value
    links.new(texture.outputs[0], point.inputs["Vector"])
    assert base_color_image(principled, cache)["uv_transform"] == pytest.approx([1, 0, 0, 0, 1, 0], abs=1e-6)
    texture.inputs["Scale"].default_value = (0.0, 1.0, 1.0)
    assert base_color_image(principled, cache) is None  # no inverse
    texture.inputs["Scale"].default_value = (1.0, 1.0, 1.0)
    point.inputs["Rotation"].default_value = (0.1, 0.0, 0.0)
    assert base_color_image(principled, cache) is None  # out of the UV plane
    point.inputs["Rotation"].default_value = (0.0, 0.0, 0.0)
    links.new(nodes.new("ShaderNodeValue").outputs[0], point.inputs["Location"])
    assert base_color_image(principled, cache) is None  # driven by other nodes
    links.new(coords.outputs["UV"], tex.inputs["Vector"])
    assert base_color_image(principled, cache) is not None
    # Not simple: box projection, the image's alpha, a colour mixed on the way, no image.
    tex.projection = "BOX"
    assert base_color_image(principled, cache) is None
    tex.projection = "FLAT"
    links.new(tex.outputs["Alpha"], principled.inputs["Base Color"])
    assert base_color_image(principled, cache) is None
    mix = nodes.new("ShaderNodeMix")
    mix.data_type = "RGBA"
    links.new(tex.outputs["Color"], mix.inputs["A"])
    links.new(mix.outputs["Result"], principled.inputs["Base Color"])
    assert "base_color_image" not in material_summary(mat, cache)
    links.new(tex.outputs["Color"], principled.inputs["Base Color"])
    tex.image = None
    assert "base_color_image" not in material_summary(mat, cache)


def test_an_image_is_encoded_once_until_blender_says_it_changed(monkeypatch):
    img = painted("cached", 8, 8)
    _, _, principled = textured(img)
    calls = []
    real = display_images.display_image
    monkeypatch.setattr(
        display_images, "display_image", lambda image: calls.append(image.name) or real(image)
    )
    cache = ImageCache()
    first = base_color_image(principled, cache)
    assert base_color_image(principled, cache) == first and calls == ["cached"]
    img.pixels.foreach_set(np.zeros(8 * 8 * 4, np.float32))
    cache.forget(img)  # what a depsgraph update of the image does (display_mesh.py)
    assert base_color_image(principled, cache)["hash"] != first["hash"] and calls == ["cached", "cached"]
