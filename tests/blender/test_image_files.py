"""Images of several files (kinds/images.py): a tiled (UDIM) image, an image sequence and a movie travel as
every file's name and bytes; a receiver packs a tiled image's tiles and keeps a sequence's frames and a
movie in a folder named by their content."""

from __future__ import annotations

import os
import tempfile

import pytest

bpy = pytest.importorskip("bpy", reason="bpy (Blender as a Python module) is not installed")

from detail_builders import build_udim_image  # noqa: E402
from replicas import applied_one_at_a_time, edit_batch, replica  # noqa: E402
from scene_builders import image_sequence, link, reset_scene, triangle_mesh  # noqa: E402

from blender_addon import sync  # noqa: E402

pytestmark = pytest.mark.blender


def movie_file() -> str:
    """A three-frame 16 x 16 MPEG-4 movie rendered with Workbench (the scene's render settings are changed:
    call before reset_scene)."""
    scene = bpy.context.scene
    render = scene.render
    render.engine = "BLENDER_WORKBENCH"
    render.resolution_x = render.resolution_y = 16
    scene.frame_start, scene.frame_end = 1, 3
    render.image_settings.media_type = "VIDEO"
    render.image_settings.file_format = "FFMPEG"
    render.ffmpeg.format, render.ffmpeg.codec = "MPEG4", "H264"
    folder = tempfile.mkdtemp(prefix="movie-")
    render.filepath = os.path.join(folder, "shot_")
    camera = link(bpy.data.objects.new("Movie camera", bpy.data.cameras.new("Movie camera")))
    scene.camera = camera
    bpy.ops.render.render(animation=True)
    (name,) = os.listdir(folder)
    return os.path.join(folder, name)


def textured(name: str, image: bpy.types.Image) -> None:
    """An object whose material shows ``image`` through an image texture node."""
    mat = bpy.data.materials.new(name)
    mat.node_tree.nodes.new("ShaderNodeTexImage").image = image
    mesh = triangle_mesh(name)
    mesh.materials.append(mat)
    link(bpy.data.objects.new(name, mesh))


def build_tiled() -> bpy.types.Image:
    build_udim_image()
    return bpy.data.images["Skin"]


def tile_files(img: bpy.types.Image) -> list[tuple[str, bytes]]:
    """A tiled image's files as Blender holds them: packed, or on disk."""
    if len(img.packed_files):
        return sorted((os.path.basename(pf.filepath), bytes(pf.packed_file.data)) for pf in img.packed_files)
    out = []
    for tile in img.tiles:
        path = bpy.path.abspath(img.filepath).replace("<UDIM>", str(tile.number))
        with open(path, "rb") as fh:
            out.append((os.path.basename(path), fh.read()))
    return sorted(out)


def test_a_tiled_image_reaches_a_joiner_in_any_arrival_order_and_is_packed_there():
    reset_scene()
    sent = tile_files(build_tiled())
    assert [name for name, _ in sent] == ["skin.1001.png", "skin.1002.png", "skin.1011.png"]
    before = sync.scene_hash()
    ops = list(sync.serialise_scene().items())
    for order in (ops, ops[::-1]):
        applied_one_at_a_time(order)
        skin = bpy.data.images["Skin"]
        assert skin.source == "TILED" and len(skin.packed_files) == 3
        assert [(t.number, t.label) for t in skin.tiles] == [(1001, "1001"), (1002, "Face"), (1011, "1011")]
        assert tile_files(skin) == sent
        assert bpy.data.materials["Head"].node_tree.nodes["Image Texture"].image == skin
        assert tuple(skin.size) == (4, 4)
        assert sync.scene_hash() == before
    replica(dict(ops))  # a receiver reads back what it was sent: nothing to echo


def test_an_image_sequence_and_a_movie_reach_a_joiner_and_a_changed_frame_travels():
    movie_path = movie_file()
    reset_scene()
    first = image_sequence(count=3)
    frames = bpy.data.images.load(first, check_existing=False)
    frames.name, frames.source = "Frames", "SEQUENCE"
    textured("Screen", frames)
    movie = bpy.data.images.load(movie_path, check_existing=False)
    movie.name, movie.source = "Movie", "MOVIE"
    textured("Wall", movie)
    base = sync.serialise_scene()
    before = sync.scene_hash()
    sender = sync.ChangeTracker()
    sender.scan()

    def edit() -> None:  # the artist paints frame 2 again, on disk (no depsgraph report: the scan finds it)
        img = bpy.data.images.new("again", 4, 4)
        img.pixels = [1.0, 0.0, 0.0, 1.0] * 16
        img.filepath_raw = os.path.join(os.path.dirname(first), "shot_0002.png")
        img.file_format = "PNG"
        img.save()
        bpy.data.images.remove(img)

    batch = edit_batch(sender, edit)
    uuid = sync.get_uuid(frames)
    assert sorted(key for key, _ in batch) == [sync.make_key("img", uuid, p) for p in ("data", "meta")]
    after = sync.scene_hash()
    assert after != before

    receiver = replica(base)  # from here on, another artist
    received = bpy.data.images["Frames"]
    assert received.source == "SEQUENCE" and os.path.basename(received.filepath) == "shot_0001.png"
    folder = os.path.dirname(bpy.path.abspath(received.filepath))
    assert sorted(os.listdir(folder)) == ["shot_0001.png", "shot_0002.png", "shot_0003.png"]
    assert folder != os.path.dirname(first) and "blendsync-images" in folder
    assert bpy.data.images["Movie"].source == "MOVIE" and bpy.data.images["Movie"].frame_duration == 3
    assert bpy.data.materials["Wall"].node_tree.nodes["Image Texture"].image == bpy.data.images["Movie"]
    assert sync.scene_hash() == before
    assert sync.apply_ops(batch, tracker=receiver).errors == []
    assert sync.scene_hash() == after
    assert receiver.scan() == ({}, [])


def test_image_files_of_the_wrong_source_name_or_shape_are_refused_and_stop_nothing_else():
    """A set of files claiming a single-file source, a tiled one whose name has no <UDIM>, a file name with
    NUL: each value is refused (listed); a name with a folder in it keeps its last part; the rest of the batch
    applies."""
    reset_scene()
    build_tiled()
    base = sync.serialise_scene()
    replica(base)
    (data_key,) = [k for k in base if k.startswith("img/") and k.endswith("/data")]
    doc = sync.decode_value(base[data_key])
    head = sync.make_key("obj", sync.get_uuid(bpy.data.objects["Head"]), "location")
    nul = {"files": [["skin.\x00.png", b"x"]], "sha256": "0"}
    for bad in ({"source": "FILE"}, {"file": "skin.1001.png"}, nul):
        applier = sync.apply_ops(
            [(data_key, sync.encode_value({**doc, **bad})), (head, sync.encode_value([0.0, 0.0, 7.0]))]
        )
        assert [key for key, _ in applier.errors] == [data_key], bad
        assert bpy.data.objects["Head"].location.z == 7.0
        bpy.data.objects["Head"].location.z = 0.0
    moved = {**doc, "file": "../../etc/skin.<UDIM>.png", "sha256": "another"}
    assert sync.apply_ops([(data_key, sync.encode_value(moved))]).errors == []
    skin = bpy.data.images["Skin"]
    assert os.path.basename(skin.filepath) == "skin.<UDIM>.png" and "blendsync-images" in skin.filepath
