"""The sync loop in-process, with a fake network: joining, sending, the convergence rule, resuming.

The network thread is replaced by :class:`FakeNet`, which records what the
session sends and lets the test deliver server events; ``pump()`` is called
by hand, as the timer would.
"""

from __future__ import annotations

import contextlib
import queue
import time

import pytest

bpy = pytest.importorskip("bpy", reason="bpy (Blender as a Python module) is not installed")

import addon_utils  # noqa: E402
from scene_builders import link  # noqa: E402

pytestmark = pytest.mark.blender

CLIENT = "c" * 32
OTHER = "d" * 32


class FakeNet:
    """Stands in for NetThread: ``sent`` collects events, ``deliver`` feeds the inbox."""

    instances: list[FakeNet] = []

    def __init__(self, addresses, hello):
        self.addresses = addresses
        self.hello = hello
        self.inbox: queue.Queue = queue.Queue()
        self.sent: list = []
        self.generation = 0
        self.connected_address = addresses[0]
        self.dropped: list[int | None] = []  # the generations asked to be dropped (None: whichever)
        self.stopped = False
        FakeNet.instances.append(self)

    def start(self):
        return self

    def send(self, generation, event):
        if generation == self.generation:
            self.sent.append(event)

    def stop(self):
        self.stopped = True

    def drop_connection(self, generation=None):
        self.dropped.append(generation)

    @property
    def alive(self):
        return not self.stopped

    # test side
    def connect(self):
        from blender_addon.protocol_shim import protocol

        self.generation += 1
        welcome = protocol.Welcome(
            protocol=1,
            server_version="t",
            session=self.hello.session,
            client_id=CLIENT,
            nodes=["127.0.0.1:1"],
            heartbeat_interval=5.0,
        )
        self.inbox.put(("connected", self.generation, welcome))

    def lose(self, reason="test"):
        self.inbox.put(("disconnected", self.generation, reason))

    def deliver(self, *events):
        for event in events:
            self.inbox.put(("event", self.generation, event))

    def take(self, kind=None):
        out = [e for e in self.sent if kind is None or isinstance(e, kind)]
        self.sent = [e for e in self.sent if not (kind is None or isinstance(e, kind))]
        return out


@pytest.fixture(scope="module")
def addon():
    module = addon_utils.enable("blender_addon", default_set=True, handle_error=_raise)
    assert module is not None
    yield module
    addon_utils.disable("blender_addon", default_set=True)


def _raise(exc):
    raise exc


@pytest.fixture
def P(addon):
    from blender_addon.protocol_shim import protocol

    return protocol


@pytest.fixture
def live(addon, P):
    """A session connected to a fake server and joined to an empty room "r"."""
    from blender_addon import session as session_module

    session = session_module.start("127.0.0.1:1", name="me", net_factory=FakeNet)
    net = session.net
    net.connect()
    session_module.pump()
    assert session.connected
    net.take()
    session.join_room("r")
    (join,) = net.take(P.JoinRoom)
    net.deliver(
        P.Joined(room="r", seq=0, mode="snapshot", key_count=0, clients=[], ref=join.ref),
        P.SnapshotEnd(room="r", seq=0),
    )
    session_module.pump()
    assert session.room == "r" and session.live and not session.busy
    yield session, net
    session_module.stop()


def pump_after_update(session):
    """Flush the depsgraph (its handler reports the edits, as in Blender's event loop), then pump once."""
    from blender_addon import session as session_module

    bpy.context.view_layer.update()
    session_module.pump()


def join_with_snapshot(P, items: dict[str, bytes], room: str = "big", seq: int = 7):
    """A fresh session (a late joiner) that asked to join ``room`` and was sent ``items`` as its snapshot,
    nothing applied yet; returns (session, net)."""
    from blender_addon import session as session_module

    session = session_module.start("127.0.0.1:1", name="late", net_factory=FakeNet)
    net = session.net
    net.connect()
    session_module.pump()
    session.join_room(room)
    (join,) = net.take(P.JoinRoom)
    net.deliver(
        P.Joined(room=room, seq=seq, mode="snapshot", key_count=len(items), clients=[], ref=join.ref),
        P.SnapshotChunk(room=room, items=[[k, v] for k, v in items.items()]),
        P.SnapshotEnd(room=room, seq=seq),
    )
    return session, net


def pump_until_sent(session, net, P, pumps: int = 20) -> list:
    """Pump until a batch goes out (at most ``pumps`` times). Blender reports no edit of a datablock its
    depsgraph does not hold (an unused node group): the audit finds it, a few datablocks a pump, on the
    pumps that do not count bpy.data's lengths (one every COUNT_INTERVAL), so how many pumps that takes
    depends on the clock."""
    for _ in range(pumps):
        pump_after_update(session)
        sent = net.take(P.Batch)
        if sent:
            return sent
    return []


def send_and_ack(session, net, P):
    """Send what the scene holds and acknowledge it (seq 1): what the test does next is all the session
    has to send."""
    pump_after_update(session)
    for batch in net.take(P.Batch):
        net.deliver(P.Ack(op_id=batch.op_id, seq=1))
    pump_after_update(session)


def active_triangle(name: str):
    """A one-triangle mesh on a new object, the active one (edit mode works on it): (object, mesh)."""
    me = bpy.data.meshes.new(name)
    me.from_pydata([(0.0, 0.0, 0.0), (1.0, 0.0, 0.0), (0.0, 1.0, 0.0)], [], [(0, 1, 2)])
    ob = link(bpy.data.objects.new(name, me))
    bpy.context.view_layer.objects.active = ob
    return ob, me


def edit_lease_keys(me) -> tuple[str, str]:
    """The keys edit mode leases for a mesh: its geometry and its shapes."""
    from blender_addon import sync

    uuid = sync.get_uuid(me)
    return sync.make_key("mesh", uuid, "geometry"), sync.make_key("mesh", uuid, "shapes")


def move_vertex(me, index: int, z: float) -> None:
    """In edit mode: vertex ``index`` of the edit mesh moved to height ``z``, as a tool moves it."""
    import bmesh

    bm = bmesh.from_edit_mesh(me)
    bm.verts.ensure_lookup_table()
    bm.verts[index].co.z = z
    bmesh.update_edit_mesh(me)


@contextlib.contextmanager
def editing():
    """The active object in edit mode for the block, back in object mode however the block ends."""
    bpy.ops.object.mode_set(mode="EDIT")
    try:
        yield
    finally:
        bpy.ops.object.mode_set(mode="OBJECT")


def transform_key(ob):
    from blender_addon import sync

    return sync.make_key("obj", sync.get_uuid(ob), "location")


def with_location(session, key, location):
    from blender_addon import sync

    return sync.encode_value([float(c) for c in location])


def test_local_edit_is_sent_as_one_batch_with_increasing_op_ids(live, P):
    session, net = live
    ob = link(bpy.data.objects.new("Thing", None))
    pump_after_update(session)
    (first,) = net.take(P.Batch)
    keys = {op[1] for op in first.ops}
    assert transform_key(ob) in keys and all(op[0] == "set" for op in first.ops)
    ob.location.x = 3.0
    bpy.context.view_layer.update()  # the depsgraph handler reports the object: no full scan needed
    from blender_addon import session as session_module

    session_module.pump()
    (second,) = net.take(P.Batch)
    assert second.op_id > first.op_id
    assert [op[1] for op in second.ops] == [transform_key(ob)]
    assert set(session.unacked) == {first.op_id, second.op_id}


