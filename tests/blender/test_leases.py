"""Selection leases ("lock what I select") across real Blender processes and a real server: the holder's
object cannot be changed by others (the edit is undone with a notice, also when it reached the server before
the lease was known), and the lease goes on deselect, on leaving the room and when the holder's connection
drops."""

from __future__ import annotations

import importlib.util
import time

import pytest

if importlib.util.find_spec("bpy") is None:  # found without importing it: this process needs no Blender
    pytest.skip("bpy (Blender as a Python module) is not installed", allow_module_level=True)
from support import ServerProcess
from test_addon_multiprocess import Artist, converge
from test_concurrent_artists import HoldingProxy

pytestmark = [pytest.mark.blender, pytest.mark.timeout(300)]

SCENE = """
scene = bpy.context.scene
for name in ("Pillar", "Other"):
    scene.collection.objects.link(bpy.data.objects.new(name, None))
"""
SELECT = """
for ob in bpy.context.view_layer.objects:
    ob.select_set(ob.name in {names})
"""
LOCATION = 'list(bpy.data.objects["Pillar"].location)'
LEASED = "sorted(session.leases.others)"
NOTICES = "[n.text for n in session.notices.items]"
UNDONE = "Pillar is locked by ana: your change was undone"
MOVE_BOTH = 'bpy.data.objects["Pillar"].location.x = 6.0\nbpy.data.objects["Other"].location.x = 1.0'


def select(artist, *names: str) -> None:
    """Select these objects only; pumped long enough for the lease request (sent with presence) to go."""
    artist.call("edit", script=SELECT.format(names=set(names) or "set()"))
    artist.call("pump_until_idle", quiet=0.25)


def move(artist, axis: int, value: float) -> None:
    artist.call("edit", script=f'bpy.data.objects["Pillar"].location[{axis}] = {value}')


def wait(artist, expr: str, expected, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while (value := artist.call("eval", expr=expr)["value"]) != expected:
        assert time.monotonic() < end, (artist.name, expr, value)
        artist.call("pump", times=5)


@pytest.fixture
def artists(tmp_path):
    """Ana (lock what I select) and Ben, who reaches the server through a proxy that can hold its answers."""
    process = ServerProcess(tmp_path / "data")
    host, port = process.start()
    proxy = HoldingProxy((host, port))
    people = [Artist(name, tmp_path) for name in ("ana", "ben")]
    try:
        for artist in people:
            assert artist.recv(timeout=60).get("ready")
        ana, ben = people
        ana.call("connect", servers=f"{host}:{port}", lock_selection=True)
        ben.call("connect", servers=f"127.0.0.1:{proxy.port}")
        ana.call("edit", script=SCENE)
        ana.call("create_room", room="leases", keep_open=True, send_scene=True)
        ana.call("pump_until_idle", quiet=0.1)
        ben.call("join", room="leases")
        converge(people)
        yield proxy, ana, ben
    finally:
        for artist in people:
            try:
                artist.close()
            except Exception:
                artist.proc.kill()
        proxy.close()
        process.kill()


def held_more_than(proxy, size: int) -> None:
    deadline = time.monotonic() + 20
    while proxy.held_bytes <= size:
        assert time.monotonic() < deadline, "the server sent nothing"
        time.sleep(0.01)


def test_a_leased_object_refuses_others_and_goes_on_deselect_leave_and_drop(artists):
    proxy, ana, ben = artists
    prefix = "obj/" + ana.call("eval", expr='bpy.data.objects["Pillar"]["blendsync_uuid"]')["value"] + "/"

    # Ben edits before he can know of Ana's new lease (what the server sends him is held): the server
    # refuses his batch; once he hears why, the Pillar edit is undone, told, and the Other edit goes again.
    proxy.hold()
    try:
        select(ana, "Pillar")
        wait(ana, "sorted(session.leases.mine)", [prefix])
        held_more_than(proxy, 0)  # locks_changed, held
        size = proxy.held_bytes
        ben.call("edit", script=MOVE_BOTH)
        held_more_than(proxy, size)  # the refusal, held
        assert ben.call("eval", expr=LEASED)["value"] == []
    finally:
        proxy.release()
    converge([ana, ben])
    for artist in (ana, ben):
        assert artist.call("eval", expr=LOCATION)["value"] == [0.0, 0.0, 0.0], artist.name
        assert artist.call("eval", expr='bpy.data.objects["Other"].location.x')["value"] == 1.0, artist.name
    assert ben.call("eval", expr=NOTICES)["value"] == [UNDONE]
    assert ben.call("eval", expr=LEASED)["value"] == [prefix]

    # Now that Ben knows of the lease, his edit is not even sent: undone, and told.
    batches = ben.call("state")["stats"]["batches"]
    move(ben, 0, 5.0)
    ben.call("pump_until_idle", quiet=0.2)
    assert ben.call("eval", expr=LOCATION)["value"] == [0.0, 0.0, 0.0]
    assert ben.call("eval", expr=NOTICES)["value"] == [UNDONE, UNDONE]
    assert ben.call("state")["stats"]["batches"] == batches
    move(ana, 1, 3.0)  # the holder edits
    converge([ana, ben])
    assert ben.call("eval", expr=LOCATION)["value"] == [0.0, 3.0, 0.0]

    # Deselecting releases it.
    select(ana)
    wait(ben, LEASED, [])
    move(ben, 0, 7.0)
    converge([ana, ben])
    assert ana.call("eval", expr=LOCATION)["value"] == [7.0, 3.0, 0.0]

    # Leaving the room releases it.
    select(ana, "Pillar")
    wait(ben, LEASED, [prefix])
    ana.call("leave")
    wait(ben, LEASED, [])
    move(ben, 0, 8.0)
    ben.call("pump_until_idle", quiet=0.2)
    assert ben.call("state")["unacked"] == 0 and ben.call("eval", expr=LOCATION)["value"] == [8.0, 3.0, 0.0]

    # A dropped connection releases it: Ana's Blender dies while she holds it.
    ana.call("join", room="leases")
    select(ana, "Pillar")
    wait(ben, LEASED, [prefix])
    ana.proc.kill()
    wait(ben, LEASED, [])
    move(ben, 0, 9.0)
    ben.call("pump_until_idle", quiet=0.2)
    assert ben.call("state")["unacked"] == 0 and ben.call("eval", expr=LOCATION)["value"] == [9.0, 3.0, 0.0]
    assert ben.call("eval", expr=NOTICES)["value"] == [UNDONE, UNDONE]
