"""Movie clips (kind ``clip``): every file of the clip travels; received clips live in a temporary folder."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile

import bpy

from .. import rna
from ..assign import rename, set_changed
from ..context import ApplyContext, ReadContext
from ..replacing import replace
from .base import Kind

_FRAME_NUMBER = re.compile(r"^(.*?)(\d+)(\D*)$")
CLIP_MAX_BYTES = 48 * 1024 * 1024  # the files of one clip travel in one key
CLIP_SKIP = ("filepath", "source", "use_proxy", "use_proxy_custom_directory")


def clip_files(clip: bpy.types.MovieClip) -> list[str] | None:
    """The files behind a movie clip (one movie, or every frame of an image sequence), if they exist."""
    if not clip.filepath:
        return None
    path = bpy.path.abspath(clip.filepath, library=clip.library)
    if not os.path.isfile(path):
        return None
    if clip.source != "SEQUENCE":
        return [path]
    folder, base = os.path.split(path)
    match = _FRAME_NUMBER.match(base)
    if match is None:
        return [path]
    head, digits, tail = match.groups()
    pattern = re.compile(re.escape(head) + r"\d{" + str(len(digits)) + "}" + re.escape(tail) + "$")
    return sorted(os.path.join(folder, f) for f in os.listdir(folder) if pattern.match(f))


def accepts(clip: bpy.types.MovieClip) -> bool:
    """Only clips whose files can be sent."""
    files = clip_files(clip)
    return files is not None and sum(os.path.getsize(f) for f in files) <= CLIP_MAX_BYTES


def clip_content(clip: bpy.types.MovieClip) -> list[list[object]] | None:
    """``[file name, bytes]`` of every file of a movie clip, in name order."""
    files = clip_files(clip)
    if files is None:
        return None
    out: list[list[object]] = []
    for path in files:
        with open(path, "rb") as fh:
            out.append([os.path.basename(path), fh.read()])
    return out


def clip_digest(files: list[list[object]]) -> str:
    digest = hashlib.sha256()
    for name, data in files:
        digest.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    return digest.hexdigest()


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
            "sha256": clip_digest(files),
            "files": files,
        }
    }


def describe(clip: bpy.types.MovieClip, ctx: ReadContext) -> dict:
    files = clip_content(clip)
    return {
        "name": clip.name,
        "source": clip.source,
        "content": clip_digest(files) if files is not None else None,
        "frames": [clip.frame_start, clip.frame_offset],  # size and duration are runtime (load-state) values
        "colorspace": clip.colorspace_settings.name,
    }


def clip_folder(digest: str) -> str:
    """Where the files of a received movie clip are kept (Blender cannot pack movie clips)."""
    return os.path.join(tempfile.gettempdir(), "blendsync-clips", digest)


def load_clip(doc: dict) -> bpy.types.MovieClip:
    folder = clip_folder(doc["sha256"])
    os.makedirs(folder, exist_ok=True)
    for name, data in doc["files"]:
        path = os.path.join(folder, os.path.basename(name))
        if not os.path.isfile(path) or os.path.getsize(path) != len(data):
            fd, tmp = tempfile.mkstemp(dir=folder)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
    clip = bpy.data.movieclips.load(os.path.join(folder, os.path.basename(doc["file"])), check_existing=False)
    clip.name = doc["name"]
    return clip


def create(uuid: str, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    return load_clip(doc)


def apply_meta(clip: bpy.types.MovieClip, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    files = clip_content(clip)
    if files is None or clip_digest(files) != doc["sha256"] or clip.source != doc["source"]:
        clip = replace(clip, load_clip(doc), bpy.data.movieclips)
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
