"""Painting an image between real Blender processes through a real ``blendsync serve`` (paint_watch.py):
Blender reports nothing when pixels are written, so the sync loop finds the first stroke by the image
becoming unsaved, later strokes by reading the image while the artist is in Texture Paint mode, the last
one when she leaves it, a bake's by its handler; saving travels, the other artist paints back, and a late
joiner gets the file and the unsaved pixels over it."""

from __future__ import annotations

import pytest
from test_addon_multiprocess import artists, builders, converge, server, start_room  # noqa: F401 - fixtures

pytestmark = [pytest.mark.blender, pytest.mark.timeout(180)]

SETUP = builders("paint_builders") + "from paint_builders import canvas, stroke\n"
SHA = "__import__('paint_builders').pixels_sha('Canvas')"
PAINTING = "bpy.context.mode == 'PAINT_TEXTURE'"
# Ana's safety-net audit is switched off: it reads a small image now and then, and would find her strokes
# whatever the sync loop does about painting.
NO_AUDIT = "import blender_addon\nblender_addon.session.current().tracker.audit = lambda *args: ({}, [])\n"


def sees(artist, sha: str) -> bool:
    return artist.call("pump_until", expr=f"{SHA} == {sha!r}", timeout=10)["met"]


def ana_paints(ana, ben, script: str) -> str:
    """Ana runs ``script`` (its own pump included) and pumps on for a second, as her Blender's timer
    would; Ben then sees what she painted. Returns it."""
    ana.call("edit", script=SETUP + script)
    ana.call("pump_until", expr="False", timeout=1.0)
    sha = ana.call("eval", expr=SHA)["value"]
    assert sees(ben, sha)
    return sha


def test_strokes_travel_while_painting_and_saving_travels_too(server, artists):  # noqa: F811
    _, address = server
    ana, ben = artists("ana", "ben")
    ana.call("edit", script=SETUP + "canvas('Canvas', size=64)\n")
    start_room(address, ana, [ben])
    ana.call("edit", script=NO_AUDIT)
    converge([ana, ben])
    blank = ben.call("eval", expr=SHA)["value"]

    # The first stroke, in object mode: the image becomes unsaved.
    first = ana_paints(ana, ben, "stroke('Canvas', 2, 2, 8, (1.0, 0.0, 0.0, 1.0))\n")
    assert first != blank and ben.call("eval", expr="bpy.data.images['Canvas'].is_dirty")["value"]

    # In Texture Paint mode, a stroke into the image already unsaved: read while she paints.
    ana.call("edit", script="bpy.ops.object.mode_set(mode='TEXTURE_PAINT')\n")
    ana_paints(ana, ben, "stroke('Canvas', 20, 20, 8, (0.0, 1.0, 0.0, 1.0))\n")
    assert ana.call("eval", expr=PAINTING)["value"]

    # Her last stroke and leaving Texture Paint mode in one go: sent as she stops painting.
    leave = "bpy.ops.object.mode_set(mode='OBJECT')\n"
    last = ana_paints(ana, ben, "stroke('Canvas', 40, 40, 8, (0.0, 0.0, 1.0, 1.0))\n" + leave)

    # A bake into the unsaved image (outside Paint mode): found through Blender's bake handler.
    baked = ana_paints(
        ana,
        ben,
        "stroke('Canvas', 50, 2, 8, (1.0, 1.0, 0.0, 1.0))  # what the bake wrote\n"
        "for handler in bpy.app.handlers.object_bake_complete:\n"
        "    handler(bpy.context.scene)\n",
    )
    assert len({blank, first, last, baked}) == 4

    # Saved into the file (packed): Ben holds the same file, nothing unsaved.
    ana.call("edit", script="bpy.data.images['Canvas'].pack()\n")
    converge([ana, ben])
    image = "bpy.data.images['Canvas']"
    saved = ben.call("eval", expr=f"[{image}.is_dirty, {image}.packed_file is not None]")["value"]
    assert saved == [False, True]
    assert ben.call("eval", expr=SHA)["value"] == baked

    # Ben paints the saved image back: Ana sees his stroke over the file.
    ben.call("edit", script=SETUP + "stroke('Canvas', 30, 30, 4, (1.0, 1.0, 1.0, 1.0))\n")
    ben.call("pump_until_idle", quiet=0.3)
    his = ben.call("eval", expr=SHA)["value"]
    assert sees(ana, his) and his != baked
    converge([ana, ben])

    # A late joiner gets the file and the unsaved pixels over it.
    (cleo,) = artists("cleo")
    cleo.call("connect", servers=address)
    cleo.call("join", room="shot")
    converge([ana, ben, cleo])
    assert cleo.call("eval", expr=SHA)["value"] == his
    assert cleo.call("eval", expr=f"[{image}.is_dirty, {image}.packed_file is not None]")["value"] == [
        True,
        True,
    ]
