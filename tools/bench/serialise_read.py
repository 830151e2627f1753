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

    sys.path.append(str(REPO))  # the bench's own helpers, whichever add-on reads
    from tools.bench.scene_build_floor import build_boxes

    bpy.ops.wm.read_factory_settings(use_empty=True)
    objects = build_boxes(args.objects)
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
