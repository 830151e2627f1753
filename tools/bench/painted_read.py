"""``python tools/bench/painted_read.py [--sides 1024 2048] [--runs 5]``: what a painted image costs.

In one Blender process (bpy), no server: for each side and buffer type (byte, float), an image filled with
noise and painted (so it holds unsaved pixels), then per run: reading its pixels as they travel
(``sync/painted.py``), encoding its ``data`` value (the chunk hashes), and a 64 x 64 stroke: the blobs
the stroke's new value needs that the previous one did not (what an edit uploads), against the whole
image's bytes in the same run. Prints medians as JSON.
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
import numpy as np  # noqa: E402
from paint_builders import stroke  # noqa: E402
from scene_builders import reset_scene  # noqa: E402

from blender_addon.sync import chunks, painted  # noqa: E402
from blender_addon.sync.codec import encode_value  # noqa: E402


def measure(side: int, is_float: bool, runs: int) -> dict[str, object]:
    img = bpy.data.images.new(f"Bench{side}{is_float}", side, side, float_buffer=is_float)
    img.pixels.foreach_set(np.random.default_rng(1).random(side * side * 4, dtype=np.float32))
    reads, encodes, uploads = [], [], []
    previous = encode_value({"sha256": None, "painted": painted.read(img)})
    for run in range(runs):
        stroke(img, (run * 97) % (side - 64), (run * 131) % (side - 64), 64, (0.9, 0.2, 0.1, 1.0))
        start = time.perf_counter()
        doc = painted.read(img)
        read = time.perf_counter()
        value = encode_value({"sha256": None, "painted": doc})
        reads.append(read - start)
        encodes.append(time.perf_counter() - read)
        known = set(chunks.tree_blobs(previous))
        uploads.append(
            sum(len(chunks.cache.get(blob) or b"") for blob in chunks.tree_blobs(value) if blob not in known)
        )
        previous = value
    whole = len(doc["pixels"])
    sent = statistics.median(uploads)
    return {
        "side": side,
        "buffer": "float" if is_float else "byte",
        "read_ms": round(statistics.median(reads) * 1000, 1),
        "encode_ms": round(statistics.median(encodes) * 1000, 1),
        "image_bytes": whole,
        "stroke_upload_bytes": sent,
        "stroke_upload_ratio": round(sent / whole, 4),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sides", type=int, nargs="+", default=[1024, 2048])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    reset_scene()
    out = [measure(side, is_float, args.runs) for side in args.sides for is_float in (False, True)]
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
