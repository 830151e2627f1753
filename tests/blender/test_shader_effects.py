"""A grease pencil object's visual effects (shader_effects.py): one key per effect, per setting, and the
order."""

from __future__ import annotations

import pytest

bpy = pytest.importorskip("bpy", reason="bpy (Blender as a Python module) is not installed")

from replicas import applied_one_at_a_time, concurrently, edit_batch, replica  # noqa: E402
from scene_builders import build_grease_pencil, link, reset_scene  # noqa: E402

from blender_addon import sync  # noqa: E402

pytestmark = pytest.mark.blender


def effects(name: str = "Sketch") -> list[tuple[str, str, bool]]:
    return [(fx.name, fx.type, fx.show_render) for fx in bpy.data.objects[name].shader_effects]


def test_effects_reach_a_joiner_in_any_arrival_order():
    """The order before or after the effects it names, settings before their effect, the shadow before or
    after the empty it is cast from."""
    reset_scene()
    build_grease_pencil()
    made = effects()
    assert made == [("Wave", "FX_WAVE", False), ("Glow", "FX_GLOW", True), ("Shadow", "FX_SHADOW", True)]
    before = sync.scene_hash()
    ops = list(sync.serialise_scene().items())
    effect_keys = [op for op in ops if "/fx/" in op[0]]
    settings_first = [op for op in ops if op not in effect_keys] + effect_keys  # into an object that has none
    for order in (ops, ops[::-1], settings_first):
        applied_one_at_a_time(order)
        assert effects() == made
        sketch = bpy.data.objects["Sketch"]
        assert sketch.shader_effects["Shadow"].object == bpy.data.objects["Sketch light"]
        assert tuple(sketch.shader_effects["Glow"].size) == (7.0, 3.0)
        assert sketch.shader_effects["Wave"].amplitude == 4.0
        assert sync.scene_hash() == before


def test_an_effect_moved_removed_and_changed_travels_as_those_keys_only():
    reset_scene()
    build_grease_pencil()
    base = sync.serialise_scene()
    tracker = replica(base)

    def edit() -> None:
        sketch = bpy.data.objects["Sketch"]
        with bpy.context.temp_override(object=sketch, active_object=sketch):
            bpy.ops.object.shaderfx_move_to_index(shaderfx="Shadow", index=0)
        sketch.shader_effects.remove(sketch.shader_effects["Glow"])
        sketch.shader_effects["Wave"].period = 7.5

    batch = edit_batch(tracker, edit)
    parts = sorted(key.split("/", 2)[2] for key, _ in batch)
    glow = [p for p in parts if p.startswith(("fx/Glow", "fxset/Glow/"))]
    assert "fx/Glow" in glow and "fxorder" in parts and "fxset/Wave/period" in parts
    assert set(parts) - set(glow) == {"fxorder", "fxset/Wave/period"}
    after = sync.scene_hash()
    receiver = replica(base)
    applier = sync.apply_ops(batch, tracker=receiver)
    assert applier.errors == []
    assert effects() == [("Shadow", "FX_SHADOW", True), ("Wave", "FX_WAVE", False)]
    assert sync.scene_hash() == after
    assert receiver.scan() == ({}, [])  # applying it echoes nothing


def test_two_effects_of_one_object_changed_at_the_same_moment_both_stay():
    def build() -> None:
        gp = bpy.data.grease_pencils.new("Ink")
        ob = link(bpy.data.objects.new("Ink", gp))
        ob.shader_effects.new("Blur", "FX_BLUR")
        ob.shader_effects.new("Rim", "FX_RIM")

    def edit_a() -> None:
        bpy.data.objects["Ink"].shader_effects["Blur"].samples = 12

    def edit_b() -> None:
        bpy.data.objects["Ink"].shader_effects["Rim"].rim_color = (0.0, 1.0, 0.0)
        bpy.data.objects["Ink"].shader_effects.new("Pixel", "FX_PIXEL")

    def check() -> None:
        ink = bpy.data.objects["Ink"]
        assert ink.shader_effects["Blur"].samples == 12
        assert tuple(ink.shader_effects["Rim"].rim_color) == (0.0, 1.0, 0.0)
        assert [fx.name for fx in ink.shader_effects] == ["Blur", "Rim", "Pixel"]

    concurrently(build, edit_a, edit_b, check)


def test_only_an_object_with_effects_has_an_order_key_and_the_last_removed_deletes_it():
    """Keyed for every object, the empty order made a 500-object scene 500 keys larger."""
    reset_scene()
    build_grease_pencil()
    order_keys = [key for key in sync.serialise_scene() if key.endswith("/fxorder")]
    assert order_keys == [sync.make_key("obj", sync.get_uuid(bpy.data.objects["Sketch"]), "fxorder")]
    base = sync.serialise_scene()
    tracker = replica(base)
    batch = edit_batch(tracker, lambda: bpy.data.objects["Sketch"].shader_effects.clear())
    assert (order_keys[0], None) in batch
    receiver = replica(base)
    applier = sync.apply_ops(batch, tracker=receiver)
    assert applier.errors == [] and effects() == []
    assert receiver.scan() == ({}, [])
