"""Volumes (kind ``volume``): materials, name, settings (one key each) and the OpenVDB file.

The .vdb file travels whole in the ``file`` key (packed, or read from
disk; at most 512 MiB); a receiver writes it under the temporary directory
(``blendsync-volumes/<sha256>/<uuid>/``) and points the volume at it.  An
image sequence of .vdb files travels as its current file only.
"""

from __future__ import annotations

import os
import tempfile

import bpy

from .. import file_sets, ids
from ..assign import set_materials
from ..context import ApplyContext, ReadContext
from ..settings import apply_name, setting_items, settings_part
from .base import Kind

VOLUME_MAX_BYTES = file_sets.MAX_BYTES  # a larger .vdb stays local
# The file path is this machine's (the file travels in ``file``); the velocity grid names are Blender's
# pick among the file's grids, made again (to none, when the file has no such grid) when it reads them.
SKIP = ("filepath", "velocity_grid", "velocity_x_grid", "velocity_y_grid", "velocity_z_grid")
NESTED = ("display", "render")


def volume_content(vol: bpy.types.Volume) -> bytes | None:
    """The .vdb file of a volume (packed or read from disk), if it has one that may travel."""
    if vol.packed_file is not None:
        return bytes(vol.packed_file.data) if vol.packed_file.size <= VOLUME_MAX_BYTES else None
    path = bpy.path.abspath(vol.filepath) if vol.filepath else ""
    if not os.path.isfile(path) or os.path.getsize(path) > VOLUME_MAX_BYTES:
        return None
    return file_sets.read_file(path)  # read again only once it changes


def read_file(vol: bpy.types.Volume) -> dict[str, object] | None:
    content = volume_content(vol)
    if content is None:
        return None
    name = os.path.basename(bpy.path.abspath(vol.filepath)) or "volume.vdb"
    return {"file": name, "sha256": file_sets.sha256_hex(content), "bytes": content}


def serialise(vol: bpy.types.Volume, ctx: ReadContext) -> dict[str, object]:
    return {
        "meta": {"materials": [ctx.ref(m) for m in vol.materials]},
        "name": vol.name,
        "set": setting_items(ctx.props(vol, skip=SKIP, nested=NESTED)),
        "file": read_file(vol),
    }


def describe(vol: bpy.types.Volume, ctx: ReadContext) -> dict:
    content = volume_content(vol)
    return {
        "name": vol.name,
        "materials": [ctx.ref(m) for m in vol.materials],
        "props": ctx.props(vol, skip=SKIP, nested=NESTED),
        "content": file_sets.sha256_hex(content) if content is not None else None,
    }


def create(uuid: str, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    return bpy.data.volumes.new(ctx.new_name(uuid))


def stub(name: str, object_type: str) -> bpy.types.ID:
    return bpy.data.volumes.new(name)


def apply_meta(vol: bpy.types.Volume, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    set_materials(vol.materials, [ctx.resolve(u) for u in doc["materials"]])
    return vol


def apply_file(vol: bpy.types.Volume, doc: dict | None, ctx: ApplyContext) -> bpy.types.ID:
    if doc is None:
        return vol
    current = volume_content(vol)
    if current is not None and file_sets.sha256_hex(current) == doc["sha256"]:
        return vol
    folder = os.path.join(tempfile.gettempdir(), "blendsync-volumes", doc["sha256"], ids.get_uuid(vol))
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, os.path.basename(doc["file"]))
    if not os.path.isfile(path) or os.path.getsize(path) != len(doc["bytes"]):
        fd, tmp = tempfile.mkstemp(dir=folder)
        with os.fdopen(fd, "wb") as fh:
            fh.write(doc["bytes"])
        os.replace(tmp, path)
    vol.filepath = path
    return vol


KIND = Kind(
    name="volume",
    collection="volumes",
    rna_type="Volume",
    parts={
        "meta": apply_meta,
        "name": apply_name,
        "file": apply_file,
        "set": settings_part(),
    },
    create=create,
    serialise=serialise,
    describe=describe,
    stub=stub,
    object_types=("VOLUME",),
)
