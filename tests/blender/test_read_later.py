"""A large apply (a join) leaves its datablocks to be read back later, and nothing is sent or lost for it.

With ``Applier.read_later`` (the sync loop sets it), a step done with ``READ_LATER_FROM`` datablocks or more
notes the values it applied as what they hold (``ChangeTracker.note_unread``) instead of reading each one
back; ``read_unread`` (the sync loop's pumps, once nothing is queued) and the audit read them back later and
take what Blender holds, as the read at the end of the step did. What cannot wait is read back at once: a
value that failed or waits, a name Blender changed, collections and scenes. A scan that reads an unread
datablock (the artist changed it) compares it with the values applied and sends the difference.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

bpy = pytest.importorskip("bpy", reason="bpy (Blender as a Python module) is not installed")

from conftest import reset_scene  # noqa: E402
from scene_builders import link, triangle_mesh  # noqa: E402
from test_addon_session import P, addon, join_with_snapshot, pump_after_update  # noqa: E402
from test_refused_values import quiet, refuse  # noqa: E402

from blender_addon import sync  # noqa: E402
from blender_addon.sync.apply import READ_LATER_FROM  # noqa: E402

pytestmark = pytest.mark.blender
__all__ = ["P", "addon"]  # fixtures used by name

COUNT = READ_LATER_FROM + 4
FAR = float("inf")  # a deadline that does not stop a read-back


def room_of_empties(count: int = COUNT) -> tuple[dict[str, bytes], dict[str, str]]:
    """The keys of ``count`` empties ``O0``... (as another artist's scene), and their uuids by name; the
    scene is emptied for them to be applied into."""
    for i in range(count):
        link(bpy.data.objects.new(f"O{i}", None)).location = (i, 0.0, 0.0)
    items = sync.serialise_scene()
    uuids = {ob.name: sync.get_uuid(ob) for ob in bpy.data.objects}
    reset_scene()
    return items, uuids


def applier_reading_later(tracker: sync.ChangeTracker) -> sync.Applier:
    applier = sync.Applier(tracker)
    applier.read_later = True
    return applier


def display_size(uuid: str) -> str:
    return sync.make_key("obj", uuid, "set", "empty_display_size")


def read_all(tracker: sync.ChangeTracker) -> None:
    while tracker.unread:
        assert tracker.read_unread(FAR) > 0


def test_a_large_apply_is_read_back_later_and_takes_what_blender_holds():
    """A value Blender clamps on the way in is known as Blender holds it once read back: no echo."""
    items, uuids = room_of_empties()
    size = display_size(uuids["O3"])
    items[size] = sync.encode_value(1e6)  # more than Blender keeps (clamped to 1000)
    tracker = sync.ChangeTracker()
    applier_reading_later(tracker).apply(items.items())
    assert bpy.data.objects["O3"].empty_display_size == 1000.0
    assert tracker.unread == COUNT  # the objects; not the scene, whose read also notes its members
    assert tracker.values[size] == sync.encode_value(1e6)  # as applied, until read back
    read_all(tracker)
    assert tracker.values[size] == sync.encode_value(1000.0)
    assert quiet(tracker) == ({}, [])
    bpy.data.objects["O3"].empty_display_size = 3.0  # the artist's own edit still travels
    assert quiet(tracker) == ({size: sync.encode_value(3.0)}, [])


def test_the_audit_reads_an_unread_datablock_back_rather_than_compare_it():
    items, uuids = room_of_empties()
    items[display_size(uuids["O3"])] = sync.encode_value(1e6)
    tracker = sync.ChangeTracker()
    applier_reading_later(tracker).apply(items.items())
    assert tracker.unread == COUNT
    cycles = tracker.audit_cycles
    while tracker.audit_cycles < cycles + 2:
        assert tracker.audit(4) == ({}, [])  # compared, the clamped value would go back to the room
    assert tracker.unread == 0
    assert quiet(tracker) == ({}, [])


def test_a_small_apply_is_read_back_at_once():
    items, _ = room_of_empties(READ_LATER_FROM - 1)
    tracker = sync.ChangeTracker()
    applier_reading_later(tracker).apply(items.items())
    assert tracker.unread == 0
    assert quiet(tracker) == ({}, [])


def test_an_edit_of_an_unread_datablock_is_compared_with_the_values_applied_and_sent():
    items, uuids = room_of_empties()
    tracker = sync.ChangeTracker()
    applier_reading_later(tracker).apply(items.items())
    ob = bpy.data.objects["O3"]
    ob.location.x = 9.0  # the artist, before the read-back: the depsgraph reports it
    assert tracker.read_unread(FAR, edited=lambda id_data: id_data == ob) == COUNT - 1
    assert tracker.unread == 1  # left to the scan (read back, the edit would be taken for the room's)
    location = sync.make_key("obj", uuids["O3"], "location")
    changed, deleted = tracker.scan([ob], look_for_new=False)
    assert (changed, deleted) == ({location: sync.encode_value([9.0, 0.0, 0.0])}, [])
    assert tracker.unread == 0
    assert quiet(tracker) == ({}, [])


def test_what_cannot_wait_is_read_back_at_once_in_a_large_apply():
    """A value that failed (its datablock does not hold it) and a name Blender changed are read back with
    the step, so an edit of their datablock before the read-back sends the edit and nothing else."""
    items, uuids = room_of_empties()
    taken = link(bpy.data.objects.new("Taken", None))  # a local object holds the name O7 is given
    location = sync.make_key("obj", uuids["O5"], "location")
    name = sync.make_key("obj", uuids["O7"], "name")
    items[name] = sync.encode_value("Taken")
    tracker = sync.ChangeTracker()
    applier = applier_reading_later(tracker)
    applier.before_apply = refuse(location)
    applier.apply(items.items())
    assert sorted(key for key, _ in applier.errors) == sorted([location, name])  # both listed
    assert bpy.data.objects["O5"].location.x == 0.0 and taken.name == "Taken"
    renamed = next(ob for ob in bpy.data.objects if sync.get_uuid(ob) == uuids["O7"])
    assert renamed.name == "Taken.001"
    assert tracker.unread == COUNT - 2
    new, _ = tracker.scan([])  # the tracker learns the local object
    assert {key.split("/")[1] for key in new} == {sync.get_uuid(taken)}
    failed = bpy.data.objects["O5"]
    failed.scale.x = 2.0  # the artist, before the read-back
    renamed.scale.x = 2.0
    changed, deleted = tracker.scan([failed, renamed], look_for_new=False)
    scale = [2.0, 1.0, 1.0]
    assert changed == {
        sync.make_key("obj", uuids["O5"], "scale"): sync.encode_value(scale),
        sync.make_key("obj", uuids["O7"], "scale"): sync.encode_value(scale),
    }
    assert deleted == []
    read_all(tracker)
    assert quiet(tracker) == ({}, [])


@pytest.mark.parametrize("read_later", [True, False])
def test_a_heavy_mesh_is_read_back_later_even_alone(read_later):
    """A value naming chunks (a large mesh's geometry) makes its datablock's read-back cost what its arrays
    hold: with ``read_later`` it waits for the pumps after, however few datablocks the step did. Read back,
    the tracker knows what Blender holds and a scan finds nothing to send."""
    bpy.ops.mesh.primitive_grid_add(x_subdivisions=99, y_subdivisions=99, size=4, calc_uvs=False)
    grid = bpy.context.active_object
    geometry = sync.make_key("mesh", sync.get_uuid(grid.data), "geometry")
    items = sync.serialise_scene()
    assert sync.chunks.holds_chunks(items[geometry])
    expected = sync.scene_hash()
    reset_scene()
    tracker = sync.ChangeTracker()
    applier = sync.Applier(tracker)
    applier.read_later = read_later
    applier.apply(items.items())
    assert applier.errors == [] and sync.scene_hash() == expected
    assert tracker.unread == (1 if read_later else 0)  # the mesh; its object is read with the step
    read_all(tracker)
    assert tracker.cost(sync.get_uuid(bpy.data.objects["Grid"].data)) > 0.0  # read back: serialised
    assert quiet(tracker) == ({}, [])


def test_stand_ins_made_for_data_that_has_not_arrived_are_read_back_at_once():
    """Objects whose meshes come in a later batch get empty stand-ins under the meshes' uuids: no value of
    theirs is known to be applied, so they are read now and not taken for new local data."""
    for i in range(COUNT):
        link(bpy.data.objects.new(f"M{i}", triangle_mesh(f"Tri{i}")))
    items = sync.serialise_scene()
    expected = sync.scene_hash()
    reset_scene()
    objects = {key: value for key, value in items.items() if not key.startswith("mesh/")}
    tracker = sync.ChangeTracker()
    applier = applier_reading_later(tracker)
    applier.apply(objects.items())
    assert len(bpy.data.meshes) == COUNT and tracker.unread == COUNT  # the objects, not the stand-ins
    assert quiet(tracker) == ({}, [])
    applier.apply((key, value) for key, value in items.items() if key.startswith("mesh/"))
    read_all(tracker)
    assert quiet(tracker) == ({}, [])
    assert applier.errors == [] and sync.scene_hash() == expected


def test_an_undo_before_the_read_back_is_compared_not_taken_for_the_rooms_state():
    items, uuids = room_of_empties()
    tracker = sync.ChangeTracker()
    applier_reading_later(tracker).apply(items.items())
    bpy.data.objects["O3"].location.x = 7.0  # as an undo restores it: no depsgraph report
    tracker.drop_unread()  # the sync loop's undo handler
    assert tracker.unread == 0
    location = sync.make_key("obj", uuids["O3"], "location")
    assert quiet(tracker) == ({location: sync.encode_value([7.0, 0.0, 0.0])}, [])


def test_a_datablock_removed_before_its_read_back_is_dropped():
    items, uuids = room_of_empties()
    tracker = sync.ChangeTracker()
    applier_reading_later(tracker).apply(items.items())
    bpy.data.objects.remove(bpy.data.objects["O2"])
    read_all(tracker)
    changed, deleted = quiet(tracker)
    assert changed == {} and deleted and all(f"/{uuids['O2']}/" in key for key in deleted)


def apply_and_edit(items, uuids, read_later, refused, locals_, edited):
    """Apply ``items`` into an empty scene holding the local objects ``locals_``, with ``refused`` keys
    failing; the artist then scales ``edited`` before the read-back. Returns what a scan of those sends
    and what the tracker knows once everything is read back, of the room's objects, and the errors."""
    reset_scene()
    for name in locals_:
        link(bpy.data.objects.new(name, None))
    tracker = sync.ChangeTracker()
    applier = sync.Applier(tracker)
    applier.read_later = read_later
    applier.before_apply = refuse(*refused)
    applier.apply(items.items())
    for name in edited:
        next(ob for ob in bpy.data.objects if sync.peek_uuid(ob) == uuids[name]).scale.z = 3.0
    obs = [ob for ob in bpy.data.objects if sync.peek_uuid(ob) in {uuids[name] for name in edited}]
    room = set(uuids.values())
    changed, deleted = tracker.scan(obs, look_for_new=False)
    sent = {key: value for key, value in changed.items() if key.split("/")[1] in room}
    read_all(tracker)
    known = {key: value for key, value in tracker.values.items() if key.split("/")[1] in room}
    changed, deleted = quiet(tracker)
    assert {key.split("/")[1] for key in changed}.isdisjoint(room) and deleted == []  # the local ones only
    return sent, known, sorted(key for key, _ in applier.errors)


@settings(max_examples=15, deadline=None)
@given(count=st.integers(READ_LATER_FROM, READ_LATER_FROM + 8), data=st.data())
def test_reading_later_sends_and_knows_what_reading_at_once_does(count, data):
    """Values Blender clamps, values that fail, names taken here and the artist's edits before the
    read-back, in any mix: once read back the tracker knows the same; a scan sends the same edits, and a
    value Blender clamped in an object the artist changed before it was read back goes with the edit
    (the values applied stand for it until then; read at once it would stay here)."""
    reset_scene()
    items, uuids = room_of_empties(count)
    names = sorted(uuids)
    pick = st.sets(st.sampled_from(names))
    both = data.draw(st.sets(st.sampled_from(names), min_size=1, max_size=3))  # clamped and edited
    clamped, failing, edited = data.draw(pick) | both, data.draw(pick), data.draw(pick) | both
    renamed = sorted(data.draw(st.sets(st.sampled_from(names), max_size=3)))
    for name in clamped:
        items[display_size(uuids[name])] = sync.encode_value(1e6)
    locals_ = [f"Local{i}" for i in range(len(renamed))]
    for name, local in zip(renamed, locals_, strict=True):
        items[sync.make_key("obj", uuids[name], "name")] = sync.encode_value(local)  # taken here
    refused = [sync.make_key("obj", uuids[name], "location") for name in failing]
    at_once = apply_and_edit(items, uuids, False, refused, locals_, edited)
    later = apply_and_edit(items, uuids, True, refused, locals_, edited)
    assert later[1:] == at_once[1:]
    scale = {sync.make_key("obj", uuids[name], "scale") for name in edited}
    assert set(at_once[0]) == scale  # the edits, nothing else
    read_now = failing | set(renamed)  # read back with the step: as at once
    deferred = count - len(read_now) >= READ_LATER_FROM  # else all were read back at once
    clamped_edited = {display_size(uuids[name]) for name in (clamped & edited) - read_now if deferred}
    assert set(later[0]) == scale | clamped_edited
    assert all(later[0][key] == sync.encode_value(1000.0) for key in clamped_edited)
    assert {key: later[0][key] for key in scale} == at_once[0]


# ---- through the sync loop --------------------------------------------------------------------------------


def join_snapshot(P, items: dict[str, bytes], monkeypatch):
    """A session joined to room "big" holding ``items``, applied in one slice by a pump without budget
    (the read-back after it in that pump reads one datablock); returns (session, net)."""
    from blender_addon import session as session_module

    monkeypatch.setattr(session_module, "APPLY_SLICE", 100_000)
    session, net = join_with_snapshot(P, items)
    for _ in range(1000):
        session_module.pump(budget=0.0)
        if session.room == "big" and not session.busy:
            break
    assert not session.busy and net.take(P.Batch) == []
    return session, net


def test_a_join_is_read_back_by_the_pumps_after_it_is_applied_and_sends_nothing(addon, P, monkeypatch):
    from blender_addon import session as session_module

    items, uuids = room_of_empties()
    items[display_size(uuids["O3"])] = sync.encode_value(1e6)
    try:
        session, net = join_snapshot(P, items, monkeypatch)
        assert session.tracker.unread == COUNT - 1 and not session.idle  # read back by the next pumps
        for _ in range(100):
            session_module.pump(budget=0.0)  # at least one datablock a pump
            if not session.tracker.unread:
                break
        assert session.tracker.unread == 0
        pump_after_update(session)
        assert net.take(P.Batch) == [] and session.idle
        assert bpy.data.objects["O3"].empty_display_size == 1000.0
    finally:
        session_module.stop()


def test_what_the_read_back_made_blender_report_is_not_read_again_by_the_scans(addon, P, monkeypatch):
    """The first read of a mesh's settings makes and removes a throw-away mesh, after which Blender reports
    every object: the read-back's pump drops those reports, so no scan reads the join again."""
    from blender_addon import session as session_module
    from blender_addon.sync import mesh_settings, object_settings

    for i in range(COUNT):
        link(bpy.data.objects.new(f"M{i}", triangle_mesh(f"Tri{i}")))
    items = sync.serialise_scene()
    reset_scene()
    monkeypatch.setattr(mesh_settings, "_BASELINE", {})  # as in a process that has not read a mesh yet...
    monkeypatch.setattr(object_settings, "prepare", lambda: None)  # ...nor at the join (as other kinds)
    try:
        session, net = join_snapshot(P, items, monkeypatch)
        compared: list[str] = []
        compare = session.tracker._compare

        def counting(todo, gone, *args, **kwargs):
            compared.extend(id_data.name for _, id_data in todo.values())
            return compare(todo, gone, *args, **kwargs)

        monkeypatch.setattr(session.tracker, "_compare", counting)
        monkeypatch.setattr(session_module, "AUDIT_SLICE", 0)  # the scans' reads alone
        for _ in range(100):
            pump_after_update(session)
            if session.idle:
                break
        for _ in range(3):
            pump_after_update(session)
        assert session.idle and compared == [] and net.take(P.Batch) == []
    finally:
        session_module.stop()


def test_an_object_moved_after_a_join_is_applied_and_before_it_is_read_back_is_sent(addon, P, monkeypatch):
    from blender_addon import session as session_module

    items, uuids = room_of_empties()
    try:
        session, net = join_snapshot(P, items, monkeypatch)
        # One not read back yet (private: which one the first read took follows the uuids' order)
        name = next(name for name, uuid in uuids.items() if uuid in session.tracker._unread)
        bpy.data.objects[name].location.x = 9.0
        pump_after_update(session)
        sent = [op for batch in net.take(P.Batch) for op in batch.ops]
        location = sync.make_key("obj", uuids[name], "location")
        assert sent == [["set", location, sync.encode_value([9.0, 0.0, 0.0])]]
    finally:
        session_module.stop()


def test_a_joiner_learns_what_new_meshes_and_objects_hold_before_it_applies_the_room(addon, P, monkeypatch):
    """Each throw-away datablock (what a new one holds) makes Blender rebuild every depsgraph's relations,
    which costs what the scene holds: a joiner makes them on its emptied scene, not among the room's."""
    from blender_addon.sync import mesh_settings, object_settings, settings

    for i in range(COUNT):
        link(bpy.data.objects.new(f"M{i}", triangle_mesh(f"Tri{i}")))
        link(bpy.data.objects.new(f"E{i}", None))
    items = sync.serialise_scene()
    reset_scene()
    monkeypatch.setattr(mesh_settings, "_BASELINE", {})  # as in a process that has read nothing yet
    monkeypatch.setattr(object_settings, "_BASELINES", {})
    objects_then: list[int] = []
    learn = settings.new_values

    def noting(probe, read_all, remove):
        objects_then.append(sum(1 for ob in bpy.data.objects if ob.name != "blendsync-baseline"))
        return learn(probe, read_all, remove)

    monkeypatch.setattr(settings, "new_values", noting)
    from blender_addon import session as session_module

    try:
        join_snapshot(P, items, monkeypatch)
        assert len(bpy.data.objects) == 2 * COUNT
        assert objects_then == [0, 0, 0]  # a mesh's, an empty's and a mesh object's: with no object here
    finally:
        session_module.stop()
