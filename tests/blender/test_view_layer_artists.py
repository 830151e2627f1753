"""A scene's view layers between artists, each a Blender process (artist.py) through a real ``blendsync
serve``: a lighter's render layers with their passes, overrides, AOVs and each collection's flags, edited by
two artists at once, and a late joiner."""

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

BUILDERS = builders("layer_builders")
OBSERVED = "__import__('layer_builders').observed()"
LOOKS_THROUGH = "bpy.context.window.view_layer.name"


def test_view_layers_built_edited_at_once_and_joined_late(server, artists):  # noqa: F811
    _, address = server
    ana, ben, cleo = artists("ana", "ben", "cleo")
    ana.call("edit", script=BUILDERS + "layer_builders.build_view_layers()\n")
    built = ana.call("eval", expr=OBSERVED)["value"]
    start_room(address, ana, [ben])
    converge([ana, ben])
    ben.call("edit", script=BUILDERS)  # the builders importable for eval
    assert observed_everywhere([ana, ben], "layer_builders") == built

    # Ben adds Rim, excludes Stage in it and makes a collection Fx, a holdout in Beauty; Ana renames Shadow
    # and changes its passes at the same time.
    ben.send(
        "edit",
        script=BUILDERS + "scene = bpy.context.scene\n"
        "rim = scene.view_layers.new('Rim')\n"
        "rim.use_pass_emit = True\n"
        "layer_builders.layer_collection(rim, 'Stage').exclude = True\n"
        "scene.collection.children.link(bpy.data.collections.new('Fx'))\n"
        "layer_builders.layer_collection(scene.view_layers['Beauty'], 'Fx').holdout = True\n",
    )
    ana.send(
        "edit",
        script="shadow = bpy.context.scene.view_layers['Shadow']\n"
        "shadow.name = 'Occlusion'\n"
        "shadow.use_pass_uv = True\n"
        "shadow.samples = 32\n",
    )
    ana.recv(), ben.recv()
    converge([ana, ben])
    edited = observed_everywhere([ana, ben], "layer_builders")
    layers = {layer[0]: layer for layer in edited[0][1]}
    assert sorted(layers) == ["Beauty", "Occlusion", "Rim"]
    assert layers["Occlusion"][2] == 32 and "use_pass_uv" in layers["Occlusion"][3]
    assert layers["Occlusion"][6:9] == ["Clay", "Grey", [["dirt", "VALUE"], ["tint", "COLOR"]]]
    assert layers["Occlusion"][-1] == ["Contour"]  # its line set came along under the new name
    assert ["Stage", [True, False, False, False]] in layers["Rim"][10]
    assert ["Fx", [False, True, False, False]] in layers["Beauty"][10]

    # Ben looks through Rim (his own); Ana takes Fx's holdout off again.
    ben.call("edit", script="bpy.context.window.view_layer = bpy.context.scene.view_layers['Rim']\n")
    ana.call(
        "edit",
        script=BUILDERS + "layer_builders.layer_collection(bpy.context.scene.view_layers['Beauty'], 'Fx')"
        ".holdout = False\n",
    )
    converge([ana, ben])
    final = observed_everywhere([ana, ben], "layer_builders")
    assert ["Fx", [False, True, False, False]] not in final[0][1][0][10]

    # A late joiner gets the same view layers; which one each artist looks through stays theirs.
    cleo.call("connect", servers=address)
    cleo.call("join", room="shot")
    converge([ana, ben, cleo])
    cleo.call("edit", script=BUILDERS)
    assert observed_everywhere([ana, ben, cleo], "layer_builders") == final
    assert ben.call("eval", expr=LOOKS_THROUGH)["value"] == "Rim"
    assert ana.call("eval", expr=LOOKS_THROUGH)["value"] == "Beauty"
