"""Particle settings (kind ``part``): emitter or hair type, name, settings (one key each) and path timing.

The particle systems that use them are the objects' business (``obj/<u>/psys/<modifier>``,
:mod:`..particles`).
"""

from __future__ import annotations

import bpy

from ..assign import set_changed
from ..context import ApplyContext, ReadContext
from ..settings import apply_name, placeholder_name, setting_items, settings_part
from .base import Kind

# Switching absolute path time converts path start and end: the three are one key, written in this order.
PATH = ("use_absolute_path_time", "path_start", "path_end")
# ``type`` decides which settings exist (it is the meta); the others are per-editor state.  Settings
# are written only when they differ: some defaults lie outside their own range (trail count 0, minimum 1).
SKIP = ("type", "active_instanceweight_index", "active_texture_index", *PATH)


def serialise(settings: bpy.types.ParticleSettings, ctx: ReadContext) -> dict[str, object]:
    return {
        "meta": {"type": settings.type},
        "name": settings.name,
        "set": setting_items(ctx.props(settings, skip=SKIP)),
        "path": {attr: getattr(settings, attr) for attr in PATH},
    }


def describe(settings: bpy.types.ParticleSettings, ctx: ReadContext) -> dict:
    return {"name": settings.name, "type": settings.type, "props": ctx.props(settings, skip=SKIP)}


def create(uuid: str, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    settings = bpy.data.particles.new(placeholder_name(uuid))
    settings.type = doc["type"]
    return settings


def apply_meta(settings: bpy.types.ParticleSettings, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    set_changed(settings, "type", doc["type"])
    return settings


def apply_path(settings: bpy.types.ParticleSettings, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    for attr in PATH:
        set_changed(settings, attr, doc[attr])
    return settings


KIND = Kind(
    name="part",
    collection="particles",
    rna_type="ParticleSettings",
    parts={
        "meta": apply_meta,
        "name": apply_name,
        "set": settings_part(changed_only=True),
        "path": apply_path,
    },
    create=create,
    serialise=serialise,
    describe=describe,
)
