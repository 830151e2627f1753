"""Panels, lists and operators of the sidebar tab, and the overlay geometry.

Blender as a Python module has no regions, so panels cannot draw for real.
Their draw functions run here against :class:`FakeLayout`, which accepts
only what Blender's ``UILayout`` accepts: existing methods and keyword
arguments (read from RNA), existing icons, properties and operators. A typo
in draw code fails these tests.
"""

from __future__ import annotations

import math
import time

import pytest

bpy = pytest.importorskip("bpy", reason="bpy (Blender as a Python module) is not installed")

import addon_utils  # noqa: E402
from scene_builders import link  # noqa: E402
from test_addon_session import OTHER, FakeNet  # noqa: E402

pytestmark = pytest.mark.blender

_FUNCTIONS = bpy.types.UILayout.bl_rna.functions
ICONS = set(_FUNCTIONS["label"].parameters["icon"].enum_items.keys())
_CONTAINERS = {"row", "column", "box", "split", "column_flow", "grid_flow"}


class FakeLayout:
    """Records UI calls and checks them against UILayout's RNA description."""

    def __init__(self, calls: list):
        object.__setattr__(self, "calls", calls)

    def __setattr__(self, name, value):
        if name not in bpy.types.UILayout.bl_rna.properties:
            raise AttributeError(f"UILayout has no property {name!r}")
        object.__setattr__(self, name, value)

    def __getattr__(self, name):
        function = _FUNCTIONS.get(name)
        if function is None:
            raise AttributeError(f"UILayout has no function {name!r}")
        params = [p.identifier for p in function.parameters if not p.is_output]

        def call(*args, **kwargs):
            if len(args) > len(params):
                raise TypeError(f"{name}() takes {len(params)} positional arguments")
            bound = dict(zip(params, args, strict=False))
            for key, value in kwargs.items():
                if key not in params:
                    raise TypeError(f"{name}() got an unexpected keyword argument {key!r}")
                if key in bound:
                    raise TypeError(f"{name}() got multiple values for {key!r}")
                bound[key] = value
            self._check(name, bound)
            self.calls.append((name, bound))
            if name in _CONTAINERS:
                return FakeLayout(self.calls)
            if name == "operator":
                return _OperatorProps(bound["operator"])
            return None

        return call

    @staticmethod
    def _check(name: str, bound: dict) -> None:
        icon = bound.get("icon", "NONE")
        assert icon in ICONS, f"unknown icon {icon!r}"
        if name == "prop":
            data, prop = bound["data"], bound["property"]
            assert prop in data.bl_rna.properties, f"{data!r} has no property {prop!r}"
        if name == "operator":
            module, _, op = bound["operator"].partition(".")
            getattr(getattr(bpy.ops, module), op).get_rna_type()  # raises for an unknown operator
        if name == "template_list":
            assert isinstance(getattr(bpy.types, bound["listtype_name"], None), type)
            for data, prop in (("dataptr", "propname"), ("active_dataptr", "active_propname")):
                assert bound[prop] in bound[data].bl_rna.properties
        if name == "progress":
            assert 0.0 <= bound.get("factor", 0.0) <= 1.0
        for text_key in ("text",):
            if text_key in bound:
                assert isinstance(bound[text_key], str)

    def texts(self) -> list[str]:
        return [bound.get("text", "") for _, bound in self.calls]

    def operators(self) -> list[str]:
        return [bound["operator"] for name, bound in self.calls if name == "operator"]


class _OperatorProps:
    def __init__(self, idname: str):
        module, _, op = idname.partition(".")
        object.__setattr__(self, "_rna", getattr(getattr(bpy.ops, module), op).get_rna_type())

    def __setattr__(self, name, value):
        assert name in self._rna.properties, f"operator has no property {name!r}"


@pytest.fixture(scope="module")
def addon():
    module = addon_utils.enable("blender_addon", default_set=True, handle_error=_raise)
    assert module is not None
    yield module
    addon_utils.disable("blender_addon", default_set=True)


def _raise(exc):
    raise exc


@pytest.fixture
def fake_network(addon, monkeypatch):
    from blender_addon import session as session_module

    monkeypatch.setattr(session_module, "NetThread", FakeNet)
    yield
    session_module.stop()


