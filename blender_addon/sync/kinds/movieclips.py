"""Movie clips (kind ``clip``): ``meta``, every file of the clip (received clips live in a temporary folder);
``tracking`` and ``track/<object>/<track>``, its tracking data (sync/tracking.py)."""

from __future__ import annotations

import os

import bpy

from .. import file_sets, ids, rna, tracking
from ..assign import rename, set_changed
from ..context import ApplyContext, ReadContext
from ..items import Items
from ..replacing import replace
from .base import Kind

CLIP_MAX_BYTES = file_sets.MAX_BYTES  # a larger clip stays local
CLIP_SKIP = ("filepath", "source", "use_proxy", "use_proxy_custom_directory")


def clip_files(clip: bpy.types.MovieClip) -> list[str] | None:
    """The files behind a movie clip (one movie, or every frame of an image sequence), if they exist."""
    if not clip.filepath:
        return None
    path = bpy.path.abspath(clip.filepath, library=clip.library)
    return file_sets.files_behind(path, clip.source == "SEQUENCE")


def accepts(clip: bpy.types.MovieClip) -> bool:
    """Only clips whose files can be sent."""
    files = clip_files(clip)
    return files is not None and file_sets.total_bytes(files) <= CLIP_MAX_BYTES


def clip_content(clip: bpy.types.MovieClip) -> file_sets.Content | None:
    """``[file name, bytes]`` of every file of a movie clip, in name order."""
    files = clip_files(clip)
    return None if files is None else file_sets.read(files)


def serialise(clip: bpy.types.MovieClip, ctx: ReadContext) -> dict[str, object]:
    files = clip_content(clip) or []
    first = os.path.basename(bpy.path.abspath(clip.filepath, library=clip.library))
    return {
        "meta": {
            "name": clip.name,
            "source": clip.source,
            "file": first,
            "colorspace": clip.colorspace_settings.name,
            "props": ctx.props(clip, skip=CLIP_SKIP, nested=("colorspace_settings",)),
            "sha256": file_sets.digest(files),
            "files": files,
        },
        "tracking": tracking.read_settings(clip, ctx.props),
        "track": tracking.read_tracks(clip, ctx.props),
    }


def describe(clip: bpy.types.MovieClip, ctx: ReadContext) -> dict:
    files = clip_content(clip)
    return {
        "name": clip.name,
        "source": clip.source,
        "content": file_sets.digest(files) if files is not None else None,
        "frames": [clip.frame_start, clip.frame_offset],  # size and duration are runtime (load-state) values
        "colorspace": clip.colorspace_settings.name,
        "tracking": tracking.read_settings(clip, ctx.props),
        "tracks": [[*item, doc] for item, doc in tracking.read_tracks(clip, ctx.props).items()],
    }


def load_clip(doc: dict) -> bpy.types.MovieClip:
    folder = file_sets.store("clips", doc["files"])
    clip = bpy.data.movieclips.load(os.path.join(folder, os.path.basename(doc["file"])), check_existing=False)
    clip.name = doc["name"]
    return clip


def create(uuid: str, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    return load_clip(doc)


def apply_meta(clip: bpy.types.MovieClip, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    files = clip_content(clip)
    if files is None or file_sets.digest(files) != doc["sha256"] or clip.source != doc["source"]:
        new = load_clip(doc)
        tracking.copy(clip, new)  # the tracking data is another key's, which need not come again
        clip = replace(clip, new, bpy.data.movieclips.remove)
    rename(clip, doc["name"])
    set_changed(clip.colorspace_settings, "name", doc["colorspace"])
    rna.write_props(clip, doc["props"], ctx.resolve)
    return clip


def apply_tracking(clip: bpy.types.MovieClip, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    tracking.write_settings(clip, doc, ctx.resolve)
    return clip


def apply_track(clip: bpy.types.MovieClip, item: tuple[str, ...], doc: dict | None, ctx: ApplyContext):
    obj_name, name = item
    if doc is None:
        return _without(clip, (obj_name, name), ctx) if tracking.has_track(clip, (obj_name, name)) else clip
    if not tracking.write_track(clip, (obj_name, name), doc, ctx.resolve):
        ctx.wait_for("tracking", ids.get_uuid(clip))  # its tracking object comes with the settings
    return clip


def _without(clip: bpy.types.MovieClip, item: tuple[str, str], ctx: ApplyContext) -> bpy.types.ID:
    """A track to remove, which Blender's API cannot: the same files loaded again take the clip's place,
    with every other track."""
    path = bpy.path.abspath(clip.filepath, library=clip.library)
    new = bpy.data.movieclips.load(path, check_existing=False)
    set_changed(new.colorspace_settings, "name", clip.colorspace_settings.name)
    rna.write_props(new, tracking.plain_props()(clip, skip=CLIP_SKIP), ctx.resolve)
    tracking.copy(clip, new, without=item)
    name = clip.name
    new = replace(clip, new, bpy.data.movieclips.remove)
    rename(new, name)
    return new


KIND = Kind(
    name="clip",
    collection="movieclips",
    rna_type="MovieClip",
    parts={"meta": apply_meta, "tracking": apply_tracking, "track": Items(apply_track, depth=2)},
    create=create,
    serialise=serialise,
    describe=describe,
    accepts=accepts,
)
