"""Two artists drawing into one grease pencil at the same moment (sync/gp_merge.py, ``merge_strokes``)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

bpy = pytest.importorskip("bpy", reason="bpy (Blender as a Python module) is not installed")

from replicas import applies_as_is, edits, merged_docs, part_after, part_key  # noqa: E402
from scene_builders import build_grease_pencil, reset_scene  # noqa: E402

from blender_addon import sync  # noqa: E402
from blender_addon.sync import merges, three_way  # noqa: E402
from blender_addon.sync.codec import pack_i32, unpack_f32, unpack_i32  # noqa: E402

pytestmark = pytest.mark.blender
KEY = "gpencil/0123456789abcdef0123456789abcdef/strokes"


def _sketch() -> bpy.types.GreasePencil:
    reset_scene()
    build_grease_pencil()
    return bpy.data.grease_pencils["Sketch"]


def _strokes(edit=None) -> dict:
    """The strokes document of build_grease_pencil's "Sketch" after ``edit(gp)``."""
    return part_after(_sketch, edit, "gpencil", "strokes")


def _merged(base, ours, theirs):
    return merged_docs(KEY, base, ours, theirs)


def _draw(layer: str, frame: int, sizes: list[int]):
    def edit(gp):
        found = {f.frame_number: f for f in gp.layers[layer].frames}
        target = found.get(frame) or gp.layers[layer].frames.new(frame)
        target.drawing.add_strokes(sizes)

    return edit


def _shape(doc: dict) -> dict[str, list[tuple[int, bytes]]]:
    return {
        layer["name"]: [(f["frame_number"], f.get("sizes", f.get("instance_of"))) for f in layer["frames"]]
        for layer in doc["layers"]
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
    ] == [1, 5, 8, 9]
    _drawn_as_merged(merged)


def test_a_frame_ours_removed_goes_unless_theirs_drew_on_it():
    base = _strokes()
    ours = _strokes(lambda gp: gp.layers["Lines"].frames.remove(5))
    merged = _merged(base, ours, _strokes(_draw("Shading", 2, [2])))
    assert merged is not None and [n for n, _ in _shape(merged)["Lines"]] == [1, 8]
    assert _merged(base, ours, _strokes(_draw("Lines", 5, [2]))) is None  # they drew on it: theirs


def _drawn_as_merged(merged: dict) -> None:
    """Applied to the grease pencil, Blender draws ``merged`` and reads it back as it is."""
    reset_scene()
    build_grease_pencil()
    applies_as_is("gpencil", "strokes", merged)


def _xs(frame: dict) -> list[float]:
    positions = next(a for a in frame["attributes"] if a["name"] == "position")["data"]
    return [round(x, 3) for x in unpack_f32(positions)[0::3]]


def _lines_frame(doc: dict, number: int) -> dict:
    (layer,) = [layer for layer in doc["layers"] if layer["name"] == "Lines"]
    (frame,) = [frame for frame in layer["frames"] if frame["frame_number"] == number]
    return frame


def _placed(layer: str, frame: int, sizes: list[int], x: float):
    """Strokes drawn on a frame, their points at ``x``."""

    def edit(gp):
        drawing = {f.frame_number: f for f in gp.layers[layer].frames}[frame].drawing
        held = len(drawing.attributes["position"].data)
        drawing.add_strokes(sizes)
        for point in list(drawing.attributes["position"].data)[held:]:
            point.vector = (x, 0.5, 0.0)
        drawing.tag_positions_changed()

    return edit


def test_strokes_both_drew_on_one_frame_are_both_kept():
    """Both added strokes to the frame (its held strokes untouched): theirs, then ours, after them."""
    base = _strokes()
    ours, theirs = _strokes(_placed("Lines", 1, [2], 7.0)), _strokes(_placed("Lines", 1, [4, 1], 9.0))
    merged = _merged(base, ours, theirs)
    assert merged is not None
    frame = _lines_frame(merged, 1)
    assert list(unpack_i32(frame["sizes"])) == [3, 2, 4, 1, 2]
    xs = _xs(frame)
    assert xs[5:] == [9.0] * 5 + [7.0] * 2 and xs[:5] == _xs(_lines_frame(base, 1))
    _drawn_as_merged(merged)  # every other attribute grew by the strokes or points added alike


