"""Artists' replicas in one Blender process: a scene made again from a room's values, and the batch an
artist sends for an edit."""

from __future__ import annotations

from collections.abc import Callable

import bpy
from scene_builders import reset_scene

from blender_addon import sync

Ops = list[tuple[str, bytes | None]]


def replica(base: dict[str, bytes]) -> sync.ChangeTracker:
    """A fresh Blender scene holding the room's base state, with a tracker that knows it."""
    reset_scene()
    tracker = sync.ChangeTracker()
    applier = sync.apply_ops(list(base.items()), tracker=tracker)
    assert applier.errors == []
    assert tracker.scan() == ({}, [])  # the replica is exactly the base
    return tracker


def edit_batch(tracker: sync.ChangeTracker, edit: Callable[[], None]) -> Ops:
    """Make an edit and return the batch the artist sends for it."""
    edit()
    bpy.context.view_layer.update()
    changed, deleted = tracker.scan()
    batch: Ops = [*changed.items(), *((key, None) for key in deleted)]
    assert batch, "the edit changed no key"
    return batch
