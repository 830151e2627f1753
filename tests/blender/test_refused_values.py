"""Values this Blender cannot apply, or applies as something else, are never sent back to the room.

After applying, the tracker knows what this Blender holds (the state read
back), so neither a value that failed to apply nor one that Blender
normalised on the way in (clamped, cut, renamed) looks like a local edit;
a genuine edit afterwards still goes out. In process, with the sync loop
over the fake network of ``test_addon_session``.
"""

from __future__ import annotations

import pytest

bpy = pytest.importorskip("bpy", reason="bpy (Blender as a Python module) is not installed")

from scene_builders import link, triangle_mesh  # noqa: E402
from test_addon_session import OTHER, P, addon, live, pump_after_update  # noqa: E402

from blender_addon import sync  # noqa: E402

pytestmark = pytest.mark.blender
__all__ = ["P", "addon", "live"]  # fixtures used by name


def quiet(tracker: sync.ChangeTracker, passes: int = 3) -> tuple[dict, list]:
    """Everything a full scan and several whole audit passes report."""
    changed, deleted = tracker.scan()
    cycles = tracker.audit_cycles
    while tracker.audit_cycles < cycles + passes:
        more, gone = tracker.audit(100)
        changed.update(more)
        deleted += gone
    return changed, deleted


def refuse(*keys: str):
    def before_apply(key, doc):
        if key in keys:
            raise RuntimeError("cannot apply this here")

    return before_apply


@pytest.mark.parametrize("failure", ["refused", "undecodable"])
def test_a_value_that_fails_to_apply_is_not_sent_back_and_a_later_edit_is(failure):
    ob = link(bpy.data.objects.new("Pillar", None))
    tracker = sync.ChangeTracker()
    tracker.scan()
    location = sync.make_key("obj", sync.get_uuid(ob), "location")
    scale = sync.make_key("obj", sync.get_uuid(ob), "scale")
    applier = sync.Applier(tracker)
    value = sync.encode_value([1.0, 2.0, 3.0])
    if failure == "refused":
        applier.before_apply = refuse(location)
    else:  # bytes another client wrote that are no value at all
        value = b"\xc1 not msgpack"
    applier.apply([(location, value), (scale, sync.encode_value([2.0, 2.0, 2.0]))])
    assert [key for key, _ in applier.errors] == [location]
    assert tuple(ob.location) == (0.0, 0.0, 0.0) and tuple(ob.scale) == (2.0, 2.0, 2.0)
    assert tracker.values[location] == sync.encode_value([0.0, 0.0, 0.0])  # what this Blender holds
    assert quiet(tracker) == ({}, [])

    # Alone in its step (nothing else of the datablock applied), the failure is not reported back either.
    applier.apply([(location, value)])
    assert [key for key, _ in applier.errors] == [location]  # listed once, with its latest failure
    assert quiet(tracker) == ({}, [])

    ob.location.x = 5.0  # the artist's own edit still travels, alone
    assert quiet(tracker) == ({location: sync.encode_value([5.0, 0.0, 0.0])}, [])


def test_a_failure_is_listed_until_the_key_applies_and_the_list_is_bounded():
    ob = link(bpy.data.objects.new("Pillar", None))
    uuid = sync.get_uuid(ob)
    location, scale = sync.make_key("obj", uuid, "location"), sync.make_key("obj", uuid, "scale")
    applier = sync.Applier(sync.ChangeTracker())
    applier.apply([(location, b"\xc1"), (scale, b"\xc1")])
    assert [key for key, _ in applier.errors] == [location, scale]
    applier.apply([(location, sync.encode_value([1.0, 2.0, 3.0]))])  # a later value of the key holds
    assert [key for key, _ in applier.errors] == [scale] and tuple(ob.location) == (1.0, 2.0, 3.0)
    applier.apply([(scale, None)])  # so does its delete
    assert applier.errors == []
    limit = sync.apply_errors.MAX_KEYS
    ghosts = [sync.make_key("obj", uuid, f"set/no_such_setting_{n}") for n in range(limit + 5)]
    for key in ghosts:
        applier.errors.report(key, "cannot apply this here")
    assert len(applier.errors) == limit
    assert applier.errors[0][0] == ghosts[5] and applier.errors[-1][0] == ghosts[-1]


def test_an_item_delete_that_fails_to_apply_is_not_sent_back():
    ob = link(bpy.data.objects.new("Pillar", None))
    tracker = sync.ChangeTracker()
    tracker.scan()
    member = next(key for key in tracker.values if "/in/" in key and sync.get_uuid(ob) in key)
    applier = sync.Applier(tracker)
    applier.before_apply = refuse(member)
    applier.apply([(member, None)])  # unlinking it fails here: it stays linked, and that is not an edit
    assert [key for key, _ in applier.errors] == [member] and ob.users_collection
    assert quiet(tracker) == ({}, [])