def _moved(stroke: int, x: float):
    """Every point of one stroke of frame 1 of "Lines" moved to ``x``."""

    def edit(gp):
        drawing = {f.frame_number: f for f in gp.layers["Lines"].frames}[1].drawing
        start, end = (drawing.curve_offsets[i].value for i in (stroke, stroke + 1))
        for i in range(start, end):
            drawing.attributes["position"].data[i].vector = (x, 0.5, 0.0)
        drawing.tag_positions_changed()

    return edit


def _erase(*strokes: int):
    def edit(gp):
        {f.frame_number: f for f in gp.layers["Lines"].frames}[1].drawing.remove_strokes(
            indices=list(strokes)
        )

    return edit


def test_a_stroke_one_erased_goes_and_the_others_new_strokes_stay():
    base = _strokes()
    held = _xs(_lines_frame(base, 1))
    merged = _merged(base, _strokes(_erase(0)), _strokes(_placed("Lines", 1, [4], 9.0)))
    assert merged is not None
    frame = _lines_frame(merged, 1)
    assert list(unpack_i32(frame["sizes"])) == [2, 4] and _xs(frame) == held[3:] + [9.0] * 4
    _drawn_as_merged(merged)
    # Every held stroke erased by ours, theirs drew: theirs' new strokes alone.
    merged = _merged(base, _strokes(_erase(0, 1)), _strokes(_placed("Lines", 1, [4], 9.0)))
    assert merged is not None and list(unpack_i32(_lines_frame(merged, 1)["sizes"])) == [4]


def test_strokes_each_moved_keep_their_places_in_the_draw_order():
    """A moved stroke is the old one removed and the new one put where it was: each edit's move stays, and
    the strokes keep their order (which one is drawn over which)."""
    base = _strokes()
    ours = _strokes(edits(_moved(0, 4.0), _placed("Lines", 1, [2], 7.0)))
    theirs = _strokes(_moved(1, 6.0))
    merged = _merged(base, ours, theirs)
    assert merged is not None
    frame = _lines_frame(merged, 1)
    assert list(unpack_i32(frame["sizes"])) == [3, 2, 2]
    assert _xs(frame) == [4.0] * 3 + [6.0] * 2 + [7.0] * 2
    _drawn_as_merged(merged)  # each stroke's radius, opacity and material kept with it


def test_a_stroke_both_changed_comes_out_in_both_versions():
    base = _strokes()
    merged = _merged(base, _strokes(_moved(1, 4.0)), _strokes(_moved(1, 6.0)))
    assert merged is not None
    frame = _lines_frame(merged, 1)
    assert list(unpack_i32(frame["sizes"])) == [3, 2, 2] and _xs(frame)[3:] == [6.0, 6.0, 4.0, 4.0]
    # Both erased one stroke (and nothing else there): it goes once, nothing doubled.
    merged = _merged(base, _strokes(edits(_erase(1), _draw("Lines", 9, [5]))), _strokes(_erase(1)))
    assert merged is not None and list(unpack_i32(_lines_frame(merged, 1)["sizes"])) == [3]


