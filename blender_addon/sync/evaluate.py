"""Evaluating a scene without its animation writing values back (used for poses and armature edit mode), and
letting a scene made while applying write its animation back like the one the artist has open."""

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


def make_evaluable(scene: bpy.types.Scene) -> None:
    """Let evaluating ``scene`` write what its animation and drivers compute back into its datablocks.

    Blender writes them back only from an active depsgraph: the one a window shows, or one asked for through
    the context. A scene the applier makes is shown by no window (background Blender has none to show), so a
    frame change there evaluated its animation and left the values unwritten: the artist saw defaults where
    the sender saw the animated values, which never travel (derived.py). Asking for it once makes it active.
    """
    for view_layer in scene.view_layers:
        with bpy.context.temp_override(scene=scene, view_layer=view_layer):
            bpy.context.evaluated_depsgraph_get()
