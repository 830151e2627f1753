"""Which concurrent edits of one key merge, and how one node's settings do (sync/merges.py)."""

from __future__ import annotations

import pytest

pytest.importorskip("bpy", reason="bpy (Blender as a Python module) is not installed")

from hypothesis import given, settings
from hypothesis import strategies as st

from blender_addon import sync
from blender_addon.sync import keyframe_merge, merges, three_way
from tools.bench.stroke_merge import by_insertion

pytestmark = pytest.mark.blender

FIELDS = st.sampled_from(["a", "b", "c", "d", "e"])
VALUES = st.one_of(st.integers(-3, 3), st.text(max_size=2), st.none())


@st.composite
def edited(
    draw,
    base: dict,
) -> dict:
    out = dict(base)
    for field in draw(st.lists(FIELDS, unique=True, max_size=4)):
        if field in out and draw(st.booleans()):
            del out[field]
        else:
            out[field] = draw(VALUES)
    return out


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_every_field_is_theirs_unless_only_ours_changed_it(data):
    base = data.draw(st.dictionaries(FIELDS, VALUES, max_size=5))
    ours, theirs = data.draw(edited(base)), data.draw(edited(base))
    merged = merges.three_way(base, ours, theirs)
    missing = object()
    for field in base.keys() | ours.keys() | theirs.keys():
        mine, before, their = (d.get(field, missing) for d in (ours, base, theirs))
        expected = mine if mine != before and their == before else their
        assert merged.get(field, missing) == expected, field


def node(props: dict, type_: str = "ShaderNodeMath", **fields) -> bytes:
    doc = {"name": "Math", "type": type_, "label": "", "hide": False, "mute": False, "props": props}
    return sync.encode_value({**doc, **fields})


def test_two_settings_of_one_node_both_stay_and_a_clash_is_theirs():
    base = node({"operation": "ADD", "use_clamp": False})
    ours = node({"operation": "MULTIPLY", "use_clamp": False}, label="mine")
    theirs = node({"operation": "ADD", "use_clamp": True}, label="theirs")
    merged = sync.decode_value(merges.node_settings(base, ours, theirs))
    assert merged["props"] == {"operation": "MULTIPLY", "use_clamp": True}
    assert merged["label"] == "theirs"  # both changed it: theirs


def test_a_node_made_removed_or_replaced_by_another_type_is_theirs():
    base = node({"operation": "ADD"})
    ours = node({"operation": "MULTIPLY"})
    assert merges.node_settings(None, ours, node({"operation": "ADD"})) is None  # ours made it
    assert merges.node_settings(base, ours, None) is None  # they removed it
    assert merges.node_settings(base, None, base) is None  # we removed it
    assert merges.node_settings(base, ours, node({}, "ShaderNodeMix")) is None  # replaced by another type
    assert merges.node_settings(base, base, node({"operation": "SINE"})) is None  # nothing of ours
    for bad in (
        b"\xc1",
        sync.encode_value([1, 2]),
        sync.encode_value({"props": 1, "type": "ShaderNodeMath"}),
    ):
        assert merges.node_settings(base, bad, node({"operation": "SINE"})) is None