@st.composite
def _redrawn(draw, base: list[int]) -> list[int]:
    """``base``'s strokes (numbers) with some erased, some changed (a new number where the old one was)
    and some new ones drawn anywhere, the held ones in their order."""
    out = []
    for stroke in base:
        fate = draw(st.sampled_from(["keep", "keep", "erase", "change"]))
        out += [stroke] if fate == "keep" else [draw(st.integers(100, 10**6))] if fate == "change" else []
    for stroke in draw(st.lists(st.integers(100, 10**6), max_size=3)):
        out.insert(draw(st.integers(0, len(out))), stroke)
    return list(dict.fromkeys(out))  # strokes are unique (counted among equal ones)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_every_stroke_either_edit_erased_goes_and_every_new_one_stays_in_its_place(data):
    base = list(range(data.draw(st.integers(0, 8))))
    ours, theirs = data.draw(_redrawn(base)), data.draw(_redrawn(base))
    merged = three_way.merge_in_place(base, ours, theirs, identity=lambda stroke: stroke)
    assert len(set(merged)) == len(merged)
    kept = [s for s in base if s in ours and s in theirs]
    assert [s for s in merged if s in base] == kept  # erased by either: gone; the rest in order
    assert set(merged) - set(base) == (set(ours) | set(theirs)) - set(base)  # every new stroke
    for edit in (ours, theirs):
        new = [s for s in edit if s not in base]
        # each edit's new strokes in its order (one both drew is where theirs put it)
        assert [s for s in merged if s in new and (edit is theirs or s not in theirs)] == [
            s for s in new if edit is theirs or s not in theirs
        ]
        for i, stroke in enumerate(edit):  # before the held stroke that followed it in its edit
            after = next((s for s in edit[i + 1 :] if s in base), None)
            if stroke not in base and after in kept and (edit is theirs or stroke not in theirs):
                assert merged.index(stroke) < merged.index(after)
            before = next((s for s in reversed(edit[:i]) if s in base), None)
            if stroke not in base and before in kept and (edit is theirs or stroke not in theirs):
                assert merged.index(stroke) > merged.index(before)


def _more_strokes(gp):
    """Three more strokes on frame 1 of "Lines", at x 10, 11 and 12 (five in all, each its own)."""
    drawing = {f.frame_number: f for f in gp.layers["Lines"].frames}[1].drawing
    for x in (10.0, 11.0, 12.0):
        _placed("Lines", 1, [2], x)(gp)
    assert len(drawing.strokes) == 5


STROKE_EDITS = st.lists(
    st.one_of(
        st.tuples(st.just("erase"), st.integers(0, 9)),
        st.tuples(st.just("move"), st.integers(0, 9)),
        st.tuples(st.just("draw"), st.integers(1, 3)),
    ),
    max_size=4,
)


def _edited(steps, at: float):
    """Frame 1 of "Lines" with five strokes, then ``steps``: each stroke moved or drawn at an x of its own
    (from ``at`` on), so that no two strokes are alike."""

    def edit(gp):
        _more_strokes(gp)
        for i, step in enumerate(steps):
            count = len({f.frame_number: f for f in gp.layers["Lines"].frames}[1].drawing.strokes)
            if step[0] == "draw":
                _placed("Lines", 1, [step[1]], at + i)(gp)
            elif step[0] == "erase" and count:
                _erase(step[1] % count)(gp)
            elif count:
                _moved(step[1] % count, at + i)(gp)

    return edit


def _frame_strokes(doc: dict) -> list[tuple]:
    frame = _lines_frame(doc, 1)
    xs, sizes = _xs(frame), list(unpack_i32(frame["sizes"]))
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    return [tuple(xs[start : start + size]) for start, size in zip(starts, sizes, strict=True)]


@settings(max_examples=40, deadline=None)
@given(STROKE_EDITS, STROKE_EDITS)
def test_any_two_edits_of_one_frame_merge_into_a_drawing_blender_holds(ours_steps, theirs_steps):
    """Random erasing, moving and drawing on both sides: the merged frame holds every stroke both kept, in
    order, and every stroke either made, and Blender draws it as merged (attributes of both domains
    sliced alike)."""
    base, ours, theirs = (
        _strokes(_more_strokes),
        _strokes(_edited(ours_steps, 20)),
        _strokes(_edited(theirs_steps, 40)),
    )
    strokes = [_frame_strokes(doc) for doc in (base, ours, theirs)]
    kept = [s for s in strokes[0] if s in strokes[1] and s in strokes[2]]
    made = sorted(s for s in strokes[1] + strokes[2] if s not in strokes[0])
    merged = _merged(base, ours, theirs)
    got = strokes[2] if merged is None else _frame_strokes(merged)  # None: theirs stands
    assert [s for s in got if s in strokes[0]] == kept  # erased by either: gone; the rest in order
    assert sorted(s for s in got if s not in strokes[0]) == made  # (moved strokes are made too)
    if merged is not None:
        _drawn_as_merged(merged)


