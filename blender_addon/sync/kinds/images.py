"""Images (kind ``img``): generated images as settings, images with a file as the encoded file's bytes, and
images of several files (an image sequence, a movie, a tiled UDIM image) as every file's name and bytes.
Pixels painted into a single-file or generated image and not saved travel beside its file (painted.py).

A receiver packs the file of a single-file image and the tiles of a tiled one; a sequence's frames and a
movie (which Blender cannot pack) live in a temporary folder named by their content (file_sets.py).
"""

from __future__ import annotations

import hashlib
import os

import bpy

from .. import file_sets, ids, painted
from ..arrays import floats
from ..assign import rename, set_changed
from ..context import ApplyContext, ReadContext
from .base import Kind

MULTI = ("SEQUENCE", "MOVIE", "TILED")  # sources whose files travel as a set
UDIM = "<UDIM>"  # the tile number's place in a tiled image's file path
MULTI_MAX_BYTES = file_sets.MAX_BYTES  # the files of one image of several: a larger one stays local


def _packed_tiles(img: bpy.types.Image) -> bool:
    return img.source == "TILED" and len(img.packed_files) > 0


def _paths(img: bpy.types.Image) -> list[str] | None:
    """The files on disk behind an image of several files (each tile, every frame, the movie), if they
    all exist and hold at most MULTI_MAX_BYTES (nothing is read)."""
    path = bpy.path.abspath(img.filepath, library=img.library) if img.filepath else ""
    if img.source == "TILED":
        if UDIM not in path:
            return None
        found = [file_sets.files_behind(path.replace(UDIM, str(tile.number)), False) for tile in img.tiles]
        files = None if any(f is None for f in found) else sorted(f[0] for f in found if f)
    else:
        files = file_sets.files_behind(path, img.source == "SEQUENCE")
    return files if files and file_sets.total_bytes(files) <= MULTI_MAX_BYTES else None


def image_files(img: bpy.types.Image) -> file_sets.Content | None:
    """``[file name, bytes]`` of every file of an image of several files, in name order (None: missing)."""
    if _packed_tiles(img):
        return sorted([os.path.basename(pf.filepath), bytes(pf.packed_file.data)] for pf in img.packed_files)
    files = _paths(img)
    return None if files is None else file_sets.read(files)


def accepts(img: bpy.types.Image) -> bool:
    if img.type not in {"IMAGE", "UV_TEST"}:
        return False
    if img.source in MULTI:
        return _packed_tiles(img) or _paths(img) is not None
    return img.source in {"FILE", "GENERATED"}


def image_content(img: bpy.types.Image) -> bytes | None:
    """The encoded image file (PNG, JPEG...) behind an image, if there is one."""
    if img.packed_file is not None:
        return bytes(img.packed_file.data)
    if img.source == "FILE" and img.filepath:
        path = bpy.path.abspath(img.filepath, library=img.library)
        if os.path.isfile(path):
            with open(path, "rb") as fh:
                return fh.read()
    return None


def _serialise_multi(img: bpy.types.Image, files: file_sets.Content) -> dict[str, object]:
    digest = file_sets.digest(files)
    meta = {
        "name": img.name,
        "source": img.source,
        "file": os.path.basename(img.filepath),
        "colorspace": img.colorspace_settings.name,
        "alpha_mode": img.alpha_mode,
        "generated": None,
        "sha256": digest,
    }
    if img.source == "TILED":
        meta["tiles"] = [[tile.number, tile.label] for tile in img.tiles]
    data = {"sha256": digest, "source": img.source, "file": meta["file"], "files": files}
    return {"meta": meta, "data": data}


def serialise(img: bpy.types.Image, ctx: ReadContext) -> dict[str, object]:
    if img.source in MULTI:
        return _serialise_multi(img, image_files(img) or [])
    content = image_content(img)
    meta = {
        "name": img.name,
        "source": img.source if content is not None else "GENERATED",
        "size": [int(img.size[0]), int(img.size[1])],
        "colorspace": img.colorspace_settings.name,
        "alpha_mode": img.alpha_mode,
        "generated": None
        if content is not None
        else {
            "type": img.generated_type,
            "width": img.generated_width,
            "height": img.generated_height,
            "color": floats(img.generated_color),
            "float": img.use_generated_float,
        },
        "sha256": hashlib.sha256(content).hexdigest() if content is not None else None,
    }
    data: dict[str, object] = {"sha256": meta["sha256"], "painted": painted.read(img)}
    if content is not None:
        data["bytes"] = content
    return {"meta": meta, "data": data}


