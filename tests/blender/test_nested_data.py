"""Data held inside other datablocks travels between artists: made by one, edited by another, equal on all.

Ana builds the scene in her Blender and sends it (the room's base). Ben joins (applies the base), edits, and
sends the batch his scan finds. Ana applies Ben's batch in her own Blender (her scene as she built it: saved
after sending and opened again) and a late joiner applies the room. Every one of them evaluates the same
scene (hash and what the depsgraph makes of it), and applying Ben's batch echoes nothing back.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable

import pytest

bpy = pytest.importorskip("bpy", reason="bpy (Blender as a Python module) is not installed")

from detail_builders import build_lattice_curve_shapes, shape_key_geometry  # noqa: E402
from scene_builders import evaluate_scenes, reset_scene  # noqa: E402

from blender_addon import sync  # noqa: E402

pytestmark = pytest.mark.blender

Ops = list[tuple[str, bytes | None]]


def _settle(tracker: sync.ChangeTracker) -> None:
    """Evaluate as an artist's Blender does, and check that nothing is left to send."""
    evaluate_scenes()
    bpy.context.view_layer.update()
    assert tracker.scan() == ({}, [])


def across_artists(build: Callable[[], None], edit: Callable[[], None], observe: Callable[[], object]):
    """Ana builds, Ben edits; returns (what Ben's batch holds, what every artist observes: the same)."""
    reset_scene()
    build()
    evaluate_scenes()
    base = sync.serialise_scene()
    fd, path = tempfile.mkstemp(suffix=".blend")
    os.close(fd)
    try:
        bpy.ops.wm.save_as_mainfile(filepath=path, copy=True)
        # Ben joins the room and edits.
        reset_scene()
        ben = sync.ChangeTracker()
        assert sync.apply_ops(list(base.items()), tracker=ben).errors == []
        _settle(ben)
        edit()
        bpy.context.view_layer.update()
        changed, deleted = ben.scan()
        batch: Ops = [*changed.items(), *((key, None) for key in deleted)]
        assert batch, "the edit changed no key"
        evaluate_scenes()
        seen = {"ben": (sync.scene_hash(), observe())}
        # Ana, in the scene she built, applies Ben's batch.
        bpy.ops.wm.open_mainfile(filepath=path)
        ana = sync.ChangeTracker()
        ana.reset(base)
        assert ana.scan() == ({}, [])
        applier = sync.apply_ops(batch, tracker=ana)
        assert applier.errors == [] and applier.pending_links == {}
        _settle(ana)
        seen["ana"] = (sync.scene_hash(), observe())
    finally:
        os.remove(path)
    # A late joiner applies the room: the base, then Ben's batch.
    reset_scene()
    applier = sync.Applier()
    for ops in (list(base.items()), batch):
        applier.apply(ops)
    assert applier.errors == [] and applier.pending_links == {}
    evaluate_scenes()
    seen["late"] = (sync.scene_hash(), observe())
    assert seen["ana"] == seen["ben"] == seen["late"]
    return dict(batch), seen["ben"][1]


def _parts(batch: dict[str, bytes | None]) -> set[tuple[str, str]]:
    return {sync.parse_key(key)[0::2] for key in batch}


# ---------------------------------------------------------------- shape keys


def _shape_keys_observed() -> tuple:
    keys = (bpy.data.lattices["Squeeze"].shape_keys, bpy.data.curves["Ribbon"].shape_keys)
    return (
        shape_key_geometry(),
        [[(kb.name, round(kb.value, 4)) for kb in key.key_blocks] for key in keys],
        [
            (len(ad.drivers), len(ad.nla_tracks), ad.action.name if ad.action else None)
            for ad in (key.animation_data for key in keys)
        ],
    )


def test_shape_keys_of_a_lattice_and_a_curve():
    """Ben sets a lattice's and a curve's shape key value, moves a point of each, and adds a shape key to the
    lattice (its key blocks are made again on the others' side: the Key's action, NLA track and driver
    stay)."""
    reset_scene()
    build_lattice_curve_shapes()
    evaluate_scenes()
    still = shape_key_geometry()

    def edit():
        lattice = bpy.data.objects["Squeeze"]
        lattice.data.shape_keys.key_blocks["Squash"].value = 1.0
        bulge = lattice.shape_key_add(name="Bulge", from_mix=False)
        bulge.data[2].co = (-1.0, 1.0, -1.0)
        bulge.value = 0.5
        curl = bpy.data.curves["Ribbon"].shape_keys.key_blocks["Curl"]
        curl.value = 1.0
        curl.data[0].handle_left = (-1.0, -1.0, 0.5)
        curl.data[4].co.z = 1.5

    batch, observed = across_artists(build_lattice_curve_shapes, edit, _shape_keys_observed)
    assert _parts(batch) == {("lattice", "shapes"), ("curve", "shapes")}
    geometry, blocks, animation = observed
    assert geometry != still  # the values and points moved what the depsgraph makes
    assert blocks[0][-1] == ("Bulge", 0.5) and ("Curl", 1.0) in blocks[1]
    assert [(drivers, tracks) for drivers, tracks, _action in animation] == [(1, 1), (1, 1)]
    assert animation[0][2] is not None  # the lattice's keys keep their action