def _attribute(frame: dict, name: str) -> list[float]:
    return [
        round(v, 3) for v in unpack_f32(next(a for a in frame["attributes"] if a["name"] == name)["data"])
    ]


def _added(name: str, kind: str, domain: str, held: float, new: float, x: float):
    """A two-point stroke drawn at ``x`` on frame 1 of "Lines" after adding attribute ``name`` (FLOAT or
    FLOAT_COLOR) holding ``held`` for the frame's strokes (as a tool fills them), ``new`` for the stroke."""

    def edit(gp):
        drawing = {f.frame_number: f for f in gp.layers["Lines"].frames}[1].drawing
        attr = drawing.attributes.new(name, kind, domain)
        key, width = ("color", 4) if kind == "FLOAT_COLOR" else ("value", 1)
        attr.data.foreach_set(key, [held] * width * len(attr.data))
        _placed("Lines", 1, [2], x)(gp)
        attr = drawing.attributes[name]
        rows = 2 if domain == "POINT" else 1
        values = [held] * width * (len(attr.data) - rows) + [new] * width * rows
        attr.data.foreach_set(key, values)

    return edit


def test_an_attribute_one_edit_added_is_given_to_the_other_edits_strokes():
    """Ours coloured its new stroke (its tool adding vertex colours, filling the held strokes with none)
    while theirs drew: every stroke stays; theirs' new stroke has no colour, as it showed without it."""
    base = _strokes()
    ours = _strokes(_added("vertex_color", "FLOAT_COLOR", "POINT", 0.0, 1.0, 7.0))
    theirs = _strokes(_placed("Lines", 1, [4], 9.0))
    merged = _merged(base, ours, theirs)
    assert merged is not None
    frame = _lines_frame(merged, 1)
    assert list(unpack_i32(frame["sizes"])) == [3, 2, 4, 2]
    assert _xs(frame)[5:] == [9.0] * 4 + [7.0] * 2
    assert _attribute(frame, "vertex_color") == [0.0] * 4 * 9 + [1.0] * 4 * 2
    assert [a["name"] for a in frame["attributes"]][-1] == "vertex_color"  # by name, as read
    _drawn_as_merged(merged)


@pytest.mark.parametrize("ours_added", [True, False])
def test_an_added_attribute_fills_kept_strokes_as_its_edit_did_and_new_ones_as_blender_shows_them(
    ours_added,
):
    """A stroke attribute whose absence reads as 1.0 (aspect ratio), added with 2.0 for the held strokes
    and 3.0 for the adder's new one: the other edit's new stroke gets 1.0, the held ones 2.0, either way
    round."""
    base = _strokes()
    adder = _strokes(_added("aspect_ratio", "FLOAT", "CURVE", 2.0, 3.0, 7.0))
    drawer = _strokes(_placed("Lines", 1, [4], 9.0))
    merged = _merged(base, adder, drawer) if ours_added else _merged(base, drawer, adder)
    assert merged is not None
    frame = _lines_frame(merged, 1)
    new_strokes = [1.0, 3.0] if ours_added else [3.0, 1.0]  # theirs' new stroke, then ours'
    assert _attribute(frame, "aspect_ratio") == [2.0, 2.0, *new_strokes]
    _drawn_as_merged(merged)


def test_a_frame_whose_attributes_were_removed_or_added_apart_or_whose_arrays_differ_is_theirs():
    """An attribute an edit removed, one both added as different types, or arrays that do not add up to
    the strokes: not merged, theirs."""
    base = _strokes()
    theirs = _strokes(_placed("Lines", 1, [6], 9.0))

    def removed(gp):
        drawing = {f.frame_number: f for f in gp.layers["Lines"].frames}[1].drawing
        drawing.add_strokes([2])
        drawing.attributes.remove(drawing.attributes["opacity"])

    assert _merged(base, _strokes(removed), theirs) is None
    hinted = _strokes(_added("thickness_hint", "FLOAT", "POINT", 0.0, 1.0, 7.0))
    assert _merged(base, hinted, _strokes(_added("thickness_hint", "FLOAT", "CURVE", 0.0, 1.0, 8.0))) is None
    for damage in (
        lambda frame: frame.update(sizes=pack_i32([3, 3])),  # one point more than the arrays hold
        lambda frame: frame.update(sizes=pack_i32([6, -1])),
        lambda frame: frame["attributes"][0].update(data=b"x"),
    ):
        ours = _strokes(_erase(0))
        damage(_lines_frame(ours, 1))
        assert _merged(base, ours, theirs) is None


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