def _draw_all(context) -> FakeLayout:
    from blender_addon import ui

    layout = FakeLayout([])
    ui.draw_connection(layout, context)
    if ui.BLENDSYNC_PT_rooms.poll(context):
        ui.draw_rooms(layout, context)
    if ui.BLENDSYNC_PT_users.poll(context):
        ui.draw_users(layout, context)
    return layout


def test_panels_draw_when_disconnected(addon):
    layout = _draw_all(bpy.context)
    assert layout.operators() == ["blendsync.connect"]


def test_panels_and_lists_draw_in_every_state(fake_network):
    from blender_addon import session as session_module
    from blender_addon import ui
    from blender_addon.protocol_shim import protocol as P

    context = bpy.context
    assert bpy.ops.blendsync.connect(servers="127.0.0.1:9") == {"FINISHED"}
    session = session_module.current()
    assert "blendsync.disconnect" in _draw_all(context).operators()  # connecting

    net = session.net
    net.connect()
    net.deliver(
        P.RoomList(
            rooms=[
                {
                    "name": "shot-010",
                    "users": 2,
                    "keys": 10,
                    "bytes": 123456,
                    "seq": 3,
                    "keep_open": True,
                    "locked": True,
                },
                {
                    "name": "free",
                    "users": 0,
                    "keys": 0,
                    "bytes": 0,
                    "seq": 0,
                    "keep_open": False,
                    "locked": False,
                },
            ]
        )
    )
    session_module.pump()
    st = context.window_manager.blendsync
    assert [r.name for r in st.rooms] == ["free", "shot-010"]
    assert st.rooms[1].locked and st.rooms[1].users == 2 and st.rooms[1].size == 123456
    layout = _draw_all(context)
    assert {"blendsync.join_room", "blendsync.create_room", "blendsync.delete_room"} <= set(
        layout.operators()
    )
    for item in st.rooms:
        ui.BLENDSYNC_UL_rooms.draw_item(None, context, FakeLayout([]), st, item, 0, st, "room_index", 0)

    # rooms_changed updates the list live.
    net.deliver(
        P.RoomsChanged(
            updated=[
                {
                    "name": "late",
                    "users": 1,
                    "keys": 1,
                    "bytes": 1,
                    "seq": 1,
                    "keep_open": False,
                    "locked": False,
                }
            ],
            deleted=["free"],
        )
    )
    session_module.pump()
    assert [r.name for r in st.rooms] == ["late", "shot-010"]

    # Join the selected room through the operator; the room is loading: a progress bar.
    st.room_index = 0
    assert bpy.ops.blendsync.join_room() == {"FINISHED"}
    (join,) = net.take(P.JoinRoom)
    assert join.room == "late"
    net.deliver(
        P.Joined(
            room="late",
            seq=1,
            mode="snapshot",
            key_count=1,
            clients=[
                {
                    "id": OTHER,
                    "name": "ana",
                    "kind": "blender",
                    "color": [1.0, 0.2, 0.2],
                    "frame": 42,
                    "mode": "EDIT_MESH",
                    "scene": "Scene",
                    "view_matrix": [1.0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, -10, 1],
                }
            ],
            ref=join.ref,
        )
    )
    session_module.pump()
    layout = _draw_all(context)
    assert any(name == "progress" for name, _ in layout.calls)
    net.deliver(P.SnapshotEnd(room="late", seq=1))
    session_module.pump()
    layout = _draw_all(context)
    assert "blendsync.leave_room" in layout.operators() and "blendsync.snap_view" in layout.operators()
    assert [u.name for u in st.users] == ["ana"] and st.users[0].frame == 42
    assert st.users[0].mode == "EDIT_MESH"
    # "editing X" is what others' locks say, never a client's own word for it.
    net.deliver(P.ClientUpdated(room="late", client_id=OTHER, state={"mode": "editing Cube"}))
    session_module.pump()
    assert st.users[0].mode == ""
    net.deliver(P.ClientUpdated(room="late", client_id=OTHER, state={"mode": "EDIT_MESH"}))
    session_module.pump()
    for item in st.users:
        ui.BLENDSYNC_UL_users.draw_item(None, context, FakeLayout([]), st, item, 0, st, "user_index", 0)

    # Snap to their frame and view.
    st.user_index = 0
    assert bpy.ops.blendsync.snap_frame() == {"FINISHED"}
    assert context.scene.frame_current == 42
    assert bpy.ops.blendsync.snap_view() == {"FINISHED"}
    from mathutils import Vector

    region_3d = session_module.find_region_3d()
    forward = region_3d.view_rotation @ Vector((0.0, 0.0, -1.0))
    eye = region_3d.view_location - forward * region_3d.view_distance
    assert tuple(eye) == pytest.approx((0.0, 0.0, 10.0), abs=1e-5)  # where ana looks from
    assert tuple(forward) == pytest.approx((0.0, 0.0, -1.0), abs=1e-5)

    # Preferences draw too (through a stand-in for the preferences' self, which carries the layout).
    prefs = ui.preferences(context)
    prefs_layout = FakeLayout([])
    proxy = type("Prefs", (), {"layout": prefs_layout, "bl_rna": prefs.bl_rna})()
    ui.BLENDSYNC_AddonPreferences.draw(proxy, context)
    assert [b["property"] for n, b in prefs_layout.calls if n == "prop"] == [
        "servers",
        "user_name",
        "color",
        "token",
        "lock_selection",
    ]

    assert bpy.ops.blendsync.leave_room() == {"FINISHED"}
    assert session.room is None
    assert bpy.ops.blendsync.disconnect() == {"FINISHED"}
    assert session_module.current() is None and len(st.rooms) == 0