@pytest.mark.parametrize(
    ("key", "merge"),
    [
        ("action/0123456789abcdef0123456789abcdef/fcurve/OBLamp/location/2", keyframe_merge.merge),
        ("mat/0123456789abcdef0123456789abcdef/node/a1b2c3", merges.node_settings),
        ("ngroup/0123456789abcdef0123456789abcdef/node/x", merges.node_settings),
        ("obj/0123456789abcdef0123456789abcdef/con/Track%2FTo", merges.settings),
        ("obj/0123456789abcdef0123456789abcdef/pbcon/Bone/IK", merges.settings),
        ("scene/0123456789abcdef0123456789abcdef/vlayer/ViewLayer", merges.settings),
        ("scene/0123456789abcdef0123456789abcdef/freestyle/ViewLayer", merges.settings),
        ("scene/0123456789abcdef0123456789abcdef/lineset/ViewLayer/LineSet", merges.settings),
        ("obj/0123456789abcdef0123456789abcdef/pbcon/Bone", None),
        ("scene/0123456789abcdef0123456789abcdef/lineset/ViewLayer", None),
        ("obj/0123456789abcdef0123456789abcdef/modorder", merges.stack_order),
        ("obj/0123456789abcdef0123456789abcdef/pbconorder/Bone%2F1", merges.stack_order),
        ("linestyle/0123456789abcdef0123456789abcdef/modorder/color", merges.stack_order),
        ("scene/0123456789abcdef0123456789abcdef/vlayerorder", merges.stack_order),
        ("mesh/0123456789abcdef0123456789abcdef/meta", merges.material_list),
        ("lattice/0123456789abcdef0123456789abcdef/meta", merges.meta_settings),
        ("lprobe/0123456789abcdef0123456789abcdef/meta", merges.meta_settings),
        ("lprobe/0123456789abcdef0123456789abcdef/meta/x", None),
        ("img/0123456789abcdef0123456789abcdef/data", merges.image_data),
        ("img/0123456789abcdef0123456789abcdef/meta", merges.FILE_METAS["img"]),
        ("clip/0123456789abcdef0123456789abcdef/meta", merges.FILE_METAS["clip"]),
        ("sound/0123456789abcdef0123456789abcdef/meta", merges.FILE_METAS["sound"]),
        ("clip/0123456789abcdef0123456789abcdef/tracking", merges.tracking),
        ("cam/0123456789abcdef0123456789abcdef/bg", merges.camera_backgrounds),
        ("gpencil/0123456789abcdef0123456789abcdef/strokes", merges.gpencil_strokes),
        ("mask/0123456789abcdef0123456789abcdef/layers", merges.mask_layers),
        ("text/0123456789abcdef0123456789abcdef/body", merges.text_body),
        ("curve/0123456789abcdef0123456789abcdef/text", None),
        ("clip/0123456789abcdef0123456789abcdef/tracking/x", None),
        ("clip/0123456789abcdef0123456789abcdef/track/Camera/Corner", merges.track),
        ("clip/0123456789abcdef0123456789abcdef/track/Camera", None),
        ("mesh/0123456789abcdef0123456789abcdef/strokes", None),
        ("sound/0123456789abcdef0123456789abcdef/data", None),
        ("img/0123456789abcdef0123456789abcdef/data/x", None),
        ("mat/0123456789abcdef0123456789abcdef/at/a1b2c3", None),
        ("obj/0123456789abcdef0123456789abcdef/location", None),
        ("obj/0123456789abcdef0123456789abcdef/mod/Bevel", None),
        ("mesh/0123456789abcdef0123456789abcdef/meta/x", None),
        ("mat/0123456789abcdef0123456789abcdef/node", None),
        ("modorder", None),
        ("", None),
    ],
)
def test_which_keys_merge(key, merge):
    assert merges.merger(key) is merge


NAMES = st.lists(st.sampled_from("ABCDEFGH"), unique=True, max_size=6)


@st.composite
def restacked(draw, base: list[str]) -> list[str]:
    """``base`` with some names removed, some added, and perhaps put in another order."""
    kept = [name for name in base if draw(st.booleans())]
    if draw(st.booleans()):
        kept = draw(st.permutations(kept))
    for name in draw(st.lists(st.sampled_from("STUVWXYZ"), unique=True, max_size=3)):
        kept.insert(draw(st.integers(0, len(kept))), name)
    return kept


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_a_stack_order_keeps_both_edits_additions_and_removals(data):
    base = data.draw(NAMES)
    ours, theirs = data.draw(restacked(base)), data.draw(restacked(base))
    merged = merges.merge_order(base, ours, theirs)
    assert merged == by_insertion(base, ours, theirs)  # the short, quadratic way of writing it
    assert len(set(merged)) == len(merged)
    kept = {name for name in base if name in ours and name in theirs}
    added = (set(ours) | set(theirs)) - set(base)
    assert set(merged) == kept | added  # a removal by either edit stands, every addition stays
    in_base = [name for name in base if name in kept]
    theirs_kept = [name for name in theirs if name in kept]
    expected = [name for name in ours if name in kept] if theirs_kept == in_base else theirs_kept
    assert [name for name in merged if name in kept] == expected
    for source, other in ((theirs, []), (ours, theirs)):  # additions go where their edit put them
        new = [name for name in source if name not in base and name not in other]
        both = set(source) & set(other) - set(base)  # placed by theirs: ours move along with them too
        if expected == [name for name in source if name in kept] and not both:  # (as with a reordered stack)
            assert [name for name in merged if name in new] == new
        anchors = kept | (set(source) & set(other))  # in the merge before these are placed
        for name in new:  # before what followed them in their edit, or after every kept item
            after = next((n for n in source[source.index(name) + 1 :] if n in anchors), None)
            position = merged.index(name)
            if after is not None:
                assert position < merged.index(after), (name, after)
            else:
                assert not kept & set(merged[position:]), name
    assert merges.merge_order(base, base, theirs) == theirs
    assert merges.merge_order(base, ours, base) == ours


