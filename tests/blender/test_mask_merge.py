"""Two artists editing one mask at the same moment (sync/merges.py, ``merge_mask_layers``): rotoscoping
different layers keeps both."""

from __future__ import annotations

import pytest

bpy = pytest.importorskip("bpy", reason="bpy (Blender as a Python module) is not installed")

from replicas import applies_as_is, edits, merged_docs, part_after  # noqa: E402
from scene_builders import build_mask, reset_scene  # noqa: E402

from blender_addon import sync  # noqa: E402
from blender_addon.sync.codec import unpack_f32  # noqa: E402

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


def _move(layer: str, spline: int, point: int, x: float):
    def edit(mask):
        mask.layers[layer].splines[spline].points[point].co = (x, 0.5)

    return edit


def _cos(layer: dict) -> list[list[float]]:
    """Each spline's points' x, rounded."""
    return [[round(x, 3) for x in unpack_f32(spline["co"])[0::2]] for spline in layer["splines"]]


def test_two_shapes_of_one_layer_each_moved_by_one_artist_both_stay_and_apply():
    base = _layers()
    merged = _merged(base, _layers(_move("Detail", 0, 1, 0.11)), _layers(_move("Detail", 1, 3, 0.77)))
    assert merged is not None
    assert _cos(_by_name(merged)["Detail"]) == [[0.3, 0.11, 0.5], [0.3, 0.4, 0.5, 0.77, 0.7]]
    _roto()
    applies_as_is("mask", "layers", merged)


def test_two_points_of_one_shape_moved_and_a_shape_drawn_all_stay():
    """Points of one spline both edits changed: point by point; a spline ours drew goes after theirs."""
    base = _layers()

    def drawn(mask):
        points = mask.layers["Garbage"].splines.new().points
        points.add(1)
        points[1].co = (0.42, 0.42)

    ours = _layers(edits(_move("Garbage", 0, 1, 0.61), drawn))
    theirs = _layers(_move("Garbage", 0, 3, 0.33))
    merged = _merged(base, ours, theirs)
    assert merged is not None
    garbage = _by_name(merged)["Garbage"]
    assert _cos(garbage) == [[0.1, 0.61, 0.85, 0.33], [0.0, 0.42]]
    assert garbage["splines"][0]["handle_type"][2] == "VECTOR" and garbage["splines"][0]["parents"][0][
        3:
    ] == [
        "Camera",
        "Corner",
    ]
    _roto()
    applies_as_is("mask", "layers", merged)


def test_one_point_changed_by_both_is_merged_per_field():
    """Its position by one, its handle type by the other: both; its position by both: theirs."""
    base = _layers()

    def vector(mask):
        mask.layers["Detail"].splines[1].points[2].handle_type = "VECTOR"

    merged = _merged(base, _layers(_move("Detail", 1, 2, 0.05)), _layers(vector))
    assert merged is not None
    spline = _by_name(merged)["Detail"]["splines"][1]
    assert round(unpack_f32(spline["co"])[4], 3) == 0.05 and spline["handle_type"][2] == "VECTOR"
    assert _merged(base, _layers(_move("Detail", 1, 2, 0.2)), _layers(_move("Detail", 1, 2, 0.8))) is None


def test_a_shape_one_removed_goes_while_the_other_moves_a_point_of_another():
    base = _layers()
    ours = _layers(lambda mask: mask.layers["Detail"].splines.remove(mask.layers["Detail"].splines[0]))
    merged = _merged(base, ours, _layers(_move("Detail", 1, 0, 0.9)))
    assert merged is not None and _cos(_by_name(merged)["Detail"]) == [[0.9, 0.4, 0.5, 0.6, 0.7]]
    _roto()
    applies_as_is("mask", "layers", merged)


@pytest.mark.parametrize(
    "damage",
    [
        lambda spline: spline.update(count=spline["count"] + 1),
        lambda spline: spline.update(count=-1),
        lambda spline: spline["handle_type"].pop(),
        lambda spline: spline.update(co=spline["co"][:-1]),
        lambda spline: (
            [spline.pop(f) for f in [f for f, v in spline.items() if isinstance(v, list | bytes)]]
            and spline.update(count=10**9)
        ),
    ],
    ids=["count-past-the-points", "count-negative", "a-list-short", "an-array-cut", "a-count-of-nothing"],
)
def test_a_spline_whose_points_do_not_add_up_is_not_merged(damage):
    base = _layers()
    ours, theirs = _layers(_move("Detail", 0, 1, 0.11)), _layers(_move("Detail", 0, 0, 0.77))
    damage(_by_name(ours)["Detail"]["splines"][0])
    assert _merged(base, ours, theirs) is None


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


def test_a_count_no_point_field_bears_out_is_refused_not_made():
    """Splines of the same fields on all three sides, none per point: a count of a billion would make a
    billion points out of nothing. Refused (theirs) at once."""
    docs = [_layers(_move("Detail", 0, 1, x)) for x in (0.1, 0.2, 0.3)]
    for doc, count in zip(docs, (3, 10**9, 5), strict=True):
        spline = _by_name(doc)["Detail"]["splines"][0]
        for field in [f for f, value in spline.items() if isinstance(value, list | bytes)]:
            del spline[field]
        spline["count"] = count
    assert _merged(*docs) is None


def _renamed(layer: str, name: str):
    def edit(mask):
        mask.layers[layer].name = name

    return edit


@pytest.mark.parametrize("ours_renamed", [True, False])
def test_a_layer_renamed_while_the_other_moves_its_point_is_one_layer_with_both(ours_renamed):
    """One artist renames Garbage to Matte while the other moves its point: one layer, Matte, with the
    point moved, either way round (before: the point lost, or Garbage made again beside Matte)."""
    base = _layers()
    renamer, mover = _layers(_renamed("Garbage", "Matte")), _layers(_move_point("Garbage", 0.33))
    merged = _merged(base, renamer, mover) if ours_renamed else _merged(base, mover, renamer)
    assert merged is not None
    layers = _by_name(merged)
    assert "Garbage" not in layers and [layer["name"] for layer in merged] == [
        "Matte" if layer["name"] == "Garbage" else layer["name"] for layer in base
    ]
    assert layers["Matte"]["splines"] == _by_name(mover)["Garbage"]["splines"]
    _roto()
    applies_as_is("mask", "layers", merged)


def test_a_layer_both_renamed_takes_theirs_and_a_name_the_other_took_is_theirs():
    base = _layers()
    renamed = _layers(_renamed("Garbage", "Matte"))
    assert _merged(base, renamed, _layers(_renamed("Garbage", "Hold"))) is None  # theirs: Hold

    def new_matte(mask):
        mask.layers.new(name="Matte").splines.new()

    assert _merged(base, renamed, _layers(new_matte)) is None
