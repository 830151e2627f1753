"""Bulk arrays between Blender collections and packed bytes (foreach_get/set), generic attributes."""

from __future__ import annotations

import array
import sys
from collections import OrderedDict
from collections.abc import Callable, Iterator

from .codec import pack_i32, pack_known, unpack_i32, view_f32, view_i32


def floats(values) -> list[float]:
    return [float(v) for v in values]


def matrix_rows(m) -> list[float]:
    """A 4x4 matrix as 16 floats, row-major."""
    return [float(m[r][c]) for r in range(4) for c in range(4)]


def fget(coll, attr: str, count: int, width: int) -> array.array:
    buf = array.array("f", [0.0]) * (count * width)  # one allocation (array("f", bytes(n)) makes two)
    if count:
        coll.foreach_get(attr, buf)
    return buf


def iget(coll, attr: str, count: int, width: int) -> array.array:
    buf = array.array("i", [0]) * (count * width)
    if count:
        coll.foreach_get(attr, buf)
    return buf


SCRATCH_BYTES = 64 * 1024 * 1024  # reused read buffers kept, at most
_scratch: OrderedDict[int, bytearray] = OrderedDict()


def scratch(code: str, length: int) -> memoryview:
    """A buffer for ``length`` values of type ``code`` (f, i) reused from one read to the next: a mesh in
    edit mode is read several times a second, and a large array read into fresh memory pays for its pages
    every time (~6 ms for 3 MB on a loaded machine). Valid until the next ``scratch`` of that size."""
    size = 4 * length
    buf = _scratch.pop(size, None)
    if buf is None:
        buf = bytearray(size)
    _scratch[size] = buf
    while len(_scratch) > 1 and sum(len(b) for b in _scratch.values()) > SCRATCH_BYTES:
        _scratch.popitem(last=False)
    return memoryview(buf).cast(code)


def read_reused(coll, key: str, code: str, length: int) -> array.array | memoryview:
    """``coll.foreach_get(key)`` of ``length`` values into a :func:`scratch` buffer (into an array for a
    collection read item by item, which wants a sequence, or on a big-endian machine)."""
    if length and 4 * length <= SCRATCH_BYTES and sys.byteorder == "little":
        view = scratch(code, length)
        try:
            coll.foreach_get(key, view)
            return view
        except TypeError:  # not a buffer it can fill at once
            pass
    buf = array.array(code, [0]) * length
    if length:
        coll.foreach_get(key, buf)
    return buf


BATCH_ROWS = 65536  # rows of a ``Rows`` made into Python lists at a time


class Rows:
    """A long list in a description (canonical.py), made in batches when it is hashed instead of held
    whole: a vertex as a Python list of three floats costs ~150 bytes, its position in Blender 12."""

    __slots__ = ("batches",)

    def __init__(self, batches: Callable[[int], Iterator[list]]):
        self.batches = batches  # batches(n): the rows in order, as lists of at most n rows

    def __iter__(self) -> Iterator:
        for batch in self.batches(BATCH_ROWS):
            yield from batch


def rows_of(values: array.array, width: int) -> Rows:
    """The rows of ``width`` values of a flat array, each a list (like ``list(v.co)``)."""

    def batches(size: int) -> Iterator[list]:
        for start in range(0, len(values), size * width):
            flat = values[start : start + size * width].tolist()
            yield [flat[i : i + width] for i in range(0, len(flat), width)]

    return Rows(batches)


def ragged_rows_of(values: array.array, starts: array.array, totals: array.array) -> Rows:
    """Rows of different lengths: ``values[start:start + total]`` for each start and total."""

    def batches(size: int) -> Iterator[list]:
        for first in range(0, len(starts), size):
            pairs = zip(starts[first : first + size], totals[first : first + size], strict=True)
            yield [values[start : start + total].tolist() for start, total in pairs]

    return Rows(batches)


def fset(coll, attr: str, data: bytes) -> None:
    values = view_f32(data)
    if len(values):
        coll.foreach_set(attr, values)


def iset(coll, attr: str, data: bytes) -> None:
    values = view_i32(data)
    if len(values):
        coll.foreach_set(attr, values)


