"""Scene <-> key/value layer of the blendsync add-on.

A room holds a map ``key -> value``.  This package turns the Blender scene
into such a map (:func:`serialise_scene`), finds which keys changed
(:class:`ChangeTracker`), applies remote set/delete operations
(:func:`apply_ops`, :class:`Applier`) and computes a canonical scene hash
(:func:`scene_hash`) to check that two replicas agree.

Everything about one datablock kind (its keys, how it is read, made,
applied and described) lives in ``kinds/<bpy.data collection>.py``; the
modules here are the generic machinery around the registry in
``kinds/__init__.py``.

It imports only ``bpy``/``mathutils``, the standard library and ``msgpack``,
and must run on Blender's main thread.  Key formats: docs/addon.md.
"""

from .apply import Applier, apply_ops
from .canonical import scene_description, scene_hash
from .clearing import clear_scene
from .codec import decode_value, encode_value, pack_f32, pack_i32, unpack_f32, unpack_i32
from .ids import UUID_PROP, get_uuid, peek_uuid
from .index import index_all, key_subject
from .keys import KINDS, PARTS, make_key, parse_key, split_key
from .serialise import held_without_key, serialise_datablock, serialise_scene
from .tracker import ChangeTracker, ids_from_depsgraph, shading_only_ids

__all__ = [
    "KINDS",
    "PARTS",
    "UUID_PROP",
    "Applier",
    "ChangeTracker",
    "apply_ops",
    "clear_scene",
    "decode_value",
    "encode_value",
    "get_uuid",
    "held_without_key",
    "ids_from_depsgraph",
    "index_all",
    "key_subject",
    "make_key",
    "pack_f32",
    "pack_i32",
    "parse_key",
    "peek_uuid",
    "scene_description",
    "scene_hash",
    "serialise_datablock",
    "serialise_scene",
    "shading_only_ids",
    "split_key",
    "unpack_f32",
    "unpack_i32",
]