def _beside_our_layers(base, ours, theirs):
    """The merge made when our meta (the layers) stood (session_events.py)."""
    out = merges.gpencil_strokes_beside_our_layers(*(sync.encode_value(doc) for doc in (base, ours, theirs)))
    return None if out is None else sync.decode_value(out)


def test_a_layer_ours_added_and_drew_in_stays_when_our_layers_stood():
    """Ours added a layer and drew in it while theirs drew in another: with our meta standing (the room has
    our layer list), the merge is in our layers, the new one with our frames, theirs' drawing kept."""
    base = _strokes()

    def add(gp):
        gp.layers.new("Notes").frames.new(3).drawing.add_strokes([2])

    ours, theirs = _strokes(add), _strokes(_placed("Lines", 1, [4], 9.0))
    merged = _beside_our_layers(base, ours, theirs)
    assert merged is not None
    assert [layer["name"] for layer in merged["layers"]] == [layer["name"] for layer in ours["layers"]]
    assert _shape(merged)["Notes"] == _shape(ours)["Notes"]
    assert _lines_frame(merged, 1) == _lines_frame(theirs, 1)
    reset_scene()
    build_grease_pencil()
    bpy.data.grease_pencils["Sketch"].layers.new("Notes")  # our meta, applied first
    applies_as_is("gpencil", "strokes", merged)
    # Our meta overridden (its merge may keep theirs' layers): no merge, theirs stands.
    assert _merged(base, ours, theirs) is None


def test_a_layer_ours_renamed_keeps_what_theirs_drew_on_it_when_our_layers_stood():
    base = _strokes()

    def rename(gp):
        gp.layers["Lines"].name = "Ink"
        gp.layers["Ink"].frames.new(20).drawing.add_strokes([2])

    ours, theirs = _strokes(rename), _strokes(_draw("Lines", 9, [5]))
    merged = _beside_our_layers(base, ours, theirs)
    assert merged is not None and "Lines" not in _shape(merged)
    assert [n for n, _ in _shape(merged)["Ink"]] == [1, 5, 8, 9, 20]  # theirs' frame 9, ours' frame 20
    reset_scene()
    build_grease_pencil()
    bpy.data.grease_pencils["Sketch"].layers["Lines"].name = "Ink"  # our meta, applied first
    applies_as_is("gpencil", "strokes", merged)


def test_a_layer_change_beside_theirs_is_refused_where_a_drawing_would_be_lost():
    """Ours removed a layer theirs drew on, or theirs changed the layers too: theirs stands."""
    base = _strokes()
    removed = _strokes(lambda gp: gp.layers.remove(gp.layers["Shading"]))
    assert _beside_our_layers(base, removed, _strokes(_draw("Shading", 2, [3]))) is None
    kept = _beside_our_layers(base, removed, _strokes(_draw("Lines", 9, [2])))
    assert (
        kept is not None and "Shading" not in _shape(kept) and [n for n, _ in _shape(kept)["Lines"]][-1] == 9
    )

    def add(gp):
        gp.layers.new("Notes")

    assert _beside_our_layers(base, _strokes(add), _strokes(lambda gp: gp.layers.new("Other"))) is None


def test_a_layer_theirs_added_is_kept_with_ours_frames():
    base = _strokes()

    def add(gp):
        gp.layers.new("Notes").frames.new(1).drawing.add_strokes([2])

    merged = _merged(base, _strokes(_draw("Lines", 9, [5])), _strokes(add))
    assert merged is not None
    shape = _shape(merged)
    assert "Notes" in shape and [n for n, _ in shape["Lines"]] == [1, 5, 8, 9]


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


# ---- instanced frames (kinds/grease_pencils.py): a drawing two frames show -------------------------------


def _drawings(layer) -> dict[int, int]:
    return {f.frame_number: f.drawing.as_pointer() for f in layer.frames}


