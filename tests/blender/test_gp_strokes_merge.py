"""Two artists drawing into one grease pencil at the same moment (sync/merges.py, ``merge_strokes``)."""

from __future__ import annotations

import pytest

bpy = pytest.importorskip("bpy", reason="bpy (Blender as a Python module) is not installed")

from scene_builders import build_grease_pencil, reset_scene  # noqa: E402

from blender_addon import sync  # noqa: E402
from blender_addon.sync import merges  # noqa: E402

pytestmark = pytest.mark.blender
KEY = "gpencil/0123456789abcdef0123456789abcdef/strokes"


def _strokes(edit=None) -> dict:
    """The strokes document of build_grease_pencil's "Sketch" after ``edit(gp)``."""
    reset_scene()
    build_grease_pencil()
    gp = bpy.data.grease_pencils["Sketch"]
    if edit is not None:
        edit(gp)
    values = sync.serialise_scene()
    (key,) = [k for k in values if k.startswith("gpencil/") and k.endswith("/strokes")]
    return sync.decode_value(values[key])


def _merged(base: dict, ours: dict, theirs: dict) -> dict | None:
    merge = merges.merger(KEY)
    out = merge(*(sync.encode_value(doc) for doc in (base, ours, theirs)))
    return None if out is None else sync.decode_value(out)


def _draw(layer: str, frame: int, sizes: list[int]):
    def edit(gp):
        found = {f.frame_number: f for f in gp.layers[layer].frames}
        target = found.get(frame) or gp.layers[layer].frames.new(frame)
        target.drawing.add_strokes(sizes)

    return edit


def _shape(doc: dict) -> dict[str, list[tuple[int, bytes]]]:
    return {
        layer["name"]: [(f["frame_number"], f["sizes"]) for f in layer["frames"]] for layer in doc["layers"]
    }


def test_drawings_on_different_frames_and_layers_are_both_kept():
    base = _strokes()
    ours = _strokes(_draw("Lines", 9, [5]))  # a new frame
    theirs = _strokes(_draw("Shading", 2, [3, 3]))  # strokes into a frame of another layer
    merged = _merged(base, ours, theirs)
    assert merged is not None
    shape = _shape(merged)
    assert shape["Lines"] == _shape(ours)["Lines"] and shape["Shading"] == _shape(theirs)["Shading"]
    assert [
        f["frame_number"]
        for f in merged["layers"][[lay["name"] for lay in merged["layers"]].index("Lines")]["frames"]
    ] == [1, 5, 9]
    # Applied, Blender draws what was merged and reads it back as it is.
    reset_scene()
    build_grease_pencil()
    values = sync.serialise_scene()
    (key,) = [k for k in values if k.startswith("gpencil/") and k.endswith("/strokes")]
    applier = sync.apply_ops([(key, sync.encode_value(merged))])
    assert applier.errors == []
    assert sync.decode_value(sync.serialise_scene()[key]) == merged


def test_a_frame_ours_removed_goes_unless_theirs_drew_on_it():
    base = _strokes()
    ours = _strokes(lambda gp: gp.layers["Lines"].frames.remove(5))
    merged = _merged(base, ours, _strokes(_draw("Shading", 2, [2])))
    assert merged is not None and [n for n, _ in _shape(merged)["Lines"]] == [1]
    assert _merged(base, ours, _strokes(_draw("Lines", 5, [2]))) is None  # they drew on it: theirs


def test_the_same_frame_drawn_by_both_is_theirs():
    base = _strokes()
    assert _merged(base, _strokes(_draw("Lines", 1, [2])), _strokes(_draw("Lines", 1, [6]))) is None


def test_a_layer_ours_added_removed_or_renamed_leaves_theirs():
    """Layers are the meta key's, whose merge may keep theirs' list: strokes of a layer it lacks would
    wait for it on every receiver."""
    base = _strokes()
    theirs = _strokes(_draw("Shading", 2, [3]))

    def add(gp):
        gp.layers.new("Notes").frames.new(1).drawing.add_strokes([2])

    def rename(gp):
        gp.layers["Lines"].name = "Ink"

    for edit in (add, rename, lambda gp: gp.layers.remove(gp.layers["Shading"])):
        assert _merged(base, _strokes(edit), theirs) is None


def test_a_layer_theirs_added_is_kept_with_ours_frames():
    base = _strokes()

    def add(gp):
        gp.layers.new("Notes").frames.new(1).drawing.add_strokes([2])

    merged = _merged(base, _strokes(_draw("Lines", 9, [5])), _strokes(add))
    assert merged is not None
    shape = _shape(merged)
    assert "Notes" in shape and [n for n, _ in shape["Lines"]] == [1, 5, 9]


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: d["layers"].append(dict(d["layers"][0])),  # a name twice
        lambda d: d["layers"][0]["frames"][0].update(frame_number="1"),
        lambda d: d["layers"][0].pop("frames"),
        lambda d: d.update(layers="Lines"),
    ],
    ids=["repeated-layer", "frame-number-text", "no-frames", "layers-not-a-list"],
)
def test_a_document_this_add_on_does_not_write_is_not_merged(damage):
    base = _strokes()
    ours, theirs = _strokes(_draw("Lines", 9, [5])), _strokes(_draw("Shading", 2, [3]))
    damage(ours)
    assert _merged(base, ours, theirs) is None