@st.composite
def redrawn(draw, base: list[int]) -> list[int]:
    """``base`` (unique numbers) with some removed, some changed (a new number in place) and some new ones
    put anywhere, the held ones in their order."""
    out = []
    for item in base:
        fate = draw(st.sampled_from(["keep", "keep", "remove", "change"]))
        out += [item] if fate == "keep" else [draw(st.integers(100, 130))] if fate == "change" else []
    for item in draw(st.lists(st.integers(100, 130), max_size=3)):
        out.insert(draw(st.integers(0, len(out))), item)
    return list(dict.fromkeys(out))


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_a_list_merged_in_place_keeps_every_new_item_once_and_pairs_only_what_both_replaced(data):
    base = list(range(data.draw(st.integers(0, 7))))
    ours, theirs = data.draw(redrawn(base)), data.draw(redrawn(base))
    merged = three_way.merge_in_place(base, ours, theirs, lambda item: item, lambda *docs: docs)
    kept = [item for item in base if item in ours and item in theirs]
    assert [item for item in merged if item in base] == kept  # removed by either: gone; in order
    paired = [item for item in merged if isinstance(item, tuple)]
    for replaced, mine, their in paired:
        assert replaced in base and replaced not in ours and replaced not in theirs
        assert mine in ours and mine not in base and their in theirs and their not in base
    new = [item for item in dict.fromkeys(theirs + ours) if item not in base]
    shown = [item for item in merged if not isinstance(item, tuple) and item not in base]
    shown += [item for _, mine, their in paired for item in dict.fromkeys((mine, their))]
    assert sorted(shown) == sorted(new)  # each new item once, itself or inside the pair it stands in


def order(names: list[str]) -> bytes:
    return sync.encode_value(names)


def test_a_modifier_moved_while_another_is_added_keeps_both():
    base = order(["Bevel", "Wave"])
    moved, added = order(["Wave", "Bevel"]), order(["Bevel", "Wave", "Smooth"])
    assert sync.decode_value(merges.stack_order(base, moved, added)) == ["Wave", "Bevel", "Smooth"]
    assert sync.decode_value(merges.stack_order(base, added, moved)) == ["Wave", "Bevel", "Smooth"]
    inserted = order(["Bevel", "Smooth", "Wave"])  # added before another: stays before it
    assert sync.decode_value(merges.stack_order(base, moved, inserted)) == ["Smooth", "Wave", "Bevel"]
    both_moved = order(["Wave", "Bevel"]), order(["Bevel", "Wave", "Array"])
    assert merges.stack_order(order(["Wave", "Bevel"]), *both_moved) is None  # only they changed it
    assert merges.stack_order(base, moved, moved) is None  # the same edit
    for bad in (None, b"\xc1", order(["A", "A"]), sync.encode_value([1]), sync.encode_value({"a": 1})):
        assert merges.stack_order(base, bad, added) is None
        assert merges.stack_order(bad, moved, added) is None
        assert merges.stack_order(base, moved, bad) is None


def slots(*uuids: str | None, **fields) -> bytes:
    return sync.encode_value({"materials": list(uuids), **fields})