def test_instanced_frames_travel_as_instances_and_change_in_place():
    reset_scene()
    build_grease_pencil()
    lines = bpy.data.grease_pencils["Sketch"].layers["Lines"]
    lines.frames.copy(1, 9, instance_drawing=True)  # Duplicate as instance
    lines.frames.copy(1, 12, instance_drawing=False)
    values = sync.serialise_scene()
    key = part_key(values, "gpencil", "strokes")
    frames = {f["frame_number"]: f for f in sync.decode_value(values[key])["layers"][0]["frames"]}
    assert frames[9] == {"frame_number": 9, "keyframe_type": "KEYFRAME", "instance_of": 1}
    assert "sizes" in frames[12] and "instance_of" not in frames[12]
    before = sync.scene_hash()
    reset_scene()
    applier = sync.apply_ops(list(values.items()))
    assert applier.errors == []
    lines = bpy.data.grease_pencils["Sketch"].layers["Lines"]
    drawings = _drawings(lines)
    assert drawings[9] == drawings[1] != drawings[12]
    assert sync.scene_hash() == before and sync.serialise_scene() == values
    # The sender makes 9 a frame of its own and 12 an instance of 1: applied over the receiver's frames.
    doc = sync.decode_value(values[key])
    doc["layers"][0]["frames"] = [
        f if f["frame_number"] != 9 else dict(frames[12], frame_number=9)
        for f in doc["layers"][0]["frames"]
        if f["frame_number"] != 12
    ] + [{"frame_number": 12, "keyframe_type": "KEYFRAME", "instance_of": 1}]
    doc["layers"][0]["frames"].sort(key=lambda f: f["frame_number"])
    sync.apply_ops([(key, sync.encode_value(doc))], applier=applier)
    assert applier.errors == []
    drawings = _drawings(bpy.data.grease_pencils["Sketch"].layers["Lines"])
    assert drawings[12] == drawings[1] != drawings[9]
    assert sync.decode_value(sync.serialise_scene()[key]) == doc
    # A stroke drawn into the shared drawing shows on both frames.
    frames = {f.frame_number: f for f in bpy.data.grease_pencils["Sketch"].layers["Lines"].frames}
    frames[1].drawing.add_strokes([2])
    assert len(frames[12].drawing.strokes) == len(frames[1].drawing.strokes) == 3


@pytest.mark.parametrize(
    "source", [7, 9, None], ids=["no-such-frame", "an-instance-itself", "a-number-twice"]
)
def test_an_instance_of_what_is_not_a_frame_of_its_own_is_refused(source):
    reset_scene()
    build_grease_pencil()
    lines = bpy.data.grease_pencils["Sketch"].layers["Lines"]
    lines.frames.copy(1, 9, instance_drawing=True)
    values = sync.serialise_scene()
    key = part_key(values, "gpencil", "strokes")
    reset_scene()
    applier = sync.apply_ops([(k, v) for k, v in values.items() if k != key])
    doc = sync.decode_value(values[key])
    frame = {"frame_number": 20, "keyframe_type": "KEYFRAME", "instance_of": source}
    if source is None:  # frame 1 again, as an instance of frame 5
        frame = {"frame_number": 1, "keyframe_type": "KEYFRAME", "instance_of": 5}
    doc["layers"][0]["frames"].append(frame)
    sync.apply_ops([(key, sync.encode_value(doc))], applier=applier)
    assert [error[0] for error in applier.errors] == [key]


def test_a_merge_that_would_lose_an_instance_s_drawing_is_theirs():
    base = _strokes()

    def instance(gp):
        gp.layers["Lines"].frames.copy(1, 13, instance_drawing=True)

    ours = _strokes(lambda gp: gp.layers["Lines"].frames.remove(1))
    assert _merged(base, ours, _strokes(instance)) is None
    merged = _merged(base, _strokes(_draw("Shading", 2, [2])), _strokes(instance))
    assert merged is not None
    assert {"frame_number": 13, "keyframe_type": "KEYFRAME", "instance_of": 1} in merged["layers"][0][
        "frames"
    ]
