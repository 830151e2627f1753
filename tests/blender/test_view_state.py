"""Each artist's own view (active camera, current frame, preview range, viewport shading), and the room
panel's "follow the shared camera and frame", across real Blender processes and a real server."""

from __future__ import annotations

import importlib.util

import pytest

if importlib.util.find_spec("bpy") is None:  # found without importing it: this process needs no Blender
    pytest.skip("bpy (Blender as a Python module) is not installed", allow_module_level=True)
from support import ServerProcess
from test_addon_multiprocess import Artist, converge

pytestmark = [pytest.mark.blender, pytest.mark.timeout(300)]

SCENE = """
scene = bpy.context.scene
for name in ("CamA", "CamB"):
    scene.collection.objects.link(bpy.data.objects.new(name, bpy.data.cameras.new(name)))
scene.camera = bpy.data.objects["CamA"]
scene.frame_current = 1
scene.collection.objects.link(bpy.data.objects.new("Prop", None))
"""

VIEW = (
    "(bpy.context.scene.camera.name, bpy.context.scene.frame_current, bpy.context.scene.use_preview_range,"
    " bpy.context.scene.frame_preview_start, bpy.context.scene.frame_preview_end,"
    ' [a.spaces.active.shading.type for a in bpy.context.screen.areas if a.type == "VIEW_3D"][0])'
)
START = ["CamA", 1, False, 0, 0, "SOLID"]


def change_view(camera: str, frame: int, shading: str, prop_x: float) -> str:
    """A view change plus an ordinary edit in the same pump (it must still travel)."""
    return f"""
scene = bpy.context.scene
scene.camera = bpy.data.objects["{camera}"]
scene.frame_current = {frame}
scene.use_preview_range = True
scene.frame_preview_start = {frame - 5}
scene.frame_preview_end = {frame + 5}
for area in bpy.context.screen.areas:
    if area.type == "VIEW_3D":
        area.spaces.active.shading.type = "{shading}"
bpy.data.objects["Prop"].location.x = {prop_x}
"""


@pytest.fixture
def artists(tmp_path):
    process = ServerProcess(tmp_path / "data")
    host, port = process.start()
    people = [Artist(name, tmp_path) for name in ("ana", "ben")]
    try:
        for artist in people:
            assert artist.recv(timeout=60).get("ready")
            artist.call("connect", servers=f"{host}:{port}")
        ana, ben = people
        ana.call("edit", script=SCENE)
        ana.call("create_room", room="views", keep_open=True, send_scene=True)
        ana.call("pump_until_idle", quiet=0.1)
        ben.call("join", room="views")
        converge(people)
        yield ana, ben
    finally:
        for artist in people:
            try:
                artist.close()
            except Exception:
                artist.proc.kill()
        process.kill()


def view(artist) -> list:
    return artist.call("eval", expr=VIEW)["value"]


def prop_x(artist) -> float:
    return artist.call("eval", expr='bpy.data.objects["Prop"].location.x')["value"]


def test_the_view_is_each_artists_own_by_default(artists):
    ana, ben = artists
    assert view(ana) == view(ben) == START  # a joiner starts from the room's view
    ana.call("edit", script=change_view("CamB", 30, "WIREFRAME", 2.0))
    converge([ana, ben])  # the scene hash leaves the view out
    assert view(ana) == ["CamB", 30, True, 25, 35, "WIREFRAME"]
    assert view(ben) == START
    assert prop_x(ben) == 2.0  # the ordinary edit of the same pump travelled
    ben.call("edit", script=change_view("CamB", 7, "MATERIAL", 3.0))
    converge([ana, ben])
    assert view(ana) == ["CamB", 30, True, 25, 35, "WIREFRAME"] and prop_x(ana) == 3.0


def test_following_shares_the_view_and_stopping_keeps_it_apart(artists):
    ana, ben = artists
    ana.call("edit", script=change_view("CamB", 30, "WIREFRAME", 2.0))  # before following: hers alone
    converge([ana, ben])
    for artist in (ana, ben):
        artist.call("eval", expr="session.follow_view(True)")
        artist.call("pump_until_idle", quiet=0.1)
    assert view(ana) == view(ben) == START  # following adopts the room's view
    ana.call("edit", script=change_view("CamB", 40, "WIREFRAME", 2.0))
    converge([ana, ben])
    assert view(ben) == ["CamB", 40, True, 35, 45, "WIREFRAME"]
    ben.call("edit", script=change_view("CamA", 60, "MATERIAL", 4.0))
    converge([ana, ben])
    assert view(ana) == ["CamA", 60, True, 55, 65, "MATERIAL"]

    ben.call("eval", expr="session.follow_view(False)")
    ana.call("edit", script=change_view("CamB", 80, "SOLID", 5.0))
    converge([ana, ben])
    assert view(ben) == ["CamA", 60, True, 55, 65, "MATERIAL"] and prop_x(ben) == 5.0
    ben.call("edit", script=change_view("CamB", 9, "WIREFRAME", 6.0))  # not following: hers stays
    converge([ana, ben])
    assert view(ana) == ["CamB", 80, True, 75, 85, "SOLID"] and prop_x(ana) == 6.0
