"""Particle systems of an object (``obj/<u>/psys/<modifier>``), one key per particle system modifier.

The modifier itself travels as any modifier (``mod/<name>``); its particle
system's settings (the ``ParticleSettings`` datablock, as a uuid), seeds,
vertex groups and other writable properties are this key.  Adding the
modifier on the receiving side makes a particle system with fresh settings:
those are marked as the modifier's own (:func:`mark_made_with`), so that they are not synchronised and
hold no name the room's settings may need, and are removed once the system points at the room's settings
(which may arrive after the system's key: the key is applied again then).
"""

from __future__ import annotations

import bpy

from . import ids, rna
from .context import ApplyContext, ReadContext

SKIP = ("active_particle_target_index",)
# On the settings a particle system modifier made by the applier came with: not the room's (kinds/particles).
MADE_WITH_PROP = "blendsync_made_with_modifier"


def mark_made_with(mod: bpy.types.Modifier) -> None:
    """Mark the fresh settings of ``mod``, a particle system modifier the applier has just made."""
    settings = mod.particle_system.settings
    if settings is None or ids.peek_uuid(settings) is not None or settings.users != 1:
        return
    if made_with_modifier(settings):
        return
    settings[MADE_WITH_PROP] = True
    # Blender names these as the room's settings may be named: their name would take a number.
    settings.name = f"made-with-{mod.name}"[:63]


def made_with_modifier(settings: bpy.types.ParticleSettings) -> bool:
    return MADE_WITH_PROP in settings


def read(ob: bpy.types.Object, ctx: ReadContext) -> dict[tuple[str, ...], dict]:
    return {
        (mod.name,): ctx.props(mod.particle_system, skip=SKIP)
        for mod in ob.modifiers
        if mod.type == "PARTICLE_SYSTEM"
    }


def describe(ob: bpy.types.Object, ctx: ReadContext) -> list:
    return sorted([name, doc] for (name,), doc in read(ob, ctx).items())


def apply(ob: bpy.types.Object, item: tuple[str, ...], doc: dict | None, ctx: ApplyContext) -> bpy.types.ID:
    if doc is None:  # goes away with its modifier
        return ob
    (name,) = item
    mod = ob.modifiers.get(name)
    if mod is None or mod.type != "PARTICLE_SYSTEM":
        ctx.wait_for("mod", ids.get_uuid(ob))
        return ob
    psys = mod.particle_system
    before = psys.settings
    rna.write_changed(psys, {"settings": doc.get("settings"), **doc}, ctx.resolve)  # settings first
    if before is not None and before != psys.settings and before.users == 0 and made_with_modifier(before):
        bpy.data.particles.remove(before)  # the settings the new modifier came with
    return ob
