"""Freestyle line styles and the line sets that draw with them travel between artists (in one process: Ana
builds and sends, Ben joins and edits, Ana applies his batch in her own scene and a late joiner the room;
test_nested_data.across_artists), each edit on its own keys."""

from __future__ import annotations

import random

import pytest

bpy = pytest.importorskip("bpy", reason="bpy (Blender as a Python module) is not installed")

from scene_builders import evaluate_scenes, reset_scene  # noqa: E402
from style_builders import build_linestyle, move_modifier, observed  # noqa: E402
from test_nested_data import across_artists  # noqa: E402

from blender_addon import sync  # noqa: E402

pytestmark = pytest.mark.blender


def _keys(batch: dict[str, bytes | None]) -> set[tuple[str, tuple[str, ...]]]:
    return {sync.split_key(key)[2:4] for key in batch}


def test_settings_modifiers_and_a_rename_by_another_artist():
    """Ben renames Ink, changes its thickness ratio and caps, moves and adds stops of a colour modifier's
    ramp, bends an alpha modifier's curve, adds a noise colour modifier, removes a thickness modifier and
    moves a geometry modifier up: each on its own key, equal everywhere."""
    reset_scene()
    build_linestyle()
    before = observed()

    def edit():
        ink = bpy.data.linestyles["Ink"]
        ink.name = "Ink Bold"
        ink.thickness_ratio, ink.caps = 0.75, "SQUARE"
        ramp = ink.color_modifiers["Fade"].color_ramp
        ramp.elements[1].position = 0.6
        ramp.elements.new(0.9).color = (0.0, 0.0, 1.0, 1.0)
        curve = ink.alpha_modifiers["Slant"].curve
        curve.curves[0].points.new(0.5, 0.9)
        curve.update()
        grain = ink.color_modifiers.new("Grain", "NOISE")
        grain.amplitude, grain.seed = 3.0, 11
        ink.thickness_modifiers.remove(ink.thickness_modifiers["Jitter"])
        move_modifier("Ink Bold", "geometry", "Wave", "UP")

    batch, after = across_artists(build_linestyle, edit, observed)
    assert after != before
    assert _keys(batch) == {
        ("name", ()),
        ("set", ("thickness_ratio",)),
        ("set", ("caps",)),
        ("mod", ("color", "Fade")),
        ("mod", ("alpha", "Slant")),
        ("mod", ("color", "Grain")),
        ("modorder", ("color",)),
        ("mod", ("thickness", "Jitter")),
        ("modorder", ("thickness",)),
        ("modorder", ("geometry",)),
    }
    ink = after[0][[style[0] for style in after[0]].index("Ink Bold")]
    assert [m[0] for m in ink[5]["geometry"]] == ["Wave", "Resample"]
    assert [m[0] for m in ink[5]["color"]] == ["Fade", "Far", "Grain"]
    assert len(ink[5]["color"][0][3]) == 4  # the ramp's stops: three and Ben's
    # The line set drawing with it follows the rename: the pointer did not change, so neither did its key.
    assert after[1][0][2][0][:2] == ["Outline", "Ink Bold"]


def test_a_moved_modifier_keeps_its_settings_and_changes_only_the_order_key():
    """Blender's API moves no line style modifier: the receiver makes the moved ones again, with their ramp,
    target and curve."""
    reset_scene()
    build_linestyle()

    def edit():
        move_modifier("Ink", "color", "Far", "UP")
        move_modifier("Ink", "alpha", "Slant", "DOWN")  # already last: nothing changes

    batch, after = across_artists(build_linestyle, edit, observed)
    assert _keys(batch) == {("modorder", ("color",))}
    ink = after[0][[style[0] for style in after[0]].index("Ink")]
    assert [m[0] for m in ink[5]["color"]] == ["Far", "Fade"]
    assert ink[5]["color"][1][3][1][1] == [0.0, 1.0, 0.0, 1.0]  # Fade's green stop
    assert bpy.data.linestyles["Ink"].color_modifiers["Far"].target == bpy.data.objects["Target"]


def test_line_sets_added_repointed_and_removed():
    """Ben adds a line set (Blender makes it a new line style, which travels too), points Hidden at Ink
    and removes Outline: the line set keys change, and no receiver is left with a line style of its own."""
    reset_scene()
    build_linestyle()

    def edit():
        linesets = bpy.context.view_layer.freestyle_settings.linesets
        rim = linesets.new("Rim")
        rim.linestyle.name = "Rim style"
        rim.select_silhouette = False
        linesets["Hidden"].linestyle = bpy.data.linestyles["Ink"]
        linesets["Hidden"].qi_end = 5
        linesets.remove(linesets["Outline"])

    batch, after = across_artists(build_linestyle, edit, observed)
    parts = {part for part, _ in _keys(batch)}
    assert {("lineset", ("ViewLayer", "Rim")), ("lineset", ("ViewLayer", "Outline"))} <= _keys(batch)
    assert parts <= {"lineset", "linesetorder", "meta", "name", "set", "mod", "modorder", "treeanim", "anim"}
    assert [s[0] for s in after[0]] == ["Faint", "Ink", "Rim style"]
    assert after[1][0][2] == [["Hidden", "Ink", False, 5, None], ["Rim", "Rim style", True, 100, None]]


