"""Movie clips (kind ``clip``): every file of the clip travels; received clips live in a temporary folder."""

from __future__ import annotations

import os

import bpy

from .. import file_sets, rna
from ..assign import rename, set_changed
from ..context import ApplyContext, ReadContext
from ..replacing import replace
from .base import Kind

CLIP_MAX_BYTES = 48 * 1024 * 1024  # the files of one clip travel in one key
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
        }
    }


def describe(clip: bpy.types.MovieClip, ctx: ReadContext) -> dict:
    files = clip_content(clip)
    return {
        "name": clip.name,
        "source": clip.source,
        "content": file_sets.digest(files) if files is not None else None,
        "frames": [clip.frame_start, clip.frame_offset],  # size and duration are runtime (load-state) values
        "colorspace": clip.colorspace_settings.name,
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
        clip = replace(clip, load_clip(doc), bpy.data.movieclips.remove)
    rename(clip, doc["name"])
    set_changed(clip.colorspace_settings, "name", doc["colorspace"])
    rna.write_props(clip, doc["props"], ctx.resolve)
    return clip


KIND = Kind(
    name="clip",
    collection="movieclips",
    rna_type="MovieClip",
    parts={"meta": apply_meta},
    create=create,
    serialise=serialise,
    describe=describe,
    accepts=accepts,
)
