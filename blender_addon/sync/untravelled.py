"""What in the current scene does not travel: datablock, what, why (for the sidebar).

A walk of the scene's objects (and what they use), never of all of
``bpy.data``; :class:`UntravelledReport` keeps the answer and walks again
only when asked after ``interval`` seconds, so a panel redrawing many
times a second costs one walk every few seconds.  What is listed follows
docs/addon.md, "Not synchronised yet".
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import bpy

from .index import is_synced
from .kinds import cache_files

MAX_OBJECTS = 5000  # a walk looks at this many objects at most (the first ones of the scene)


@dataclass(frozen=True)
class Untravelled:
    subject: str  # "Object 'Grass'"
    what: str
    why: str


def _subject(id_data: bpy.types.ID) -> str:
    return f"{id_data.bl_rna.name} {id_data.name!r}"


MISSING = "whose file is missing or too large to send"


def _linked_pointers(struct: bpy.types.bpy_struct) -> Iterator[tuple[str, bpy.types.ID]]:
    """``struct``'s pointer properties that hold a datablock linked from a library."""
    for prop in struct.bl_rna.properties:
        if prop.type != "POINTER" or prop.is_readonly:
            continue
        target = getattr(struct, prop.identifier, None)
        if isinstance(target, bpy.types.ID) and target.library is not None:
            yield prop.identifier, target


def _pointers(ob: bpy.types.Object, library_travels: Callable[[bpy.types.Library], bool]):
    """Pointers of the object's slots, modifiers and constraints into a library that does not travel (a
    pointer into one that travels names the receiver's copy of the datablock, sync/linked.py)."""
    found = [(f"material slot {i + 1}", s.material) for i, s in enumerate(ob.material_slots) if s.material]
    for label, stack in (("modifier", ob.modifiers), ("constraint", ob.constraints)):
        for item in stack:
            found += [(f"{label} {item.name!r} {attr}", t) for attr, t in _linked_pointers(item)]
    for what, target in found:
        if target.library is not None and not library_travels(target.library):
            why = f"{target.name!r} is linked from {target.library.name}, {MISSING}"
            yield Untravelled(_subject(ob), what, why)


def _cache_files(ob: bpy.types.Object) -> Iterator[Untravelled]:
    """Modifiers and constraints reading a cache file whose files cannot travel (missing or too large)."""
    for label, stack in (("modifier", ob.modifiers), ("constraint", ob.constraints)):
        for item in stack:
            cache = getattr(item, "cache_file", None)
            if cache is not None and cache.library is None and not cache_files.accepts(cache):
                limit = cache_files.CACHE_MAX_BYTES >> 20
                why = f"{cache.name!r} reads files that are missing or over {limit} MiB"
                yield Untravelled(_subject(ob), f"{label} {item.name!r} cache file", why)


# Images of several files: they travel unless a file is missing or they pass kinds/images.py's size bound.
IMAGE_SOURCES = {"SEQUENCE": "an image sequence", "MOVIE": "a movie", "TILED": "a tiled (UDIM) image"}


def _images(ob: bpy.types.Object, seen: set[int]) -> Iterator[Untravelled]:
    """Images that do not travel in the node trees of the object's materials (each material once a walk)."""
    for slot in ob.material_slots:
        mat = slot.material
        if mat is None or mat.library is not None or mat.node_tree is None or mat.as_pointer() in seen:
            continue
        seen.add(mat.as_pointer())
        for node in mat.node_tree.nodes:
            img = getattr(node, "image", None)
            if (
                not isinstance(img, bpy.types.Image)
                or img.library is not None
                or img.source not in IMAGE_SOURCES
            ):
                continue
            if not is_synced(img):
                why = f"{IMAGE_SOURCES[img.source]} whose files are missing or over 512 MiB"
            elif img.is_dirty:  # painted: only a single-file or generated image's unsaved pixels travel
                why = f"pixels painted into {IMAGE_SOURCES[img.source]}: they travel once it is saved"
            else:
                continue
            yield Untravelled(_subject(mat), f"image {img.name!r} of node {node.name!r}", why)


def _object(ob: bpy.types.Object, library_travels: Callable[[bpy.types.Library], bool], seen: set[int]):
    missing = MISSING
    if ob.library is not None:
        if not library_travels(ob.library):
            yield Untravelled(_subject(ob), "the linked object", f"linked from {ob.library.name}, {missing}")
        return
    if not is_synced(ob):  # an object type of a newer Blender
        yield Untravelled(_subject(ob), f"a {ob.type.lower()} object", "this object type is not synchronised")
        return
    data = ob.data
    if data is not None and data.library is not None and not library_travels(data.library):
        yield Untravelled(_subject(ob), "its linked data", f"linked from {data.library.name}, {missing}")
    if ob.mode == "EDIT":
        yield Untravelled(_subject(ob), "edit mode changes", "they travel when you leave edit mode")
    for psys in ob.particle_systems:
        if psys.is_edited:
            yield Untravelled(_subject(ob), f"groomed hair of {psys.name!r}", "particle edits cannot be set")
    coll = ob.instance_collection
    if coll is not None and coll.library is not None and not library_travels(coll.library):
        what = f"the instanced collection {coll.name!r}"
        yield Untravelled(_subject(ob), what, f"linked from {coll.library.name}, {missing}")
    yield from _pointers(ob, library_travels)
    yield from _cache_files(ob)
    yield from _physics(ob)
    for owner in (ob, data, getattr(data, "shape_keys", None)):
        if owner is not None:
            yield from _animation(owner)
    if ob.type == "SURFACE" and any(spline.point_count_v > 1 for spline in data.splines):
        why = "Blender's API cannot set a surface's V point count: one row of points travels"
        yield Untravelled(_subject(data), "rows of surface points past the first", why)
    yield from _images(ob, seen)
    if ob.type == "VOLUME" and data is not None and data.is_sequence:
        yield Untravelled(_subject(data), "the other files of its sequence", "only the current file travels")


