"""Value encoding and key naming.

Values are msgpack documents made of dict/list/int/float/str/bytes/bool/None.
Bulk numeric arrays (vertex positions, UVs, keyframes...) travel as raw
little-endian ``bytes`` produced by :mod:`array`, never as lists of floats.
"""

from __future__ import annotations

import array
import sys
from collections.abc import Iterable

import msgpack

from ..protocol_shim import protocol

_BIG_ENDIAN = sys.byteorder == "big"

# Datablock kinds, in the order in which their creation is applied.
KINDS: tuple[str, ...] = (
    "text",
    "img",
    "sound",
    "font",
    "clip",
    "tex",
    "action",
    "ngroup",
    "mat",
    "world",
    "mesh",
    "curve",
    "mball",
    "lattice",
    "gpencil",
    "lprobe",
    "speaker",
    "light",
    "cam",
    "arm",
    "coll",
    "obj",
    "scene",
    "lib",
)
KIND_ORDER = {kind: i for i, kind in enumerate(KINDS)}

# Parts of each kind, in the order in which they are applied.  The first part
# of each tuple is the primary part: setting it creates the datablock,
# deleting it removes the datablock.
PARTS: dict[str, tuple[str, ...]] = {
    "text": ("meta", "body"),
    "img": ("meta", "data"),
    "sound": ("meta",),
    "font": ("meta",),
    "clip": ("meta",),
    "tex": ("meta",),
    "action": ("meta", "curves"),
    "ngroup": ("meta", "nodes"),
    "mat": ("meta", "nodes"),
    "world": ("meta", "nodes"),
    "mesh": ("meta", "geometry", "shapes"),
    "curve": ("meta", "splines", "text"),
    "mball": ("meta", "elements"),
    "lattice": ("meta", "points"),
    "gpencil": ("meta", "strokes"),
    "lprobe": ("meta",),
    "speaker": ("meta",),
    "light": ("meta",),
    "cam": ("meta",),
    "arm": ("meta", "bones"),
    "coll": ("meta",),
    "obj": ("meta", "transform", "modifiers", "anim", "pose"),
    "scene": ("meta", "frame"),
    "lib": ("meta",),
}
PRIMARY_PART = "meta"


def encode_value(obj: object) -> bytes:
    """Encode a value document to msgpack bytes (binary type kept apart from str)."""
    return msgpack.packb(obj, use_bin_type=True, strict_types=False)


def decode_value(data: bytes) -> object:
    """Decode msgpack bytes produced by :func:`encode_value`."""
    return msgpack.unpackb(data, raw=False, strict_map_key=True, use_list=True)


def valid_uuid(value: object) -> bool:
    """Whether ``value`` may be a datablock's uuid. It goes into room keys (``kind/uuid/part``) and into
    ``presence.selection``, so it is a valid selection entry (docs/protocol.md section 6) without '/'."""
    return type(value) is str and "/" not in value and protocol.limits.SELECTED.problem(value) is None


def make_key(kind: str, uuid: str, part: str) -> str:
    return f"{kind}/{uuid}/{part}"


def parse_key(key: str) -> tuple[str, str, str] | None:
    """Split ``kind/uuid/part``; return None for keys this layer does not own."""
    bits = key.split("/")
    if len(bits) != 3:
        return None
    kind, uuid, part = bits
    if kind not in PARTS or part not in PARTS[kind] or not valid_uuid(uuid):
        return None
    return kind, uuid, part


def op_order(key: str) -> tuple[int, int]:
    """Sort key that puts datablocks before the datablocks that link to them."""
    parsed = parse_key(key)
    if parsed is None:
        return (len(KINDS), 0)
    kind, _uuid, part = parsed
    return (KIND_ORDER[kind], PARTS[kind].index(part))


def _to_le(arr: array.array) -> bytes:
    if _BIG_ENDIAN:  # pragma: no cover - every platform Blender ships on is little-endian
        arr = array.array(arr.typecode, arr)
        arr.byteswap()
    return arr.tobytes()


def _from_le(typecode: str, data: bytes) -> array.array:
    arr = array.array(typecode)
    arr.frombytes(data)
    if _BIG_ENDIAN:  # pragma: no cover
        arr.byteswap()
    return arr


def pack_f32(values: Iterable[float] | array.array) -> bytes:
    arr = values if isinstance(values, array.array) and values.typecode == "f" else array.array("f", values)
    return _to_le(arr)


def pack_i32(values: Iterable[int] | array.array) -> bytes:
    arr = values if isinstance(values, array.array) and values.typecode == "i" else array.array("i", values)
    return _to_le(arr)


def unpack_f32(data: bytes) -> array.array:
    return _from_le("f", data)


def unpack_i32(data: bytes) -> array.array:
    return _from_le("i", data)
