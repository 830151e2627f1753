"""The registry of synchronised datablock kinds, one module each.

Order matters: it is the order in which datablocks are filled in when a batch
is applied (scenes, collections, materials, the object data holding material
lists and objects are made and placed before the rest, other object data on
stand-ins: ``apply_order.PLACING``), so a kind comes after
the kinds it mostly links to (fonts before the text curves that use them,
node groups before the materials that use them, object data before objects)
and libraries come last because their links name collections and scenes.
A link that points later in the order (a parent object, a light probe's
collection) waits as a pending link until its target is created.  Deletes run in the reverse order.

Adding a kind: write ``kinds/<bpy.data collection>.py`` ending in a
``KIND = Kind(...)`` record (see :mod:`.base`) and list it here; object data
(meshes, lights...) comes before objects and names its ``object_types``.
"""

from __future__ import annotations

from ..extras import given
from ..items import Items
from . import (
    actions,
    armatures,
    cache_files,
    cameras,
    collections,
    curves,
    fonts,
    grease_pencils,
    hair_curves,
    images,
    lattices,
    libraries,
    lightprobes,
    lights,
    linestyles,
    masks,
    materials,
    meshes,
    metaballs,
    movieclips,
    node_groups,
    objects,
    particles,
    pointclouds,
    scenes,
    sounds,
    speakers,
    texts,
    textures,
    volumes,
    worlds,
)
from .base import Kind

PRIMARY_PART = "meta"

_BEFORE_OBJECTS: tuple[Kind, ...] = (
    texts.KIND,
    images.KIND,
    sounds.KIND,
    fonts.KIND,
    movieclips.KIND,
    masks.KIND,  # after the movie clips its points' parents name
    cache_files.KIND,
    textures.KIND,
    actions.KIND,
    node_groups.KIND,
    materials.KIND,
    worlds.KIND,
    linestyles.KIND,  # after the textures and images its slots and nodes name
    particles.KIND,
    meshes.KIND,
    curves.KIND,
    metaballs.KIND,
    lattices.KIND,
    volumes.KIND,
    pointclouds.KIND,
    hair_curves.KIND,
    grease_pencils.KIND,
    lightprobes.KIND,
    speakers.KIND,
    lights.KIND,
    cameras.KIND,
    armatures.KIND,
    collections.KIND,
)
# Every kind carries custom properties (and drivers, where it has animation data): extras.given.
REGISTRY: tuple[Kind, ...] = tuple(
    given(kind)
    for kind in (
        *_BEFORE_OBJECTS,
        objects.make_kind(_BEFORE_OBJECTS),  # objects of the types the object data kinds above declare
        scenes.KIND,
        libraries.KIND,
    )
)

BY_NAME: dict[str, Kind] = {kind.name: kind for kind in REGISTRY}
# bl_rna identifier of an ID type -> its kind
BY_RNA_TYPE: dict[str, Kind] = {kind.rna_type: kind for kind in REGISTRY}
# RNA pointer types whose targets travel as uuids
LINK_TYPES: frozenset[str] = frozenset(kind.link_type for kind in REGISTRY)


def _check() -> None:
    if len(BY_NAME) != len(REGISTRY) or len(BY_RNA_TYPE) != len(REGISTRY):
        raise ValueError("two kinds share a name or an RNA type")
    object_types = [t for kind in REGISTRY for t in kind.object_types]
    if len(set(object_types)) != len(object_types):
        raise ValueError("two kinds claim the same object type")
    for kind in REGISTRY:
        if kind.primary != PRIMARY_PART or "/" in kind.name or any("/" in part for part in kind.parts):
            raise ValueError(f"kind {kind.name!r}: parts must start with {PRIMARY_PART!r} and hold no '/'")
        if isinstance(kind.parts[PRIMARY_PART], Items):
            raise ValueError(f"kind {kind.name!r}: the primary part is one key, not items")


_check()