def test_fake_layout_catches_typos(addon):
    layout = FakeLayout([])
    with pytest.raises(AttributeError):
        layout.lable(text="x")
    with pytest.raises(AssertionError):
        layout.label(text="x", icon="NO_SUCH_ICON")
    with pytest.raises(TypeError):
        layout.operator("blendsync.connect", txt="x")
    with pytest.raises(AssertionError):
        layout.prop(bpy.context.window_manager.blendsync, "no_such_prop")
    with pytest.raises((AttributeError, KeyError, RuntimeError)):
        layout.operator("blendsync.no_such_operator")


# ---- overlay geometry ------------------------------------------------------------------------------------


def _column_major(matrix) -> list[float]:
    return [matrix[r][c] for c in range(4) for r in range(4)]


def test_frustum_of_a_viewer_matches_blender_matrices(addon):
    from mathutils import Euler, Matrix, Vector

    from blender_addon import overlay

    eye = Vector((3.0, -4.0, 5.0))
    world = Matrix.Translation(eye) @ Euler((0.3, -0.2, 1.1)).to_matrix().to_4x4()
    view = world.inverted()
    flat = _column_major(view)
    assert overlay.camera_position(flat) == pytest.approx(tuple(eye), abs=1e-5)
    lines = overlay.frustum_lines(flat, depth=2.0)
    assert len(lines) == 11
    for start, end in lines[:4]:
        assert start == pytest.approx(tuple(eye), abs=1e-5)
        local = view @ Vector(end)
        assert local.z == pytest.approx(-2.0, abs=1e-5)  # the base is 2 units ahead, along -Z of the view
    # The "up" marker is above the base in view space.
    tip = view @ Vector(lines[8][1])
    assert tip.y > 0
    rows = overlay.rows_from_column_major(flat)
    assert all(math.isclose(rows[r][c], view[r][c], abs_tol=1e-6) for r in range(4) for c in range(4))


def test_selection_outlines_follow_the_objects(addon):
    from blender_addon import overlay, sync

    me = bpy.data.meshes.new("Box")
    me.from_pydata([(x, y, z) for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], [], [])
    ob = link(bpy.data.objects.new("Box", me))
    ob.location = (10.0, 0.0, 0.0)
    bpy.context.view_layer.update()
    uuid = sync.get_uuid(ob)
    users = [
        {
            "id": OTHER,
            "name": "ana",
            "color": [1.0, 0.0, 0.0],
            "selection": [uuid, "f" * 32],
            "view_matrix": [1.0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, -10, 1],
        },
        {"id": "e" * 32, "name": "ben"},  # no view, no selection yet
    ]
    overlays = overlay.user_overlays(users, overlay.find_object)
    ana, ben = overlays
    assert ana["color"] == (1.0, 0.0, 0.0, 1.0) and ana["label_at"] == pytest.approx((0.0, 0.0, 10.0))
    assert len(ana["selection_lines"]) == 12
    xs = {round(p[0], 5) for line in ana["selection_lines"] for p in line}
    assert xs == {9.0, 11.0}
    assert ben["lines"] == [] and ben["selection_lines"] == [] and ben["label_at"] is None


