"""Persistent identity of datablocks.

Every synchronised datablock carries a uuid in the custom property
``ID["blendsync_uuid"]``.  It is assigned the first time the layer sees the
datablock and survives renames, file saves and reloads.  Duplicating a
datablock in Blender copies its custom properties, so :func:`index_all`
detects duplicated uuids and gives the copy a fresh one.
"""

from __future__ import annotations

import os
import re
import uuid as _uuid
from collections.abc import Iterator

import bpy

from .codec import valid_uuid

UUID_PROP = "blendsync_uuid"

# kind -> name of the bpy.data collection holding it
DATA_COLLECTIONS: dict[str, str] = {
    "text": "texts",
    "img": "images",
    "sound": "sounds",
    "font": "fonts",
    "clip": "movieclips",
    "tex": "textures",
    "action": "actions",
    "ngroup": "node_groups",
    "mat": "materials",
    "world": "worlds",
    "mesh": "meshes",
    "curve": "curves",
    "mball": "metaballs",
    "lattice": "lattices",
    "gpencil": "grease_pencils",
    "lprobe": "lightprobes",
    "speaker": "speakers",
    "light": "lights",
    "cam": "cameras",
    "arm": "armatures",
    "coll": "collections",
    "obj": "objects",
    "scene": "scenes",
    "lib": "libraries",
}

# bl_rna identifier of the ID type -> kind
_TYPE_KIND: dict[str, str] = {
    "Text": "text",
    "Image": "img",
    "Sound": "sound",
    "VectorFont": "font",
    "MovieClip": "clip",
    "Texture": "tex",  # and every subclass (CloudsTexture, ImageTexture...): see kind_of
    "MetaBall": "mball",
    "Lattice": "lattice",
    "GreasePencil": "gpencil",
    "LightProbe": "lprobe",
    "LightProbeSphere": "lprobe",
    "LightProbePlane": "lprobe",
    "LightProbeVolume": "lprobe",
    "Speaker": "speaker",
    "Action": "action",
    "ShaderNodeTree": "ngroup",  # shader node groups (embedded material/world trees are skipped)
    "Material": "mat",
    "World": "world",
    "Mesh": "mesh",
    "Curve": "curve",
    "SurfaceCurve": "curve",
    "TextCurve": "curve",
    "PointLight": "light",
    "SunLight": "light",
    "SpotLight": "light",
    "AreaLight": "light",
    "Light": "light",
    "Camera": "cam",
    "Armature": "arm",
    "Collection": "coll",
    "Object": "obj",
    "Scene": "scene",
    "Library": "lib",
}

# Object types whose data kind is synchronised (EMPTY has no data).
OBJECT_DATA_KIND: dict[str, str | None] = {
    "MESH": "mesh",
    "CURVE": "curve",
    "SURFACE": "curve",
    "FONT": "curve",
    "LIGHT": "light",
    "CAMERA": "cam",
    "META": "mball",
    "LATTICE": "lattice",
    "GREASEPENCIL": "gpencil",
    "LIGHT_PROBE": "lprobe",
    "SPEAKER": "speaker",
    "ARMATURE": "arm",
    "EMPTY": None,
}

# Which uuid owns which datablock (session_uid), used to settle duplicated uuids.
_owner: dict[str, int] = {}


def new_uuid() -> str:
    return _uuid.uuid4().hex


def kind_of(id_data: bpy.types.ID) -> str | None:
    rna = id_data.bl_rna
    kind = _TYPE_KIND.get(rna.identifier)
    if kind is None and rna.base is not None and rna.base.identifier == "Texture":
        kind = "tex"
    return kind


def sound_path(sound: bpy.types.Sound) -> str | None:
    """The file behind a sound that is not packed, if it exists."""
    if not sound.filepath:
        return None
    path = bpy.path.abspath(sound.filepath, library=sound.library)
    return path if os.path.isfile(path) else None


BUILTIN_FONT = "<builtin>"


def font_path(font: bpy.types.VectorFont) -> str | None:
    """The file behind a font that is neither built in nor packed, if it exists."""
    if not font.filepath or font.filepath == BUILTIN_FONT:
        return None
    path = bpy.path.abspath(font.filepath, library=font.library)
    return path if os.path.isfile(path) else None


_FRAME_NUMBER = re.compile(r"^(.*?)(\d+)(\D*)$")
CLIP_MAX_BYTES = 48 * 1024 * 1024  # the files of one clip travel in one key


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


def _clip_sendable(clip: bpy.types.MovieClip) -> bool:
    files = clip_files(clip)
    return files is not None and sum(os.path.getsize(f) for f in files) <= CLIP_MAX_BYTES


LIBRARY_MAX_BYTES = 48 * 1024 * 1024  # a library's .blend travels in one key

# ID type -> bpy.data collection, for datablocks linked from a library
LINKABLE: dict[str, str] = {
    "OBJECT": "objects",
    "COLLECTION": "collections",
    "MESH": "meshes",
    "MATERIAL": "materials",
    "NODETREE": "node_groups",
    "ACTION": "actions",
    "IMAGE": "images",
    "WORLD": "worlds",
    "CURVE": "curves",
    "ARMATURE": "armatures",
    "LIGHT": "lights",
    "CAMERA": "cameras",
    "TEXTURE": "textures",
    "TEXT": "texts",
    "SCENE": "scenes",
}