def test_material_slots_added_by_both_stay_and_positions_never_move():
    base = slots("stone")
    merged = merges.material_list(base, slots("stone", "moss"), slots("stone", "rust"))
    assert sync.decode_value(merged) == {"materials": ["stone", "rust", "moss"]}  # theirs keep their place
    changed = merges.material_list(slots("stone", None), slots("stone", "moss"), slots("stone", None, "rust"))
    assert sync.decode_value(changed) == {"materials": ["stone", "moss", "rust"]}  # a slot only we filled
    clash = merges.material_list(base, slots("moss"), slots("rust"))
    assert clash is None  # both changed one slot: theirs
    shorter = slots("stone", "rust")
    assert merges.material_list(shorter, slots("stone"), slots("stone", "rust", "moss")) is None
    assert merges.material_list(shorter, slots("stone", "rust", "moss"), slots("rust")) is None
    curve = merges.material_list(
        slots("stone", curve_type="CURVE"),
        slots("stone", curve_type="SURFACE"),
        slots("stone", "rust", curve_type="CURVE"),
    )
    assert sync.decode_value(curve) == {"materials": ["stone", "rust"], "curve_type": "SURFACE"}
    for bad in (None, b"\xc1", sync.encode_value({"type": "MESH", "data": "x"}), sync.encode_value([1])):
        assert merges.material_list(base, bad, slots("stone", "rust")) is None
        assert merges.material_list(bad, slots("stone", "moss"), slots("stone", "rust")) is None


def constraint(props: dict, type_: str = "COPY_LOCATION") -> bytes:
    return sync.encode_value({"type": type_, "props": props})


def test_a_file_holding_meta_merges_per_field_with_its_file_as_one():
    def merged(kind: str, *docs: dict) -> dict | None:
        value = merges.FILE_METAS[kind](*(sync.encode_value(d) for d in docs))
        return None if value is None else sync.decode_value(value)

    image = {
        "name": "Wood",
        "source": "FILE",
        "size": [4, 4],
        "colorspace": "sRGB",
        "alpha_mode": "STRAIGHT",
        "generated": None,
        "sha256": "a" * 64,
    }
    colour = {**image, "colorspace": "Non-Color"}
    renamed = {**image, "name": "Oak", "alpha_mode": "PREMUL"}
    new_file = {**image, "size": [8, 8], "sha256": "b" * 64}
    other_file = {**image, "size": [2, 2], "sha256": "c" * 64}
    assert merged("img", image, colour, renamed) == {**renamed, "colorspace": "Non-Color"}
    # Ours' new file (size and hash together) beside theirs' colour space and the reverse.
    assert merged("img", image, new_file, colour) == {**colour, "size": [8, 8], "sha256": "b" * 64}
    assert merged("img", image, colour, new_file) == {**new_file, "colorspace": "Non-Color"}
    # Both changed the file: theirs whole (never ours' size with theirs' hash).
    assert merged("img", image, new_file, other_file) is None
    assert merged("img", image, {**image, "size": [2, 2]}, other_file | {"size": [4, 4]}) is None
    assert merged("img", image, image, colour) is None  # nothing of ours
    clip = {"name": "Plate", "source": "SEQUENCE", "file": "a.png", "colorspace": "sRGB"}
    clip |= {"props": {"frame_offset": 0, "frame_start": 1}, "sha256": "a" * 64, "files": [["a.png", b"x"]]}
    ours = {**clip, "props": {"frame_offset": 3, "frame_start": 1}}
    theirs = {**clip, "props": {"frame_offset": 0, "frame_start": 10}, "sha256": "b" * 64, "files": []}
    assert merged("clip", clip, ours, theirs) == {**theirs, "props": {"frame_offset": 3, "frame_start": 10}}
    assert merges.FILE_METAS["img"](b"\xc1", sync.encode_value(colour), sync.encode_value(image)) is None


def test_a_lattice_or_light_probe_meta_merges_per_setting():
    def merged(*docs: dict) -> dict | None:
        value = merges.meta_settings(*(sync.encode_value(d) for d in docs))
        return None if value is None else sync.decode_value(value)

    props = {"interpolation_type_u": "KEY_BSPLINE", "use_outside": False}
    lattice = {"name": "Cage", "size": [2, 2, 2], "props": props}
    ours = {**lattice, "props": {**props, "interpolation_type_u": "KEY_LINEAR"}}
    theirs = {**lattice, "name": "Cage2", "props": {**props, "use_outside": True}}
    assert merged(lattice, ours, theirs) == {
        "name": "Cage2",
        "size": [2, 2, 2],
        "props": {"interpolation_type_u": "KEY_LINEAR", "use_outside": True},
    }
    # Resized by ours: its points (another key) may be theirs' at the old size, so the meta is theirs too.
    assert merged(lattice, {**lattice, "size": [3, 2, 2]}, theirs) is None
    assert merged(lattice, ours, {**theirs, "size": [3, 2, 2]})["size"] == [3, 2, 2]
    probe = {"name": "Probe", "type": "SPHERE", "props": {"falloff": 0.2, "influence_distance": 2.5}}
    assert merged(probe, {**probe, "name": "P"}, {**probe, "type": "PLANE"}) is None  # another type: theirs


