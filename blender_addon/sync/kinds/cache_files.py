"""Cache files (kind ``cache``): an Alembic or USD file read by Mesh Sequence Cache modifiers and Transform
Cache constraints. Its file (every frame's, for a sequence) and its layers' files travel in ``meta``;
received files live in a temporary folder named by their content (file_sets.py)."""

from __future__ import annotations

import os

import bpy

from .. import file_sets, rna
from ..assign import rename
from ..context import ApplyContext, ReadContext
from ..replacing import replace
from .base import Kind

CACHE_MAX_BYTES = file_sets.MAX_BYTES  # a larger cache stays local (the sidebar lists it)
CACHE_SKIP = ("filepath", "active_index")


def _path(cache: bpy.types.CacheFile, filepath: str) -> str:
    return bpy.path.abspath(filepath, library=cache.library) if filepath else ""


def _file_sets(cache: bpy.types.CacheFile) -> list[list[str]] | None:
    """The files of the cache, then of each layer; None if one is missing."""
    found = [file_sets.files_behind(_path(cache, cache.filepath), cache.is_sequence)]
    found += [file_sets.files_behind(_path(cache, layer.filepath), False) for layer in cache.layers]
    if any(files is None for files in found):
        return None
    return found  # type: ignore[return-value]


def accepts(cache: bpy.types.CacheFile) -> bool:
    """Only caches whose files can be sent."""
    found = _file_sets(cache)
    return found is not None and sum(file_sets.total_bytes(files) for files in found) <= CACHE_MAX_BYTES


def _content(cache: bpy.types.CacheFile) -> tuple[file_sets.Content, list[dict]] | None:
    found = _file_sets(cache)
    if found is None:
        return None
    layers = [
        {"files": file_sets.read(files), "hide": layer.hide_layer}
        for files, layer in zip(found[1:], cache.layers, strict=True)
    ]
    return file_sets.read(found[0]), layers


def serialise(cache: bpy.types.CacheFile, ctx: ReadContext) -> dict[str, object]:
    files, layers = _content(cache) or ([], [])
    return {
        "meta": {
            "name": cache.name,
            "file": os.path.basename(_path(cache, cache.filepath)),
            "files": files,
            "sha256": file_sets.digest(files),
            "layers": layers,
            "props": ctx.props(cache, skip=CACHE_SKIP),
        }
    }


def _layer_digests(layers: list[dict]) -> list[list[object]]:
    return [[file_sets.digest(layer["files"]), layer["hide"]] for layer in layers]


def describe(cache: bpy.types.CacheFile, ctx: ReadContext) -> dict:
    content = _content(cache)
    return {
        "name": cache.name,
        "content": file_sets.digest(content[0]) if content else None,
        "layers": _layer_digests(content[1]) if content else [],
        "props": ctx.props(cache, skip=CACHE_SKIP),
    }


def remove(cache: bpy.types.CacheFile) -> None:
    bpy.data.batch_remove([cache])  # bpy.data.cache_files has no remove()


def open_cache_file(path: str) -> bpy.types.CacheFile:
    """A new cache file reading ``path`` (the API has no ``cache_files.new``: the operator makes one)."""
    before = set(bpy.data.cache_files)
    bpy.ops.cachefile.open(filepath=path)
    (made,) = set(bpy.data.cache_files) - before
    return made


def load_cache(doc: dict) -> bpy.types.CacheFile:
    folder = file_sets.store("caches", doc["files"])
    cache = open_cache_file(os.path.join(folder, os.path.basename(doc["file"])))
    cache.name = doc["name"]
    return cache


def _write_layers(cache: bpy.types.CacheFile, docs: list[dict]) -> None:
    for layer in list(cache.layers):
        cache.layers.remove(layer)
    for doc in docs:
        folder = file_sets.store("caches", doc["files"])
        name = os.path.basename(str(doc["files"][0][0])) if doc["files"] else ""
        layer = cache.layers.new(os.path.join(folder, name))
        layer.hide_layer = doc["hide"]


def create(uuid: str, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    return load_cache(doc)


def apply_meta(cache: bpy.types.CacheFile, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    content = _content(cache)  # the files are read once: a cache may be hundreds of MB
    if content is None or file_sets.digest(content[0]) != doc["sha256"]:
        cache = replace(cache, load_cache(doc), remove)
        content = _content(cache)  # a new cache: no layers yet
    rename(cache, doc["name"])
    rna.write_props(cache, doc["props"], ctx.resolve)
    if content is None or _layer_digests(content[1]) != _layer_digests(doc["layers"]):
        _write_layers(cache, doc["layers"])
    return cache


KIND = Kind(
    name="cache",
    collection="cache_files",
    rna_type="CacheFile",
    parts={"meta": apply_meta},
    create=create,
    serialise=serialise,
    describe=describe,
    accepts=accepts,
    remove=remove,
)