def _physics(ob: bpy.types.Object) -> Iterator[Untravelled]:
    """Physics whose settings do not travel: fluids."""
    for mod in ob.modifiers:
        if mod.type == "FLUID":
            why = "writing a fluid's settings makes and removes particle systems"
            yield Untravelled(_subject(ob), f"the settings of fluid modifier {mod.name!r}", why)


def _animation(id_data: bpy.types.ID) -> Iterator[Untravelled]:
    """NLA strips other than action strips (meta, transition and sound strips)."""
    ad = getattr(id_data, "animation_data", None)
    if ad is None:
        return
    for track in ad.nla_tracks:
        for strip in track.strips:
            if strip.type != "CLIP":
                what = f"NLA {strip.type.lower()} strip {strip.name!r}"
                yield Untravelled(_subject(id_data), what, "Blender's API makes only action strips")


def _annotations(scene: bpy.types.Scene) -> Iterator[Untravelled]:
    """The scene's annotation (notes drawn in the viewport) and its active clip's."""
    owners = [scene, scene.active_clip] if scene.active_clip is not None else [scene]
    for owner in owners:
        notes = owner.annotation
        if notes is not None and any(frame.strokes for layer in notes.layers for frame in layer.frames):
            why = "Blender's API makes annotation strokes only by drawing them"
            yield Untravelled(_subject(owner), f"the annotation {notes.name!r}", why)


def _clip(clip: bpy.types.MovieClip) -> Iterator[Untravelled]:
    """What of a movie clip's tracking data Blender's API cannot write (its tracks travel: each artist can
    solve or stabilise with them)."""
    tracking = clip.tracking
    if any(obj.reconstruction.is_valid for obj in tracking.objects):
        why = "Blender's API cannot write a solve: solve the camera on each side, from the same tracks"
        yield Untravelled(_subject(clip), "its camera solve", why)
    if any(len(obj.plane_tracks) for obj in tracking.objects):
        yield Untravelled(_subject(clip), "its plane tracks", "Blender's API makes no plane track")
    if len(tracking.stabilization.tracks) or len(tracking.stabilization.rotation_tracks):
        why = "Blender's API cannot choose them"
        yield Untravelled(_subject(clip), "the tracks its 2D stabilisation uses", why)


def _clips(scene: bpy.types.Scene, objects: list[bpy.types.Object]) -> Iterator[Untravelled]:
    """The scene's active clip and those its objects' constraints follow (camera and object solvers,
    follow track), each once."""
    clips = {clip.as_pointer(): clip for clip in [scene.active_clip] if clip is not None}
    for ob in objects:
        for con in ob.constraints:
            clip = getattr(con, "clip", None)
            if isinstance(clip, bpy.types.MovieClip) and clip.library is None:
                clips.setdefault(clip.as_pointer(), clip)
    for clip in clips.values():
        yield from _clip(clip)


def find(scene: bpy.types.Scene, max_objects: int = MAX_OBJECTS) -> list[Untravelled]:
    """What the scene's objects (at most ``max_objects``) carry that does not travel."""
    libraries: dict[int, bool] = {}  # a library's check reads all of bpy.data: once per walk

    def library_travels(lib: bpy.types.Library) -> bool:
        while lib.parent is not None:  # a library of a library travels in its parent's file
            lib = lib.parent
        ptr = lib.as_pointer()
        if ptr not in libraries:
            libraries[ptr] = is_synced(lib)
        return libraries[ptr]

    out: list[Untravelled] = list(_annotations(scene))
    materials: set[int] = set()  # materials already looked at in this walk
    objects = list(scene.objects[:max_objects])
    for ob in objects:
        out.extend(_object(ob, library_travels, materials))
    out.extend(_clips(scene, objects))
    return out


class UntravelledReport:
    """:func:`find` for the window's scene, walked again at most every ``interval`` seconds."""

    def __init__(self, interval: float = 2.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self._clock = clock
        self._at: float | None = None
        self._scene: str | None = None
        self._found: list[Untravelled] = []
        self.walks = 0

    def get(self, scene: bpy.types.Scene) -> list[Untravelled]:
        now = self._clock()
        if self._at is None or now - self._at >= self.interval or scene.name != self._scene:
            self._found = find(scene)
            self._at, self._scene = now, scene.name
            self.walks += 1
        return self._found
