"""Artists' replicas in one Blender process: a scene made again from a room's values (at once, or one op at a
time), and the batch an artist sends for an edit."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import bpy
from scene_builders import reset_scene

from blender_addon import sync

Ops = list[tuple[str, bytes | None]]


def part_key(values: dict[str, bytes], kind: str, part: str) -> str:
    """The one key of ``values`` holding part ``part`` of a datablock of ``kind``."""
    (key,) = [k for k in values if k.startswith(f"{kind}/") and k.endswith(f"/{part}")]
    return key


def part_after(make: Callable[[], bpy.types.ID], edit: Callable | None, kind: str, part: str) -> object:
    """The decoded value of part ``part`` of kind ``kind`` once ``make`` built a scene (returning the
    datablock to edit) and ``edit(datablock)``, if given, changed it."""
    id_data = make()
    if edit is not None:
        edit(id_data)
    values = sync.serialise_scene()
    return sync.decode_value(values[part_key(values, kind, part)])


def edits(*steps: Callable) -> Callable:
    """One edit made of ``steps``, each given the datablock in turn (for ``part_after``)."""

    def edit(id_data):
        for step in steps:
            step(id_data)

    return edit


def applies_as_is(kind: str, part: str, doc: object) -> None:
    """The scene's one ``kind`` ``part`` key set to ``doc`` applies without error and reads back as ``doc``
    (Blender holds what was merged)."""
    values = sync.serialise_scene()
    key = part_key(values, kind, part)
    applier = sync.apply_ops([(key, sync.encode_value(doc))])
    assert applier.errors == []
    assert sync.decode_value(sync.serialise_scene()[key]) == doc


def merged_docs(key: str, base: object, ours: object, theirs: object) -> object:
    """What the overridden artist's merge of ``key`` makes of three documents (None: theirs stands)."""
    from blender_addon.sync import merges

    out = merges.merger(key)(*(sync.encode_value(doc) for doc in (base, ours, theirs)))
    return None if out is None else sync.decode_value(out)


def replica(base: dict[str, bytes]) -> sync.ChangeTracker:
    """A fresh Blender scene holding the room's base state, with a tracker that knows it."""
    reset_scene()
    tracker = sync.ChangeTracker()
    applier = sync.apply_ops(list(base.items()), tracker=tracker)
    assert applier.errors == []
    assert tracker.scan() == ({}, [])  # the replica is exactly the base
    return tracker


def applied_one_at_a_time(
    ops: Iterable[tuple[str, bytes]], settled: bool = True, tracked: bool = False
) -> sync.Applier:
    """A fresh scene made from ``ops`` fed one at a time, each applied before the next arrives (a link to
    what has not arrived waits for it); every op applies and (unless not ``settled``: more is to come)
    every link is resolved in the end. ``tracked``: the applier has a tracker, made on the fresh scene."""
    reset_scene()
    applier = sync.Applier(sync.ChangeTracker() if tracked else None)
    for op in ops:
        applier.feed([op])
        applier.step()
    assert applier.errors == []
    if settled:
        assert applier.pending_links == {}
    return applier


def edit_batch(tracker: sync.ChangeTracker, edit: Callable[[], None]) -> Ops:
    """Make an edit and return the batch the artist sends for it."""
    edit()
    bpy.context.view_layer.update()
    changed, deleted = tracker.scan()
    batch: Ops = [*changed.items(), *((key, None) for key in deleted)]
    assert batch, "the edit changed no key"
    return batch


def concurrently(build, edit_a, edit_b, check) -> None:
    """Run edit_a and edit_b at the same moment; check() must hold on every replica, which all agree."""
    reset_scene()
    build()
    base = sync.serialise_scene()
    batch_a = edit_batch(replica(base), edit_a)
    batch_b = edit_batch(replica(base), edit_b)
    shielded_in_b = {key for key, _ in batch_b}
    hashes = []
    for own, remote in ((batch_a, batch_b), (batch_b, [op for op in batch_a if op[0] not in shielded_in_b])):
        # The artist's own state after the edit (made again from its batch: an edit made twice would
        # give new nodes new ids), then the other's batch.
        tracker = replica(base)
        sync.apply_ops(own, tracker=tracker)
        applier = sync.apply_ops(remote, tracker=tracker)
        assert applier.errors == []
        check()
        hashes.append(sync.scene_hash())
        assert tracker.scan() == ({}, [])  # applying the other's batch echoes nothing
    reset_scene()
    applier = sync.Applier()
    for batch in (list(base.items()), batch_a, batch_b):
        applier.apply(batch)
    assert applier.errors == [] and applier.pending_links == {}
    check()
    hashes.append(sync.scene_hash())
    assert len(set(hashes)) == 1
