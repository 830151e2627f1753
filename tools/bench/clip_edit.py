"""``python tools/bench/clip_edit.py [--frames 40] [--side 512] [--runs 9]``: what a tracking edit costs.

In one Blender process (bpy), no server: a movie clip of ``--frames`` PNG frames of noise (so they do not
compress), with a track. Per run, one marker is moved and the clip is serialised as the sync loop does
after Blender reports it (``serialise_datablock``: every key's value, the files' chunks hashed). Measured
with the read cache of ``sync/file_sets.py`` emptied before each run (every file read and hashed again,
its chunks too: the baseline) and kept, runs alternated in the same process. Prints the clip's size and
the medians as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO)]

import bpy  # noqa: E402
import numpy as np  # noqa: E402

from blender_addon.sync import file_sets, serialise  # noqa: E402


def make_clip(frames: int, side: int) -> bpy.types.MovieClip:
    folder = tempfile.mkdtemp(prefix="bench-clip-")
    img = bpy.data.images.new("frame", side, side)
    img.file_format = "PNG"
    noise = np.random.default_rng(1)
    for i in range(frames):
        img.pixels.foreach_set(noise.random(side * side * 4, dtype=np.float32))
        img.filepath_raw = os.path.join(folder, f"plate_{i + 1:04d}.png")
        img.save()
    bpy.data.images.remove(img)
    return bpy.data.movieclips.load(os.path.join(folder, "plate_0001.png"), check_existing=False)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--side", type=int, default=512)
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    clip = make_clip(args.frames, args.side)
    folder = os.path.dirname(bpy.path.abspath(clip.filepath))
    track = clip.tracking.tracks.new(name="Corner", frame=1)
    serialise.serialise_datablock(clip)  # uuid given, chunk cache warm
    bound = file_sets.CACHE_BYTES
    times: dict[str, list[float]] = {"uncached": [], "cached": []}
    for run in range(2 * args.runs):
        mode = ("uncached", "cached")[run % 2]
        file_sets.CACHE_BYTES = bound if mode == "cached" else 0
        if mode == "cached":
            serialise.serialise_datablock(clip)  # the cache filled, as after the clip's last edit
        else:
            file_sets.clear()
        track.markers.find_frame(1).co = (run / (4 * args.runs), 0.5)
        start = time.perf_counter()
        serialise.serialise_datablock(clip)
        times[mode].append(time.perf_counter() - start)
    size = sum(os.path.getsize(os.path.join(folder, name)) for name in os.listdir(folder))
    result = {"frames": args.frames, "side": args.side, "clip_bytes": size}
    result.update({f"{mode}_ms": round(1000 * statistics.median(ts), 2) for mode, ts in times.items()})
    print(json.dumps(result))


if __name__ == "__main__":
    main()
