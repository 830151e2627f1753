"""``python tools/bench/stroke_merge.py [--strokes 1000 5000] [--runs 5]``: merging a grease pencil frame.

No server, no Blender scene: two artists' edits of one drawn frame of N strokes of 20 points (ours erases
every 97th stroke and draws one, theirs moves the middle one and draws one), merged stroke by stroke as
the overridden artist does (``gp_merge._merged_frame``). The baseline in the same run is the stack-order
merge written the short, quadratic way (``by_insertion``, also the reference of the tests) against
``three_way.merge_order``, on the strokes' identities. Prints median milliseconds per size as JSON.
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

from blender_addon.sync import gp_merge, three_way
from blender_addon.sync.codec import pack_f32, pack_i32


def by_insertion(base: list, ours: list, theirs: list) -> list:
    """``three_way.merge_order`` written the short, quadratic way: the baseline here, and the reference
    tests/blender/test_merges.py checks the linear one against."""
    kept = [name for name in base if name in ours and name in theirs]
    theirs_kept = [name for name in theirs if name in kept]
    out = [name for name in ours if name in kept] if theirs_kept == kept else theirs_kept
    for source in (theirs, ours):
        for i, name in enumerate(source):
            if name in base or name in out:
                continue
            after = next((n for n in source[i + 1 :] if n in out), None)
            out.insert(len(out) if after is None else out.index(after), name)
    return out


def frame(strokes: list[list[float]]) -> dict:
    sizes = [len(stroke) // 3 for stroke in strokes]
    return {
        "frame_number": 1,
        "keyframe_type": "KEYFRAME",
        "sizes": pack_i32(sizes),
        "attributes": [
            {"name": "material_index", "domain": "CURVE", "type": "INT", "data": pack_i32([0] * len(sizes))},
            {"name": "position", "domain": "POINT", "type": "FLOAT_VECTOR",
             "data": pack_f32([x for stroke in strokes for x in stroke])},
        ],
    }  # fmt: skip


def median_ms(call, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return round(statistics.median(times) * 1000, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strokes", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    rng = random.Random(1)
    out = {}
    for n in args.strokes:
        base = [[rng.random() for _ in range(60)] for _ in range(n)]
        ours = [s for i, s in enumerate(base) if i % 97 != 5] + [[rng.random() for _ in range(60)]]
        theirs = [*base[: n // 2], [rng.random() for _ in range(60)], *base[n // 2 + 1 :]]
        theirs.append([rng.random() for _ in range(60)])
        docs = [frame(strokes) for strokes in (base, ours, theirs)]
        merged = gp_merge._merged_frame(*docs)
        assert len(merged["attributes"][0]["data"]) == 4 * (n - len(range(5, n, 97)) + 2)
        names = [list(range(n)), [i for i in range(n) if i % 97 != 5] + [n], [*range(n), n + 1]]
        assert by_insertion(*names) == three_way.merge_order(*names)
        out[n] = {
            "frame_merge_ms": median_ms(lambda docs=docs: gp_merge._merged_frame(*docs), args.runs),
            "merge_order_ms": median_ms(lambda names=names: three_way.merge_order(*names), args.runs),
            "by_insertion_ms": median_ms(lambda names=names: by_insertion(*names), args.runs),
        }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
