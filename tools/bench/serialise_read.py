"""``python tools/bench/serialise_read.py [--objects 500] [--runs 5] [--addon-root DIR]``: reading a scene.

In one Blender process (bpy), no server: ``--objects`` objects, each on a small mesh of its own (a box, as
``tools/bench/addon.py`` builds them) with one shared material, in one collection. Each run reads every
object and every mesh into their keys with one read context, as the tracker reads back what a joiner
applied or what a scan found changed. Prints the seconds of each run and their median as JSON.
``--addon-root`` reads with the add-on of another checkout (e.g. a ``git archive`` of main), for an A/B.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=500)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--addon-root", help="a checkout whose blender_addon reads the scene")
    args = parser.parse_args()
    sys.path[:0] = [str(Path(args.addon_root).resolve()) if args.addon_root else str(REPO)]
    import bpy

    from blender_addon import sync
    from blender_addon.sync.serialise import read_context, serialise_parts

    bpy.ops.wm.read_factory_settings(use_empty=True)
    props = bpy.data.collections.new("Props")
    bpy.context.scene.collection.children.link(props)
    paint = bpy.data.materials.new("Paint")
    corners = [(x * 0.2, y * 0.2, z * 0.2) for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)]
    faces = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    objects = []
    for i in range(args.objects):
        mesh = bpy.data.meshes.new(f"Box.{i:03d}")
        mesh.from_pydata(corners, [], faces)
        mesh.materials.append(paint)
        ob = bpy.data.objects.new(f"Box.{i:03d}", mesh)
        ob.location = (i % 10, i // 10, 0.0)
        props.objects.link(ob)
        objects.append(ob)
    bpy.context.view_layer.update()
    keys = len(sync.serialise_scene())  # gives every datablock its uuid
    seconds = []
    for _ in range(args.runs):
        started = time.perf_counter()
        ctx = read_context()
        for ob in objects:
            serialise_parts("obj", ob, ctx)
            serialise_parts("mesh", ob.data, ctx)
        seconds.append(round(time.perf_counter() - started, 4))
    print(
        json.dumps(
            {"objects": args.objects, "keys": keys, "seconds": seconds, "median": statistics.median(seconds)}
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