def test_two_settings_of_one_constraint_or_view_layer_both_stay():
    base = constraint({"use_x": True, "influence": 1.0})
    ours, theirs = (
        constraint({"use_x": False, "influence": 1.0}),
        constraint({"use_x": True, "influence": 0.5}),
    )
    assert sync.decode_value(merges.settings(base, ours, theirs))["props"] == {
        "use_x": False,
        "influence": 0.5,
    }
    assert merges.settings(base, ours, constraint({"use_x": True}, "COPY_ROTATION")) is None  # replaced
    assert merges.settings(base, base, theirs) is None  # nothing of ours
    layer = {"props": {"use": True, "samples": 0}, "aovs": [["AO", "VALUE"]], "lightgroups": []}
    mine = {**layer, "aovs": [["AO", "VALUE"], ["Mask", "COLOR"]]}
    their = {**layer, "props": {"use": True, "samples": 16}}
    merged = sync.decode_value(merges.settings(*(sync.encode_value(d) for d in (layer, mine, their))))
    assert merged == {**mine, "props": {"use": True, "samples": 16}}
    for bad in (
        None,
        b"\xc1",
        sync.encode_value({"props": 1}),
        sync.encode_value({"type": "X"}),
        sync.encode_value([]),
    ):
        assert merges.settings(base, bad, theirs) is None
        assert merges.settings(bad, ours, theirs) is None
        assert merges.settings(base, ours, bad) is None


