"""A scene's Freestyle look between artists, each a Blender process (artist.py) through a real
``blendsync serve``: line styles with their modifier stacks, texture slot, node tree and animation, and the
view layer's line sets drawing with them."""

from __future__ import annotations

import importlib.util

import pytest

if importlib.util.find_spec("bpy") is None:  # found without importing it: this process needs no Blender
    pytest.skip("bpy (Blender as a Python module) is not installed", allow_module_level=True)
from test_addon_multiprocess import (  # noqa: F401 (fixtures)
    artists,
    builders,
    converge,
    observed_everywhere,
    server,
    start_room,
)

pytestmark = [pytest.mark.blender, pytest.mark.timeout(180)]

BUILDERS = builders("style_builders")
OBSERVED = "__import__('style_builders').observed()"


def test_line_styles_built_edited_removed_and_joined_late(server, artists):  # noqa: F811
    _, address = server
    ana, ben, cleo = artists("ana", "ben", "cleo")
    ana.call("edit", script=BUILDERS + "style_builders.build_linestyle()\n")
    built = ana.call("eval", expr=OBSERVED)["value"]
    start_room(address, ana, [ben])
    converge([ana, ben])
    ben.call("edit", script=BUILDERS)  # the builders importable for eval
    assert observed_everywhere([ana, ben], "style_builders") == built

    # Ben renames Ink, edits its settings and stacks (a ramp stop, a new modifier, one removed, one moved)
    # and points the second line set at it; Ana edits the first line set at the same time.
    ben.send(
        "edit",
        script=BUILDERS + "ink = bpy.data.linestyles['Ink']\n"
        "ink.name = 'Ink Bold'\n"
        "ink.thickness_ratio, ink.caps = 0.75, 'SQUARE'\n"
        "ink.color_modifiers['Fade'].color_ramp.elements[1].position = 0.6\n"
        "ink.alpha_modifiers.new('Fog', 'DISTANCE_FROM_CAMERA').range_max = 40.0\n"
        "ink.thickness_modifiers.remove(ink.thickness_modifiers['Jitter'])\n"
        "style_builders.move_modifier('Ink Bold', 'geometry', 'Wave', 'UP')\n"
        "bpy.context.view_layer.freestyle_settings.linesets['Hidden'].linestyle = ink\n",
    )
    ana.send("edit", script="bpy.context.view_layer.freestyle_settings.linesets['Outline'].qi_end = 6\n")
    ana.recv(), ben.recv()
    converge([ana, ben])
    edited = observed_everywhere([ana, ben], "style_builders")
    styles = {style[0]: style for style in edited[0]}
    assert sorted(styles) == ["Faint", "Ink Bold"]
    ink = styles["Ink Bold"]
    assert ink[2:4] == [0.75, "SQUARE"]
    assert [m[0] for m in ink[5]["alpha"]] == ["Slant", "Fog"]
    assert [m[0] for m in ink[5]["thickness"]] == ["Pen"]
    assert [m[0] for m in ink[5]["geometry"]] == ["Wave", "Resample"]
    assert ink[5]["color"][0][3][1][0] == 0.6
    assert edited[1][0][2] == [
        ["Outline", "Ink Bold", True, 6, "Inked"],
        ["Hidden", "Ink Bold", False, 100, None],
    ]

    # Ana removes Faint, which no line set uses any more, and turns the nodes of Ink Bold off.
    ana.call(
        "edit",
        script="bpy.data.linestyles.remove(bpy.data.linestyles['Faint'])\n"
        "bpy.data.linestyles['Ink Bold'].use_nodes = False\n",
    )
    converge([ana, ben])
    removed = observed_everywhere([ana, ben], "style_builders")
    assert [style[0] for style in removed[0]] == ["Ink Bold"] and removed[0][0][4] is False

    # A late joiner gets the same look.
    cleo.call("connect", servers=address)
    cleo.call("join", room="shot")
    converge([ana, ben, cleo])
    cleo.call("edit", script=BUILDERS)
    assert observed_everywhere([ana, ben, cleo], "style_builders") == removed
