"""Selection leases in one process over a fake network (tests/blender/test_leases.py runs them across
processes): which locks are asked and released, a refusal that arrives before the lease it is about, a lease
request another artist beat us to, and the panel's list of what others hold."""

from __future__ import annotations

import pytest

bpy = pytest.importorskip("bpy", reason="bpy (Blender as a Python module) is not installed")

import test_addon_session  # noqa: E402
from scene_builders import link  # noqa: E402
from test_addon_session import (  # noqa: E402
    CLIENT,
    OTHER,
    active_triangle,
    edit_lease_keys,
    editing,
    move_vertex,
    pump_after_update,
    send_and_ack,
)
from test_addon_ui import FakeLayout  # noqa: E402

pytestmark = pytest.mark.blender
addon, live, P = test_addon_session.addon, test_addon_session.live, test_addon_session.P


def test_what_is_asked_and_released(addon, P):
    from blender_addon.leases import Leases, prefix_of, uuid_of

    a, b = prefix_of("a" * 32), prefix_of("b" * 32)
    assert uuid_of(a) == "a" * 32 and uuid_of("obj/x/y") is None and uuid_of("mat/" + "a" * 32 + "/") is None
    off = Leases(enabled=False)
    assert off.wanted(["a" * 32]) == ([], [])
    leases = Leases(enabled=True)
    assert leases.wanted(["a" * 32, "b" * 32]) == ([a, b], [])
    assert leases.wanted(["a" * 32, "b" * 32]) == ([], [])  # asked once
    leases.granted([a])
    leases.refused([b])
    assert leases.wanted(["a" * 32, "b" * 32]) == ([], [])  # b: someone else has it
    event = P.LocksChanged(room="r", prefixes={b: OTHER, a: CLIENT})
    leases.locks_changed(event, CLIENT)
    assert (
        leases.others == {b: OTHER}
        and leases.holder(b + "location") == OTHER
        and leases.holder(a + "x") is None
    )
    leases.locks_changed(P.LocksChanged(room="r", unlocked_prefixes=[b]), CLIENT)
    assert leases.wanted(["a" * 32, "b" * 32]) == ([b], [])  # released: asked again
    leases.granted([b])
    assert leases.wanted([]) == ([], [a, b])  # deselected
    leases.granted([a])
    leases.connection_lost()
    assert leases.wanted(["a" * 32]) == ([a], [])  # the server dropped ours with the connection


def test_a_refusal_before_the_lease_it_is_about_waits_for_it(live, P):
    from blender_addon import sync

    session, net = live
    session.users[OTHER] = {"id": OTHER, "name": "Ana"}
    held = link(bpy.data.objects.new("Held", bpy.data.meshes.new("HeldMesh")))
    free = link(bpy.data.objects.new("Free", None))
    pump_after_update(session)
    (first,) = net.take(P.Batch)
    net.deliver(P.Ack(op_id=first.op_id, seq=1))
    pump_after_update(session)
    assert held.modifiers.new("Bend", "SIMPLE_DEFORM") is not None  # a key made after the lease
    held.location.x = 6.0
    free.location.x = 1.0
    pump_after_update(session)
    (batch,) = net.take(P.Batch)
    prefix = f"obj/{sync.get_uuid(held)}/"
    net.deliver(P.Error(code="locked", message="locked", ref=batch.op_id))
    pump_after_update(session)
    assert held.location.x == 6.0 and session.notices.items == []  # whose lock it is: not known yet
    net.deliver(P.LocksChanged(room="r", prefixes={prefix: OTHER}))
    pump_after_update(session)
    assert held.location.x == 0.0 and "Bend" not in held.modifiers  # back to the room's
    assert [n.text for n in session.notices.items] == ["Held is locked by Ana: your change was undone"]
    (again,) = net.take(P.Batch)  # the rest of the refused batch
    assert {op[1] for op in again.ops} == {sync.make_key("obj", sync.get_uuid(free), "location")}
    # Known now: a new edit of Held is not sent, and undone.
    held.location.y = 2.0
    pump_after_update(session)
    assert held.location.y == 0.0 and net.take(P.Batch) == []
    # The panel lists it.
    session.revision += 1
    layout = FakeLayout([])
    from blender_addon import ui

    ui.draw_users(layout, bpy.context)
    assert "Held (Ana)" in layout.texts()


