"""Replay in real Blender processes through a real ``blendsync serve``: an artist scrubs a read-only copy of
the room back to earlier seqs and sees the scene as it was, edits it without the room or anyone else
getting the edit, and goes back to the live room."""

from __future__ import annotations

import importlib.util

import pytest

if importlib.util.find_spec("bpy") is None:  # found without importing it: this process needs no Blender
    pytest.skip("bpy (Blender as a Python module) is not installed", allow_module_level=True)

from test_addon_multiprocess import (  # noqa: F401  (artists, server: fixtures)
    CUBE,
    add_empty,
    artists,
    converge,
    move,
    server,
    start_room,
)

pytestmark = [pytest.mark.blender, pytest.mark.timeout(180)]

REPLAY = "__import__('blender_addon.replay', fromlist=['active']).active(session)"


def _shows(artist, seq: int) -> dict:
    """Pump until the artist's replay shows ``seq`` fully applied; its state then."""
    settled = f"{REPLAY}.seq == {seq} and {REPLAY}.loading is None and not session.busy"
    assert artist.call("pump_until", expr=settled, timeout=20)["met"], artist.call("state")
    return artist.call("state")


def test_an_artist_scrubs_the_past_edits_it_alone_and_comes_back_to_the_live_room(server, artists):  # noqa: F811
    _, address = server
    ana, ben = artists("ana", "ben")
    ana.call("edit", script=CUBE + add_empty("Lamp", (0, 0, 3)))
    start_room(address, ana, [ben])
    seen = [converge([ana, ben])[0]]  # the room as every artist saw it, after each of ana's edits
    for script in (
        move("Cube", (1, 2, 3)),
        add_empty("Prop", (5, 0, 0)),
        "bpy.data.objects.remove(bpy.data.objects['Lamp'])\n" + move("Cube", (-4, 0, 1)),
    ):
        ana.call("edit", script=script)
        seen.append(converge([ana, ben])[0])
    assert len({state["hash"] for state in seen}) == len(seen)
    latest = seen[-1]

    assert ben.call("eval", expr="bpy.ops.blendsync.replay_enter()")["value"] == "{'FINISHED'}"
    state = _shows(ben, latest["seq"])
    assert state["hash"] == latest["hash"]
    span = ben.call("eval", expr=f"({REPLAY}.first, {REPLAY}.last)")["value"]
    assert span == [0, latest["seq"]]
    for earlier in (seen[1], seen[0], seen[2]):  # back, further back, then forward again
        ben.call("eval", expr=f"__import__('blender_addon.replay').replay.show(session, {earlier['seq']})")
        state = _shows(ben, earlier["seq"])
        assert state["hash"] == earlier["hash"] and state["objects"] == earlier["objects"]

    # ana goes on meanwhile: ben's scene stays in the past.
    ana.call("edit", script=add_empty("Late", (0, 7, 0)))
    now = converge([ana])[0]
    assert ben.call("pump_until", expr=f"session.last_seq == {now['seq']}")["met"]  # it reached him
    assert ben.call("pump_until_idle", quiet=0.3)["idle"]
    assert ben.call("state")["hash"] == seen[2]["hash"]

    # ben edits the past: nothing goes out, nothing reaches ana or the room.
    batches = ben.call("state")["stats"]["batches"]
    ben.call("edit", script=move("Cube", (9, 9, 9)) + add_empty("Mine", (0, 0, 9)))
    assert ben.call("pump_until_idle", quiet=0.5)["idle"]
    mine = ben.call("state")
    assert "Mine" in mine["objects"] and mine["stats"]["batches"] == batches and mine["unacked"] == 0
    assert converge([ana])[0]["hash"] == now["hash"] and ana.call("state")["seq"] == now["seq"]

    # Back to live: ben's scene is the live room again, with ana's latest edit and without ben's.
    assert ben.call("eval", expr="bpy.ops.blendsync.replay_live()")["value"] == "{'FINISHED'}"
    states = converge([ana, ben])
    assert states[1]["hash"] == now["hash"] and states[1]["seq"] == now["seq"]
    assert "Mine" not in states[1]["objects"] and "Late" in states[1]["objects"]
    assert ben.call("eval", expr=f"{REPLAY} is None")["value"] is True
    # And ben is a live artist again: an edit reaches ana.
    ben.call("edit", script=move("Prop", (0, 0, 0)))
    states = converge([ana, ben])
    assert states[0]["hash"] == states[1]["hash"] != now["hash"]