def test_line_sets_moved():
    """Ben draws Hidden before Outline: only the order key changes, and the receivers make Outline again after
    it with its line style, collection and selection (the collection keeps its users)."""
    reset_scene()
    build_linestyle()

    def edit():
        bpy.context.view_layer.freestyle_settings.linesets.active_index = 1
        bpy.ops.scene.freestyle_lineset_move(direction="UP")

    batch, after = across_artists(build_linestyle, edit, observed)
    assert _keys(batch) == {("linesetorder", ("ViewLayer",))}
    assert after[1][0][2] == [["Hidden", "Faint", False, 100, None], ["Outline", "Ink", True, 3, "Inked"]]
    # The late joiner made Outline again over the base: its collection, linked in the scene, kept its user.
    assert bpy.data.collections["Inked"].users == 1


def test_texture_slots_filled_and_cleared():
    """Ben clears slot 2 and fills slot 0 with another texture: the slots' own keys, the same slots on all."""
    reset_scene()
    build_linestyle()

    def edit():
        ink = bpy.data.linestyles["Ink"]
        ink.texture_slots.clear(2)
        slot = ink.texture_slots.create(0)
        slot.texture = bpy.data.textures.new("InkPaper", type="WOOD")
        slot.mapping = "CUBE"

    batch, after = across_artists(build_linestyle, edit, observed)
    styles = {key: value for key, value in batch.items() if key.startswith("linestyle/")}
    assert _keys(styles) == {("texslot", ("0",)), ("texslot", ("2",))}  # and the new texture's keys
    assert batch[next(k for k in batch if k.endswith("/texslot/2"))] is None
    ink = after[0][[style[0] for style in after[0]].index("Ink")]
    assert ink[6] == [[0, "InkPaper"]]


def test_a_line_style_removed_while_a_line_set_uses_it():
    reset_scene()
    build_linestyle()

    def edit():
        bpy.data.linestyles.remove(bpy.data.linestyles["Faint"])

    batch, after = across_artists(build_linestyle, edit, observed)
    assert any(sync.split_key(key)[2] == "meta" and value is None for key, value in batch.items())
    assert [s[0] for s in after[0]] == ["Ink"]
    assert after[1][0][2][1][:2] == ["Hidden", None]


def test_nodes_turned_on_over_a_replica():
    """Faint gets its node tree: the receiver makes one with the room's nodes only (Blender's API makes a
    tree by turning use_nodes on, with default nodes of its own)."""
    reset_scene()
    build_linestyle()

    def edit():
        faint = bpy.data.linestyles["Faint"]
        faint.use_nodes = True
        faint.node_tree.nodes.remove(faint.node_tree.nodes["Image Texture"])
        faint.color_modifiers.new("Tint", "ALONG_STROKE")

    batch, after = across_artists(build_linestyle, edit, observed)
    assert {("meta", ()), ("set", ("use_nodes",))} <= _keys(batch)
    faint = after[0][[style[0] for style in after[0]].index("Faint")]
    assert faint[4] is True and faint[7] == ["ShaderNodeOutputLineStyle", "ShaderNodeUVAlongStroke"]


@pytest.mark.parametrize("seed", [1, 2])
def test_line_sets_before_their_line_styles_one_op_at_a_time(seed):
    """A line set whose line style has not arrived waits for it (a line set cannot point at none: the one
    Blender makes for a new line set is removed), and modifiers before their line style's meta wait too."""
    reset_scene()
    build_linestyle()
    evaluate_scenes()
    before, seen = sync.scene_hash(), observed()
    ops = sorted(sync.serialise_scene().items(), key=lambda op: not op[0].startswith("scene/"))
    head, tail = ops[: len(ops) // 3], ops[len(ops) // 3 :]
    random.Random(seed).shuffle(tail)
    reset_scene()
    applier = sync.Applier()
    for op in head + tail:
        applier.feed([op])
        applier.step()
        assert "LineStyle" not in bpy.data.linestyles
    assert applier.errors == [] and applier.pending_links == {}
    evaluate_scenes()
    assert sync.scene_hash() == before and observed() == seen