def test_own_unacked_edit_shields_the_key_until_its_ack(live, P):
    session, net = live
    ob = link(bpy.data.objects.new("Thing", None))
    pump_after_update(session)
    net.take(P.Batch)
    ob.location = (1.0, 0.0, 0.0)
    pump_after_update(session)
    (batch,) = net.take(P.Batch)
    key = transform_key(ob)
    assert session.pending[key] == batch.op_id

    # Someone else's value for the key, ordered before our edit: ignored.
    net.deliver(
        P.Applied(
            room="r",
            seq=1,
            client_id=OTHER,
            op_id=1,
            ops=[["set", key, with_location(session, key, (5, 5, 5))]],
        )
    )
    pump_after_update(session)
    assert tuple(ob.location) == (1.0, 0.0, 0.0)
    assert key in session.pending

    # Our ack: the key is ours at seq 2; the held-back older value stays ignored.
    net.deliver(P.Ack(op_id=1, seq=1), P.Ack(op_id=batch.op_id, seq=2))
    pump_after_update(session)
    assert key not in session.pending and not session.unacked
    assert tuple(ob.location) == (1.0, 0.0, 0.0)

    # A later remote value applies, and is not echoed back.
    net.deliver(
        P.Applied(
            room="r",
            seq=3,
            client_id=OTHER,
            op_id=2,
            ops=[["set", key, with_location(session, key, (7, 7, 7))]],
        )
    )
    pump_after_update(session)
    assert tuple(ob.location) == (7.0, 7.0, 7.0)
    assert net.take(P.Batch) == []
    assert session.last_seq == 3


def _keyframes(ob) -> list[tuple[float, float]]:
    anim = ob.animation_data
    fc = anim.action.layers[0].strips[0].channelbag(anim.action_slot).fcurves.find("location", index=2)
    return [tuple(round(c, 4) for c in k.co) for k in fc.keyframe_points]


def test_a_keyframe_edit_overridden_by_one_on_the_same_channel_is_merged_and_sent_as_a_new_edit(live, P):
    """Our key at frame 1 commits at seq 2; another artist's key at frame 10 on the same f-curve, made
    without having seen ours (seen 1), is ordered after it. Server order alone would drop our key: the
    session merges (both keys, and the one at frame 5 they both had), applies it and sends it; nobody is
    told of an override. A later value made having seen the merge applies as it is."""
    from blender_addon import sync
    from blender_addon.sync import keyframe_merge

    session, net = live
    ob = link(bpy.data.objects.new("Lamp", None))
    ob.location.z = 3.0
    ob.keyframe_insert("location", index=2, frame=5)
    send_and_ack(session, net, P)
    (key,) = [k for k in session.tracker.values if keyframe_merge.is_fcurve(k) and k.endswith("/location/2")]
    base = sync.decode_value(session.tracker.values[key])

    ob.location.z = 1.0
    ob.keyframe_insert("location", index=2, frame=1)
    pump_after_update(session)
    (batch,) = net.take(P.Batch)
    assert [op[1] for op in batch.ops] == [key]
    net.deliver(P.Ack(op_id=batch.op_id, seq=2))
    pump_after_update(session)

    frames = keyframe_merge._frames(base)
    (five,) = frames.values()
    frames[10.0] = ((10.0, 9.0), (9.0, 9.0), (11.0, 9.0), *five[3:])
    theirs = sync.encode_value({**base, "keys": keyframe_merge._keys(frames)})
    net.deliver(P.Applied(room="r", seq=3, client_id=OTHER, op_id=7, ops=[["set", key, theirs]], seen=1))
    pump_after_update(session)
    assert _keyframes(ob) == [(1.0, 1.0), (5.0, 3.0), (10.0, 9.0)]
    (merged,) = net.take(P.Batch)
    assert [op[1] for op in merged.ops] == [key]
    assert sorted(keyframe_merge._frames(sync.decode_value(merged.ops[0][2]))) == [1.0, 5.0, 10.0]
    assert session.notices.items == []  # merged, not overridden
    net.deliver(P.Ack(op_id=merged.op_id, seq=4))
    pump_after_update(session)
    assert net.take(P.Batch) == []

    net.deliver(P.Applied(room="r", seq=5, client_id=OTHER, op_id=8, ops=[["set", key, theirs]], seen=4))
    pump_after_update(session)  # made having seen the merge: their removal of frame 1 stands
    assert _keyframes(ob) == [(5.0, 3.0), (10.0, 9.0)]
    assert net.take(P.Batch) == []


def test_a_merged_interface_overtaken_before_it_is_sent_is_merged_again(live, P):
    """Our socket commits at seq 2; another artist's socket (seen 1) at seq 3 overrides it, and a third
    artist's socket (made having seen seq 3) arrives at seq 4 in the same pump, before our merge of the
    first two went out: the merge is made again over the third's value, and all three sockets stay."""
    from blender_addon import sync

    session, net = live
    group = bpy.data.node_groups.new("Deform", "GeometryNodeTree")
    group.interface.new_socket("Height", in_out="INPUT", socket_type="NodeSocketFloat")
    send_and_ack(session, net, P)
    (key,) = [k for k in session.tracker.values if k.endswith("/iface")]
    base = sync.decode_value(session.tracker.values[key])

    group.interface.new_socket("Shift", in_out="INPUT", socket_type="NodeSocketFloat")
    (batch,) = pump_until_sent(session, net, P)
    assert key in [op[1] for op in batch.ops]
    net.deliver(P.Ack(op_id=batch.op_id, seq=2))
    pump_after_update(session)

    def adding(items: list, name: str) -> list:
        return [*items, {**items[0], "name": name}]

    theirs = adding(base, "Slide")
    net.deliver(
        P.Applied(
            room="r", seq=3, client_id=OTHER, op_id=7, ops=[["set", key, sync.encode_value(theirs)]], seen=1
        ),
        P.Applied(
            room="r",
            seq=4,
            client_id="e" * 32,
            op_id=3,
            ops=[["set", key, sync.encode_value(adding(theirs, "Spin"))]],
            seen=3,
        ),
    )
    pump_after_update(session)
    pump_after_update(session)
    assert [i.name for i in group.interface.items_tree] == ["Height", "Slide", "Spin", "Shift"]
    sent = [op for batch in net.take(P.Batch) for op in batch.ops if op[1] == key]
    assert [[i["name"] for i in sync.decode_value(op[2])] for op in sent] == [
        ["Height", "Slide", "Spin", "Shift"]
    ]
    assert session.notices.items == []  # merged, not overridden


def test_remote_delete_and_unrelated_keys_apply_while_another_key_is_pending(live, P):
    from blender_addon import sync

    session, net = live
    a = link(bpy.data.objects.new("A", None))
    b = link(bpy.data.objects.new("B", None))
    send_and_ack(session, net, P)
    a.location.x = 2.0
    pump_after_update(session)
    assert transform_key(a) in session.pending
    b_keys = [k for k in session.tracker.values if sync.get_uuid(b) in k]
    meta = next(k for k in b_keys if k.endswith("/meta"))
    net.deliver(
        P.Applied(
            room="r",
            seq=2,
            client_id=OTHER,
            op_id=9,
            ops=[["delete", k] for k in b_keys if k != meta] + [["delete", meta]],
        )
    )
    pump_after_update(session)
    assert "B" not in bpy.data.objects and a.location.x == 2.0
    assert net.take(P.Batch)[-1].ops == [["set", transform_key(a), session.tracker.values[transform_key(a)]]]