def test_a_datablock_that_cannot_be_made_here_is_never_reported_deleted():
    """Its keys, and parts waiting for a datablock that has not arrived, are not this Blender's to delete."""
    ob = link(bpy.data.objects.new("Holder", triangle_mesh()))
    room = dict(sync.serialise_scene())
    uuid = sync.get_uuid(ob)
    bpy.data.objects.remove(ob)
    tracker = sync.ChangeTracker()
    tracker.scan()
    meta, location = sync.make_key("obj", uuid, "meta"), sync.make_key("obj", uuid, "location")
    doc = sync.decode_value(room[meta])
    doc["data_kind"], doc["data"] = "text", "0" * 32  # no object can use a text: it cannot be made
    waiting = sync.make_key("obj", "1" * 32, "location")  # a part whose datablock has not arrived
    applier = sync.Applier(tracker)
    applier.apply([(meta, sync.encode_value(doc)), (location, room[location]), (waiting, room[location])])
    assert [key for key, _ in applier.errors] == [meta]
    assert quiet(tracker) == ({}, [])
    assert location not in tracker.values and waiting not in tracker.values


def test_values_blender_normalises_on_the_way_in_are_not_sent_back():
    """What Blender reads back right after applying stands for the room's value: no echo."""
    ob = link(bpy.data.objects.new("Pillar", None))
    other = link(bpy.data.objects.new("Other", None))
    link(bpy.data.objects.new("Taken", None))
    cam = bpy.data.cameras.new("Lens")
    tracker = sync.ChangeTracker()
    tracker.scan()
    uuid = sync.get_uuid(ob)
    long_name = "N" * 400  # longer than Blender keeps
    names = [sync.make_key("obj", uuid, "name"), sync.make_key("obj", sync.get_uuid(other), "name")]
    applier = sync.apply_ops(
        [
            (sync.make_key("obj", uuid, "set", "empty_display_size"), sync.encode_value(1e6)),
            (sync.make_key("cam", sync.get_uuid(cam), "set", "lens"), sync.encode_value(0.1)),
            (names[0], sync.encode_value(long_name)),
            (names[1], sync.encode_value("Taken")),
        ],
        tracker,
    )
    assert ob.empty_display_size == 1000.0 and cam.lens == 1.0  # clamped by RNA
    assert long_name.startswith(ob.name) and len(ob.name) < len(long_name)  # cut
    assert other.name == "Taken.001"  # de-duplicated: "Taken" keeps its name
    assert sorted(key for key, _ in applier.errors) == sorted(names)  # both listed under Not applied here
    assert quiet(tracker) == ({}, [])
    ob.empty_display_size = 3.0  # the artist's own edit still travels
    size = sync.make_key("obj", uuid, "set", "empty_display_size")
    assert quiet(tracker) == ({size: sync.encode_value(3.0)}, [])


@pytest.mark.parametrize("slice_size", [None, 1])
def test_names_swapped_in_one_batch_end_as_the_room_has_them(slice_size):
    """Blender gives the first rename a .001 while the other still holds the name; it is set again once
    the other's rename is done, also when they are applied in different slices."""
    a, b, c = (link(bpy.data.objects.new(name, None)) for name in ("A", "B", "C"))
    tracker = sync.ChangeTracker()
    tracker.scan()
    ops = [
        (sync.make_key("obj", sync.get_uuid(ob), "name"), sync.encode_value(name))
        for ob, name in ((a, "B"), (b, "C"), (c, "A"))  # a rotation: every rename meets a taken name
    ]
    applier = sync.Applier(tracker)
    applier.feed(ops)
    while applier.step(slice_size) < 1.0:
        pass
    assert (a.name, b.name, c.name) == ("B", "C", "A")
    assert applier.errors == [] and quiet(tracker) == ({}, [])


def test_the_sync_loop_sends_nothing_back_for_a_value_it_cannot_apply(live, P):
    """A third client wrote bytes that are no value: listed under *Not applied here*; nothing goes out."""
    session, net = live
    ob = link(bpy.data.objects.new("Pillar", None))
    pump_after_update(session)
    for batch in net.take(P.Batch):
        net.deliver(P.Ack(op_id=batch.op_id, seq=1))
    pump_after_update(session)
    key = sync.make_key("obj", sync.get_uuid(ob), "location")
    net.deliver(P.Applied(room="r", seq=2, client_id=OTHER, op_id=1, ops=[["set", key, b"\xc1"]]))
    for _ in range(200):  # many whole audit passes over this small scene
        pump_after_update(session)
    assert net.take(P.Batch) == []
    assert [k for k, _ in session.applier.errors] == [key]
    assert session.tracker.audit_cycles > 10

    ob.location.z = 4.0
    pump_after_update(session)
    (batch,) = net.take(P.Batch)
    assert batch.ops == [["set", key, sync.encode_value([0.0, 0.0, 4.0])]]
