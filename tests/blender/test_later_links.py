"""The objects a large apply makes are linked into their collections together, once the last is placed.

Linking an object makes Blender rebuild its depsgraphs' relations, and the next evaluation then evaluates
every object linked (sync/later_links.py). While more links of objects are queued, the applier holds a new
object's links; they are made when the last one is applied, and a held object is read back after. The tests
apply a room in small steps and evaluate after each, as the sync loop (or a window's redraw) does.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

bpy = pytest.importorskip("bpy", reason="bpy (Blender as a Python module) is not installed")

from conftest import reset_scene  # noqa: E402
from detail_builders import build_rigid_bodies  # noqa: E402
from scene_builders import link  # noqa: E402
from test_physics import check_rigid_bodies  # noqa: E402
from test_refused_values import quiet  # noqa: E402

from blender_addon import sync  # noqa: E402
from blender_addon.sync.apply_order import PLACING  # noqa: E402
from blender_addon.sync.later_links import LaterLinks  # noqa: E402

pytestmark = pytest.mark.blender

COUNT = 40
STEP = 24  # values per step: a room of COUNT empties takes several


def room(count: int = COUNT) -> tuple[dict[str, bytes], str]:
    """Another artist's scene: ``count`` empties, every fifth in collection ``Set`` (``O5`` in the scene
    too), ``O7`` hidden, ``O9`` a child of ``O8``; its keys and hash. The scene is emptied for them."""
    coll = bpy.data.collections.new("Set")
    bpy.context.scene.collection.children.link(coll)
    for i in range(count):
        ob = bpy.data.objects.new(f"O{i}", None)
        ob.location = (float(i), 0.0, 0.0)
        link(ob, coll if i % 5 == 0 else None)
    if count > 9:
        link(bpy.data.objects["O5"])
        bpy.data.objects["O9"].parent = bpy.data.objects["O8"]
        bpy.data.objects["O7"].hide_set(True)
    items, digest = sync.serialise_scene(), sync.scene_hash()
    reset_scene()
    return items, digest


@contextmanager
def reports() -> Iterator[list[int]]:
    """How many objects each depsgraph update reported."""
    counts: list[int] = []

    def handler(_scene, depsgraph):
        counts.append(sum(isinstance(u.id, bpy.types.Object) for u in depsgraph.updates))

    bpy.app.handlers.depsgraph_update_post.append(handler)
    try:
        yield counts
    finally:
        bpy.app.handlers.depsgraph_update_post.remove(handler)


def in_scene() -> set[str]:
    return {ob.name for ob in bpy.context.scene.objects}


def apply_in_steps(applier: sync.Applier, items: dict[str, bytes], after_step=None) -> int:
    applier.feed(items.items())
    steps = 0
    while True:
        fraction = applier.step(max_ops=STEP)
        steps += 1
        bpy.context.view_layer.update()
        if after_step is not None:
            after_step(steps)
        if fraction >= 1.0:
            return steps


def test_objects_placed_over_several_steps_are_linked_once_the_last_is_placed():
    items, digest = room()
    tracker = sync.ChangeTracker()
    seen: list[set[str]] = []  # the objects in the scene after each step
    reported: list[int] = []  # the objects each step's evaluation reported
    with reports() as counts:

        def after_step(_steps):
            seen.append(in_scene())
            reported.append(sum(counts))
            counts.clear()

        steps = apply_in_steps(sync.Applier(tracker), items, after_step)
    assert steps > 5
    # Placed, not linked, until the step that applies the last link; then all of them, each where it was.
    first = next(i for i, names in enumerate(seen) if names)
    assert first > 2 and not any(seen[:first]) and seen[first] == {f"O{i}" for i in range(COUNT)}
    assert sync.scene_hash() == digest  # collections, the one in two, the hidden one, the child
    assert bpy.data.objects["O7"].hide_get() and bpy.data.objects["O9"].parent.name == "O8"
    assert set(bpy.data.collections["Set"].objects.keys()) == {f"O{i}" for i in range(0, COUNT, 5)}
    # Evaluated once, with the link of them all: not each object again with each later step's links. (The
    # steps after set the scene's settings, which Blender reports on every object.)
    assert reported[: first + 1] == [0] * first + [COUNT], reported
    assert quiet(tracker) == ({}, [])


def test_one_new_object_is_linked_in_its_step():
    items, _ = room(1)
    sync.Applier(sync.ChangeTracker()).apply(items.items())
    assert in_scene() == {"O0"}


def test_an_object_held_is_read_back_once_linked_with_the_others():
    """An object whose values are all applied while more links are queued (the even ones here have only
    placing parts) is read back at the end of the step that links them all, not before: read in no
    collection, the tracker would take that for the room's value and the next scan send its links again."""
    for i in range(COUNT):
        ob = link(bpy.data.objects.new(f"O{i}", None))
        if i % 2:
            ob["note"] = i  # the odd ones have a value after their placing parts
    items = sync.serialise_scene()
    reset_scene()
    keys = {}  # the objects' placing parts and the odd ones' property: the even ones are done once placed
    for key, value in items.items():
        parsed = sync.split_key(key)
        if parsed is None or parsed[0] != "obj" or parsed[2] in PLACING["obj"] or parsed[2] == "prop":
            keys[key] = value
    tracker = sync.ChangeTracker()
    applier = sync.Applier(tracker)
    applier.feed(keys.items())
    held_steps = 0
    while applier.step(max_ops=STEP) < 1.0:
        made = [ob for ob in bpy.data.objects if ob.type == "EMPTY"]
        if len(made) == COUNT and in_scene():
            break  # linked: the rest are the odd ones' properties
        held_steps += bool(made)
        assert not any(ob.users_collection for ob in made)  # held, the done ones too
        assert {sync.get_uuid(ob) for ob in made} <= applier.unsettled()  # none read back yet
    assert held_steps > 1
    while applier.step(max_ops=STEP) < 1.0:
        pass
    assert len(in_scene()) == COUNT
    assert quiet(tracker) == ({}, [])