def test_resume_rejoins_since_last_seq_and_resends_unacked_with_original_op_ids(live, P):
    from blender_addon import session as session_module

    session, net = live
    ob = link(bpy.data.objects.new("Thing", None))
    pump_after_update(session)
    (first,) = net.take(P.Batch)
    net.deliver(P.Ack(op_id=first.op_id, seq=4))
    pump_after_update(session)
    ob.location.z = 9.0
    pump_after_update(session)
    (unacked,) = net.take(P.Batch)

    net.lose()
    session_module.pump()
    assert session.state == session_module.DISCONNECTED and not session.live
    ob.location.y = 1.0  # edited while offline: queued, not sent
    pump_after_update(session)
    assert net.take(P.Batch) == [] and len(session.unacked) == 2

    net.connect()
    session_module.pump()
    (join,) = net.take(P.JoinRoom)
    assert join.room == "r" and join.since == 4
    resent = net.take(P.Batch)
    assert [b.op_id for b in resent] == sorted(session.unacked) and resent[0].op_id == unacked.op_id
    assert resent[0].ops == unacked.ops
    net.deliver(
        P.Joined(room="r", seq=4, mode="resume", key_count=3, clients=[], ref=join.ref),
        P.Ack(op_id=resent[0].op_id, seq=5),
        P.Ack(op_id=resent[1].op_id, seq=6),
    )
    pump_after_update(session)
    assert not session.unacked and not session.pending and session.last_seq == 6
    assert any("resumed" in m for m in session.messages)


def test_resume_that_becomes_a_snapshot_settles_held_back_keys_by_seq(live, P, monkeypatch):
    from blender_addon import session as session_module
    from blender_addon import sync

    # One key per slice: the snapshot is applied over several pumps, as on a busy machine (a test that
    # looked once after one pump failed when the machine was slow).
    monkeypatch.setattr(session_module, "APPLY_SLICE", 1)

    session, net = live
    ob = link(bpy.data.objects.new("Thing", None))
    gone = link(bpy.data.objects.new("Gone", None))
    send_and_ack(session, net, P)
    snapshot = dict(session.tracker.values)
    ob.location.x = 1.0
    pump_after_update(session)
    (pending,) = net.take(P.Batch)
    key = transform_key(ob)

    net.lose()
    net.connect()
    session_module.pump()
    (join,) = net.take(P.JoinRoom)
    assert [b.op_id for b in net.take(P.Batch)] == [pending.op_id]
    # The server no longer holds the log after seq 1: a snapshot at seq 10, in which our edit
    # (seq 3) was later overwritten by someone else and "Gone" was deleted.
    snapshot[key] = with_location(session, key, (4, 4, 4))
    for k in [k for k in snapshot if sync.get_uuid(gone) in k]:
        del snapshot[k]
    net.deliver(
        P.Joined(room="r", seq=10, mode="snapshot", key_count=len(snapshot), clients=[], ref=join.ref),
        P.SnapshotChunk(room="r", items=[[k, v] for k, v in snapshot.items()]),
        P.SnapshotEnd(room="r", seq=10),
    )
    for _ in range(10000):
        pump_after_update(session)
        assert ob.location.x == 1.0  # still shielded: we do not know our seq yet
        if not session.busy:
            break
    assert not session.busy
    assert "Gone" not in bpy.data.objects
    net.deliver(P.Ack(op_id=pending.op_id, seq=3))
    pump_after_update(session)
    assert tuple(ob.location) == (4.0, 4.0, 4.0)
    assert net.take(P.Batch) == []


def first_batch_while_applying(session, net, P, ready) -> tuple[bool, list]:
    """Pump one apply slice at a time (Blender's event loop evaluating between) until the applier is done:
    (whether the session was still applying, the batches) of the first pump that sent something, which
    must have come after ``ready()`` (read before each pump) held, and be the only one."""
    from blender_addon import session as session_module

    sent = None
    for _ in range(1000):
        bpy.context.view_layer.update()
        was_ready = ready()
        session_module.pump(0.0)
        batches = net.take(P.Batch)
        if batches:
            assert sent is None, "sent twice"
            assert was_ready, "sent before the datablock's room values were applied"
            sent = (session.busy, batches)
        if not session.busy:
            break
    assert sent is not None, "the edit was not sent"
    return sent


def test_large_snapshot_is_applied_in_slices_without_scanning(live, P):
    from blender_addon import session as session_module
    from blender_addon import sync

    session, net = live
    for i in range(150):
        link(bpy.data.objects.new(f"O{i}", None)).location = (i, 0, 0)
    items = sync.serialise_scene()
    expected = sync.scene_hash()
    session_module.stop()
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)

    session, net = join_with_snapshot(P, items)
    progress = []
    for _ in range(1000):
        session_module.pump(budget=0.0)  # one slice per pump
        progress.append(session.progress)
        assert net.take(P.Batch) == []  # never scan a half-built scene
        if not session.busy:
            break
    assert len(progress) > 2 and 0.0 < progress[0] < 1.0 and progress[-1] == 1.0
    assert sync.scene_hash() == expected
    pump_after_update(session)
    assert net.take(P.Batch) == []  # nothing to echo back
    assert session.last_seq == 7


def test_an_object_moved_while_the_rest_of_the_join_arrives_is_sent_once_its_own_values_are_applied(
    addon, P, monkeypatch
):
    """Objects are placed first, and their other keys (settings, custom properties...) are applied later,
    which the applier reads back for the tracker: an artist who moves an object in between must not have
    that move taken as known (it would never be sent), nor sent while a room value of that object is still
    to apply (applied after it, it could undo the edit here while the room keeps it). Once the object's
    values are all applied the move goes out, while the rest of the join still fills in; nothing else is
    sent, then or after."""
    from blender_addon import session as session_module
    from blender_addon import sync

    monkeypatch.setattr(session_module, "APPLY_EVALUATED_MAX", 0.0)  # one slice per pump(0.0)
    monkeypatch.setattr(session_module, "AUDIT_SLICE", 0)  # the scans' reads alone

    for i in range(120):
        ob = link(bpy.data.objects.new(f"O{i}", None))
        ob.location = (i, 0, 0)
        ob["note"], ob["take"] = i, i
    # The objects appear together, in the slice that links the last of them, and the objects' other keys
    # follow by uuid in that slice and the next: O7's keys come after the others', so its properties are
    # still queued then, but for those of seventy objects (two each: more than the two slices that apply
    # O7's and then send its move), that come after them.
    sync.ids.set_uuid(bpy.data.objects["O7"], "e" * 32)
    for i in range(70):
        sync.ids.set_uuid(bpy.data.objects[f"O{50 + i}"], f"{'f' * 30}{i:02d}")
    items = sync.serialise_scene()
    placing = sync.apply_order.PLACING["obj"]
    after = [k for k in items if k.startswith("obj/" + "f" * 30) and sync.split_key(k)[2] not in placing]
    assert len(after) > 2 * session_module.APPLY_SLICE  # the rest of the join, after O7's own values
    moved = sync.get_uuid(bpy.data.objects["O7"])
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)

    try:
        session, net = join_with_snapshot(P, items)
        prop = sync.make_key("obj", moved, "prop", "note")
        location = sync.make_key("obj", moved, "location")
        for _ in range(1000):
            bpy.context.view_layer.update()
            session_module.pump(0.0)
            ob = bpy.context.scene.objects.get("O7")  # in the scene: where the artist sees it
            if ob is not None:
                break
        assert session.busy and prop not in session.tracker.values  # placed; its property still queued
        reads: list[str] = []  # what the scans read (not the applier's read-backs)
        compare = session.tracker._compare

        def counting(todo, gone, *args, **kwargs):
            reads.extend(id_data.name for _, id_data in todo.values())
            return compare(todo, gone, *args, **kwargs)

        monkeypatch.setattr(session.tracker, "_compare", counting)
        ob.location.x = 42.0  # the artist moves it at once
        busy, (batch,) = first_batch_while_applying(session, net, P, lambda: prop in session.tracker.values)
        assert ob["note"] == 7 and ob.location.x == 42.0
        assert busy, "the move waited for the whole join"
        assert [op[1] for op in batch.ops] == [location]
        assert sync.decode_value(batch.ops[0][2])[0] == 42.0
        pump_after_update(session)
        assert net.take(P.Batch) == []
        assert reads == ["O7"], reads  # the join's own reports were dropped by its pumps
    finally:
        session_module.stop()


