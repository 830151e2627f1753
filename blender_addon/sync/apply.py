"""Applying remote set/delete operations to the scene.

Operations are ``(key, value)`` pairs; ``value`` None deletes the key.
The :class:`Applier` sorts what it is fed so that datablocks are created
before the datablocks that link to them, applies in slices, and remembers
links whose target has not arrived yet: the operation holding the link is
applied again when the target is created.  What a value means is each
kind's business (``kinds/``); this module only orders, dispatches and
retries.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import bpy

from . import ids, overrides
from .apply_errors import NotApplied
from .apply_order import Op, Ranked, placed_whole, rank, set_order, sort_ops
from .chunks import holds_chunks
from .codec import decode_value
from .context import AFTER_STEP, ApplyContext, DataUsers, item_token, part_token, placeholder_name
from .index import census, index_all
from .items import Items
from .keys import PRIMARY_PART, op_order, split_key
from .kinds import BY_NAME
from .later_links import LaterLinks
from .serialise import unkeyed_value
from .tracker import ChangeTracker

# A step done with at least this many datablocks that may be read back later leaves them to the tracker
# (Applier.read_later): a join, or a large batch, is whole sooner. Fewer are read back at once.
READ_LATER_FROM = 16
NAME_PART = "name"  # a datablock's name, a string (kinds that hold it elsewhere keep it in their meta)


def _is_link(bits: tuple[str, str, str, tuple[str, ...]]) -> bool:
    """Whether a parsed key is an object's membership of a collection (``obj/<u>/in/<collection>``)."""
    return bits[2] == "in" and bits[0] == "obj"


