"""``python tools/bench/out_of_order_apply.py [--seeds 1:5]``: a scene's keys applied out of order.

In one Blender process (bpy), no server: the test suite's scene of every kind (``build_everything``: node
trees, zones, armatures with pose bones, ...), serialised, then made again from its keys one key per applier
step, as a receiver applies a room whose keys reach it a few at a time. The baseline in the same run is the
joiner's order (the applier sorts what it is fed: everything fed at once, then stepped one key at a time);
each seed shuffles the keys. Prints, per order, the keys, how many times a value was applied (a value
waiting for something that has not arrived is applied again once it has) and the seconds, as JSON.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "tests" / "blender")]

from scene_builders import build_everything, reset_scene  # noqa: E402

from blender_addon import sync  # noqa: E402
from blender_addon.sync.apply import Applier  # noqa: E402


class CountingApplier(Applier):
    """An applier that counts its applies (every value applied, again or not)."""

    applies = 0

    def _apply_one(self, key: str, value: bytes | None) -> None:
        self.applies += 1
        super()._apply_one(key, value)


def one_order(ops: list[tuple[str, bytes]], fed_whole: bool) -> dict[str, float]:
    reset_scene()
    applier = CountingApplier()
    start = time.perf_counter()
    if fed_whole:
        applier.feed(ops)
        while applier.step(1) < 1.0:
            pass
    else:
        for op in ops:
            applier.feed([op])
            applier.step()
    seconds = time.perf_counter() - start
    if applier.errors or applier.pending_links:
        raise SystemExit(f"the scene did not settle: {applier.errors[:3]} {list(applier.pending_links)[:3]}")
    return {"keys": len(ops), "applies": applier.applies, "seconds": round(seconds, 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="1:5", help="shuffles A:B (seeds A to B-1)")
    args = parser.parse_args()
    first, last = (int(part) for part in args.seeds.split(":"))
    build_everything()
    # Sorted with each uuid read as its datablock's name: uuids are new each run, names are not, so a seed
    # gives the same order every run.
    names = {uuid: f"{kind}:{id_data.name}" for uuid, (kind, id_data) in sync.index_all(assign=False).items()}
    ops = sorted(
        sync.serialise_scene().items(), key=lambda op: [names.get(part, part) for part in op[0].split("/")]
    )
    results = {"joiner's order": one_order(ops, fed_whole=True)}
    for seed in range(first, last):
        shuffled = list(ops)
        random.Random(seed).shuffle(shuffled)
        results[f"shuffled {seed}"] = one_order(shuffled, fed_whole=False)
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