def test_what_could_not_be_applied_is_shown_with_its_datablock(fake_network):
    from blender_addon import session as session_module
    from blender_addon import sync

    assert bpy.ops.blendsync.connect(servers="127.0.0.1:9") == {"FINISHED"}
    session = session_module.current()
    assert not any("Not applied" in text for text in _draw_all(bpy.context).texts())
    ob = bpy.data.objects.new("Pillar", None)
    bpy.context.scene.collection.objects.link(ob)
    key = sync.make_key("obj", sync.get_uuid(ob), "mod", "Weld")
    session.applier.errors.append((key, "modifier 'Weld' of type 'WELD' cannot be added"))
    texts = _draw_all(bpy.context).texts()
    assert "Not applied here (1)" in texts
    assert "Object 'Pillar': modifier 'Weld' of type 'WELD' cannot be added" in texts


def _joined_room_r():
    """Connect over the fake network and join room ``r`` (seq 5, empty): the session."""
    from blender_addon import session as session_module
    from blender_addon.protocol_shim import protocol as P

    assert bpy.ops.blendsync.connect(servers="127.0.0.1:9") == {"FINISHED"}
    session = session_module.current()
    net = session.net
    net.connect()
    session_module.pump()
    session.join_room("r")
    (join,) = net.take(P.JoinRoom)
    net.deliver(P.Joined(room="r", seq=5, mode="snapshot", key_count=0, clients=[], ref=join.ref))
    net.deliver(P.SnapshotEnd(room="r", seq=5))
    session_module.pump()
    return session


def _draw_history(context) -> FakeLayout:
    from blender_addon import history_ui

    layout = FakeLayout([])
    proxy = type("Panel", (), {"layout": layout})()
    history_ui.BLENDSYNC_PT_checkpoints.draw(proxy, context)
    return layout


def test_the_replay_box_enters_scrubs_steps_and_goes_back_to_live(fake_network):
    from blender_addon import replay
    from blender_addon import session as session_module
    from blender_addon.protocol_shim import protocol as P
    from blender_addon.session import PRESENCE_INTERVAL as PRESENCE_WAIT

    context = bpy.context
    session = _joined_room_r()
    net = session.net
    assert "blendsync.replay_enter" in _draw_history(context).operators()

    def answer(seq: int, **fields) -> None:
        (asked,) = net.take(P.Replay)
        assert asked.seq == seq
        state = dict(room="r", seq=5 if seq is None else seq, first=1, last=5, key_count=0, items=[])
        net.deliver(P.ReplayState(**{**state, **fields}, ref=asked.ref))
        session_module.pump()

    assert bpy.ops.blendsync.replay_enter() == {"FINISHED"}
    texts = _draw_history(context).texts()
    assert "Reading the room ..." in texts and any(t.startswith("Read-only") for t in texts)
    answer(None)
    net.take()  # what went out before: the join's first scan, presence, the flush on entering
    layout = _draw_history(context)
    assert "seq 5" in layout.texts() and "1 to 5" in layout.texts()
    assert {"blendsync.replay_step", "blendsync.replay_live"} <= set(layout.operators())
    assert "blendsync.replay_enter" not in layout.operators()
    # A step back, then a drag to the slider's start while that step is read: read after it.
    assert bpy.ops.blendsync.replay_step(delta=-1) == {"FINISHED"}
    context.window_manager.blendsync_replay_at = 0.0
    answer(4)
    answer(1)
    assert replay.active(session).seq == 1 and not net.take(P.Replay)
    # A seq the server refuses is shown as such; the scene stays where it was.
    context.window_manager.blendsync_replay_at = 0.5
    (asked,) = net.take(P.Replay)
    assert asked.seq == 3
    net.deliver(P.Error(code="not_retained", message="seq 3 is gone", ref=asked.ref))
    session_module.pump()
    assert "not_retained: seq 3 is gone" in _draw_history(context).texts()
    assert replay.active(session).seq == 1
    # A connection lost while a seq is read: the next position asks again (the answer was lost with it).
    context.window_manager.blendsync_replay_at = 0.25
    assert [e.seq for e in net.take(P.Replay)] == [2]
    net.lose()
    net.connect()
    session_module.pump()
    resumed = net.take()  # the resume: rejoin from seq 5, and the batch sent before replay, unacknowledged
    assert {type(e).__name__ for e in resumed} == {"ListRooms", "JoinRoom", "Batch"}
    assert all(e.op_id in session.unacked for e in resumed if isinstance(e, P.Batch))
    context.window_manager.blendsync_replay_at = 0.75
    assert [e.seq for e in net.take(P.Replay)] == [4]
    answer_frame = dict(room="r", seq=4, first=1, last=5, key_count=0, items=[])
    net.deliver(P.ReplayState(**answer_frame, ref=replay.active(session).ref))
    session_module.pump()
    assert replay.active(session).seq == 4
    # An edit while replaying, and time for presence: nothing was sent but replay requests.
    ob = bpy.data.objects.new("made in replay", None)
    context.scene.collection.objects.link(ob)
    context.view_layer.update()
    for _ in range(3):
        time.sleep(PRESENCE_WAIT)
        session_module.pump()
    # Back to live rejoins the room from a snapshot.
    assert not [e for e in net.take() if not isinstance(e, P.Replay | P.Ping | P.Pong)]
    assert bpy.ops.blendsync.replay_live() == {"FINISHED"}
    assert [type(e).__name__ for e in net.take() if isinstance(e, P.LeaveRoom | P.JoinRoom)] == [
        "LeaveRoom",
        "JoinRoom",
    ]
    assert replay.active(session) is None
    assert bpy.ops.blendsync.disconnect() == {"FINISHED"}
    bpy.data.objects.remove(ob)


