"""Libraries (kind ``lib``): a linked .blend travels whole with what is linked from it and where.

Received libraries are written under the temporary directory and the listed
datablocks linked from there; the library that this makes takes the uuid.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable

import bpy

from .. import file_sets, ids
from ..context import ApplyContext, ReadContext
from ..linked import LINKABLE
from .base import Kind

LIBRARY_MAX_BYTES = file_sets.MAX_BYTES  # a larger library stays local


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
            for id_data in getattr(bpy.data, attr, ())
            if id_data.library == lib and not id_data.is_library_indirect
        )
    return out


def accepts(lib: bpy.types.Library) -> bool:
    """Libraries whose file can be sent and that something is linked from."""
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


def library_content(lib: bpy.types.Library) -> bytes | None:
    """The .blend file of a library (packed or read from disk)."""
    if lib.packed_file is not None:
        return bytes(lib.packed_file.data)
    path = library_path(lib)
    return None if path is None else file_sets.read_file(path)  # read again only once it changes


def linked_entry(id_data: bpy.types.ID) -> list[str]:
    return [LINKABLE[id_data.id_type], id_data.name]


# ---------------------------------------------------------------- read


def serialise(lib: bpy.types.Library, ctx: ReadContext) -> dict[str, object]:
    content = library_content(lib) or b""
    linked = library_linked(lib)
    links = []
    for id_data in linked:
        if isinstance(id_data, bpy.types.Collection):
            parents = ctx.collection_parents(id_data)
        elif isinstance(id_data, bpy.types.Object):
            parents = sorted({r for r in (ctx.collection_ref(c) for c in id_data.users_collection) if r})
        else:
            continue
        if parents:
            links.append([*linked_entry(id_data), parents])
    return {
        "meta": {
            "name": lib.name,
            "file": os.path.basename(bpy.path.abspath(lib.filepath)) or "library.blend",
            "sha256": file_sets.sha256_hex(content),
            "bytes": content,
            "linked": sorted(linked_entry(id_data) for id_data in linked),
            "links": sorted(links),
        }
    }


def describe(lib: bpy.types.Library, ctx: ReadContext) -> dict:
    content = library_content(lib)
    linked = []
    for id_data in library_linked(lib):
        if isinstance(id_data, bpy.types.Collection):
            parents = [
                ctx.ref(c) for c in bpy.data.collections if ctx.is_synced(c) and id_data in c.children[:]
            ]
            parents += [
                ctx.ref(s)
                for s in bpy.data.scenes
                if ctx.is_synced(s) and id_data in s.collection.children[:]
            ]
        elif isinstance(id_data, bpy.types.Object):
            parents = [r for r in (ctx.collection_ref(c) for c in id_data.users_collection) if r]
        else:
            parents = []
        linked.append([id_data.id_type, id_data.name, sorted(parents)])
    return {
        "name": lib.name,
        "content": file_sets.sha256_hex(content) if content is not None else None,
        "linked": sorted(linked),
    }


# ---------------------------------------------------------------- apply


def _write_library(doc: dict, uuid: str) -> str:
    """Write a received library's .blend where it is kept (linked data is read from it on every load).

    The folder names the library's uuid too: two libraries with the same content (one file copied to two
    places) must stay two libraries, and Blender makes one library per file path.
    """
    folder = os.path.join(tempfile.gettempdir(), "blendsync-libs", doc["sha256"], uuid)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, os.path.basename(doc["file"]))
    if not os.path.isfile(path) or os.path.getsize(path) != len(doc["bytes"]):
        fd, tmp = tempfile.mkstemp(dir=folder)
        with os.fdopen(fd, "wb") as fh:
            fh.write(doc["bytes"])
        os.replace(tmp, path)
    return path


def _link_from(filepath: str, entries: Iterable[list[str]]) -> None:
    """Link datablocks (``[collection attr, name]``) from a .blend file."""
    wanted: dict[str, list[str]] = {}
    for attr, name in entries:
        wanted.setdefault(attr, []).append(name)
    if not wanted:
        return
    with bpy.data.libraries.load(filepath, link=True) as (source, target):
        for attr, names in wanted.items():
            available = set(getattr(source, attr, ()))
            setattr(target, attr, [n for n in names if n in available])


def _same_file(a: str, b: str) -> bool:
    return os.path.normcase(os.path.abspath(bpy.path.abspath(a))) == os.path.normcase(os.path.abspath(b))


def create(uuid: str, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    path = _write_library(doc, uuid)
    _link_from(path, doc["linked"])
    lib = next((lib for lib in bpy.data.libraries if _same_file(lib.filepath, path)), None)
    if lib is None:
        raise RuntimeError("nothing could be linked from the library")
    return lib


def apply_meta(lib: bpy.types.Library, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    content = library_content(lib)
    if content is None or file_sets.sha256_hex(content) != doc["sha256"]:
        lib.filepath = _write_library(doc, ids.get_uuid(lib))
        lib.reload()
    if lib.name != doc["name"]:
        with contextlib.suppress(AttributeError, RuntimeError):
            lib.name = doc["name"]
    wanted = {tuple(entry) for entry in doc["linked"]}
    present = {tuple(linked_entry(id_data)): id_data for id_data in library_linked(lib)}
    for entry, id_data in present.items():
        if entry not in wanted:
            getattr(bpy.data, entry[0]).remove(id_data)
    _link_from(lib.filepath, [list(e) for e in sorted(wanted) if e not in present])
    # Where the linked collections and objects are linked into this scene's collections.
    links = {(attr, name): parents for attr, name, parents in doc["links"]}
    synced_masters = {s.collection.as_pointer() for s in bpy.data.scenes if ids.peek_uuid(s)}
    for id_data in library_linked(lib):
        entry = tuple(linked_entry(id_data))
        targets = {}
        for ref in links.get(entry, []):
            coll = ctx.resolve_collection(ref)
            if coll is not None:
                targets[coll.as_pointer()] = coll
        if isinstance(id_data, bpy.types.Collection):
            holders = [c for c in bpy.data.collections if id_data in c.children[:]]
            holders += [s.collection for s in bpy.data.scenes if id_data in s.collection.children[:]]
        elif isinstance(id_data, bpy.types.Object):
            holders = list(id_data.users_collection)
        else:
            continue
        members = "children" if isinstance(id_data, bpy.types.Collection) else "objects"
        for coll in holders:
            ptr = coll.as_pointer()
            synced = ptr in synced_masters or (coll.library is None and ids.peek_uuid(coll) is not None)
            if ptr not in targets and synced:
                getattr(coll, members).unlink(id_data)
        present_ptrs = {c.as_pointer() for c in holders}
        for ptr, coll in targets.items():
            if ptr not in present_ptrs:
                getattr(coll, members).link(id_data)
    return lib


KIND = Kind(
    name="lib",
    collection="libraries",
    rna_type="Library",
    parts={"meta": apply_meta},
    create=create,
    serialise=serialise,
    describe=describe,
    accepts=accepts,
)
