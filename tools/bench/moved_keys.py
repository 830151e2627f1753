"""``.venv/bin/python tools/bench/moved_keys.py [--objects 500] [--lines 2000 20000] [--runs 7]``: what
following another artist's edit costs.

Two figures, each with its baseline in the same run:

- **Reading the scene** (``sync.serialise_scene``) of N objects, each with a bevel and a wave modifier and
  a Copy Location constraint, with the names and socket layouts recorded for sync/moves.py as every read
  does, against the same reads with that recording switched off. Medians of ``--runs`` reads, alternated.
- **Merging a text** both artists edited (``three_way.merge_lines``, the overridden artist's merge): a text
  of L lines of which ours changes 20 and theirs inserts 20, against reading the text's three versions
  into lines (``splitlines``), the least any line merge does.

Needs bpy (Blender as a Python module). Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import bpy

from blender_addon import sync
from blender_addon.sync import moves
from blender_addon.sync.three_way import merge_lines


def _scene(objects: int) -> None:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    for i in range(objects):
        ob = bpy.data.objects.new(f"Prop{i}", bpy.data.meshes.new(f"Prop{i}"))
        bpy.context.scene.collection.objects.link(ob)
        ob.modifiers.new("Bevel", "BEVEL")
        ob.modifiers.new("Wave", "WAVE")
        ob.constraints.new("COPY_LOCATION")


def _timed(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def reading(objects: int, runs: int) -> dict[str, float]:
    _scene(objects)
    recorders = (moves.note, moves.note_names)
    on, off = [], []
    for _ in range(runs):
        moves.note, moves.note_names = recorders
        on.append(_timed(sync.serialise_scene))
        moves.note = moves.note_names = lambda *args: None
        off.append(_timed(sync.serialise_scene))
    moves.note, moves.note_names = recorders
    return {
        "recorded_ms": round(statistics.median(on) * 1000, 1),
        "not_recorded_ms": round(statistics.median(off) * 1000, 1),
        "ratio": round(statistics.median(on) / statistics.median(off), 3),
    }


def merging(lines: int, runs: int) -> dict[str, float]:
    rng = random.Random(7)
    base = [f"line {rng.randrange(lines // 4 + 1)} = {i % 7}\n" for i in range(lines)]
    ours, theirs = base[:], base[:]
    for k in range(20):
        ours[rng.randrange(lines)] = f"ours {k}\n"
        theirs.insert(rng.randrange(lines), f"theirs {k}\n")
    texts = ["".join(doc) for doc in (base, ours, theirs)]
    merge = statistics.median(_timed(lambda: merge_lines(base, ours, theirs)) for _ in range(runs))
    split = statistics.median(_timed(lambda: [t.splitlines(True) for t in texts]) for _ in range(runs))
    return {
        "merge_ms": round(merge * 1000, 2),
        "split_ms": round(split * 1000, 3),
        "ratio": round(merge / split),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=500)
    parser.add_argument("--lines", type=int, nargs="+", default=[2000, 20000])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    out = {
        "reading": reading(args.objects, args.runs),
        "text_merge": {str(n): merging(n, args.runs) for n in args.lines},
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