class Applier:
    """Applies remote operations, optionally in slices.

    ``feed(ops)`` queues operations; ``step(max_ops)`` applies up to
    ``max_ops`` of them and returns the fraction of everything fed so far
    that is done (1.0 when the queue is empty).  ``apply(ops)`` does both at
    once.  Links to datablocks that have not arrived are remembered and
    resolved when the datablock is created.  With a ``tracker``, every
    applied value is recorded there so that it is not reported back.
    """

    def __init__(self, tracker: ChangeTracker | None = None) -> None:
        self.tracker = tracker
        self._queue: list[Op] = []
        # Sets fed (_add) while the queue held others, merged in by the next step or feed: a join is fed in
        # many parts between two steps, and each merge sorts the whole queue.
        self._fed: list[Op] = []
        self._ranks: dict[str, Ranked] = {}  # the sort's parse of the keys fed since the queue was empty
        self._orders: dict[str, tuple] = {}  # the sort key of each set queued since then (sort_ops)
        self._total = 0
        self._done = 0
        self._index: dict[str, tuple[str, bpy.types.ID]] = {}
        # The datablocks' census when the last step ended: the next step keeps the index when nothing was
        # added or removed since (indexing every datablock per slice dominated a join, and took ~45 ms of
        # each edit of a large mesh applied in a 500-object scene).
        self._census: list[bytes] | None = None
        # Touched datablocks, read back for the tracker once the queue holds no more sets for them (a
        # joiner's objects are placed first and filled later: read once, not at each of their slices).
        self._touched: dict[str, bpy.types.ID] = {}
        self._doubtful: set[str] = set()  # touched uuids to read back (see _apply_one)
        # Touched uuids given a value that names chunks (a large mesh's geometry): reading one back costs
        # what its arrays hold, so with read_later it waits even in a step done with few datablocks.
        self._chunked: set[str] = set()
        # Touched uuids whose read-back cannot wait (a value failed or waits, a name, a side effect of
        # another's value): what they hold is not the values applied.
        self._read_now: set[str] = set()
        # Set by the sync loop, which reads back what the tracker notes unread (ChangeTracker.read_unread):
        # a step done with READ_LATER_FROM datablocks or more that may wait reads back only the others.
        self.read_later = False
        self._users = DataUsers()  # object data -> its objects, for the kinds' functions (ApplyContext)
        self._queued: dict[str, int] = {}  # uuid -> sets for it still in the queue
        self._queued_deletes: dict[str, int] = {}  # uuid -> deletes of its keys still in the queue
        self._queued_links = 0  # sets of objects' memberships (obj/<u>/in/<collection>) still in the queue
        self._queued_names: dict[str, bytes] = {}  # uuid -> its queued `name` value: made with it (create)
        self._later = LaterLinks()  # new objects' links held while more are queued (later_links.py)
        # Hook, None outside the add-on: whether the artist changed this datablock since the sync loop's last
        # scan (then it is not read back: the tracker keeps the values applied, and the scan sends the edit).
        self.edited: Callable[[bpy.types.ID], bool] | None = None
        self._waiting_parts: dict[str, dict[str, bytes]] = {}  # uuid not created yet -> its part ops
        self._pending: dict[str, set[str]] = {}  # pending-link token -> keys waiting for it
        self._pending_values: dict[str, bytes] = {}  # key -> latest value of a key with a missing link
        self._resolving: set[str] = set()  # pending-link tokens being resolved right now
        self._names: dict[str, tuple[str, str]] = {}  # uuid -> (key, name) its `name` key set, until it holds
        # Key prefix of a datablock replaced in this step -> the key that replaced it (see _end).
        self._replaced: dict[str, str] = {}
        self._removed = False  # a datablock was removed in this step (Blender may have removed others)
        self.errors = NotApplied()  # (key, message) of values that failed here and have not applied since
        # Test hook, None in the add-on: called with (key, decoded value; None for an item's delete) before a
        # value is applied; what it raises counts as that value failing here (tests fail a key on purpose).
        self.before_apply: Callable[[str, object], None] | None = None

    # ------------------------------------------------------------ queue

    def feed(self, ops: Iterable[Op]) -> None:
        latest: dict[str, bytes | None] = {}
        for key, value in ops:
            latest.pop(key, None)
            latest[key] = value
        if self._adds_only(latest):
            self._add(latest)
            return
        self._queue = sort_ops(self._queue + self._fed + list(latest.items()), self._ranks, self._orders)
        self._fed = []
        self._total = self._done + len(self._queue)
        self._queued, self._queued_deletes, self._queued_links = {}, {}, 0
        self._queued_names = {}
        self._count(self._queue)

    def _count(self, ops: Iterable[Op]) -> None:
        """Count these queued values in the sets and deletes queued per datablock."""
        for key, value in ops:
            bits = self._ranks[key][0]
            if bits is not None:
                counts = self._queued if value is not None else self._queued_deletes
                counts[bits[1]] = counts.get(bits[1], 0) + 1
                if value is not None and _is_link(bits):
                    self._queued_links += 1
                elif value is not None and bits[2] == NAME_PART and not bits[3]:
                    self._queued_names[bits[1]] = value

    def _adds_only(self, latest: dict[str, bytes | None]) -> bool:
        """Whether ``latest`` only sets keys not fed since the queue was empty, into a queue without
        deletes: then nothing queued is replaced or dropped (a delete drops its datablock's sets), and
        the queue keeps its order with the new sets merged in (:meth:`_add`), as a sort of it all gives."""
        queue = self._queue
        return (
            not (queue and queue[-1][1] is None)  # deletes come last in the queue (sort_ops)
            and None not in latest.values()
            and self._ranks.keys().isdisjoint(latest)
        )

    def _add(self, latest: dict[str, bytes | None]) -> None:
        """Queue new sets, each key's order made once (sorting all that is queued with sort_ops, for each
        part of a join's snapshot, took 0.85 s of a 2,000-object join)."""
        ranks, orders = self._ranks, self._orders
        added: list[Op] = []
        for key, value in latest.items():
            assert value is not None
            ranked = ranks[key] = rank(key)
            orders[key] = set_order(ranked, value)
            added.append((key, value))
        self._count(added)
        if self._queue:
            self._fed += added
        else:
            added.sort(key=lambda op: orders[op[0]])
            self._queue = added
        self._total = self._done + len(self._queue) + len(self._fed)

    def _merge_fed(self) -> None:
        """The sets fed since the queue was sorted, in their places. Stable: among equal orders queued sets
        stay ahead of newer ones, as a sort of the queue followed by them would keep them."""
        if self._fed:
            orders = self._orders
            queue = self._queue + self._fed
            queue.sort(key=lambda op: orders[op[0]])
            self._queue, self._fed = queue, []

    @property
    def progress(self) -> float:
        return 1.0 if self._total == 0 else self._done / self._total

    def unsettled(self) -> set[str]:
        """Uuids of the datablocks with a room value not applied and read back yet: queued (a set or a
        delete), touched and not read back, waiting for their datablock or for a link."""
        out = set(self._touched) | set(self._waiting_parts)
        out.update(uuid for uuid, count in self._queued.items() if count)
        out.update(uuid for uuid, count in self._queued_deletes.items() if count)
        for key in self._pending_values:
            parsed = split_key(key)
            if parsed is not None:
                out.add(parsed[1])
        return out

    @property
    def pending_links(self) -> dict[str, set[str]]:
        """Pending-link token (a missing uuid, or ``<part>:<uuid>``) -> keys waiting for it (diagnostics)."""
        waiting = self._pending_values  # a key that waited for several tokens is applied once one resolved
        found = {token: {key for key in keys if key in waiting} for token, keys in self._pending.items()}
        return {token: keys for token, keys in found.items() if keys}

    def step(self, max_ops: int | None = None, until: float | None = None) -> float:
        """Apply up to ``max_ops`` queued values, then read back what is done with; the fraction applied.

        With ``until`` (a ``time.monotonic()`` deadline), slices of ``max_ops`` follow one another until it
        has passed or the queue is empty, in one step: what a step does once (the census of the datablocks,
        the read-back with its map of the scene's memberships, the map of object data to objects) is done
        once for them all. A pump of a join made them once per slice: N objects times its slices."""
        self._begin()
        self._merge_fed()
        queue, start = self._queue, 0
        while start < len(queue):
            count = placed_whole(queue, start, max_ops, self._ranks)
            for key, value in queue[start : start + count]:
                bits = self._ranks[key][0] if key in self._ranks else None
                if bits is not None:
                    counts = self._queued if value is not None else self._queued_deletes
                    if bits[1] in counts:
                        counts[bits[1]] -= 1
                    if value is not None and _is_link(bits):
                        self._queued_links -= 1
                self._later.holding = self._queued_links > 0
                self._apply_one(key, value)
                if self._later and not self._queued_links:
                    self._link_held()  # the last object placed: link them all at once
                self._done += 1
            start += count
            if count == 0 or until is None or time.monotonic() >= until:
                break
        self._later.holding = False
        self._queue = queue[start:]
        self._end()
        if not self._queue:
            self._total = self._done = 0
            self._ranks, self._orders = {}, {}
            return 1.0
        return self.progress

    def apply(self, ops: Iterable[Op]) -> None:
        """Apply ``ops`` and whatever applying them queues again (a replaced datablock's other keys)."""
        self.feed(ops)
        while self.step() < 1.0:
            pass

    # ------------------------------------------------------------ internals

    def _begin(self) -> None:
        self._users.forget()  # the artist may have changed objects since the last step
        # A local scene without a uuid may be taken over by the room's scene (see kinds/scenes.py).
        for scene in bpy.data.scenes:
            if ids.peek_uuid(scene) is None:
                scene[ids.ADOPT_PROP] = True
        if self._census is None or self._census != census():
            self._index = index_all(assign=False)
        self._census = None

    def forget_index(self) -> None:
        """Datablocks may have moved (undo, redo): the next step indexes them again."""
        self._census = None

    def _end(self) -> None:
        if self._replaced and self.tracker is not None:
            # A datablock replaced by a new one (an object whose type changed) gets its other keys again, as
            # the tracker knows them once this step's ops are applied; a key still queued has a newer value.
            # Not the key that replaced it (applied to the new datablock already).
            skip = {key for key, _ in self._queue} | set(self._replaced.values())
            prefixes = tuple(self._replaced)
            values = self.tracker.values
            self.feed([(k, v) for k, v in values.items() if k.startswith(prefixes) and k not in skip])
        self._replaced.clear()
        if self._removed:
            # Blender removes more than it is asked to (a mesh's objects go with the mesh): forget those, or
            # the read-back below and the next step's values would use a removed datablock (a ReferenceError
            # that escaped the step, then every value of that object failed until the index was rebuilt).
            self._index = {uuid: entry for uuid, entry in self._index.items() if ids.exists(entry[1])}
            self._touched = {uuid: id_data for uuid, id_data in self._touched.items() if ids.exists(id_data)}
            self._removed = False
        if self._later and not self._queued_links:  # none queued now (a feed may drop them): all held
            self._link_held()
        # Values that wait for the end of a step (e.g. a pose for its object's evaluation): try them again.
        for token in [t for t, keys in self._pending.items() if keys and t.startswith(AFTER_STEP)]:
            self._resolve_pending(token)
        self._settle_names()
        if self.tracker is None:
            self._touched, self._doubtful, self._chunked = {}, set(), set()
        elif self._touched:
            # Read back once the queue holds no more of its sets (undo or a delete may have freed what was
            # touched in an earlier step: the index holds the datablock now).
            done = self._finished()
            alive = {uuid: self._index[uuid][1] for uuid in done if uuid in self._index}
            for uuid in done:
                self._touched.pop(uuid)
            edited = self.edited
            for uuid in list(alive):
                id_data = alive[uuid]
                # A heavy datablock (a large mesh) whose values all named chunks and applied is not read
                # back: the tracker noted them as they came (_apply_one), and reading 200,000 vertices to
                # learn what we just wrote cost more than applying them. Nor is one the artist has changed
                # since the last scan: reading it would take the artist's edit for what the room holds.
                if (uuid not in self._doubtful and self.tracker.is_heavy(uuid)) or (
                    edited is not None and edited(id_data)
                ):
                    self.tracker.note_seen(uuid, alive.pop(uuid))
            later = [uuid for uuid in alive if self._may_read_later(uuid)] if self.read_later else []
            if len(later) < READ_LATER_FROM:
                # The read of a 200,000-vertex mesh is ~10 ms, as many as hundreds of light datablocks':
                # the last step of a heavy join did it before the scene was whole.
                later = [uuid for uuid in later if uuid in self._chunked]
            for uuid in later:
                if self.tracker.note_unread(uuid, alive[uuid]):
                    del alive[uuid]
            self.tracker.note_datablocks(list(alive.values()))
            self._doubtful.difference_update(done)
            self._chunked.difference_update(done)
            self._read_now.difference_update(done)
        if not self._queue:
            self._queued, self._queued_deletes, self._queued_links, self._queued_names = {}, {}, 0, {}
            self._doubtful, self._read_now, self._chunked = set(), set(), set()
        self._census = census()

    def _finished(self) -> list[str]:
        """The touched datablocks the queue holds no more sets for (read back at the step's end), but new
        objects whose links are held: read in no collection, their memberships would be taken as gone, so
        they are read once linked, with the others when the last link is applied (an object with only
        placing keys is done as soon as it is placed)."""
        later = self._later
        return [
            uuid
            for uuid in self._touched
            if (not self._queue or not self._queued.get(uuid)) and uuid not in later
        ]

    def _link_held(self, uuids: list[str] | None = None) -> None:
        """Link the new objects held (later_links.py); what waited for their links is tried again."""
        for uuid in self._later.link(self._index, uuids):
            self._resolve_pending(part_token("in", uuid))

    def _may_read_later(self, uuid: str) -> bool:
        """Whether this touched datablock holds the values applied, as far as the applier knows, and is no
        collection or scene (whose read also notes their members)."""
        return uuid not in self._read_now and BY_NAME[self._index[uuid][0]].members is None

    def _register(self, kind: str, uuid: str, id_data: bpy.types.ID) -> None:
        ids.set_uuid(id_data, uuid)
        self._index[uuid] = (kind, id_data)
        self._touched[uuid] = id_data

    def _make_stub(self, kind: str, uuid: str, object_type: str) -> bpy.types.ID:
        """Empty data for an object whose data has not arrived, under the data's uuid."""
        make = BY_NAME[kind].stub
        if make is None:
            raise ValueError(f"kind {kind!r} is not object data")
        data = make(self._queued_name(uuid) or placeholder_name(uuid), object_type)
        self._register(kind, uuid, data)
        return data

    def _apply_one(self, key: str, value: bytes | None) -> None:
        ranked = self._ranks.get(key)  # parsed when it was fed (a join applies tens of thousands)
        parsed = ranked[0] if ranked is not None else split_key(key)
        if parsed is None:
            return
        kind, uuid, part, item = parsed
        record = BY_NAME[kind]
        spec = record.parts[part]
        if kind == "obj" or value is None:
            self._users.forget()  # an object made, given other data or removed (with its data, too)
        unkeyed = False  # a deleted key of a part keyed only while it differs from a new datablock's
        if value is None:
            if self.tracker is not None:
                self.tracker.note_applied(key, None)
            self._pending_values.pop(key, None)
            self.errors.settled(key)
            if isinstance(spec, Items):
                self._apply_item_delete(key, uuid, spec, item)
                return
            if part != PRIMARY_PART:
                self._waiting_parts.get(uuid, {}).pop(key, None)
                if part not in record.unkeyed or uuid not in self._index:
                    return
                value, unkeyed = unkeyed_value(kind, part), True  # applied as a set of it (Kind.unkeyed)
        if value is None:
            self._waiting_parts.pop(uuid, None)
            found = self._index.pop(uuid, None)
            self._touched.pop(uuid, None)
            if found is not None:
                record.remove_datablock(found[1])
                self._removed = True
            if self.tracker is not None:
                self.tracker.forget_uuid(uuid)
            return
        found = self._index.get(uuid)
        if found is None and part != PRIMARY_PART:
            # Nothing here holds it yet, so the tracker learns it once it is applied (were it remembered
            # now, a pass of the audit would find no datablock for it and delete the room's value).
            self._waiting_parts.setdefault(uuid, {})[key] = value
            return
        if self.tracker is not None and not unkeyed:
            self.tracker.note_applied(key, value)
        try:
            doc = decode_value(value)
            if self.before_apply is not None:
                self.before_apply(key, doc)
            ctx = ApplyContext(self._index, self._make_stub, users=self._users, later=self._later)
            created = False
            # A library override of any kind is made from the linked datablock it overrides (in place of a
            # stand-in made while it was missing).
            override = doc.get("override") if part == PRIMARY_PART and isinstance(doc, dict) else None
            current = found[1] if found is not None else None
            if override or current is None:
                if override:
                    id_data = overrides.take_over(record.collection, override, current, ctx)
                else:
                    ctx.name = self._queued_name(uuid)
                    id_data = record.create(uuid, doc, ctx)
                if id_data is None:
                    if not ctx.missing:
                        raise RuntimeError("the datablock could not be made")
                    # It cannot be made before a link arrives (an override before its library): its
                    # other parts keep waiting for it, and this key is applied again once the link is there.
                    self._wait(key, value, ctx)
                    self._not_applied(key, uuid)
                    return
                if id_data is not current:
                    self._register(kind, uuid, id_data)
                    self._doubtful.add(uuid)  # new here: read it once
                    created = True
            else:
                id_data = current
            if isinstance(spec, Items):
                id_data = spec.apply(id_data, item, doc, ctx)
            else:
                id_data = spec(id_data, doc, ctx)
        except Exception as exc:  # a bad value must not stop the rest of the batch
            self.errors.report(key, f"{type(exc).__name__}: {exc}")
            self._not_applied(key, uuid)
            return
        self._index[uuid] = (kind, id_data)
        self._touched[uuid] = id_data
        for other, other_data in ctx.touched.items():
            self._touched[other] = other_data
            self._doubtful.add(other)
            self._read_now.add(other)  # changed by Blender as this value applied: not its values
        if part == NAME_PART and isinstance(doc, str):
            self._names[uuid] = (key, doc)  # Blender may give it another: settled at the step's end
        self._wait(key, value, ctx)
        if ctx.missing or ctx.errors or not holds_chunks(value):
            # Read back: it failed or waits, or Blender may store it otherwise (a clamped float); values that
            # name chunks are arrays (a large mesh's geometry), which Blender stores as they come (a setting
            # among them that Blender clamps would go back with the next local edit).
            self._doubtful.add(uuid)
        else:
            self._chunked.add(uuid)
        if ctx.missing or ctx.errors:
            self._read_now.add(uuid)
        if ctx.errors:
            self.errors.report(key, "; ".join(ctx.errors))
        else:
            self.errors.settled(key)
        for stub_uuid in ctx.created:
            self._on_created(stub_uuid)
        if created:
            self._on_created(uuid)
        if ctx.replaced:
            self._replaced[f"{kind}/{uuid}/"] = key
        self._resolve_pending(part_token(part, uuid))
        if item:
            self._resolve_pending(item_token(part, item, uuid))

    def _queued_name(self, uuid: str) -> str | None:
        """The name queued for ``uuid`` (its ``name`` key, applied after the value that makes it)."""
        raw = self._queued_names.get(uuid)
        try:
            name = decode_value(raw) if raw is not None else None
        except Exception:  # the name key reports it when it applies
            return None
        return name if isinstance(name, str) else None

    def _settle_names(self) -> None:
        """Names that Blender gave a ``.001`` are set again once the other renames of the step are done.

        Two datablocks swapping names (or any name that another datablock held until its own rename) then
        end with the room's names, also across steps. A name that still differs once the queue is empty
        (held by a datablock that keeps it, or longer than Blender keeps) is reported; what Blender holds is
        what the tracker knows, so it is not sent back.
        """
        unsettled: dict[str, tuple[str, str]] = {}
        for uuid, (key, wanted) in self._names.items():
            found = self._index.get(uuid)
            if found is None or not isinstance(found[1], bpy.types.ID):
                continue
            id_data = found[1]
            try:
                if id_data.name != wanted:
                    id_data.name = wanted
                    self._touched[uuid] = id_data
            except (AttributeError, TypeError, ValueError, RuntimeError, ReferenceError):
                self._read_now.add(uuid)
                continue
            if id_data.name != wanted:
                unsettled[uuid] = (key, wanted)
                self._touched[uuid] = id_data
                self._doubtful.add(uuid)  # read back: the tracker must know the name Blender holds
                self._read_now.add(uuid)
        if self._queue:
            self._names = unsettled  # what the rest of the queue renames may free them
            return
        for uuid, (key, wanted) in unsettled.items():
            self.errors.report(key, f"Blender named it {self._index[uuid][1].name!r}, not {wanted!r}")
        self._names = {}

    def _not_applied(self, key: str, uuid: str) -> None:
        """A value that did not (or not yet) reach the scene: the tracker takes what this Blender holds.

        The datablock is read again at the end of the step, so its un-updated state is known and the next
        scan does not take it for a local edit: sending it back would replace the room's value, and a
        Blender that cannot apply that one either would answer the same way, without end. Without a
        datablock the key is forgotten: an audit would otherwise report it deleted.
        """
        found = self._index.get(uuid)
        self._doubtful.add(uuid)
        self._read_now.add(uuid)
        if found is not None:
            self._touched[uuid] = found[1]
        elif self.tracker is not None:
            self.tracker.note_applied(key, None)

    def _wait(self, key: str, value: bytes, ctx: ApplyContext) -> None:
        """Remember a key whose value links to something missing (applied again when it arrives)."""
        for missing in ctx.missing:
            self._pending.setdefault(missing, set()).add(key)
        if ctx.missing:
            self._pending_values[key] = value
        else:
            self._pending_values.pop(key, None)

    def _apply_item_delete(self, key: str, uuid: str, spec: Items, item: tuple[str, ...]) -> None:
        """A deleted item key: remove the member, node, link... (nothing to do if its datablock is gone)."""
        waiting = self._waiting_parts.get(uuid)
        if waiting is not None:
            waiting.pop(key, None)
        found = self._index.get(uuid)
        if found is None:
            return
        try:
            if self.before_apply is not None:
                self.before_apply(key, None)
            ctx = ApplyContext(self._index, self._make_stub, deleting=True, users=self._users)
            id_data = spec.apply(found[1], item, None, ctx)
        except Exception as exc:
            self.errors.report(key, f"{type(exc).__name__}: {exc}")
            self._not_applied(key, uuid)
            return
        self._index[uuid] = (found[0], id_data)
        self._touched[uuid] = id_data
        self.errors.settled(key)

    def _on_created(self, uuid: str) -> None:
        for key, value in sorted(self._waiting_parts.pop(uuid, {}).items(), key=lambda kv: op_order(kv[0])):
            self._apply_one(key, value)
        self._resolve_pending(uuid)

    def _resolve_pending(self, token: str) -> None:
        # A value applied again while its token is being resolved may wait for that same token (a
        # node waiting for another node of its tree): it waits for the next time, never loops.
        if token not in self._pending or token in self._resolving:
            return
        self._resolving.add(token)
        try:
            for key in sorted(self._pending.pop(token, set()), key=op_order):
                value = self._pending_values.get(key)
                if value is not None:
                    self._apply_one(key, value)
        finally:
            self._resolving.discard(token)

    def reset(self) -> None:
        """Drop the queue and every remembered pending link (e.g. after leaving a room)."""
        self._queue, self._fed = [], []
        self._ranks, self._orders = {}, {}
        self._total = self._done = 0
        self._census = None
        self._waiting_parts.clear()
        self._touched = {}
        self._doubtful, self._read_now, self._chunked = set(), set(), set()
        self._queued, self._queued_deletes, self._queued_links = {}, {}, 0
        self._later.clear()
        self._pending.clear()
        self._pending_values.clear()
        self._names.clear()
        self._replaced.clear()


def apply_ops(
    ops: Iterable[Op], tracker: ChangeTracker | None = None, applier: Applier | None = None
) -> Applier:
    """Apply remote operations in an order that works; return the applier used.

    Pass the same ``applier`` across calls to keep links that wait for a
    datablock that has not arrived yet.
    """
    applier = applier or Applier(tracker)
    if tracker is not None and applier.tracker is None:
        applier.tracker = tracker
    applier.apply(ops)
    return applier