def _painted(pixels: bytes, channels: int = 4, is_float: bool = False) -> dict:
    stride = channels * (4 if is_float else 1)
    return {"size": [len(pixels) // stride, 1], "channels": channels, "float": is_float, "pixels": pixels}


def _image(painted: dict | None, sha: str | None = None) -> bytes:
    return sync.encode_value({"sha256": sha, "painted": painted})


PIXEL_LAYOUTS = st.sampled_from([(4, False), (3, False), (1, False), (4, True), (1, True)])


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_painted_pixels_merge_per_pixel(data):
    """Every pixel is ours where only we changed it, theirs where they did (and where both did); nothing to
    merge when that is theirs whole."""
    channels, is_float = data.draw(PIXEL_LAYOUTS)
    stride = channels * (4 if is_float else 1)
    count = data.draw(st.integers(1, 12))
    pixel = st.binary(min_size=stride, max_size=stride)
    base = [data.draw(pixel) for _ in range(count)]
    ours = [data.draw(st.one_of(st.just(p), pixel)) for p in base]
    theirs = [data.draw(st.one_of(st.just(p), pixel)) for p in base]
    values = [_image(_painted(b"".join(px), channels, is_float)) for px in (base, ours, theirs)]
    merged = merges.image_data(*values)
    expected = [o if o != b and t == b else t for b, o, t in zip(base, ours, theirs, strict=True)]
    kept = b"".join(theirs) if merged is None else sync.decode_value(merged)["painted"]["pixels"]
    assert kept == b"".join(expected)
    assert (merged is None) == (expected == theirs)


def test_two_strokes_into_one_unsaved_image_both_stay():
    red, green, blue, white = b"\xff\0\0\xff", b"\0\xff\0\xff", b"\0\0\xff\xff", b"\xff" * 4
    base = _image(_painted(white * 4))
    ours = _image(_painted(red + white * 3))
    theirs = _image(_painted(white * 2 + green + white))
    assert (
        sync.decode_value(merges.image_data(base, ours, theirs))["painted"]["pixels"]
        == red + white + green + white
    )
    # A pixel both painted is theirs.
    clash = _image(_painted(blue + white * 3))
    assert merges.image_data(base, ours, clash) is None


UNMERGEABLE = [
    (
        "painted into a saved image",
        _image(None),
        _image(_painted(b"\1" * 8)),
        _image(_painted(b"\2" * 8)),
    ),
    ("they saved", _image(_painted(b"\0" * 8)), _image(_painted(b"\1" * 8)), _image(None, "new file")),
    (
        "they changed the file we painted over",
        _image(None, "f"),
        _image(_painted(b"\1" * 8), "f"),
        _image(None, "g"),
    ),
    ("they threw it away", _image(_painted(b"\0" * 8)), _image(_painted(b"\1" * 8)), _image(None)),
    (
        "another size",
        _image(_painted(b"\0" * 8)),
        _image(_painted(b"\1" * 8)),
        _image({**_painted(b"\2" * 8), "size": [1, 2]}),
    ),
    (
        "another channel count",
        _image(_painted(b"\0" * 8)),
        _image(_painted(b"\1" * 8)),
        _image(_painted(b"\2" * 8, 1)),
    ),
    (
        "floats",
        _image(_painted(b"\0" * 8)),
        _image(_painted(b"\1" * 8)),
        _image(_painted(b"\2" * 8, 1, True)),
    ),
    ("not pixels", _image(_painted(b"\0" * 8)), _image(_painted(b"\1" * 8)), _image({"pixels": "x"})),
    ("files", _image(_painted(b"\0" * 8)), _image(_painted(b"\1" * 8)), sync.encode_value({"files": []})),
    ("made by one", None, _image(_painted(b"\1" * 8)), _image(_painted(b"\2" * 8))),
    ("unreadable", b"\xc1", _image(_painted(b"\1" * 8)), _image(_painted(b"\2" * 8))),
]


@pytest.mark.parametrize(
    ("why", "base", "ours", "theirs"), UNMERGEABLE, ids=[case[0] for case in UNMERGEABLE]
)
def test_painted_pixels_that_cannot_be_merged_are_theirs(why, base, ours, theirs):
    assert merges.image_data(base, ours, theirs) is None, why


def test_our_painting_over_a_file_they_did_not_change_is_kept_with_their_other_fields():
    base = sync.encode_value({"sha256": "f", "bytes": b"PNG", "painted": None})
    ours = sync.encode_value({"sha256": "f", "bytes": b"PNG", "painted": _painted(b"\1" * 8)})
    assert sync.decode_value(merges.image_data(base, ours, base))["painted"] == _painted(b"\1" * 8)


def test_two_paintings_of_a_saved_image_merge_against_what_it_shows_saved():
    red, green, white = b"\xff\0\0\xff", b"\0\xff\0\xff", b"\xff" * 4
    base, saved = _image(None, "f"), _painted(white * 4)
    ours = _image(_painted(red + white * 3), "f")
    theirs = _image(_painted(white * 2 + green + white), "f")
    asked = []
    merged = merges.image_data(base, ours, theirs, lambda: asked.append(1) or saved)
    assert sync.decode_value(merged)["painted"]["pixels"] == red + white + green + white and asked == [1]
    assert merges.image_data(base, ours, theirs) is None  # nothing to compare with: theirs
    assert merges.image_data(base, ours, theirs, lambda: None) is None  # the image is gone here
    # With unsaved pixels in the base, the saved image is not asked for.
    painted_base = _image(_painted(white * 4), "f")
    assert merges.image_data(painted_base, ours, theirs, lambda: asked.append(2)) is not None and asked == [1]


def test_two_artists_camera_backgrounds_both_stay():
    """Ours fades the plate and adds a background, theirs moves the plate and sets the clip slot's depth:
    all of it, applied and read back as merged; a list either edit shortened, or the same setting of one
    background changed by both, is theirs."""
    import bpy
    from scene_builders import build_camera, reset_scene

    reset_scene()
    build_camera()
    cam = bpy.data.cameras["Cam"]
    values = sync.serialise_scene()
    key = f"cam/{sync.peek_uuid(cam)}/bg"
    base = values[key]

    def edited(edit) -> bytes:
        sync.apply_ops([(key, base)])  # back to the base
        edit(cam.background_images)
        return sync.serialise_scene()[key]

    def ours_edit(backgrounds):
        backgrounds[0].alpha = 0.9
        backgrounds.new().scale = 2.0

    def theirs_edit(backgrounds):
        backgrounds[0].offset = (0.5, 0.5)
        backgrounds[1].display_depth = "FRONT"

    ours, theirs = edited(ours_edit), edited(theirs_edit)
    assert merges.merger(key) is merges.camera_backgrounds
    merged = sync.decode_value(merges.camera_backgrounds(base, ours, theirs))
    assert len(merged) == 3
    assert merged[0]["alpha"] == pytest.approx(0.9) and merged[0]["offset"] == pytest.approx([0.5, 0.5])
    assert merged[1]["display_depth"] == "FRONT" and merged[2]["scale"] == pytest.approx(2.0)
    sync.apply_ops([(key, sync.encode_value(merged))])
    assert sync.decode_value(sync.serialise_scene()[key]) == merged
    shortened = edited(lambda backgrounds: backgrounds.remove(backgrounds[1]))
    assert merges.camera_backgrounds(base, shortened, theirs) is None
    assert merges.camera_backgrounds(base, ours, shortened) is None
    faded = edited(lambda backgrounds: setattr(backgrounds[0], "alpha", 0.1))
    assert merges.camera_backgrounds(base, faded, edited(lambda b: setattr(b[0], "alpha", 0.2))) is None
    assert merges.camera_backgrounds(base, sync.encode_value({"a": 1}), theirs) is None


def _text(*lines: str) -> dict:
    return {"content": "".join(lines)}


def _merged_text(base: dict, ours: dict, theirs: dict) -> str | None:
    out = merges.merger("text/0123456789abcdef0123456789abcdef/body")(
        *(sync.encode_value(doc) for doc in (base, ours, theirs))
    )
    return None if out is None else sync.decode_value(out)["content"]


def test_two_edits_of_one_text_keep_both_line_by_line():
    base = _text("import bpy\n", "\n", "def rig():\n", "    pass\n", "\n", "rig()\n")
    ours = _text("import bpy\n", "import math\n", "\n", "def rig():\n", "    pass\n", "\n", "rig()\n")
    theirs = _text("import bpy\n", "\n", "def rig():\n", "    return 1\n", "\n", "rig()\n", "# done\n")
    assert _merged_text(base, ours, theirs) == (
        "import bpy\nimport math\n\ndef rig():\n    return 1\n\nrig()\n# done\n"
    )
    # Both changed one line differently: theirs, then ours; alike: once.
    assert _merged_text(_text("a\n", "b\n"), _text("a\n", "B1\n"), _text("a\n", "B2\n")) == "a\nB2\nB1\n"
    assert _merged_text(_text("a\n", "b\n"), _text("a\n", "B\n"), _text("a\n", "B\n")) is None  # theirs
    # A last line without a newline stays a line of its own, and stays without one when both left it so.
    assert _merged_text(_text("a\n", "b"), _text("A\n", "b"), _text("a\n", "b\n", "c")) == "A\nb\nc"
    assert _merged_text(_text(""), _text("x"), _text("y")) == "y\nx"
    # Not text, or too long to match: theirs.
    assert _merged_text({"content": 1}, _text("a"), _text("b")) is None
    many = _text(*(f"{i}\n" for i in range(merges.MAX_MERGED_LINES + 1)))
    assert _merged_text(many, _text("a\n"), many) is None
    # The longest merged, and lines of any characters (Windows line ends, NUL, pattern characters).
    most = [f"{i}\n" for i in range(merges.MAX_MERGED_LINES - 1)]  # ours, with its line: the most
    assert _merged_text(_text(*most), _text("top\n", *most), _text(*most[:-1], "end\n")) == "".join(
        ["top\n", *most[:-1], "end\n"]
    )
    odd = _text("a*b\r\n", "c/d\x00\r\n")
    assert _merged_text(odd, _text("a*b\r\n", "c/d\x00\r\n", "+\n"), _text("x\r\n", "c/d\x00\r\n")) == (
        "x\r\nc/d\x00\r\n+\n"
    )


lines = st.lists(st.sampled_from(["a\n", "b\n", "\n", "}\n", "x = 1\n"]), max_size=12)


@settings(max_examples=200, deadline=None)
@given(lines, lines, lines, lines)
def test_edits_on_either_side_of_a_line_both_kept_are_both_kept(before, after, ours_part, theirs_part):
    """Ours changes what comes before a line both keep, theirs what comes after it: the merge is both
    edits; an edit against an unchanged side is that edit."""
    anchor = ["ANCHOR\n"]
    base = before + anchor + after
    ours, theirs = ours_part + anchor + after, before + anchor + theirs_part
    merged = three_way.merge_lines(base, ours, theirs)
    assert merged == ours_part + anchor + theirs_part
    assert three_way.merge_lines(base, base, theirs) == theirs
    assert three_way.merge_lines(base, ours, base) == ours
    assert three_way.merge_lines(base, ours, ours) == ours
