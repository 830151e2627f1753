"""Override notices in the add-on: readable datablock and property names, one line per property, a capped
history, the panel drawing them, and an in-process session that is told only of real overrides."""

from __future__ import annotations

import pytest

bpy = pytest.importorskip("bpy", reason="bpy (Blender as a Python module) is not installed")

import test_addon_session  # noqa: E402
from scene_builders import link  # noqa: E402
from test_addon_session import OTHER, pump_after_update  # noqa: E402
from test_addon_ui import FakeLayout  # noqa: E402

pytestmark = pytest.mark.blender
# The in-process session's fixtures: the add-on enabled, a session joined to room "r" over a fake network.
addon, live, P = test_addon_session.addon, test_addon_session.live, test_addon_session.P


def overridden(key, value=b"x", seq=2, who=OTHER):
    from blender_addon.protocol_shim import protocol

    return protocol.Overridden(key, 1, seq, who, seq, value)


def test_keys_read_as_datablock_and_property(addon):
    from blender_addon import sync
    from blender_addon.notices import describe_key

    ob = link(bpy.data.objects.new("Pillar", None))
    mat = bpy.data.materials.new("Stone")
    bsdf = mat.node_tree.nodes["Principled BSDF"]
    sync.serialise_datablock(mat)  # gives the nodes their ids
    node_id = bsdf["blendsync_id"]
    o, m = sync.get_uuid(ob), sync.get_uuid(mat)
    cases = {
        sync.make_key("obj", o, "location"): ("Pillar", "location"),
        sync.make_key("obj", o, "set", "hide_viewport"): ("Pillar", "hide viewport"),
        sync.make_key("obj", o, "modset", "Smooth/1", "levels"): ("Pillar", "Smooth/1 levels"),
        sync.make_key("obj", o, "in", "f" * 32): ("Pillar", "collections"),
        sync.make_key("mat", m, "in", node_id, "Roughness"): ("Stone", "Principled BSDF Roughness"),
        sync.make_key("mat", m, "items", node_id): ("Stone", "Principled BSDF items"),
        sync.make_key("mat", m, "set", "roughness"): ("Stone", "roughness"),
        sync.make_key("obj", "e" * 32, "name"): (sync.make_key("obj", "e" * 32, "name"), "name"),  # gone
        "not/a key": ("not/a key", ""),
        "": ("", ""),
    }
    for key, expected in cases.items():
        assert describe_key(key) == expected, key


def test_one_line_per_property_and_a_capped_history(addon):
    from blender_addon import sync
    from blender_addon.notices import MAX_NOTICES, Notices

    ob = link(bpy.data.objects.new("Cube", None))
    key = sync.make_key("obj", sync.get_uuid(ob), "location")
    notices = Notices()
    users = {OTHER: {"name": "Ben"}}
    added = notices.overridden([overridden(key), overridden(key), overridden(key, value=None)], users)
    assert [n.text for n in added] == [
        "Ben set Cube location after you",
        "Ben removed Cube location after you",
    ]
    unknown = notices.overridden([overridden(key, who="z" * 40)], {})
    assert unknown[0].text == "zzzzzzzz set Cube location after you"  # an artist that left: the id
    for i in range(MAX_NOTICES + 5):
        notices.overridden([overridden(key, seq=10 + i)], users)
    assert len(notices.items) == MAX_NOTICES and notices.items[-1].seq == MAX_NOTICES + 14


def test_the_panel_shows_the_newest_and_the_history_on_demand(live):
    from blender_addon import ui

    session, _ = live
    st = bpy.context.window_manager.blendsync
    session.notices.overridden([overridden(f"k{i}", seq=10 + i) for i in range(5)], {OTHER: {"name": "Ben"}})
    for show_all, shown in ((False, 3), (True, 5)):
        st.show_notices = show_all
        layout = FakeLayout([])
        ui.draw_connection(layout, bpy.context)
        lines = [t for t in layout.texts() if t.endswith("after you")]
        assert len(lines) == shown and lines[0].endswith("Ben set k4 after you")
    st.show_notices = False


def test_the_session_tells_of_an_override_not_of_turn_taking(live, P):
    session, net = live
    ob = link(bpy.data.objects.new("Cube", None))
    pump_after_update(session)
    net.take(P.Batch)
    ob.location.x = 1.0
    pump_after_update(session)
    (batch,) = net.take(P.Batch)
    assert batch.seen == session.last_seq
    from blender_addon import sync

    key = sync.make_key("obj", sync.get_uuid(ob), "location")
    value = sync.encode_value([5.0, 0.0, 0.0])
    net.deliver(P.Ack(op_id=1, seq=1), P.Ack(op_id=batch.op_id, seq=2))
    session.users[OTHER] = {"id": OTHER, "name": "Ben"}
    # Ben had seen seq 2 (ours): turn-taking, no notice.
    net.deliver(P.Applied(room="r", seq=3, client_id=OTHER, op_id=7, ops=[["set", key, value]], seen=2))
    pump_after_update(session)
    assert session.notices.items == [] and ob.location.x == 5.0
    ob.location.x = 2.0
    pump_after_update(session)
    (batch,) = net.take(P.Batch)
    net.deliver(P.Ack(op_id=batch.op_id, seq=4))
    # Ben had seen only seq 3: his value replaced ours without seeing it.
    net.deliver(P.Applied(room="r", seq=5, client_id=OTHER, op_id=8, ops=[["set", key, value]], seen=3))
    pump_after_update(session)
    assert [n.text for n in session.notices.items] == ["Ben set Cube location after you"]
    assert ob.location.x == 5.0  # server order decides


def test_the_follow_toggle_is_drawn_in_a_room_and_reaches_the_session(live):
    """(The view state itself: tests/blender/test_view_state.py, across processes.)"""
    from blender_addon import ui

    session, _ = live
    st = bpy.context.window_manager.blendsync
    layout = FakeLayout([])
    ui.draw_rooms(layout, bpy.context)
    assert ("prop", {"data": st, "property": "follow_view"}) in layout.calls
    st.follow_view = True
    assert session.view.following
    st.follow_view = False
    assert not session.view.following