def test_a_lease_someone_else_got_first_is_asked_again_when_released(live, P):
    from blender_addon import sync

    session, net = live
    session.leases.enabled = True
    ob = link(bpy.data.objects.new("Wanted", None))
    ob.select_set(True)
    pump_after_update(session)
    session._next_presence = 0.0
    session_module_pump(session)
    (lock,) = net.take(P.Lock)
    prefix = f"obj/{sync.get_uuid(ob)}/"
    assert lock.prefixes == [prefix] and lock.keys == []
    net.deliver(P.Error(code="locked", message="taken", ref=lock.ref))
    session_module_pump(session)
    assert prefix in session.leases.denied and net.take(P.Lock) == []
    net.deliver(P.LocksChanged(room="r", unlocked_prefixes=[prefix]))
    session_module_pump(session)
    (lock,) = net.take(P.Lock)
    net.deliver(P.LockGranted(room="r", keys=[], prefixes=[prefix], ref=lock.ref))
    session_module_pump(session)
    assert session.leases.mine == {prefix}
    ob.select_set(False)
    session_module_pump(session)
    (unlock,) = net.take(P.Unlock)
    assert unlock.prefixes == [prefix] and session.leases.mine == set()


def granted(net, P, lock) -> None:
    """The server's answer to our ``lock`` request, and its notice to the room."""
    net.deliver(P.LockGranted(room="r", keys=lock.keys, prefixes=lock.prefixes, ref=lock.ref))
    mine = dict.fromkeys(lock.keys, CLIENT)
    net.deliver(P.LocksChanged(room="r", locked=mine, prefixes=dict.fromkeys(lock.prefixes, CLIENT)))


def test_a_lease_the_server_released_without_our_asking_is_asked_again(live, P):
    """Our node taken for dead by the cluster, or an admin's break-lock: the server tells the room that our
    lease went (or went to someone else); a selection lease and an edit-mode lease are asked for again."""
    from blender_addon import sync

    session, net = live
    session.leases.enabled = True
    ob, me = active_triangle("Held")
    ob.select_set(True)
    send_and_ack(session, net, P)
    session_module_pump(session)
    (lock,) = net.take(P.Lock)
    prefix = f"obj/{sync.get_uuid(ob)}/"
    granted(net, P, lock)
    session_module_pump(session)
    assert session.leases.mine == {prefix} and net.take(P.Lock) == []
    net.deliver(P.LocksChanged(room="r", unlocked_prefixes=[prefix]))
    session_module_pump(session)
    (again,) = net.take(P.Lock)
    assert again.prefixes == [prefix]
    # Released and taken by another artist in one notice: theirs now, asked again once they release it.
    net.deliver(P.LockGranted(room="r", keys=[], prefixes=[prefix], ref=again.ref))
    net.deliver(P.LocksChanged(room="r", prefixes={prefix: OTHER}))
    session_module_pump(session)
    assert session.leases.mine == set() and net.take(P.Lock) == []
    net.deliver(P.LocksChanged(room="r", unlocked_prefixes=[prefix]))
    session_module_pump(session)
    assert [lock.prefixes for lock in net.take(P.Lock)] == [[prefix]]

    ob.select_set(False)
    geometry, shapes = edit_lease_keys(me)
    with editing():
        move_vertex(me, 1, 2.5)
        pump_after_update(session)
        (lock,) = net.take(P.Lock)
        assert sorted(lock.keys) == sorted([geometry, shapes])
        granted(net, P, lock)
        pump_after_update(session)
        assert net.take(P.Lock) == []
        net.deliver(P.LocksChanged(room="r", unlocked=[geometry, shapes]))
        pump_after_update(session)  # read after this pump's edit-mode step: asked in the next
        pump_after_update(session)
        (again,) = net.take(P.Lock)
        assert sorted(again.keys) == sorted([geometry, shapes])
        granted(net, P, again)
        pump_after_update(session)
    pump_after_update(session)  # out of edit mode: released at our asking, and not asked again
    assert [unlock.keys for unlock in net.take(P.Unlock)] == [[geometry, shapes]]
    net.deliver(P.LocksChanged(room="r", unlocked=[geometry, shapes]))
    pump_after_update(session)
    pump_after_update(session)
    assert net.take(P.Lock) == []


def session_module_pump(session) -> None:
    """One pump with the presence interval passed (leases are asked with presence)."""
    session._next_presence = 0.0
    pump_after_update(session)


def test_a_large_selection_is_leased_in_requests_the_protocol_allows(live, P):
    """4096 objects may be selected (the presence limit); one lock request holds at most 1024 prefixes."""
    session, net = live
    session.leases.enabled = True
    uuids = [f"{i:032x}" for i in range(1100)]
    session._update_leases(uuids)
    locks = net.take(P.Lock)
    assert [len(lock.prefixes) for lock in locks] == [1024, 76]
    for lock in locks:
        P.Lock.check(lock)  # what the server's decoder checks
        net.deliver(P.LockGranted(room="r", keys=[], prefixes=lock.prefixes, ref=lock.ref))
    session._next_presence = float("inf")  # no presence (so no selection read) in this pump
    pump_after_update(session)
    assert len(session.leases.mine) == 1100
    session._update_leases([])
    assert [len(unlock.prefixes) for unlock in net.take(P.Unlock)] == [1024, 76]
