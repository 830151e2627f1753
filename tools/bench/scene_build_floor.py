"""``python tools/bench/scene_build_floor.py [--objects 500] [--grid 447] [--runs 3]``: Blender's own floor.

In one Blender process (bpy), no server and no add-on: builds the heavy join's scene (``tools/bench/addon.py
join``: ``--objects`` boxes sharing a material in a collection, and a ``--grid`` x ``--grid`` vertex grid)
from Python with Blender's fastest calls (``from_pydata`` for the boxes, ``foreach_set`` for the grid),
then evaluates the view layer once. Prints the seconds of each run as JSON: what any joiner running in
Blender pays to make that scene, whatever it received.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import bpy
import numpy as np


def build_boxes(objects: int) -> list[bpy.types.Object]:
    """``objects`` boxes, each on a mesh of its own with the material they share, in a collection."""
    props = bpy.data.collections.new("Props")
    bpy.context.scene.collection.children.link(props)
    paint = bpy.data.materials.new("Paint")
    corners = [(x * 0.2, y * 0.2, z * 0.2) for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)]
    faces = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    boxes = []
    for i in range(objects):
        mesh = bpy.data.meshes.new(f"Box.{i:03d}")
        mesh.from_pydata(corners, [], faces)
        mesh.materials.append(paint)
        ob = bpy.data.objects.new(f"Box.{i:03d}", mesh)
        ob.location, ob.rotation_euler = (i % 10, i // 10, 0.0), (0.0, 0.0, i * 0.1)
        props.objects.link(ob)
        boxes.append(ob)
    return boxes


def build(objects: int, grid: int) -> None:
    scene = bpy.context.scene
    build_boxes(objects)
    if grid:
        side = np.linspace(-5.0, 5.0, grid)
        xs, ys = np.meshgrid(side, side)
        co = np.stack([xs.ravel(), ys.ravel(), np.zeros(grid * grid)], 1).astype(np.float32).ravel()
        index = np.arange(grid * grid).reshape(grid, grid)
        quads = np.stack([index[:-1, :-1], index[:-1, 1:], index[1:, 1:], index[1:, :-1]], -1)
        corners_of = quads.reshape(-1).astype(np.int32)
        mesh = bpy.data.meshes.new("Terrain")
        mesh.vertices.add(grid * grid)
        mesh.vertices.foreach_set("co", co)
        mesh.loops.add(len(corners_of))
        mesh.loops.foreach_set("vertex_index", corners_of)
        mesh.polygons.add(len(corners_of) // 4)
        mesh.polygons.foreach_set("loop_start", np.arange(0, len(corners_of), 4, dtype=np.int32))
        mesh.update(calc_edges=True)
        scene.collection.objects.link(bpy.data.objects.new("Terrain", mesh))
    bpy.context.view_layer.update()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=500)
    parser.add_argument("--grid", type=int, default=447, help="vertices per side (447: 199,809)")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    seconds = []
    for _ in range(args.runs):
        bpy.ops.wm.read_factory_settings(use_empty=True)
        started = time.perf_counter()
        build(args.objects, args.grid)
        seconds.append(round(time.perf_counter() - started, 4))
    print(json.dumps({"objects": args.objects, "grid": args.grid, "seconds": seconds}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
