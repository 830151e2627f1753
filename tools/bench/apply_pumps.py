"""``python tools/bench/apply_pumps.py [--objects 500] [--grid 0] [--runs 5] [--camera] [--addon-root DIR]``:
applying a joiner's scene, and what Blender evaluates after each pump.

In one Blender process (bpy), no server and no network: ``--objects`` boxes sharing a material in a
collection and a ``--grid`` x ``--grid`` vertex mesh (as ``tools/bench/addon.py join`` builds them; its
geometry names chunks, which the process holds), with ``--camera`` also a camera object and a
light object as every production scene has, are read into their keys; the scene is emptied and the keys
applied as a joiner's sync loop applies them: one ``Applier.step`` of slices until a 20 ms deadline per
pump, then the view layer evaluated (what Blender does between two timer calls). Each run prints the
seconds spent applying and evaluating, the pumps, and the largest evaluation; then the medians, as JSON.
With ``--chunks-after`` the values naming chunks (the grid's geometry) are fed once the rest is applied,
as a joiner gets them after its light values, and ``last_step`` is the step that applies them.
``--addon-root`` applies with the add-on of another checkout (e.g. a ``git archive`` of main), for an A/B.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUDGET = 0.02  # a pump's applying, as the sync loop's (session.py)
SLICE = 64


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=500)
    parser.add_argument("--grid", type=int, default=0, help="a grid of N x N vertices (447: 199,809)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--camera", action="store_true", help="also a camera and a light, each on an object")
    parser.add_argument("--chunks-after", action="store_true", help="values naming chunks fed after the rest")
    parser.add_argument("--addon-root", help="a checkout whose blender_addon applies the scene")
    args = parser.parse_args()
    sys.path[:0] = [str(Path(args.addon_root).resolve()) if args.addon_root else str(REPO)]
    import bpy

    from blender_addon import sync

    sys.path.append(str(REPO))  # the bench's own helpers, whichever add-on applies
    from tools.bench.scene_build_floor import build

    bpy.ops.wm.read_factory_settings(use_empty=True)
    build(args.objects, args.grid)
    if args.camera:
        scene = bpy.context.scene
        camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
        camera.data.lens = 35.0
        lamp = bpy.data.objects.new("Lamp", bpy.data.lights.new("Lamp", "SUN"))
        for ob in (camera, lamp):
            scene.collection.objects.link(ob)
        scene.camera = camera
    ops = list(sync.serialise_scene().items())
    after = [op for op in ops if sync.chunks.holds_chunks(op[1])] if args.chunks_after else []
    batches = [[op for op in ops if op not in after], after] if after else [ops]
    runs = []
    for _ in range(args.runs):
        bpy.ops.wm.read_factory_settings(use_empty=True)
        applier = sync.Applier(sync.ChangeTracker())
        applier.read_later = True  # as in the sync loop: the pumps after read back what the steps left
        run = {"apply": 0.0, "evaluate": 0.0, "largest_evaluation": 0.0, "pumps": 0, "last_step": 0.0}
        for batch in batches:
            applier.feed(batch)
            done = 0.0
            while done < 1.0:
                started = time.perf_counter()
                done = applier.step(SLICE, until=time.monotonic() + BUDGET)
                applied = time.perf_counter()
                bpy.context.view_layer.update()
                evaluated = time.perf_counter() - applied
                run["apply"] += applied - started
                run["last_step"] = applied - started
                run["evaluate"] += evaluated
                run["largest_evaluation"] = max(run["largest_evaluation"], evaluated)
                run["pumps"] += 1
        if applier.errors:
            raise SystemExit(f"not applied: {applier.errors}")
        runs.append(run)
    medians = {name: round(statistics.median(run[name] for run in runs), 4) for name in runs[0]}
    print(
        json.dumps(
            {
                "objects": args.objects,
                "grid": args.grid,
                "camera": args.camera,
                "chunks_after": args.chunks_after,
                "keys": len(ops),
                "runs": [{name: round(value, 4) for name, value in run.items()} for run in runs],
                "median": medians,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
