"""A scene's timeline markers (``scene/<u>/marker/<name>``): the markers of one name, each as ``[frame,
camera]`` (the camera it binds for camera switching, a uuid, or None), sorted.

Blender lets markers share a name, so one key holds every marker of a name; two artists adding or moving
markers of different names at the same moment keep both. Which markers are selected is each artist's.
"""

from __future__ import annotations

import bpy

from .context import ApplyContext, ReadContext

PART = "marker"


def _entry(marker: bpy.types.TimelineMarker, ctx: ReadContext) -> list:
    return [marker.frame, ctx.ref(marker.camera)]


def read(scene: bpy.types.Scene, ctx: ReadContext) -> dict[tuple[str, ...], object]:
    by_name: dict[str, list[list]] = {}
    for marker in scene.timeline_markers:
        by_name.setdefault(marker.name, []).append(_entry(marker, ctx))
    return {(name,): sorted(entries, key=_order) for name, entries in sorted(by_name.items())}


def _order(entry: list) -> tuple[int, str]:
    return entry[0], str(entry[1] or "")


def describe(scene: bpy.types.Scene, ctx: ReadContext) -> list:
    return sorted([marker.name, *_entry(marker, ctx)] for marker in scene.timeline_markers)


def _wanted(doc: object) -> list[tuple[int, object]]:
    if not isinstance(doc, list) or not all(
        isinstance(e, list) and len(e) == 2 and isinstance(e[0], int) and not isinstance(e[0], bool)
        for e in doc
    ):
        raise ValueError("a marker key holds a list of [frame, camera]")
    return [(e[0], e[1]) for e in doc]


def apply(scene: bpy.types.Scene, item: tuple[str, ...], doc: object, ctx: ApplyContext) -> bpy.types.ID:
    """Make the markers of this name the listed ones (deleted: none), keeping those already there."""
    (name,) = item
    wanted = [] if doc is None else _wanted(doc)
    # Links first: a value naming what is not an object changes nothing. One not arrived yet is None for
    # now (the value is applied again when it has).
    cameras = [ctx.resolve(camera) if camera else None for _frame, camera in wanted]
    for target in cameras:
        if target is not None and not isinstance(target, bpy.types.Object):
            raise ValueError(f"a marker binds an object, not {type(target).__name__} {target.name!r}")
    markers = scene.timeline_markers
    mine = sorted((m for m in markers if m.name == name), key=lambda m: m.frame)
    for marker in mine[len(wanted) :]:
        markers.remove(marker)  # a list in Blender: the other markers stay where they are
    mine = mine[: len(wanted)]
    for frame, _camera in wanted[len(mine) :]:
        mine.append(markers.new(name, frame=frame))
    for marker, (frame, camera), target in zip(mine, wanted, cameras, strict=True):
        if marker.frame != frame:
            marker.frame = frame
        if marker.camera != target and (target is not None or not camera):
            marker.camera = target
    return scene
