"""A mesh's own settings: remesh (voxel size, adaptivity, mode and what it keeps), symmetry (mirror axes,
vertex group and topology mirror, radial symmetry), texture space (automatic or a location and size) and
the mesh whose texture coordinates it uses.

One key each, ``mesh/<u>/set/<attr>``, but only while it differs from what Blender gives a new mesh (read
once from a throw-away mesh: RNA's defaults are not it), as an object's settings are (object_settings.py):
most meshes keep every one, and a scene has as many meshes as objects. A deleted key puts that value back.
The texture space's location and size have keys only while it is not automatic (else Blender derives them
from the geometry), and are written once it is not.
"""

from __future__ import annotations

import bpy

from . import ids, rna, settings
from .context import ApplyContext, ReadContext
from .items import Items

SETTINGS = (
    "texture_mesh",
    "remesh_mode",
    "remesh_voxel_size",
    "remesh_voxel_adaptivity",
    "use_remesh_fix_poles",
    "use_remesh_preserve_volume",
    "use_remesh_preserve_attributes",
    "use_mirror_x",
    "use_mirror_y",
    "use_mirror_z",
    "use_mirror_vertex_groups",
    "use_mirror_topology",
    "radial_symmetry",
    "use_auto_texspace",
    "texspace_location",
    "texspace_size",
)
TEXSPACE = ("texspace_location", "texspace_size")
_OTHERS: list[tuple[str, ...]] = []  # every other property of a mesh (skipped by the read)
_BASELINE: dict[str, object] = {}


def _others() -> tuple[str, ...]:
    if not _OTHERS:
        _OTHERS.append(
            tuple(p.identifier for p in bpy.types.Mesh.bl_rna.properties if p.identifier not in SETTINGS)
        )
    return _OTHERS[0]


def _read_all(me: bpy.types.Mesh, ctx: ReadContext) -> dict[str, object]:
    values = ctx.props(me, skip=_others())
    if values.get("use_auto_texspace") is not False:
        for attr in TEXSPACE:
            values.pop(attr, None)
    return values


def baseline() -> dict[str, object]:
    """The settings of a new mesh (read once from a throw-away one)."""
    if not _BASELINE:
        probe = bpy.data.meshes.new("blendsync-baseline")
        _BASELINE.update(settings.new_values(probe, _read_all, bpy.data.meshes.remove))
    return _BASELINE


def read(me: bpy.types.Mesh, ctx: ReadContext) -> dict[tuple[str, ...], object]:
    """The settings that differ from a new mesh's, as items of the ``set`` part."""
    return settings.differing_items(_read_all(me, ctx), baseline())


def describe(me: bpy.types.Mesh, ctx: ReadContext) -> dict[str, object]:
    return _read_all(me, ctx)


def _apply(me: bpy.types.Mesh, item: tuple[str, ...], doc: object, ctx: ApplyContext) -> bpy.types.ID:
    (attr,) = item
    if attr not in SETTINGS or me.bl_rna.properties.get(attr) is None:
        return me  # a setting of another Blender version
    if ctx.deleting:
        if attr in TEXSPACE:
            return me  # back to an automatic texture space, whose key comes with it
        doc = baseline().get(attr)
    elif attr in TEXSPACE and me.use_auto_texspace:
        ctx.wait_for("set", ids.get_uuid(me))  # written once the texture space is not automatic
        return me
    rna.write_changed(me, {attr: doc}, ctx.resolve)
    return me


PART = Items(_apply)  # mesh/<u>/set/<attr>