def _draw_blame(context) -> FakeLayout:
    from blender_addon import history_ui

    layout = FakeLayout([])
    proxy = type("Panel", (), {"layout": layout})()
    history_ui.BLENDSYNC_PT_blame.draw(proxy, context)
    return layout


def test_blame_of_a_datablock_picked_in_the_outliner(fake_network):
    """Right-clicking a material in the outliner points the Who changed it box at it, until it goes or
    the artist goes back to the active object."""
    from blender_addon import history_ui, sync
    from blender_addon import session as session_module
    from blender_addon.protocol_shim import protocol as P

    context = bpy.context
    session = _joined_room_r()
    net = session.net
    clay = bpy.data.materials.new("Clay * /x")  # pattern characters: data, never a pattern
    uuid = sync.get_uuid(clay)
    net.take()

    # The outliner's menu offers it for the datablock under the cursor; picking asks the server.
    menu = type("Menu", (), {"layout": FakeLayout([])})()
    with context.temp_override(id=clay):
        history_ui.draw_outliner_menu(menu, bpy.context)
        assert menu.layout.operators() == ["blendsync.blame_pick"]
        assert bpy.ops.blendsync.blame_pick() == {"FINISHED"}
    (asked,) = net.take(P.History)
    assert asked.prefix == f"mat/{uuid}/"
    roughness = f"mat/{uuid}/set/roughness"
    net.deliver(P.HistoryResult(room="r", keys=[[roughness, 4, "c1", "ben", 1_700_000_000]], ref=asked.ref))
    session_module.pump()
    layout = _draw_blame(context)
    assert "Clay * /x (picked in the outliner)" in layout.texts()
    assert {"set/roughness", "ben"} <= set(layout.texts())
    assert "blendsync.blame_unpick" in layout.operators()
    # The box's own button asks again about the picked material, not the active object.
    assert bpy.ops.blendsync.blame() == {"FINISHED"}
    assert [e.prefix for e in net.take(P.History)] == [f"mat/{uuid}/"]

    # A datablock that does not travel is refused and the box keeps its pick.
    with context.temp_override(id=bpy.data.workspaces[0] if bpy.data.workspaces else context.window_manager):
        assert bpy.ops.blendsync.blame_pick() == {"CANCELLED"}
    assert not net.take(P.History)

    # Gone (a datablock of another uuid under its name is not it): the box follows the active object.
    bpy.data.materials.remove(clay)
    impostor = bpy.data.materials.new("Clay * /x")
    assert sync.get_uuid(impostor) != uuid
    assert not any("picked in the outliner" in t for t in _draw_blame(context).texts())
    with context.temp_override(id=impostor):
        assert bpy.ops.blendsync.blame_pick() == {"FINISHED"}
    assert "Clay * /x (picked in the outliner)" in _draw_blame(context).texts()
    assert bpy.ops.blendsync.blame_unpick() == {"FINISHED"}
    assert not any("picked in the outliner" in t for t in _draw_blame(context).texts())
