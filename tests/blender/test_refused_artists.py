"""A value one Blender cannot apply never turns into a write storm: real Blender processes, a real server.

Ana and Ben each make applying Pillar's location fail in their own Blender
(the applier's test hook ``before_apply``); Cleo only watches and applies
everything. Each genuine edit goes out as exactly one batch, the other side
lists the key under *Not applied here* (``applier.errors``) and keeps its own
value without sending it back, and Cleo, as the room, always holds the last
genuine edit. Before the tracker took the state read back after a failed
apply as known, each side re-sent its own value after every failure: a few
thousand batches in seconds.
"""

from __future__ import annotations

import importlib.util

import pytest

if importlib.util.find_spec("bpy") is None:  # found without importing it: this process needs no Blender
    pytest.skip("bpy (Blender as a Python module) is not installed", allow_module_level=True)
from test_addon_multiprocess import Artist, add_empty, artists, everyone, move, server, start_room

pytestmark = [pytest.mark.blender, pytest.mark.timeout(240)]
__all__ = ["artists", "server"]  # fixtures used by name

REFUSE_LOCATION = """
from blender_addon import session, sync
refused = sync.make_key("obj", sync.get_uuid(bpy.data.objects["Pillar"]), "location")
def refuse(key, doc, refused=refused):
    if key == refused:
        raise RuntimeError("cannot apply this here")
session.current().applier.before_apply = refuse
"""

LOCATION = "tuple(bpy.data.objects['Pillar'].location)"
SCALE = "tuple(bpy.data.objects['Pillar'].scale)"


def settle(artists: list[Artist]) -> list[dict]:
    """Pump everyone at once until each has been quiet for a second (at most 8 s), then their states."""
    idle = everyone(artists, "pump_until_idle", quiet=1.0, timeout=8)
    states = everyone(artists, "state")
    assert all(reply["idle"] for reply in idle), [s["stats"] for s in states]
    return states


def batches(states: list[dict]) -> list[int]:
    return [state["stats"]["batches"] for state in states]


def refused_keys(state: dict) -> list[str]:
    return [key for key, _ in state["errors"]]


def test_a_value_neither_side_can_apply_is_sent_once_and_listed_not_echoed(server, artists):
    _, address = server
    ana, ben, cleo = artists("ana", "ben", "cleo")
    ana.call("edit", script=add_empty("Pillar", (0, 0, 0)))
    start_room(address, ana, [ben, cleo])
    for artist in (ana, ben):
        artist.call("edit", script=REFUSE_LOCATION)
    uuid = ana.call("eval", expr="bpy.data.objects['Pillar']['blendsync_uuid']")["value"]
    key = f"obj/{uuid}/location"
    before = batches(settle([ana, ben, cleo]))

    # Ana moves the pillar: one batch; Ben cannot apply it and keeps his value without sending it.
    ana.call("edit", script=move("Pillar", (1, 2, 3)))
    states = settle([ana, ben, cleo])
    assert [n - b for n, b in zip(batches(states), before, strict=True)] == [1, 0, 0]
    assert refused_keys(states[1]) == [key] and refused_keys(states[0]) == []
    assert ben.call("eval", expr=LOCATION)["value"] == [0.0, 0.0, 0.0]
    assert cleo.call("eval", expr=LOCATION)["value"] == [1.0, 2.0, 3.0]  # the room's value is Ana's

    # Ben's own later edit of it still travels, once; now Ana cannot apply his.
    ben.call("edit", script=move("Pillar", (4, 5, 6)))
    states = settle([ana, ben, cleo])
    assert [n - b for n, b in zip(batches(states), before, strict=True)] == [1, 1, 0]
    assert refused_keys(states[0]) == [key]
    assert ana.call("eval", expr=LOCATION)["value"] == [1.0, 2.0, 3.0]
    assert cleo.call("eval", expr=LOCATION)["value"] == [4.0, 5.0, 6.0]

    # Ana edits the pillar again: her location and her scale travel in one batch; Ben takes the scale.
    ana.call("edit", script=move("Pillar", (7, 8, 9)) + "bpy.data.objects['Pillar'].scale = (2, 2, 2)\n")
    states = settle([ana, ben, cleo])
    assert [n - b for n, b in zip(batches(states), before, strict=True)] == [2, 1, 0]
    assert refused_keys(states[1]) == [key]  # listed once, with its latest failure
    assert ben.call("eval", expr=SCALE)["value"] == [2.0, 2.0, 2.0]
    assert ben.call("eval", expr=LOCATION)["value"] == [4.0, 5.0, 6.0]
    assert cleo.call("eval", expr=LOCATION)["value"] == [7.0, 8.0, 9.0]
    assert len({state["seq"] for state in states}) == 1 and not any(s["unacked"] for s in states)
