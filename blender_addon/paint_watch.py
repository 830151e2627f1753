"""Images painted here: the sync loop looks for them, since Blender reports nothing when pixels change.

A brush stroke (texture paint in the 3D view, paint in the image editor), a bake or a script writes into
an image's buffer without telling the depsgraph; the image only becomes ``is_dirty`` (unsaved pixels).
Reading every image's pixels on every pump would cost tens of milliseconds per 2K image, so the loop
reports to the tracker (which reads the pixels and sends what differs, sync/painted.py):

- an image whose ``is_dirty`` changed since the last pump (the first stroke; saved, packed, reloaded):
  at once (checking the flag costs well under a microsecond per image);
- while the artist is painting (the context is in Texture Paint mode, or an image editor is in Paint
  mode), an image with unsaved pixels as painting starts, then every ``PAINT_INTERVAL`` seconds at most,
  and no more often than ``COST_FACTOR`` times what reading it last cost (a large image takes at most a
  quarter of the main thread), one image per pump;
- every image with unsaved pixels once when the artist stops painting, and after a bake.

A script that writes into an image already holding unsaved pixels, outside Paint mode, is seen when the
artist next paints, stops painting, bakes or saves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import bpy

from . import sync

PAINT_INTERVAL = 0.5  # seconds between two reads of an image being painted...
COST_FACTOR = 4.0  # ...and at least this many times what reading it last cost


def painting() -> bool:
    """Whether the artist can be painting an image now."""
    if getattr(bpy.context, "mode", None) == "PAINT_TEXTURE":
        return True
    wm = bpy.context.window_manager
    for window in wm.windows if wm is not None else ():
        for area in window.screen.areas:
            if area.type == "IMAGE_EDITOR" and getattr(area.spaces.active, "ui_mode", None) == "PAINT":
                return True
    return False


def images_of(keys: Iterable[str]) -> list[bpy.types.Image]:
    """The images here whose pixels some of ``keys`` carry (their ``img/<u>/data`` keys)."""
    uuids = {bits[1] for bits in map(sync.split_key, keys) if bits and bits[0] == "img" and bits[2] == "data"}
    return [img for img in bpy.data.images if sync.peek_uuid(img) in uuids] if uuids else []


class PaintWatch:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._dirty: set[int] = set()  # session_uid of the images that held unsaved pixels at the last step
        self._read: dict[int, float] = {}  # session_uid -> when the image was last reported while painting
        self._painting = False
        self.baked = False  # a bake completed since the last step

    def step(self, now: float, cost: Callable[[bpy.types.Image], float]) -> list[bpy.types.Image]:
        """The images the tracker should read now; ``cost``: seconds reading one took last time."""
        images = {img.session_uid: img for img in bpy.data.images}
        dirty = {uid for uid, img in images.items() if img.is_dirty}
        report = {uid: images[uid] for uid in (dirty ^ self._dirty) if uid in images}
        is_painting = painting()
        if self.baked or (self._painting and not is_painting):
            report.update((uid, images[uid]) for uid in dirty)
        elif is_painting:
            if not self._painting:
                self._read.clear()  # starting to paint: each image is due at once (one per pump)
            due = [
                uid
                for uid in dirty - report.keys()
                if now >= self._read.get(uid, 0.0) + max(PAINT_INTERVAL, COST_FACTOR * cost(images[uid]))
            ]
            if due:
                uid = min(due, key=lambda uid: self._read.get(uid, 0.0))  # the longest unread first
                report[uid] = images[uid]
        for uid in report:
            self._read[uid] = now
        for uid in self._read.keys() - dirty - report.keys():
            del self._read[uid]
        self._dirty, self._painting, self.baked = dirty, is_painting, False
        return list(report.values())
