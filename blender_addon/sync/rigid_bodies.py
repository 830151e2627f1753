"""Rigid bodies: a scene's rigid body world (``scene/<u>/render/scene/rigidbody_world``) and an object's
rigid body and rigid body constraint settings (``obj/<u>/set/rigid_body``, ``set/rigid_body_constraint``,
object_settings.py).

Blender's API makes none of them directly. A receiver makes a scene's world with the Add Rigid Body World
operator (without a collection); an object gets its rigid body from Blender itself when it is in the world's
collection (linked there, or there when the world is given that collection), and its constraint when it is
in the world's constraints collection. Those collections travel as every collection does, so an object's
settings wait until Blender has made them (tried again when the object's collections or a scene's settings
change). A deleted key removes them
with the operators that remove them (which also take the object out of those collections).
"""

from __future__ import annotations

import bpy

from . import ids, rna
from .context import ApplyContext, ReadContext

WORLD = "rigidbody_world"
BODY = "rigid_body"
CONSTRAINT = "rigid_body_constraint"
OBJECT_ATTRS = (BODY, CONSTRAINT)
FIRST = ("type",)  # which other settings apply (a constraint's limits, a body's mass)
CACHE = ("frame_start", "frame_end")  # a world's cache: its frame range travels, the baked frames do not


def read_world(scene: bpy.types.Scene, ctx: ReadContext) -> dict[str, object] | None:
    world = scene.rigidbody_world
    if world is None:
        return None
    values = ctx.props(world, nested=("effector_weights",))
    values["point_cache"] = {attr: getattr(world.point_cache, attr) for attr in CACHE}
    return values


def apply_world(scene: bpy.types.Scene, doc: object, ctx: ApplyContext) -> bpy.types.ID:
    """A scene's rigid body world; None (a deleted key) removes it."""
    if doc is None:
        if scene.rigidbody_world is not None:
            with bpy.context.temp_override(scene=scene):
                bpy.ops.rigidbody.world_remove()
        return scene
    if not isinstance(doc, dict):
        raise ValueError(f"a rigid body world's settings are a map, not {type(doc).__name__}")
    if scene.rigidbody_world is None:
        with bpy.context.temp_override(scene=scene):
            bpy.ops.rigidbody.world_add()
        if scene.rigidbody_world is None:
            raise ValueError(f"Blender gave scene {scene.name!r} no rigid body world")
    world = scene.rigidbody_world
    doc = dict(doc)
    cache = doc.pop("point_cache", None)
    rna.write_changed(world, doc, ctx.resolve)
    if isinstance(cache, dict):
        rna.write_changed(world.point_cache, {k: v for k, v in cache.items() if k in CACHE}, ctx.resolve)
    scene.update_tag()
    return scene


def _scene_of(ob: bpy.types.Object) -> bpy.types.Scene:
    """The scene whose rigid body world simulates ``ob`` (else one it is in, else the window's)."""
    for scene in bpy.data.scenes:
        world = scene.rigidbody_world
        if world is not None and any(
            coll is not None and ob.name in coll.all_objects for coll in (world.collection, world.constraints)
        ):
            return scene
    return ob.users_scene[0] if ob.users_scene else bpy.context.scene


def _remove(ob: bpy.types.Object, operator) -> None:
    """Run a Remove operator on ``ob``: they act on the view layer's active object (a context override
    does not reach them), so ``ob`` is made active for the call and the artist's active object put back."""
    scene = _scene_of(ob)
    view_layer = next((layer for layer in scene.view_layers if layer.objects.get(ob.name) == ob), None)
    if view_layer is None:
        raise ValueError(f"{ob.name!r} is in no view layer of a scene: Blender removes its rigid body there")
    previous = view_layer.objects.active
    view_layer.objects.active = ob
    try:
        with bpy.context.temp_override(scene=scene, view_layer=view_layer, object=ob, active_object=ob):
            operator()
    finally:
        view_layer.objects.active = previous


def apply_object(ob: bpy.types.Object, attr: str, doc: object, ctx: ApplyContext) -> bpy.types.ID:
    """An object's rigid body (``attr`` BODY) or rigid body constraint (CONSTRAINT); None removes it."""
    current = getattr(ob, attr)
    if doc is None:
        if current is not None:
            ops = bpy.ops.rigidbody
            _remove(ob, ops.object_remove if attr == BODY else ops.constraint_remove)
        return ob
    if not isinstance(doc, dict):
        raise ValueError(f"rigid body settings are a map, not {type(doc).__name__}")
    if current is None:
        # Made by Blender once the object is in a world's collection: tried again when the object's
        # collections or a scene's rigid body world change (that one key of the scene's settings, not
        # each of its hundreds: a join applied every waiting body again for each).
        ctx.wait_for("in", ids.get_uuid(ob))
        for scene in bpy.data.scenes:
            uuid = ids.peek_uuid(scene)
            if uuid is not None:
                ctx.wait_for_item("render", ("scene", WORLD), uuid)
        return ob
    rna.write_props(current, doc, ctx.resolve, first=FIRST)
    ob.update_tag()
    return ob