def test_an_edit_of_an_object_a_large_remote_batch_still_changes_waits_for_that_change_not_the_batch(
    live, P, monkeypatch
):
    """A remote batch applied in slices: the artist moves an object whose custom property the batch has
    not reached yet. The move waits for that property (applied after a move sent earlier, nothing here
    would tell the room's order from ours), then goes out while the rest of the batch still applies."""
    from blender_addon import session as session_module
    from blender_addon import sync

    monkeypatch.setattr(session_module, "APPLY_EVALUATED_MAX", 0.0)  # one slice per pump(0.0)
    monkeypatch.setattr(session_module, "APPLY_SLICE", 8)
    session, net = live
    for i in range(80):
        ob = link(bpy.data.objects.new(f"O{i}", None))
        ob["note"] = i
    send_and_ack(session, net, P)
    props = {sync.make_key("obj", sync.get_uuid(ob), "prop", "note"): ob for ob in bpy.data.objects}
    ops = []
    for key, ob in props.items():
        value = sync.decode_value(session.tracker.values[key])
        ops.append(["set", key, sync.encode_value({**value, "value": 1000 + ob["note"]})])
    net.deliver(P.Applied(room="r", seq=2, client_id=OTHER, op_id=9, ops=ops))
    session_module.pump(0.0)  # the first slice
    queued = [key for key, _ in session.applier._queue]
    prop = queued[len(queued) // 2]  # a property still to apply, with more after it
    ob = props[prop]
    ob.location.x = 42.0  # the artist moves that object
    busy, (batch,) = first_batch_while_applying(session, net, P, lambda: ob["note"] >= 1000)
    assert busy, "the move waited for the whole batch"
    assert [op[1] for op in batch.ops] == [transform_key(ob)]
    assert ob.location.x == 42.0 and all(o["note"] >= 1000 for o in props.values())
    pump_after_update(session)
    assert net.take(P.Batch) == []


def test_a_pump_applies_at_least_as_long_as_the_evaluation_of_the_last_apply_took(addon, P, monkeypatch):
    """Blender evaluates the scene after every pump that applied: a join applies for at least as long as
    that evaluation took, not only its budget, so the scene is evaluated fewer times while it fills in."""
    from blender_addon import dirty, sync
    from blender_addon import session as session_module

    for i in range(150):
        link(bpy.data.objects.new(f"O{i}", None)).location = (i, 0, 0)
    items = sync.serialise_scene()
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    try:
        session, _ = join_with_snapshot(P, items)
        session_module.pump(budget=0.0)
        assert session.busy
        evaluate = dirty.evaluate

        def slow_evaluation():
            time.sleep(session_module.APPLY_EVALUATED_MAX)
            return evaluate()

        monkeypatch.setattr(dirty, "evaluate", slow_evaluation)
        session_module.pump(budget=0.0)
        done = session.applier._done
        monkeypatch.undo()
        session_module.pump(budget=0.0)  # the last evaluation took 0.1 s: slices for 0.1 s
        assert not session.busy or session.applier._done - done >= 4 * session_module.APPLY_SLICE
    finally:
        session_module.stop()


def test_create_room_with_send_scene_uploads_the_local_scene(addon, P):
    from blender_addon import session as session_module
    from blender_addon import sync

    link(bpy.data.objects.new("Mine", None))
    session = session_module.start("127.0.0.1:1", name="me", net_factory=FakeNet)
    try:
        net = session.net
        net.connect()
        session_module.pump()
        session.create_room("new", keep_open=True, send_scene=True)
        (create,) = net.take(P.CreateRoom)
        assert create.keep_open is True
        net.deliver(P.RoomCreated(room="new", ref=create.ref))
        session_module.pump()
        (join,) = net.take(P.JoinRoom)
        net.deliver(
            P.Joined(room="new", seq=0, mode="snapshot", key_count=0, clients=[], ref=join.ref),
            P.SnapshotEnd(room="new", seq=0),
        )
        session_module.pump()
        session_module.pump()
        (batch,) = net.take(P.Batch)
        assert "Mine" in bpy.data.objects
        assert {op[1] for op in batch.ops} == set(sync.serialise_scene())
    finally:
        session_module.stop()


def test_joining_a_room_with_content_clears_the_local_scene(addon, P):
    from blender_addon import session as session_module

    link(bpy.data.objects.new("LocalOnly", None))
    session = session_module.start("127.0.0.1:1", name="me", net_factory=FakeNet)
    try:
        net = session.net
        net.connect()
        session_module.pump()
        session.join_room("full")
        (join,) = net.take(P.JoinRoom)
        net.deliver(
            P.Joined(room="full", seq=3, mode="snapshot", key_count=0, clients=[], ref=join.ref),
            P.SnapshotEnd(room="full", seq=3),
        )
        session_module.pump()
        assert "LocalOnly" not in bpy.data.objects
    finally:
        session_module.stop()


def test_presence_is_sent_when_it_changes(live, P):
    from blender_addon import session as session_module

    session, net = live
    ob = link(bpy.data.objects.new("Picked", None))
    pump_after_update(session)
    net.take()
    ob.select_set(True)
    bpy.context.scene.frame_set(12)
    session._next_presence = 0.0
    session_module.pump()
    (presence,) = net.take(P.Presence)
    assert presence.state["frame"] == 12
    from blender_addon import sync

    assert presence.state["selection"] == [sync.get_uuid(ob)]
    session._next_presence = 0.0
    session_module.pump()
    assert net.take(P.Presence) == []  # nothing changed, nothing sent


def test_users_follow_join_update_and_leave_events(live, P):
    from blender_addon import session as session_module

    session, net = live
    net.deliver(
        P.ClientJoined(room="r", client={"id": OTHER, "name": "ana", "kind": "blender"}),
        P.ClientUpdated(room="r", client_id=OTHER, state={"frame": 5, "color": [1.0, 0.0, 0.0]}),
    )
    session_module.pump()
    assert session.users[OTHER]["name"] == "ana" and session.users[OTHER]["frame"] == 5
    net.deliver(P.ClientLeft(room="r", client_id=OTHER))
    session_module.pump()
    assert OTHER not in session.users


def test_room_deleted_under_us_leaves_the_room(live, P):
    from blender_addon import session as session_module

    session, net = live
    net.deliver(P.RoomDeleted(room="r"))
    session_module.pump()
    assert session.room is None and not session.unacked


def test_refused_batches_are_retried_or_dropped_by_error_code(live, P):
    import time

    from blender_addon import session as session_module

    session, net = live
    a = link(bpy.data.objects.new("A", None))
    b = link(bpy.data.objects.new("B", None))
    send_and_ack(session, net, P)
    a.location.x = 1.0
    pump_after_update(session)
    (first,) = net.take(P.Batch)
    b.location.x = 2.0
    pump_after_update(session)
    (second,) = net.take(P.Batch)

    # Rate limited: the batch had no effect; it goes out again under a new op_id, after a pause.
    net.deliver(P.Error(code="rate_limited", message="slow down", ref=first.op_id))
    session_module.pump()
    assert transform_key(a) in session.pending and not session.idle
    session._retry_at = time.monotonic()
    session_module.pump()
    (retried,) = net.take(P.Batch)
    assert retried.op_id > second.op_id and retried.ops == first.ops
    assert session.pending[transform_key(a)] == retried.op_id

    # Refused for good: the key is no longer shielded (the next remote value applies).
    net.deliver(P.Error(code="locked", message="locked by ana", ref=second.op_id))
    session_module.pump()
    assert transform_key(b) not in session.pending and second.op_id not in session.unacked


def test_auth_failure_stops_reconnecting(addon, P):
    from blender_addon import session as session_module

    session = session_module.start("127.0.0.1:1", name="me", token="bad", net_factory=FakeNet)
    try:
        net = session.net
        assert net.hello.token == "bad"
        net.connect()
        net.deliver(P.Error(code="auth_failed", message="token refused", fatal=True))
        net.lose()
        session_module.pump()
        assert net.stopped and session.state == session_module.STOPPED
        assert "auth_failed" in session.status
    finally:
        session_module.stop()


def test_unavailable_leaves_the_node_and_resends_the_batch_under_its_op_id_on_the_next(live, P):
    from blender_addon import session as session_module

    session, net = live
    ob = link(bpy.data.objects.new("Thing", None))
    pump_after_update(session)
    (batch,) = net.take(P.Batch)
    # This node lost its quorum: it cannot commit anything, so the session leaves it.
    net.deliver(P.Error(code="unavailable", message="no quorum", ref=batch.op_id))
    session_module.pump()
    assert net.dropped == [net.generation]  # that connection only, not a successor
    assert list(session.unacked) == [batch.op_id] and transform_key(ob) in session.pending
    net.lose()
    net.connect()
    session_module.pump()
    (join,) = net.take(P.JoinRoom)
    assert join.since == 0
    assert net.take(P.Batch) == [batch]  # same op_id, same ops: applied at most once
    net.deliver(
        P.Joined(room="r", seq=0, mode="resume", key_count=0, clients=[], ref=join.ref),
        P.Ack(op_id=batch.op_id, seq=1),
    )
    pump_after_update(session)
    assert not session.unacked and not session.pending and session.last_seq == 1
    assert net.take(P.Batch) == []


def test_undo_and_redo_send_the_restored_values_through_the_handlers(live, P):
    """The add-on's undo_pre/undo_post handlers: the undone transform goes out, no full scan needed."""
    from blender_addon import session as session_module

    session, net = live
    ob = link(bpy.data.objects.new("Thing", None))
    pump_after_update(session)
    net.take(P.Batch)
    key = transform_key(ob)
    bpy.ops.ed.undo_push(message="placed")
    bpy.data.objects["Thing"].location.x = 4.0
    bpy.ops.ed.undo_push(message="moved")
    pump_after_update(session)
    (moved,) = net.take(P.Batch)
    assert [op[1] for op in moved.ops] == [key]

    bpy.ops.ed.undo()
    session_module.pump()
    (undone,) = net.take(P.Batch)
    assert undone.ops == [["set", key, session.tracker.values[key]]]
    assert bpy.data.objects["Thing"].location.x == 0.0

    bpy.ops.ed.redo()
    session_module.pump()
    (redone,) = net.take(P.Batch)
    assert [op[1] for op in redone.ops] == [key] and bpy.data.objects["Thing"].location.x == 4.0


def test_undo_that_swaps_orphan_data_is_sent_on_the_next_pump(live, P):
    """The undo brings back one unused material and drops another: the length of bpy.data.materials
    stays and the depsgraph reports neither; the undo_post handler makes the next pump read every uuid."""
    from blender_addon import session as session_module
    from blender_addon import sync

    session, net = live
    for i in range(40):  # an audit pass takes several pumps here
        link(bpy.data.objects.new(f"E{i}", None))
    first = bpy.data.materials.new("First")
    first.use_fake_user = True
    pump_after_update(session)
    first_meta = sync.make_key("mat", sync.get_uuid(first), "meta")
    bpy.ops.ed.undo_push(message="first")
    bpy.data.materials.remove(first)
    pump_after_update(session)
    second = bpy.data.materials.new("Second")
    second.use_fake_user = True
    second_meta = sync.make_key("mat", sync.get_uuid(second), "meta")
    # Nothing reports it: found when the loop next looks at bpy.data's lengths (COUNT_INTERVAL).
    deadline = time.monotonic() + 5
    while second_meta not in session.tracker.values and time.monotonic() < deadline:
        pump_after_update(session)
        time.sleep(0.01)
    assert second_meta in session.tracker.values
    bpy.ops.ed.undo_push(message="second")
    net.take(P.Batch)

    bpy.ops.ed.undo()
    session_module.pump()
    (batch,) = net.take(P.Batch)
    assert ["set", first_meta] in [op[:2] for op in batch.ops]
    assert ["delete", second_meta] in batch.ops


def test_each_pump_audits_a_bounded_slice_and_finds_an_unreported_edit(live, P):
    from blender_addon import session as session_module
    from blender_addon import sync

    session, net = live
    for i in range(30):
        link(bpy.data.objects.new(f"E{i}", None))
    orphan = bpy.data.materials.new("Orphan")  # used by nothing: the depsgraph never reports it
    pump_after_update(session)
    net.take(P.Batch)
    orphan.diffuse_color = (1.0, 0.0, 0.0, 1.0)
    key = sync.make_key("mat", sync.get_uuid(orphan), "set", "diffuse_color")
    from blender_addon.sync.kinds import REGISTRY

    datablocks = sum(len(getattr(bpy.data, kind.collection)) for kind in REGISTRY)
    pumps, batches = 0, []
    while not batches and pumps <= datablocks + 2:  # one datablock a pump at least (but at a pass end)
        session_module.pump()
        pumps += 1
        assert session.tracker.audit_visits <= session_module.AUDIT_SLICE
        batches = net.take(P.Batch)
    assert [op[1] for op in batches[0].ops] == [key]
    assert pumps > 1  # found by slices, not by one walk of everything


def test_an_edit_made_before_the_window_switches_to_a_new_view_layer_is_sent_by_the_next_pump(
    live, P, monkeypatch
):
    """Blender reports an edit from a view layer's depsgraph when it is evaluated: the depsgraph of a view
    layer the window shows for the first time is made after the edit and reports nothing; the edit waits in
    the depsgraph of the view layer shown before. The audit is off: the edit is found by its report alone."""
    from blender_addon import session as session_module

    session, net = live
    monkeypatch.setattr(session_module, "AUDIT_SLICE", 0)
    ob = link(bpy.data.objects.new("Thing", None))
    pump_after_update(session)
    net.take(P.Batch)
    window = bpy.context.window
    shown = window.view_layer
    other = window.scene.view_layers.new("Other")
    pump_after_update(session)
    net.take(P.Batch)
    ob.location.x = 4.0  # then the window shows the other view layer before Blender evaluates
    window.view_layer = other
    assert other.depsgraph is None
    pump_after_update(session)
    (batch,) = net.take(P.Batch)
    assert [op[1] for op in batch.ops] == [transform_key(ob)]
    window.view_layer = shown
    pump_after_update(session)
    assert net.take(P.Batch) == []  # the edit, reported again by the view layer shown before, is known


def test_only_datablocks_with_nothing_but_shading_updates_since_the_last_pump_count_as_shading_only(live):
    from blender_addon import session as session_module

    a, b, c = (link(bpy.data.objects.new(name, None)) for name in "abc")
    session_module.take_dirty()
    session_module.note_dirty([a, b], shading_only=[a, b])
    session_module.note_dirty([a], shading_only=[])  # then a full update: not shading only
    session_module.note_dirty([b], shading_only=[b])
    session_module.note_dirty([c], shading_only=[])
    session_module.note_dirty([c], shading_only=[c])  # a full update came first
    dirty, shading_only = session_module.take_dirty()
    assert set(dirty) == {a, b, c} and shading_only == [b]
    assert session_module.take_dirty() == ([], [])


def test_edit_mode_sends_the_edit_mesh_while_editing_and_holds_a_lease_on_the_mesh(live, P):
    """In edit mode the mesh data does not change until the artist leaves it: the loop copies the edit mesh
    out when the depsgraph reports it changed (at most 10 times a second, once the previous copy is
    acknowledged), locks the mesh's geometry and shapes keys while editing, and unlocks them after. Others
    see who edits which mesh from the locks."""

    from blender_addon import edit_mode, sync
    from blender_addon import session as session_module

    session, net = live
    ob, me = active_triangle("EditMe")
    send_and_ack(session, net, P)
    geometry, shapes = edit_lease_keys(me)

    with editing():
        move_vertex(me, 1, 2.5)
        pump_after_update(session)
        (lock,) = net.take(P.Lock)
        assert sorted(lock.keys) == sorted([geometry, shapes])
        (batch,) = net.take(P.Batch)
        assert ob.mode == "EDIT" and geometry in [op[1] for op in batch.ops]
        assert me.vertices[1].co.z == 2.5
        # The next copy waits for the ack of this one.
        move_vertex(me, 2, 1.5)
        session.edit_mode._last.clear()  # as if the pacing interval had passed
        pump_after_update(session)
        assert net.take(P.Batch) == []
        net.deliver(P.Ack(op_id=batch.op_id, seq=2))
        session_module.pump()
        session.edit_mode._last.clear()
        pump_after_update(session)
        (again,) = net.take(P.Batch)
        assert geometry in [op[1] for op in again.ops] and me.vertices[2].co.z == 1.5
        net.deliver(
            P.Ack(op_id=again.op_id, seq=3),
            P.LocksChanged(room="r", locked={geometry: CLIENT, shapes: CLIENT}),
        )
        session_module.pump()
        assert session.editors() == {CLIENT: ["EditMe"]}
        # Nothing edited: no copy (a heavy mesh is not read again and again), however long it stays quiet
        # short of the safety copy; the next edit goes out in the next pump.
        uuid = sync.get_uuid(me)
        quiet = edit_mode.SAFETY_INTERVAL / 2
        for _ in range(3):
            session.edit_mode._last[uuid] -= quiet
            session.edit_mode._quiet[uuid] -= quiet / 3
            copied = session.edit_mode._last[uuid]
            pump_after_update(session)
            assert session.edit_mode._last[uuid] == copied
        move_vertex(me, 0, 0.5)
        pump_after_update(session)
        (edited,) = net.take(P.Batch)
        assert geometry in [op[1] for op in edited.ops] and me.vertices[0].co.z == 0.5
        net.deliver(P.Ack(op_id=edited.op_id, seq=4))
        session_module.pump()
    pump_after_update(session)
    (unlock,) = net.take(P.Unlock)
    assert sorted(unlock.keys) == sorted([geometry, shapes])
    net.deliver(P.LocksChanged(room="r", unlocked=[geometry, shapes]))
    session_module.pump()
    assert session.editors() == {}


def test_the_timer_runs_sooner_while_someone_in_the_room_is_in_edit_mode(live, P):
    """Another artist's edit-mode copies come up to 10 times a second, each to be applied in the next pump:
    while anyone holds a datablock in edit mode (their lease's locks), the timer's interval is the short
    one, and a call between two whole pumps pumps only when something came in or was reported here (a whole
    pump audits the scene); once the lease is released, the idle interval again."""
    from blender_addon import session as session_module
    from blender_addon import sync

    _, net = live
    assert session_module._timer() == session_module.IDLE_INTERVAL
    geometry = sync.make_key("mesh", "u" * 32, "geometry")
    transform = sync.make_key("obj", "v" * 32, "location")
    net.deliver(P.LocksChanged(room="r", locked={transform: OTHER}))  # a selection lease: not edit mode
    session_module.pump()
    assert session_module._timer() == session_module.IDLE_INTERVAL
    net.deliver(P.LocksChanged(room="r", locked={geometry: OTHER}))
    session_module.pump()
    pumps = []
    session_module.after_pump.append(pumps.append)
    try:
        assert session_module._timer() == session_module.BUSY_INTERVAL and len(pumps) == 1
        # Until the next whole pump is due, a call only looks: nothing came in, nothing was reported here.
        assert session_module._timer() == session_module.BUSY_INTERVAL and len(pumps) == 1
        net.deliver(P.LocksChanged(room="r", locked={transform: CLIENT}))  # news: a whole pump
        assert session_module._timer() == session_module.BUSY_INTERVAL and len(pumps) == 2
        ob = link(bpy.data.objects.new("Glanced", None))
        bpy.context.view_layer.update()  # reported here: a whole pump, which sends it
        assert session_module._timer() == session_module.BUSY_INTERVAL and len(pumps) == 3
        assert any(op[1] == transform_key(ob) for batch in net.take(P.Batch) for op in batch.ops)
        assert session_module._timer() == session_module.BUSY_INTERVAL and len(pumps) == 3
        session_module._glance_until = 0.0  # as if the idle interval had passed: a whole pump
        assert session_module._timer() == session_module.BUSY_INTERVAL and len(pumps) == 4
    finally:
        session_module.after_pump.remove(pumps.append)
    net.deliver(P.LocksChanged(room="r", unlocked=[geometry]))
    session_module.pump()
    assert session_module._timer() == session_module.IDLE_INTERVAL


def test_the_timer_comes_at_once_while_values_wait_to_be_applied_or_read_back(live, P, monkeypatch):
    """A pump keeps to its budget; while values wait for the CPU (applied, then read back) the timer's next
    call comes at once (the gap was idle time), while only the network is awaited at the busy interval, and
    then at the idle one."""
    from blender_addon import session as session_module
    from blender_addon import sync

    # A pump of no budget applies one slice and reads one datablock back, so the work takes many pumps on
    # any machine (with the usual 20 ms, a fast one did all 400 objects in one: nothing was tested).
    pump = session_module.pump
    monkeypatch.setattr(session_module, "pump", lambda budget=0.0: pump(0.0))
    monkeypatch.setattr(session_module, "APPLY_EVALUATED_MAX", 0.0)
    session, _ = live
    for i in range(400):
        ob = link(bpy.data.objects.new(f"W{i}", None))
        ob.location, ob["note"], ob["take"] = (i, 0, 0), i, i  # eight keys each
    items = {k: v for k, v in sync.serialise_scene().items() if k.startswith("obj/")}
    for i in range(400):
        bpy.data.objects.remove(bpy.data.objects[f"W{i}"])
    session.applier.feed(list(items.items()))  # another artist's 400 objects
    intervals, states = [], []
    for _ in range(1000):
        intervals.append(session_module._timer())
        states.append(session.applier.progress < 1.0 or bool(session.tracker.unread))
        if intervals[-1] == session_module.IDLE_INTERVAL:
            break
    assert intervals[0] == session_module.APPLY_INTERVAL and len(intervals) > 10  # many pumps' work
    fast = [i == session_module.APPLY_INTERVAL for i in intervals]
    assert fast == states  # at once exactly while values waited for the CPU
    assert intervals[-1] == session_module.IDLE_INTERVAL and len(bpy.context.scene.objects) == 400
    session.receiving_snapshot = True  # a snapshot on its way, nothing to apply yet
    try:
        assert session_module._timer() == session_module.BUSY_INTERVAL
    finally:
        session.receiving_snapshot = False


def test_the_timer_looks_for_a_joins_reply_at_once_until_the_snapshot_is_in(addon, P):
    """The reply to a join starts the applying: while it is awaited the timer comes at once, not after an idle
    interval (the whole snapshot waited in the inbox, its chunks unasked for, for most of a join's time); once
    the snapshot is in and applied, it is idle again."""
    from blender_addon import session as session_module

    session = session_module.start("127.0.0.1:1", name="late", net_factory=FakeNet)
    try:
        net = session.net
        net.connect()
        assert session_module._timer() == session_module.IDLE_INTERVAL  # connected, in no room
        session.join_room("r")
        (join,) = net.take(P.JoinRoom)
        assert [session_module._timer() for _ in range(3)] == [session_module.APPLY_INTERVAL] * 3
        net.deliver(P.Joined(room="r", seq=0, mode="snapshot", key_count=0, clients=[], ref=join.ref))
        assert session_module._timer() == session_module.APPLY_INTERVAL  # the snapshot still on its way
        net.deliver(P.SnapshotEnd(room="r", seq=0))
        intervals = [session_module._timer() for _ in range(3)]
        assert session.room == "r" and session.live and session._join is None
        assert intervals[-1] == session_module.IDLE_INTERVAL
    finally:
        session_module.stop()


def test_edit_mode_paces_a_curve_read_directly_by_holding_its_reports_back(live, P, monkeypatch):
    """A curve's splines are its edit data in edit mode: a scan would read every reported edit at once. The
    loop holds the curve's reports back until a copy is due (its previous edit acknowledged, the interval
    passed), and leases its splines and shapes keys."""
    from blender_addon import session as session_module
    from blender_addon import sync

    session, net = live
    # The audit (the safety net) reads each datablock now and then, edit data too: not within this test.
    monkeypatch.setattr(session_module, "AUDIT_SLICE", 0)
    cu = bpy.data.curves.new("EditPath", "CURVE")
    spline = cu.splines.new("POLY")
    spline.points.add(2)
    ob = link(bpy.data.objects.new("EditPath", cu))
    bpy.context.view_layer.objects.active = ob
    send_and_ack(session, net, P)
    splines = sync.make_key("curve", sync.get_uuid(cu), "splines")
    shapes = sync.make_key("curve", sync.get_uuid(cu), "shapes")

    with editing():
        cu.splines[0].points[1].co.z = 2.5
        pump_after_update(session)
        (lock,) = net.take(P.Lock)
        assert sorted(lock.keys) == sorted([splines, shapes])
        (batch,) = net.take(P.Batch)
        assert [op[1] for op in batch.ops] == [splines]
        # The next edit waits for the ack of this one, however many pumps pass.
        cu.splines[0].points[2].co.z = 1.5
        session.edit_mode._last.clear()  # as if the pacing interval had passed
        pump_after_update(session)
        pump_after_update(session)
        assert net.take(P.Batch) == []
        net.deliver(P.Ack(op_id=batch.op_id, seq=2))
        session_module.pump()
        session_module.pump()
        (again,) = net.take(P.Batch)  # the held report
        assert [op[1] for op in again.ops] == [splines]
        # Acknowledged, but too soon after the last copy: held until the interval passes.
        net.deliver(P.Ack(op_id=again.op_id, seq=3))
        session_module.pump()
        session.edit_mode._last[sync.get_uuid(cu)] = time.monotonic() + 60.0
        cu.splines[0].points[0].co.z = 0.5
        pump_after_update(session)
        pump_after_update(session)
        assert net.take(P.Batch) == []
        session.edit_mode._last.clear()
        session_module.pump()
        (last,) = net.take(P.Batch)
        assert [op[1] for op in last.ops] == [splines]
        net.deliver(P.Ack(op_id=last.op_id, seq=4))
        session_module.pump()
    pump_after_update(session)
    (unlock,) = net.take(P.Unlock)
    assert sorted(unlock.keys) == sorted([splines, shapes])


def test_edit_mode_holds_a_curve_with_shape_keys_back_until_the_artist_leaves_it(live, P, monkeypatch):
    """A curve with shape keys is evaluated from them, and Blender writes edit mode's changes into them
    when the artist leaves it (meanwhile its splines hold the active key's shape): its splines are not sent
    while in edit mode, however long the artist edits; its shape keys go out on leaving."""
    from blender_addon import session as session_module
    from blender_addon import sync

    session, net = live
    monkeypatch.setattr(session_module, "AUDIT_SLICE", 0)  # the safety net's reading: not within this test
    cu = bpy.data.curves.new("KeyedPath", "CURVE")
    cu.splines.new("POLY").points.add(2)
    ob = link(bpy.data.objects.new("KeyedPath", cu))
    ob.shape_key_add(name="Basis")
    ob.shape_key_add(name="Bend").data[1].co = (1.0, 5.0, 0.0)
    ob.active_shape_key_index = 1
    bpy.context.view_layer.objects.active = ob
    send_and_ack(session, net, P)
    splines = sync.make_key("curve", sync.get_uuid(cu), "splines")
    shapes = sync.make_key("curve", sync.get_uuid(cu), "shapes")

    with editing():
        for z in (1.0, 2.0, 3.0):
            cu.splines[0].points[1].co.z = z
            session.edit_mode._last.clear()
            pump_after_update(session)
        assert [lock.keys for lock in net.take(P.Lock)] == [[splines, shapes]]
        assert net.take(P.Batch) == []
    pump_after_update(session)
    assert [unlock.keys for unlock in net.take(P.Unlock)] == [[splines, shapes]]
    (batch,) = net.take(P.Batch)
    assert shapes in [op[1] for op in batch.ops]  # the edit went into the active key (splines: the basis)
    assert tuple(cu.shape_keys.key_blocks["Bend"].data[1].co) == (1.0, 5.0, 3.0)


def test_a_heavy_mesh_applied_from_the_room_is_not_read_back_and_edits_around_the_apply_are_sent(
    live, P, monkeypatch
):
    """Applying another artist's geometry to a large mesh: the tracker takes the value as it came and the
    depsgraph's report of the apply is dropped, so neither the applying pump nor the next reads the mesh
    again. An edit of that mesh made before the applying pump (not evaluated yet) or after it is still
    sent."""
    import array

    from blender_addon import session as session_module
    from blender_addon import sync
    from blender_addon.sync import tracker as tracker_module

    session, net = live
    bpy.ops.mesh.primitive_grid_add(x_subdivisions=299, y_subdivisions=299)
    me = bpy.context.active_object.data
    me.name = "HeavyGrid"
    send_and_ack(session, net, P)
    uuid = sync.get_uuid(me)
    geometry = sync.make_key("mesh", uuid, "geometry")
    assert session.tracker.is_heavy(uuid)
    reads: list[str] = []
    serialise_parts = tracker_module.serialise_parts

    def counting(kind, id_data, ctx):
        reads.append(id_data.name)
        return serialise_parts(kind, id_data, ctx)

    monkeypatch.setattr(tracker_module, "serialise_parts", counting)

    def remote_geometry(seq, z):
        doc = sync.decode_value(session.tracker.values[geometry])
        co = array.array("f")
        co.frombytes(doc["vertices"])
        co[2] = z  # vertex 0's height
        doc["vertices"] = co.tobytes()
        ops = [["set", geometry, sync.encode_value(doc)]]
        net.deliver(P.Applied(room="r", seq=seq, client_id=OTHER, op_id=seq, ops=ops))

    # Applied, and not read back: not in the applying pump, not in the next.
    remote_geometry(2, 7.0)
    pump_after_update(session)
    assert me.vertices[0].co.z == 7.0
    pump_after_update(session)
    assert "HeavyGrid" not in reads and net.take(P.Batch) == []

    # An edit made before the pump that applies, which the depsgraph has not reported yet: sent.
    remote_geometry(3, 8.0)
    me["note"] = 1
    me.update_tag()
    session_module.pump()  # no evaluation first: the edit is not reported when the pump starts
    assert me.vertices[0].co.z == 8.0
    pump_after_update(session)
    (batch,) = net.take(P.Batch)
    sent = [op[1] for op in batch.ops]
    assert geometry not in sent and any(k.startswith(f"mesh/{uuid}/prop") for k in sent), sent
    net.deliver(P.Ack(op_id=batch.op_id, seq=4))

    # An edit made after the apply, before the next scan: sent.
    remote_geometry(5, 9.0)
    pump_after_update(session)
    assert me.vertices[0].co.z == 9.0
    me.vertices[5].co.z = 3.0
    me.update()
    pump_after_update(session)
    (batch,) = net.take(P.Batch)
    ops = {op[1]: op[2] for op in batch.ops}
    co = array.array("f")
    co.frombytes(sync.decode_value(ops[geometry])["vertices"])
    assert co[2] == 9.0 and co[17] == 3.0


def test_an_edit_mode_copy_carries_the_meshs_attributes_and_only_the_moved_vertex_changes(live, P):
    """In edit mode a mesh's attributes are its edit mesh's: the copy sent while editing must still hold
    the UV map and face flags the mesh has, and the same topology."""

    from blender_addon import sync

    session, net = live
    bpy.ops.mesh.primitive_grid_add(x_subdivisions=20, y_subdivisions=20)
    ob = bpy.context.active_object
    me = ob.data
    me.attributes["sharp_face"].data[3].value = False
    send_and_ack(session, net, P)
    geometry = sync.make_key("mesh", sync.get_uuid(me), "geometry")
    before = sync.decode_value(session.tracker.values[geometry])
    assert {a["name"] for a in before["attributes"]} == {"UVMap", "sharp_face"}
    with editing():
        move_vertex(me, 4, 2.0)
        pump_after_update(session)
        (batch,) = net.take(P.Batch)
        sent = sync.decode_value({op[1]: op[2] for op in batch.ops}[geometry])
    assert sent["attributes"] == before["attributes"]
    for name in ("edges", "face_starts", "corner_verts", "corner_edges"):
        assert sent[name] == before[name], name
    assert sent["vertices"] != before["vertices"]


def test_a_heavy_mesh_given_a_name_blender_keeps_otherwise_is_read_back_and_the_name_not_sent(live, P):
    """A heavy mesh applied without reading it back must still be read back when a name came out otherwise
    (another datablock here holds it): the next local edit of it must not send Blender's name back."""
    from blender_addon import sync

    session, net = live
    bpy.ops.mesh.primitive_grid_add(x_subdivisions=299, y_subdivisions=299)
    me = bpy.context.active_object.data
    me.name = "Big"
    link(bpy.data.objects.new("Holder", bpy.data.meshes.new("Taken")))
    send_and_ack(session, net, P)
    uuid = sync.get_uuid(me)
    assert session.tracker.is_heavy(uuid)
    name = sync.make_key("mesh", uuid, "name")
    ops = [["set", name, sync.encode_value("Taken")]]
    net.deliver(P.Applied(room="r", seq=2, client_id=OTHER, op_id=2, ops=ops))
    pump_after_update(session)
    assert me.name == "Taken.001" and net.take(P.Batch) == []
    me.vertices[0].co.z = 1.0
    me.update()
    pump_after_update(session)
    (batch,) = net.take(P.Batch)
    assert name not in [op[1] for op in batch.ops]


def test_a_request_awaiting_its_reply_keeps_the_session_from_idle(live, P):
    """A restore the server has not answered yet is not quiet: a wait for idle that ignored it returned
    before a slow server's restore had landed, with the scene still the one before it."""
    from blender_addon import room_history
    from blender_addon import session as session_module

    session, net = live
    send_and_ack(session, net, P)
    assert session.idle
    ref = room_history.restore(session, 3)
    (asked,) = net.take(P.Restore)
    assert asked.ref == ref
    session_module.pump()
    assert not session.idle
    net.deliver(P.Restored(room="r", seq=session.last_seq, undo=4, ref=ref))
    session_module.pump()
    (listing,) = net.take(P.ListCheckpoints)  # the restore added its undo checkpoint: asked for the list
    assert not session.idle
    net.deliver(P.CheckpointList(room="r", checkpoints=[], ref=listing.ref))
    session_module.pump()
    assert session.idle and room_history.view(session).last_restore == (session.last_seq, 4)