def describe(img: bpy.types.Image, ctx: ReadContext) -> dict:
    if img.source in MULTI:
        files = image_files(img)
        return {
            "name": img.name,
            "source": img.source,
            "content": file_sets.digest(files) if files is not None else None,
            "tiles": [[tile.number, tile.label] for tile in img.tiles] if img.source == "TILED" else None,
        }
    content = image_content(img)
    return {
        "name": img.name,
        "size": list(img.size),
        "content": hashlib.sha256(content).hexdigest() if content is not None else None,
        "generated": None
        if content is not None
        else [img.generated_type, img.generated_width, img.generated_height, floats(img.generated_color)],
        "painted": painted.digest(img),
    }


def create(uuid: str, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    gen = doc["generated"]
    if gen is None:  # the encoded file arrives in the data part
        return bpy.data.images.new(doc["name"], 1, 1, alpha=True)
    return bpy.data.images.new(
        doc["name"], gen["width"], gen["height"], alpha=True, float_buffer=gen["float"]
    )


def apply_meta(img: bpy.types.Image, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    rename(img, doc["name"])
    gen = doc["generated"]
    if gen is not None:
        set_changed(img, "source", "GENERATED")
        set_changed(img, "generated_type", gen["type"])
        set_changed(img, "generated_width", gen["width"])
        set_changed(img, "generated_height", gen["height"])
        set_changed(img, "generated_color", gen["color"])
        set_changed(img, "use_generated_float", gen["float"])
    set_changed(img.colorspace_settings, "name", doc["colorspace"])
    set_changed(img, "alpha_mode", doc["alpha_mode"])
    tiles = {tile.number: tile for tile in img.tiles}
    for number, label in doc.get("tiles") or ():
        tile = tiles.get(number)
        if tile is None or img.source != "TILED":  # made when the tiles' files arrive (data)
            ctx.wait_for("data", ids.get_uuid(img))
            break
        set_changed(tile, "label", label)
    return img


def _apply_files(img: bpy.types.Image, doc: dict) -> bpy.types.ID:
    """The files of an image of several: written into their folder, loaded from there (a tiled image's then
    packed); nothing is done when the image holds them already."""
    source, name = doc["source"], os.path.basename(str(doc["file"]))
    if source not in MULTI or not name or (source == "TILED" and UDIM not in name):
        raise ValueError(f"an image of several files of source {source!r} named {name!r}")
    files = image_files(img) if img.source == source else None
    if files is not None and file_sets.digest(files) == doc["sha256"]:
        return img
    folder = file_sets.store("images", doc["files"])
    if img.packed_file is not None:
        img.unpack(method="REMOVE")
    img.source = source
    img.filepath = os.path.join(folder, name)
    img.reload()
    if source == "TILED":
        img.pack()  # a tiled image can be packed, as a single-file one is
    return img


def apply_data(img: bpy.types.Image, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    if "files" in doc:
        return _apply_files(img, doc)
    data = doc.get("bytes")
    if data is not None:
        content = image_content(img)
        if content is None or hashlib.sha256(content).hexdigest() != doc["sha256"]:
            had_file = img.packed_file is not None
            img.pack(data=data, data_len=len(data))
            img.source = "FILE"
            if had_file:
                img.reload()
    pixels = doc.get("painted")
    if pixels is not None:
        painted.write(img, pixels)
    elif img.is_dirty:  # the painting was saved, packed or thrown away: the file (or settings) again
        img.reload()
    return img


KIND = Kind(
    name="img",
    collection="images",
    rna_type="Image",
    parts={"meta": apply_meta, "data": apply_data},
    create=create,
    serialise=serialise,
    describe=describe,
    accepts=accepts,
)
