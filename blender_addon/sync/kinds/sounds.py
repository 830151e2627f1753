"""Sounds (kind ``sound``): the encoded sound file travels whole; received sounds are packed."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile

import bpy

from ..assign import rename, set_changed
from ..context import ApplyContext, ReadContext
from ..replacing import replace
from .base import Kind


def sound_path(sound: bpy.types.Sound) -> str | None:
    """The file behind a sound that is not packed, if it exists."""
    if not sound.filepath:
        return None
    path = bpy.path.abspath(sound.filepath, library=sound.library)
    return path if os.path.isfile(path) else None


def accepts(sound: bpy.types.Sound) -> bool:
    """Only sounds whose content can be sent."""
    return sound.packed_file is not None or sound_path(sound) is not None


def sound_content(sound: bpy.types.Sound) -> bytes | None:
    """The encoded sound file (WAV, OGG, MP3...) behind a sound, if there is one."""
    if sound.packed_file is not None:
        return bytes(sound.packed_file.data)
    path = sound_path(sound)
    if path is None:
        return None
    with open(path, "rb") as fh:
        return fh.read()


def serialise(sound: bpy.types.Sound, ctx: ReadContext) -> dict[str, object]:
    content = sound_content(sound) or b""
    return {
        "meta": {
            "name": sound.name,
            "ext": os.path.splitext(sound.filepath)[1].lower() or ".wav",
            "use_mono": sound.use_mono,
            "use_memory_cache": sound.use_memory_cache,
            "sha256": hashlib.sha256(content).hexdigest(),
            "bytes": content,
        }
    }


def describe(sound: bpy.types.Sound, ctx: ReadContext) -> dict:
    content = sound_content(sound)
    return {
        "name": sound.name,
        "content": hashlib.sha256(content).hexdigest() if content is not None else None,
        "flags": [sound.use_mono, sound.use_memory_cache],
    }


def load_sound(doc: dict) -> bpy.types.Sound:
    """A packed sound made from the encoded file in ``doc`` (Blender loads sounds only from files)."""
    fd, path = tempfile.mkstemp(prefix="blendsync-", suffix=doc["ext"])
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(doc["bytes"])
        sound = bpy.data.sounds.load(path, check_existing=False)
        sound.pack()
    finally:
        with contextlib.suppress(OSError):
            os.remove(path)
    sound.name = doc["name"]
    return sound


def create(uuid: str, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    return load_sound(doc)


def apply_meta(sound: bpy.types.Sound, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    content = sound_content(sound)
    if content is None or hashlib.sha256(content).hexdigest() != doc["sha256"]:
        sound = replace(sound, load_sound(doc), bpy.data.sounds.remove)
    rename(sound, doc["name"])
    set_changed(sound, "use_mono", doc["use_mono"])
    set_changed(sound, "use_memory_cache", doc["use_memory_cache"])
    return sound


KIND = Kind(
    name="sound",
    collection="sounds",
    rna_type="Sound",
    parts={"meta": apply_meta},
    create=create,
    serialise=serialise,
    describe=describe,
    accepts=accepts,
)