def test_an_object_in_a_collection_already_is_linked_at_once_while_new_ones_are_held():
    items, _ = room()
    tracker = sync.ChangeTracker()
    applier = sync.Applier(tracker)
    applier.apply(items.items())
    # Another artist adds N0... and puts O1 into Set too; half the new objects' keys sort before O1's.
    before = sync.serialise_scene()
    for i in range(10):
        ob = link(bpy.data.objects.new(f"N{i}", None))
        sync.ids.set_uuid(ob, f"{'0f'[i % 2] * 30}{i:02d}")  # the even ones' keys before O1's, the odd after
    added = {k: v for k, v in sync.serialise_scene().items() if k.startswith("obj/") and k not in before}
    for i in range(10):
        bpy.data.objects.remove(bpy.data.objects[f"N{i}"])
    o1, coll = bpy.data.objects["O1"], bpy.data.collections["Set"]
    o1["note"] = 1  # and gives it a property, applied after the placing parts
    note = {k: v for k, v in sync.serialise_scene().items() if k.startswith(f"obj/{sync.get_uuid(o1)}/prop/")}
    del o1["note"]
    moved = sync.make_key("obj", sync.get_uuid(o1), "in", sync.get_uuid(coll))
    applier.feed([(moved, sync.encode_value(True)), *added.items(), *note.items()])
    while moved not in tracker.values:
        applier.step(max_ops=1)
    assert coll.objects.get("O1") == o1  # linked with its step
    made = {ob.name for ob in bpy.data.objects if ob.name.startswith("N")}
    assert made == {f"N{i}" for i in range(0, 10, 2)}
    assert not any(bpy.data.objects[name].users_collection for name in made)  # held
    while applier.step(max_ops=STEP) < 1.0:
        pass
    assert {f"N{i}" for i in range(10)} <= in_scene() and o1["note"] == 1
    assert quiet(tracker) == ({}, [])


def test_links_held_for_an_object_or_a_collection_removed_since_are_let_go():
    coll = bpy.data.collections.new("Gone")
    bpy.context.scene.collection.children.link(coll)
    kept, removed = bpy.data.objects.new("Kept", None), bpy.data.objects.new("Removed", None)
    index = {}
    for name, id_data in (("a", kept), ("b", removed), ("c", coll), ("d", bpy.context.scene)):
        uuid = name * 32
        sync.ids.set_uuid(id_data, uuid)
        index[uuid] = ("x", id_data)
    later = LaterLinks()
    later.holding = True
    assert later.hold(kept, "c" * 32) and later.hold(kept, "d" * 32) and later.hold(removed, "d" * 32)
    bpy.data.objects.remove(removed)
    bpy.data.collections.remove(coll)
    later.link(index)
    assert not later
    assert [c.name for c in kept.users_collection] == [bpy.context.scene.collection.name]
    later.holding = False
    assert not later.hold(bpy.data.objects.new("Other", None), "d" * 32)  # nothing queued: linked now


