"""Evaluating a scene without its animation writing values back (used for poses and armature edit mode)."""

from __future__ import annotations

import contextlib

import bpy


@contextlib.contextmanager
def animation_detached(scene: bpy.types.Scene):
    """Detach the actions of a scene's objects for a while.

    Evaluating a scene (which operators do too) writes animated values back to
    the objects, at whatever frame the scene is on while it is being applied:
    that must not overwrite their transforms.
    """
    held = []
    for ob in scene.objects:
        ad = ob.animation_data
        if ob.type == "ARMATURE" and ob.pose is None:
            # Unassigning the action of an armature object whose pose is not built yet crashes Blender.
            # What its animation writes while the pose is built is derived and never sent (derived.py).
            continue
        if ad is not None and ad.action is not None:
            held.append((ad, ad.action, ad.action_slot))
            ad.action = None
    try:
        yield
    finally:
        for ad, action, slot in held:
            ad.action = action
            if slot is not None and ad.action_slot != slot:
                ad.action_slot = slot


def evaluate_without_animation(scene: bpy.types.Scene) -> None:
    with animation_detached(scene):
        for view_layer in scene.view_layers[:1]:
            with bpy.context.temp_override(scene=scene, view_layer=view_layer):
                bpy.context.evaluated_depsgraph_get()