def library_path(lib: bpy.types.Library) -> str | None:
    """The .blend file of a library, if it exists."""
    if not lib.filepath:
        return None
    path = bpy.path.abspath(lib.filepath)
    return path if os.path.isfile(path) else None


def library_linked(lib: bpy.types.Library) -> list[bpy.types.ID]:
    """Datablocks linked directly (not as dependencies of others) from a library, in a fixed order."""
    out = []
    for attr in LINKABLE.values():
        out.extend(
            id_data
            for id_data in getattr(bpy.data, attr)
            if id_data.library == lib and not id_data.is_library_indirect
        )
    return out


def _library_sendable(lib: bpy.types.Library) -> bool:
    if lib.parent is not None:  # a library of a library comes with its parent's file
        return False
    if lib.packed_file is not None:
        size = lib.packed_file.size
    else:
        path = library_path(lib)
        if path is None:
            return False
        size = os.path.getsize(path)
    return size <= LIBRARY_MAX_BYTES and bool(library_linked(lib))


def is_synced(id_data: bpy.types.ID) -> bool:
    """Whether a datablock belongs to the synchronised set."""
    if id_data is None or getattr(id_data, "library", None) is not None:
        return False
    if getattr(id_data, "is_embedded_data", False):
        return False
    kind = kind_of(id_data)
    if kind is None:
        return False
    if kind == "obj":
        return id_data.type in OBJECT_DATA_KIND
    if kind == "img":
        return id_data.type in {"IMAGE", "UV_TEST"} and id_data.source in {"FILE", "GENERATED"}
    if kind == "sound":  # only sounds whose content can be sent
        return id_data.packed_file is not None or sound_path(id_data) is not None
    if kind == "lib":  # libraries whose file can be sent and that something is linked from
        return _library_sendable(id_data)
    if kind == "clip":  # only clips whose files can be sent
        return _clip_sendable(id_data)
    if kind == "font":  # the built-in font, or a font whose file can be sent
        return (
            id_data.filepath == BUILTIN_FONT
            or id_data.packed_file is not None
            or font_path(id_data) is not None
        )
    return True


def peek_uuid(id_data: bpy.types.ID | None) -> str | None:
    """The datablock's uuid, or None if it has none yet (never assigns). A value that cannot be a uuid
    (edited by hand or by a script: too long, with '/' or control characters) counts as none, so the
    datablock gets a fresh one instead of keys the server would refuse."""
    if id_data is None:
        return None
    value = id_data.get(UUID_PROP)
    return value if valid_uuid(value) else None


def set_uuid(id_data: bpy.types.ID, value: str) -> None:
    id_data[UUID_PROP] = value
    _owner[value] = id_data.session_uid


def get_uuid(id_data: bpy.types.ID) -> str:
    """The datablock's uuid, assigning one on first sight."""
    value = peek_uuid(id_data)
    if value is None:
        value = new_uuid()
        set_uuid(id_data, value)
    return value


def iter_synced() -> Iterator[tuple[str, bpy.types.ID]]:
    """Every synchronised datablock with its kind, in a fixed order."""
    for kind, attr in DATA_COLLECTIONS.items():
        for id_data in getattr(bpy.data, attr):
            if is_synced(id_data):
                yield kind, id_data


def index_all(assign: bool = True) -> dict[str, tuple[str, bpy.types.ID]]:
    """Map uuid -> (kind, datablock) for every synchronised datablock.

    With ``assign`` (the default) datablocks without a uuid get one, and a
    datablock whose uuid is already held by another one (a duplicate made by
    copying) gets a fresh uuid.  The datablock that owned the uuid before
    keeps it.
    """
    found: dict[str, list[tuple[str, bpy.types.ID]]] = {}
    fresh: list[tuple[str, bpy.types.ID]] = []
    for kind, id_data in iter_synced():
        value = peek_uuid(id_data)
        if value is None:
            fresh.append((kind, id_data))
        else:
            found.setdefault(value, []).append((kind, id_data))
    index: dict[str, tuple[str, bpy.types.ID]] = {}
    for value, holders in found.items():
        if len(holders) == 1:
            index[value] = holders[0]
            continue
        owner_uid = _owner.get(value)
        keeper = next((h for h in holders if h[1].session_uid == owner_uid), holders[0])
        index[value] = keeper
        fresh.extend(h for h in holders if h is not keeper)
    for kind, id_data in fresh:
        if not assign:
            continue
        value = new_uuid()
        set_uuid(id_data, value)
        index[value] = (kind, id_data)
    return index


def find(kind: str, value: str) -> bpy.types.ID | None:
    """Find a datablock of ``kind`` by uuid (linear scan of one collection)."""
    for id_data in getattr(bpy.data, DATA_COLLECTIONS[kind]):
        if peek_uuid(id_data) == value and is_synced(id_data):
            return id_data
    return None