def test_what_waited_for_an_object_s_links_is_applied_once_they_are_made():
    """Blender makes an object's rigid body once the object is in the world's collection. A crate's keys
    came before the crate (they wait for it); made among new objects placed after it, its links are held,
    and its rigid body's settings (mass, shape...) wait for them: applied once they are made."""
    build_rigid_bodies()
    crate = bpy.data.objects["Crate.Light"]
    sync.ids.set_uuid(crate, "0" * 31 + "1")  # placed before the new objects below
    for i in range(10):
        sync.ids.set_uuid(link(bpy.data.objects.new(f"X{i}", None)), f"{'f' * 30}{i:02d}")
    items = sync.serialise_scene()
    crate_meta = sync.make_key("obj", "0" * 31 + "1", "meta")
    later = {k: v for k, v in items.items() if k == crate_meta or k.startswith("obj/" + "f" * 30)}
    reset_scene()
    applier = sync.Applier(sync.ChangeTracker())
    applier.apply([(k, v) for k, v in items.items() if k not in later])
    assert "Crate.Light" not in bpy.data.objects
    applier.apply(later.items())
    assert applier.errors == []
    check_rigid_bodies()


def test_values_that_wait_for_the_links_are_applied_once_in_the_step_that_makes_them():
    """The held links are made in the step as soon as the last object is placed, before the values after it:
    a rigid body's settings, applied after the links, are applied once (made before them, each would wait
    and be applied again at the step's end)."""
    build_rigid_bodies()
    items = sync.serialise_scene()
    reset_scene()
    applier = sync.Applier(sync.ChangeTracker())
    applied: dict[str, int] = {}
    apply_one = applier._apply_one

    def counting(key: str, value: bytes | None) -> None:
        applied[key] = applied.get(key, 0) + 1
        apply_one(key, value)

    applier._apply_one = counting
    applier.feed(items.items())
    assert applier.step() == 1.0
    bodies = [
        key
        for key in items
        if key.split("/")[2:4] in (["set", "rigid_body"], ["set", "rigid_body_constraint"])
    ]
    assert bodies and {key: applied[key] for key in bodies} == dict.fromkeys(bodies, 1)
    assert applier.errors == []
    check_rigid_bodies()


@st.composite
def rooms(draw):
    """A room's shape: collections (each a child of the scene or of an earlier one) and objects, each in a
    non-empty set of holders (``-1``: the scene), perhaps hidden, perhaps a child of an earlier object."""
    collections = draw(st.lists(st.integers(-1, 2), max_size=3))
    parents = [p if p < i else -1 for i, p in enumerate(collections)]
    holders = st.sets(st.integers(-1, len(collections) - 1), min_size=1, max_size=2)
    objects = draw(st.lists(st.tuples(holders, st.booleans(), st.integers(-1, 30)), min_size=1, max_size=30))
    return parents, [(h, hidden, p if p < i else -1) for i, (h, hidden, p) in enumerate(objects)]


@settings(max_examples=20, deadline=None)
@given(shape=rooms(), step=st.integers(1, 60))
def test_any_room_applied_in_any_steps_ends_as_it_was_with_its_objects_shown_together(shape, step):
    reset_scene()
    parents, objects = shape
    scene = bpy.context.scene
    colls = []
    for i, parent in enumerate(parents):
        coll = bpy.data.collections.new(f"C{i}")
        (scene.collection if parent < 0 else colls[parent]).children.link(coll)
        colls.append(coll)
    for i, (holders, hidden, parent) in enumerate(objects):
        ob = bpy.data.objects.new(f"O{i}", None)
        for h in sorted(holders):
            link(ob, None if h < 0 else colls[h])
        if parent >= 0:
            ob.parent = bpy.data.objects[f"O{parent}"]
        if hidden:
            ob.hide_set(True)
    items, digest = sync.serialise_scene(), sync.scene_hash()
    reset_scene()
    tracker = sync.ChangeTracker()
    applier = sync.Applier(tracker)
    shown: list[int] = []
    applier.feed(items.items())
    while True:
        done = applier.step(max_ops=step) >= 1.0
        bpy.context.view_layer.update()
        shown.append(len(bpy.context.scene.objects))
        if done:
            break
    assert applier.errors == [] and sync.scene_hash() == digest
    assert set(shown) <= {0, len(objects)}  # none, then all of them
    assert quiet(tracker) == ({}, [])