# A mesh's topology and positions are attributes too (``.edge_verts``, ``.corner_vert``, ``.corner_edge``,
# ``position``): read or written as one, an array is a copy of memory, where the same values through
# ``Mesh.edges``/``Mesh.loops`` are read item by item (~100 times slower: 180 ms for 200,000 vertices).
# In edit mode a mesh's attributes are its edit mesh's, which holds none of these: then None.
# name -> (data_type, foreach attribute, typecode, width)
MESH_ARRAYS: dict[str, tuple[str, str, str, int]] = {
    "position": ("FLOAT_VECTOR", "vector", "f", 3),
    ".edge_verts": ("INT32_2D", "value", "i", 2),
    ".corner_vert": ("INT", "value", "i", 1),
    ".corner_edge": ("INT", "value", "i", 1),
}


def _mesh_array(me, name: str, count: int) -> tuple[object, str, str, int] | None:
    """The data of the mesh's built-in attribute ``name`` (:data:`MESH_ARRAYS`) for ``count`` items with its
    foreach attribute, typecode and width, or None when it cannot be used as an attribute (edit mode,
    missing, no items)."""
    if not count:
        return None
    data_type, key, code, width = MESH_ARRAYS[name]
    if me.is_editmode:
        return None
    attr = me.attributes.get(name)
    if attr is None or attr.data_type != data_type or len(attr.data) != count:
        return None
    return attr.data, key, code, width


def mesh_get(me, name: str, count: int, reuse: bool = False) -> array.array | memoryview | None:
    """The mesh's built-in attribute ``name`` for ``count`` items, or None when it cannot be read as an
    attribute; with ``reuse`` in a :func:`scratch` buffer."""
    found = _mesh_array(me, name, count)
    if found is None:
        return None
    items, key, code, width = found
    if reuse:
        return read_reused(items, key, code, count * width)
    buf = array.array(code, [0]) * (count * width)
    items.foreach_get(key, buf)
    return buf


def mesh_set(me, name: str, count: int, data: bytes) -> bool:
    """Write ``data`` to the mesh's built-in attribute ``name``; False when it cannot be written as one."""
    found = _mesh_array(me, name, count)
    if found is None:
        return False
    items, key, code, width = found
    values = view_f32(data) if code == "f" else view_i32(data)
    if len(values) != count * width:
        return False
    items.foreach_set(key, values)
    return True


# data_type -> (components, foreach attribute, array typecode or "b" for bool lists)
ATTRIBUTE_LAYOUT: dict[str, tuple[int, str, str]] = {
    "FLOAT": (1, "value", "f"),
    "INT": (1, "value", "i"),
    "FLOAT_VECTOR": (3, "vector", "f"),
    "FLOAT_COLOR": (4, "color", "f"),
    "BYTE_COLOR": (4, "color", "f"),
    "FLOAT2": (2, "vector", "f"),
    "INT8": (1, "value", "l"),
    "INT16_2D": (2, "value", "l"),
    "INT32_2D": (2, "value", "i"),
    "QUATERNION": (4, "value", "f"),
    "FLOAT4X4": (16, "value", "f"),
    "BOOLEAN": (1, "value", "b"),
}


def read_attribute(attr) -> bytes | None:
    """A generic attribute's values as packed bytes (None for a data type that does not travel)."""
    layout = ATTRIBUTE_LAYOUT.get(attr.data_type)
    if layout is None:
        return None
    width, key, code = layout
    count = len(attr.data)
    if code in "fi":  # read again and again in edit mode: into a reused buffer
        return pack_known(read_reused(attr.data, key, code, count * width))
    if code == "b":  # a byte per value, read into bytes at once (a list of bools took 16-50 ms for 200,000)
        flags = bytearray(count * width)
        if count:
            attr.data.foreach_get(key, flags)
        return bytes(flags)
    values = [0] * (count * width)
    if count:
        attr.data.foreach_get(key, values)
    return pack_i32(values)


def write_attribute(attr, data: bytes) -> None:
    _width, key, code = ATTRIBUTE_LAYOUT[attr.data_type]
    if not len(attr.data):
        return
    if code == "f":
        values = view_f32(data)
    elif code == "b":
        values = bytearray(data)
    elif code == "l":
        values = list(unpack_i32(data))
    else:
        values = view_i32(data)
    attr.data.foreach_set(key, values)
