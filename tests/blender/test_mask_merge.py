"""Two artists editing one mask at the same moment (sync/merges.py, ``merge_mask_layers``): rotoscoping
different layers keeps both."""

from __future__ import annotations

import pytest

bpy = pytest.importorskip("bpy", reason="bpy (Blender as a Python module) is not installed")

from replicas import applies_as_is, merged_docs, part_after  # noqa: E402
from scene_builders import build_mask, reset_scene  # noqa: E402

from blender_addon import sync  # noqa: E402

pytestmark = pytest.mark.blender
KEY = "mask/0123456789abcdef0123456789abcdef/layers"


def _roto() -> bpy.types.Mask:
    reset_scene()
    build_mask()
    bpy.data.movieclips["RotoPlate"][sync.UUID_PROP] = "fedcba9876543210fedcba9876543210"  # a point's parent
    return bpy.data.masks["Roto"]


def _layers(edit=None) -> list[dict]:
    """The layers document of build_mask's "Roto" after ``edit(mask)``."""
    return part_after(_roto, edit, "mask", "layers")


def _merged(base, ours, theirs):
    return merged_docs(KEY, base, ours, theirs)


def _move_point(layer: str, x: float):
    def edit(mask):
        mask.layers[layer].splines[0].points[0].co = (x, 0.5)

    return edit


def _by_name(layers: list[dict]) -> dict[str, dict]:
    return {layer["name"]: layer for layer in layers}


def test_two_layers_edited_by_two_artists_both_stay_and_apply():
    base = _layers()

    def ours_edit(mask):
        _move_point("Garbage", 0.33)(mask)
        mask.layers.new(name="Hair").splines.new()

    def theirs_edit(mask):
        _move_point("Detail", 0.66)(mask)
        mask.layers["Garbage"].alpha = 0.4  # a setting of the layer ours changed the splines of

    ours, theirs = _layers(ours_edit), _layers(theirs_edit)
    merged = _merged(base, ours, theirs)
    assert merged is not None
    assert [layer["name"] for layer in merged] == ["Garbage", "Detail", "Hair"]
    found = _by_name(merged)
    assert found["Garbage"]["splines"] == _by_name(ours)["Garbage"]["splines"]
    assert found["Garbage"]["props"]["alpha"] == pytest.approx(0.4)
    assert found["Detail"] == _by_name(theirs)["Detail"]
    # Applied, Blender holds what was merged and reads it back as it is.
    _roto()
    applies_as_is("mask", "layers", merged)


def test_the_same_layer_s_splines_changed_by_both_are_theirs():
    base = _layers()
    assert _merged(base, _layers(_move_point("Detail", 0.2)), _layers(_move_point("Detail", 0.8))) is None


def test_a_layer_ours_removed_goes_unless_theirs_changed_it():
    base = _layers()
    ours = _layers(lambda mask: mask.layers.remove(mask.layers["Detail"]))
    merged = _merged(base, ours, _layers(_move_point("Garbage", 0.3)))
    assert merged is not None and [layer["name"] for layer in merged] == ["Garbage"]
    assert _merged(base, ours, _layers(_move_point("Detail", 0.3))) is None


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: d.append(dict(d[0])),
        lambda d: d[0].update(name=7),
        lambda d: d[0].pop("props"),
        lambda d: d.append("Garbage"),
    ],
    ids=["repeated-name", "name-not-text", "no-settings", "layer-not-a-map"],
)
def test_a_document_this_add_on_does_not_write_is_not_merged(damage):
    base = _layers()
    ours, theirs = _layers(_move_point("Garbage", 0.3)), _layers(_move_point("Garbage", 0.6))
    damage(ours)
    damage(theirs)
    assert _merged(base, ours, theirs) is None
