"""Particle settings (kind ``part``): emitter or hair type, name, settings (one key each), path timing and
texture slots (:mod:`..texture_slots`).

A struct the settings hold is one setting: the fluid (SPH) settings while the physics is fluid, the boid
brain while it is boids (:mod:`..boids`), the effector weights, each of the two force fields while it is
one (type not NONE), and the clump, roughness and twist curves once Blender made them (their flags). The
particle systems that use the settings are the objects' business (``obj/<u>/psys/<modifier>``,
:mod:`..particles`).
"""

from __future__ import annotations

import bpy

from .. import boids, force_fields, particles, structs, texture_slots
from ..assign import set_changed
from ..context import ApplyContext, ReadContext
from ..items import Items
from ..settings import apply_name, setting_items, settings_part
from .base import Kind

# Switching absolute path time converts path start and end: the three are one key, written in this order.
PATH = ("use_absolute_path_time", "path_start", "path_end")
# ``type`` decides which settings exist (it is the meta); the others are per-editor state.  Settings
# are written only when they differ: some defaults lie outside their own range (trail count 0, minimum 1).
# The active texture is the active slot's (each artist's): the slots travel on their own keys.
SKIP = ("type", "active_instanceweight_index", "active_texture", "active_texture_index", "boids", *PATH)
FIELDS = ("force_field_1", "force_field_2")
NESTED = ("fluid", "effector_weights", *FIELDS)
PHYSICS = {"fluid": "FLUID", "boids": "BOIDS"}  # the struct Blender gives settings of that physics only
BOIDS = "boids"
# curve -> the flag that makes Blender give it (it keeps the curve once the flag is off again)
CURVE_FLAGS = {
    "clump_curve": "use_clump_curve",
    "roughness_curve": "use_roughness_curve",
    "twist_curve": "use_twist_curve",
}


def _settings(settings: bpy.types.ParticleSettings, ctx: ReadContext) -> dict[str, object]:
    values = ctx.props(settings, skip=SKIP, nested=NESTED)
    for attr, physics in PHYSICS.items():
        if settings.physics_type != physics:  # kept by Blender from an earlier physics: evaluates nothing
            values.pop(attr, None)
    if settings.physics_type == "BOIDS" and settings.boids is not None:
        values[BOIDS] = boids.read(settings.boids, ctx)
    for attr in FIELDS:
        force_fields.tidy(values, attr)
    values.update(structs.read(settings, ctx))  # the clump, roughness and twist curves
    return values


def serialise(settings: bpy.types.ParticleSettings, ctx: ReadContext) -> dict[str, object]:
    return {
        "meta": {"type": settings.type},
        "name": settings.name,
        "set": setting_items(_settings(settings, ctx)),
        "path": {attr: getattr(settings, attr) for attr in PATH},
        texture_slots.PART: texture_slots.read(settings, ctx),
    }


def describe(settings: bpy.types.ParticleSettings, ctx: ReadContext) -> dict:
    return {
        "name": settings.name,
        "type": settings.type,
        "props": _settings(settings, ctx),
        "slots": texture_slots.describe(settings, ctx),
    }


def create(uuid: str, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    settings = bpy.data.particles.new(ctx.new_name(uuid))
    settings.type = doc["type"]
    return settings


def apply_meta(settings: bpy.types.ParticleSettings, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    set_changed(settings, "type", doc["type"])
    return settings


def apply_path(settings: bpy.types.ParticleSettings, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    for attr in PATH:
        set_changed(settings, attr, doc[attr])
    return settings


_SETTINGS = settings_part(changed_only=True)


def apply_setting(
    settings: bpy.types.ParticleSettings, item: tuple[str, ...], doc: object, ctx: ApplyContext
) -> bpy.types.ID:
    (attr,) = item
    if attr in FIELDS:
        force_fields.write(getattr(settings, attr), None if ctx.deleting else doc, ctx.resolve)
        settings.update_tag()
        return settings
    if ctx.deleting:
        return settings
    if attr in PHYSICS and getattr(settings, attr) is None:
        # Blender makes the struct when the physics is switched to it, which the room's physics setting
        # (another key, read with this one) says it is.
        settings.physics_type = PHYSICS[attr]
    if attr == BOIDS:
        if not isinstance(doc, dict):
            raise ValueError(f"a boid brain is a map, not {type(doc).__name__}")
        boids.write(settings, doc, ctx.resolve)
        settings.update_tag()
        return settings
    flag = CURVE_FLAGS.get(attr)
    if flag is not None and getattr(settings, attr) is None:
        was = getattr(settings, flag)
        setattr(settings, flag, True)  # Blender makes the curve with its flag, and keeps it after
        setattr(settings, flag, was)
    _SETTINGS.apply(settings, item, doc, ctx)
    if attr in NESTED or flag is not None:
        settings.update_tag()  # written inside a struct: Blender's API tags nothing
    return settings


def accepts(settings: bpy.types.ParticleSettings) -> bool:
    """Not the settings a particle system modifier the applier made came with (sync/particles.py)."""
    return not particles.made_with_modifier(settings)


KIND = Kind(
    name="part",
    collection="particles",
    rna_type="ParticleSettings",
    parts={
        "meta": apply_meta,
        "name": apply_name,
        "set": Items(apply_setting),
        "path": apply_path,
        **texture_slots.PARTS,
    },
    create=create,
    serialise=serialise,
    describe=describe,
    accepts=accepts,
)
