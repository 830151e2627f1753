"""Vertex groups and their weights, one key per group: ``mesh/<u>/vgroup/<name>``.

Blender keeps the group names and the weights on the mesh (every object
using it sees them), but makes and removes groups through an object: a
throw-away object using the mesh does it. A document is ``{position,
lock_weight, vertices (i32), weights (f32)}``. Groups are named wherever
they are used (armature and other modifiers, shape keys), so their order is
not part of the value: a receiver's order follows arrival. Two artists
painting two groups keep both.
"""

from __future__ import annotations

import array
from collections.abc import Callable

import bpy

from . import ids
from .codec import pack_f32, pack_i32, unpack_f32, unpack_i32
from .context import ApplyContext, ReadContext
from .items import Items


def read(me: bpy.types.Mesh, ctx: ReadContext) -> dict[tuple[str, ...], dict]:
    """Items of the ``vgroup`` part."""
    return {(name,): doc for name, doc in _documents(me, _groups_of(me, ctx))}


def _documents(me: bpy.types.Mesh, groups: list) -> list[tuple[str, dict]]:
    """(name, document) of each of ``groups`` (the vertex groups of an object using ``me``), in order."""
    verts: list[array.array] = [array.array("i") for _ in groups]
    weights: list[array.array] = [array.array("f") for _ in groups]
    if groups:
        for vertex in me.vertices:
            for element in vertex.groups:
                if element.group < len(groups):
                    verts[element.group].append(vertex.index)
                    weights[element.group].append(element.weight)
    return [
        (g.name, {"lock_weight": g.lock_weight, "vertices": pack_i32(v), "weights": pack_f32(w)})
        for g, v, w in zip(groups, verts, weights, strict=True)
    ]


def describe(me: bpy.types.Mesh, ctx: ReadContext) -> dict:
    groups = [g.name for g in _groups_of(me, ctx)]
    out: dict[str, list] = {name: [] for name in groups}
    for vertex in me.vertices:
        for element in vertex.groups:
            if element.group < len(groups):
                out[groups[element.group]].append([vertex.index, round(element.weight, 5)])
    return out


def _groups_of(me: bpy.types.Mesh, ctx: ReadContext):
    """The mesh's vertex groups, read through any object using it (or none)."""
    user = ctx.object_user(me)
    return list(user.vertex_groups) if user is not None else []


Kept = list[tuple[str, dict]]  # a mesh's groups, in order: (name, the document of the vgroup part)


def keep(me: bpy.types.Mesh, ctx: ApplyContext) -> Kept:
    """The mesh's groups and weights, before its geometry is rebuilt: ``Mesh.clear_geometry`` drops both,
    and the groups' keys, unchanged when only the shape changed, do not come again (``put_back``)."""
    user = next((ob for ob in ctx.users_of(me) if ob.vertex_groups), None)
    return _documents(me, list(user.vertex_groups)) if user is not None else []


def put_back(me: bpy.types.Mesh, kept: Kept, ctx: ApplyContext) -> None:
    """Make the groups ``keep`` read again on the rebuilt mesh, with the weights of vertices it still has
    (a change of the vertices' count comes with the groups' own keys, applied after the geometry)."""
    if not kept:
        return
    nv = len(me.vertices)

    def write(ob: bpy.types.Object) -> None:
        for name, doc in kept:
            vertices, weights = unpack_i32(doc["vertices"]), unpack_f32(doc["weights"])
            inside = [i for i, v in enumerate(vertices) if v < nv]
            if len(inside) < len(vertices):
                doc = {
                    "lock_weight": doc["lock_weight"],
                    "vertices": pack_i32([vertices[i] for i in inside]),
                    "weights": pack_f32([weights[i] for i in inside]),
                }
            _write(ob, name, doc, ctx)

    _with_object(me, write)


def _with_object(me: bpy.types.Mesh, action: Callable[[bpy.types.Object], None]) -> None:
    ob = bpy.data.objects.new("blendsync-temp", me)
    try:
        action(ob)
    finally:
        bpy.data.objects.remove(ob)


def _write(ob: bpy.types.Object, name: str, doc: dict | None, ctx: ApplyContext) -> None:
    groups = ob.vertex_groups
    group = groups.get(name)
    if doc is None:
        if group is not None:
            groups.remove(group)
        return
    if group is None:
        group = groups.new(name=name)
    group.lock_weight = doc["lock_weight"]
    vertices = unpack_i32(doc["vertices"])
    weights = unpack_f32(doc["weights"])
    nv = len(ob.data.vertices)
    if any(v >= nv for v in vertices):
        ctx.wait_for("geometry", ids.get_uuid(ob.data))  # the geometry with these vertices has not arrived
        return
    wanted: dict[float, list[int]] = {}
    for vertex, weight in zip(vertices, weights, strict=True):
        wanted.setdefault(weight, []).append(vertex)
    members = set(vertices)
    index = group.index
    stale = [
        v.index
        for v in ob.data.vertices
        if v.index not in members and any(e.group == index for e in v.groups)
    ]
    if stale:
        group.remove(stale)
    for weight, indices in wanted.items():
        group.add(indices, weight, "REPLACE")


def _apply(me: bpy.types.Mesh, item: tuple[str, ...], doc: dict | None, ctx: ApplyContext) -> bpy.types.ID:
    _with_object(me, lambda ob: _write(ob, item[0], doc, ctx))
    me.update_tag()  # weights written through the API tag nothing: deforming modifiers run again
    return me


PART = Items(_apply)
