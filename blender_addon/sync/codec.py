"""Value encoding (key names: keys.py).

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
from . import chunks

_BIG_ENDIAN = sys.byteorder == "big"
MAX_KEY_BYTES = protocol.limits.MAX_KEY_BYTES  # the longest key the server accepts


def encode_value(obj: object) -> bytes:
    """Encode a value document to msgpack bytes (binary type kept apart from str); byte strings longer
    than a chunk travel as content-addressed chunks (chunks.py)."""
    packed = msgpack.packb(obj, use_bin_type=True, strict_types=False)
    if len(packed) <= chunks.CHUNK_BYTES:
        # No byte string in it is longer than a chunk: nothing to cut, and no walk of the document (every
        # value of every datablock read is encoded; nearly all are this small).
        return packed
    return msgpack.packb(chunks.chunked(obj), use_bin_type=True, strict_types=False)


def decode_value(data: bytes) -> object:
    """Decode msgpack bytes produced by :func:`encode_value` (raises chunks.MissingChunks for a value
    whose chunks are not in the cache)."""
    return msgpack.unpackb(data, raw=False, strict_map_key=True, use_list=True, ext_hook=_join)


_join = chunks.join_hook()


_selection_entry = protocol.limits.text_predicate(protocol.limits.SELECTED)


def valid_uuid(value: object) -> bool:
    """Whether ``value`` may be a datablock's uuid. It goes into room keys (``kind/uuid/part``) and into
    ``presence.selection``, so it is a valid selection entry (docs/protocol.md section 6) without '/'.
    (Asked for every key applied and every datablock indexed: the grammar's fast predicate.)"""
    return type(value) is str and "/" not in value and _selection_entry(value)


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


def _view(typecode: str, data: bytes) -> memoryview | array.array:
    if _BIG_ENDIAN or len(data) % 4:  # pragma: no cover - _from_le swaps, or refuses a ragged length
        return _from_le(typecode, data)
    return memoryview(data).cast(typecode)


def view_f32(data: bytes) -> memoryview | array.array:
    """The floats of ``data`` for ``foreach_set``, without copying them (a 10,000,000-vertex mesh's
    arrays are hundreds of MB)."""
    return _view("f", data)


def view_i32(data: bytes) -> memoryview | array.array:
    return _view("i", data)


def pack_known(values: array.array | memoryview) -> bytes:
    """``pack_f32``/``pack_i32`` of an array, or of a read buffer's values (arrays.scratch: a memoryview of a
    bytearray); a long buffer equal to a byte string split lately (chunks.py) gives that very byte string:
    an unchanged array (a mesh's topology in edit mode) is not copied again, and its chunks keep their
    hashes without being compared one by one."""
    if isinstance(values, array.array):
        return _to_le(values)
    raw = values.obj
    if not isinstance(raw, bytearray) or len(raw) != values.nbytes or _BIG_ENDIAN:
        return _to_le(array.array(values.format, values))  # pragma: no cover - a buffer of its own
    known = chunks.recent_equal(raw) if len(raw) >= chunks.REUSE_BYTES else None
    return known if known is not None else bytes(raw)


def packs_to(values: array.array | memoryview, data: bytes) -> bool:
    """Whether ``pack_known(values)`` would be ``data`` (a read buffer compared in place, with memcmp)."""
    if isinstance(values, memoryview) and isinstance(values.obj, bytearray) and not _BIG_ENDIAN:
        return values.nbytes == len(data) and values.obj == data
    return pack_known(values) == data


def pack_f32_chunked(values: array.array | memoryview) -> bytes | msgpack.ExtType:
    """``pack_f32``, already cut into chunks when long (what ``encode_value`` makes of it): a document
    holds a large array's chunk tree, not its bytes beside the chunks, while the rest is read."""
    return chunks.chunked(pack_known(values) if _typecode(values) == "f" else pack_f32(values))


def pack_i32_chunked(values: array.array | memoryview) -> bytes | msgpack.ExtType:
    return chunks.chunked(pack_known(values) if _typecode(values) == "i" else pack_i32(values))


def _typecode(values: object) -> str | None:
    if isinstance(values, array.array):
        return values.typecode
    return values.format if isinstance(values, memoryview) else None
