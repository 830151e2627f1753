"""``python tools/bench/mesh_apply.py [--grid N] [--edits N] [--groups]``: applying another artist's geometry.

In one Blender process (bpy), no server: a grid of ``--grid`` x ``--grid`` vertices (with ``--groups``, a
vertex group holding a third of them), ``--edits`` values of its ``geometry`` key each moving one vertex,
applied as a receiver applies them: written in place (the mesh's topology is the value's) and, for the
baseline in the same run, rebuilt (the mesh cleared and filled again, its vertex groups kept across it).
Prints the milliseconds per apply of each as JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "tests" / "blender")]

import bpy  # noqa: E402
from scene_builders import reset_scene  # noqa: E402

from blender_addon import sync  # noqa: E402
from blender_addon.sync.kinds import meshes  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grid", type=int, default=447, help="vertices per side")
    parser.add_argument("--edits", type=int, default=6)
    parser.add_argument("--groups", action="store_true", help="a vertex group on a third of the vertices")
    args = parser.parse_args()
    reset_scene()
    bpy.ops.mesh.primitive_grid_add(x_subdivisions=args.grid - 1, y_subdivisions=args.grid - 1, size=2)
    ob = bpy.context.active_object
    me = ob.data
    if args.groups:
        ob.vertex_groups.new(name="G").add(list(range(0, len(me.vertices), 3)), 0.7, "REPLACE")
    bpy.context.view_layer.update()
    tracker = sync.ChangeTracker()
    tracker.scan()
    key = sync.make_key("mesh", sync.get_uuid(me), "geometry")
    values = []
    for i in range(args.edits):
        me.vertices[i].co.z += 0.1
        me.update()
        bpy.context.view_layer.update()
        changed, _ = tracker.scan([me])
        values.append(changed[key])
    in_place = meshes._same_topology
    result: dict[str, object] = {"vertices": len(me.vertices), "groups": args.groups}
    for label, same_topology in (("in_place_ms", in_place), ("rebuilt_ms", lambda *_: False)):
        meshes._same_topology = same_topology
        times = []
        for value in values:
            started = time.perf_counter()
            applier = sync.apply_ops([(key, value)])
            times.append((time.perf_counter() - started) * 1000)
            assert applier.errors == [], applier.errors
        result[label] = {"median": round(statistics.median(times), 1), "runs": [round(t, 1) for t in times]}
    meshes._same_topology = in_place
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
