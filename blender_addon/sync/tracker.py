"""Change detection: which keys differ from what was last sent or applied.

Its cost follows what changed, not what exists: :meth:`ChangeTracker.scan`
serialises the datablocks Blender reported, and finds new and removed ones
by comparing the length of each ``bpy.data`` collection with the last look
(a collection is walked only when its length moved). What Blender does not
report (an orphan material edited by a script, a text's body, a rename
outside the depsgraph) is found by :meth:`ChangeTracker.audit`, which looks
at a bounded number of datablocks per call, resuming where the previous call
stopped. Datablocks whose keys hold more than ``HEAVY_BYTES`` and that took
more than ``HEAVY_SECONDS`` to serialise (a large mesh) are left to
the depsgraph: serialising one would cost more than a pump may.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable

import bpy

from . import chunks, ids
from .context import ReadContext
from .index import index_all, is_synced, kind_of
from .keys import PRIMARY_PART, parse_key
from .kinds import BY_NAME, REGISTRY, Kind
from .serialise import read_context, serialise_parts


def ids_from_depsgraph(depsgraph: bpy.types.Depsgraph) -> list[bpy.types.ID]:
    """Original datablocks behind the updates of a ``depsgraph_update_post`` call."""
    out = []
    for update in depsgraph.updates:
        id_data = update.id
        original = getattr(id_data, "original", None)
        out.append(original if original is not None else id_data)
    return out


def shading_only_ids(depsgraph: bpy.types.Depsgraph) -> list[bpy.types.ID]:
    """Original datablocks whose update in this call changed shading only (e.g. every user of an edited
    material): for a heavy datablock that is no change of its keys (mesh key changes all come with
    ``is_updated_geometry``)."""
    out = []
    for update in depsgraph.updates:
        if update.is_updated_shading and not (update.is_updated_geometry or update.is_updated_transform):
            id_data = update.id
            original = getattr(id_data, "original", None)
            out.append(original if original is not None else id_data)
    return out


def _owners(id_data: bpy.types.ID) -> list[bpy.types.ID]:
    """Map embedded data (node trees, master collections) and shape keys to the datablocks that own them."""
    if isinstance(id_data, bpy.types.Key):
        return [id_data.user] if id_data.user is not None else []
    if not getattr(id_data, "is_embedded_data", False):
        return [id_data]
    ptr = id_data.as_pointer()
    owners = []
    for kind in REGISTRY:
        for attr in kind.embedded:
            for owner in getattr(bpy.data, kind.collection):
                embedded = getattr(owner, attr, None)
                if embedded is not None and embedded.as_pointer() == ptr:
                    owners.append(owner)
    return owners


# The audit leaves a datablock to the depsgraph when its keys hold more than HEAVY_BYTES and its last
# serialisation took more than HEAVY_SECONDS of this thread's CPU time (CPU time, so that other processes
# on a busy machine do not make a light datablock look heavy). 1 MB of mesh takes tens of milliseconds;
# a font file of the same size is copied in a fraction of one, so fonts and images stay audited.
HEAVY_BYTES = 32 * 1024  # (or any chunked byte string: a chunk is 64 KiB)
HEAVY_SECONDS = 0.002


class ChangeTracker:
    """Remembers the last value of every key and reports what differs.

    ``scan()`` compares the current scene with that memory and returns
    ``(changed, deleted)``; the memory is then updated, so each change is
    reported once.  Values applied from the room are recorded with
    :meth:`note_applied` (the :class:`~.apply.Applier` does this), so that
    applying remote operations never reports them back as local changes.
    """

    def __init__(self) -> None:
        self._values: dict[str, bytes] = {}
        self._keys: dict[str, set[str]] = {}  # uuid -> keys
        self._kinds: dict[str, str] = {}  # uuid -> kind name
        self._names: dict[str, str] = {}  # uuid -> datablock name when last serialised
        self._uids: dict[str, int] = {}  # uuid -> session_uid of the datablock last serialised under it
        self._costs: dict[str, float] = {}  # uuid -> seconds its last serialisation took
        self._members: dict[str, set[str]] = {}  # collection/scene uuid -> linked children seen last
        self._counts: dict[str, int] = {}  # kind name -> len(bpy.data.<collection>) at the last look
        self._audit_at = (0, 0)  # (registry position, collection position) where the audit resumes
        self._audit_seen: set[str] = set()  # uuids seen alive since the audit's cycle began
        # uuid -> datablock whose applied values stand for what it holds until read back (note_unread)
        self._unread: dict[str, bpy.types.ID] = {}
        # key -> the value it had before a scan or audit reported it changed (None: it did not exist), until
        # the caller clears it: what to put back when the room refuses the change
        self.previous: dict[str, bytes | None] = {}
        self.audit_visits = 0  # datablocks the last audit() looked at
        self.audit_cycles = 0  # completed passes of the audit over every datablock

    # ------------------------------------------------------------ memory

    @property
    def values(self) -> dict[str, bytes]:
        """The remembered key -> value map (read-only view; do not mutate)."""
        return self._values

    def reset(self, values: dict[str, bytes] | None = None) -> None:
        """Forget everything, or start from a known key -> value map."""
        self._values = {}
        self._keys = {}
        self._kinds = {}
        self._names = {}
        self._uids = {}
        self._costs = {}
        self._members = {}
        self._unread = {}
        self._counts = {}
        self._audit_at = (0, 0)
        self._audit_seen = set()
        self.previous = {}
        for key, value in (values or {}).items():
            self.note_applied(key, value)

    def note_applied(self, key: str, value: bytes | None) -> None:
        """Record that ``key`` now holds ``value`` (None: the key is gone)."""
        bits = key.split("/", 2)  # kind/uuid/... (parse_key would check more, at a cost on every value)
        uuid = bits[1] if len(bits) == 3 and bits[0] in BY_NAME else key
        if value is None:
            self._values.pop(key, None)
            keys = self._keys.get(uuid)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    self._forget(uuid)
            return
        self._values[key] = value
        self._keys.setdefault(uuid, set()).add(key)
        if uuid is not key:
            self._kinds[uuid] = bits[0]
        self._audit_seen.add(uuid)

    def forget_uuid(self, uuid: str) -> None:
        """Drop every key of a datablock (it was removed by a remote operation)."""
        for key in self._keys.get(uuid, set()):
            self._values.pop(key, None)
        self._forget(uuid)

    def _forget(self, uuid: str) -> None:
        for memory in (self._keys, self._kinds, self._names, self._uids, self._costs, self._members):
            memory.pop(uuid, None)
        self._unread.pop(uuid, None)

    def note_datablocks(self, id_datas: Iterable[bpy.types.ID]) -> None:
        """Take the current state of these datablocks as already known (no change to report)."""
        ctx = read_context()
        for id_data in id_datas:
            if is_synced(id_data):
                self._note_read(ids.get_uuid(id_data), id_data, ctx)

    def _note_read(self, uuid: str, id_data: bpy.types.ID, ctx: ReadContext) -> None:
        current = self._serialise(uuid, kind_of(id_data), id_data, ctx)
        self._unread.pop(uuid, None)
        for key in self._keys.get(uuid, set()) - current.keys():
            self.note_applied(key, None)
        for key, value in current.items():
            self.note_applied(key, value)
        self._seen(uuid, id_data)
        self._linked_children(id_data)

    def note_seen(self, uuid: str, id_data: bpy.types.ID) -> None:
        """The datablock holding ``uuid`` is ``id_data``, its values as noted (applied, not read back)."""
        if uuid in self._keys:
            self._seen(uuid, id_data)

    def note_unread(self, uuid: str, id_data: bpy.types.ID) -> bool:
        """Like :meth:`note_seen`, until :meth:`read_unread` reads ``id_data`` back and takes what it holds
        as known (the values Blender normalised on the way in), as :meth:`note_datablocks` does at once.
        Until then the audit reads it back rather than compare it; a scan that reads it (the artist
        changed it) compares it with the values applied and sends the difference. False, and nothing
        noted, when no value of ``uuid`` is known (a stand-in made for a link): read it now.

        A joiner's read-back of every datablock it made was ~40% of its applying: it comes once the
        scene is whole."""
        if uuid not in self._keys:
            return False
        self._seen(uuid, id_data)
        self._unread[uuid] = id_data
        return True

    def drop_unread(self) -> None:
        """Compare what is noted unread from now on, not read it back: an undo may have changed it, and
        reading it would take the undo for the room's state."""
        self._unread = {}

    @property
    def unread(self) -> int:
        """Datablocks noted unread (:meth:`note_unread`) and not read back yet."""
        return len(self._unread)

    def read_unread(self, deadline: float, edited: Callable[[bpy.types.ID], bool] | None = None) -> int:
        """Read back datablocks noted unread, at least one, until ``deadline`` (``time.monotonic()``);
        returns how many. One ``edited`` says the artist changed is left to the scan that will compare it.
        One removed or holding another uuid since is dropped: the audit compares what holds its uuid."""
        done = 0
        ctx = None
        for uuid, id_data in list(self._unread.items()):
            if done and time.monotonic() >= deadline:
                break
            try:
                alive = ids.peek_uuid(id_data) == uuid and id_data.session_uid == self._uids.get(uuid)
                if alive and edited is not None and edited(id_data):
                    continue
            except ReferenceError:
                alive = False
            del self._unread[uuid]
            if alive:
                ctx = ctx or read_context()
                self._note_read(uuid, id_data, ctx)
            done += 1
        return done

    def forget_counts(self) -> None:
        """The set of datablocks may have changed unseen (undo, redo): the next scan re-reads every uuid."""
        self._counts = {}

    def _seen(self, uuid: str, id_data: bpy.types.ID) -> None:
        self._names[uuid] = id_data.name
        self._uids[uuid] = id_data.session_uid
        self._audit_seen.add(uuid)

    def _serialise(self, uuid: str, kind: str, id_data: bpy.types.ID, ctx) -> dict[str, bytes]:
        start = time.thread_time()
        current = serialise_parts(kind, id_data, ctx)
        self._costs[uuid] = time.thread_time() - start
        return current

    def cost(self, uuid: str) -> float:
        """Seconds of this thread's CPU the last serialisation of this datablock took (0: never)."""
        return self._costs.get(uuid, 0.0)

    def is_heavy(self, uuid: str) -> bool:
        """Whether the audit leaves this datablock to the depsgraph (see ``HEAVY_BYTES``)."""
        if self._costs.get(uuid, 0.0) <= HEAVY_SECONDS:
            return False
        values = [self._values[key] for key in self._keys.get(uuid, ())]
        return sum(map(len, values)) > HEAVY_BYTES or any(map(chunks.holds_chunks, values))

    # ------------------------------------------------------------ scanning

    def scan(
        self,
        dirty_ids: Iterable[bpy.types.ID] | None = None,
        shading_only: Iterable[bpy.types.ID] = (),
        look_for_new: bool = True,
    ) -> tuple[dict[str, bytes], list[str]]:
        """Return ``(changed, deleted)`` since the last scan or applied value.

        Without ``dirty_ids`` every datablock is serialised and compared.
        With ``dirty_ids`` (e.g. from :func:`ids_from_depsgraph`) only those
        datablocks are serialised, plus datablocks that appeared and objects
        and collections linked under a dirty collection or scene (now or at
        the last look). New and removed datablocks are found per
        ``bpy.data`` collection whose length moved since the last look.
        A heavy datablock (:meth:`is_heavy`) among ``shading_only`` (from
        :func:`shading_only_ids`, for all its updates since the last scan) is
        not serialised: a material edit reports every mesh that uses it.
        Without ``look_for_new`` the lengths are not looked at (``len()`` of a
        ``bpy.data`` collection walks it: the sync loop looks every
        ``COUNT_INTERVAL`` when nothing was reported), unless they were
        forgotten (:meth:`forget_counts`).
        """
        if dirty_ids is None:
            index = index_all(assign=True)
            self._counts = self._current_counts()
            todo = dict(index)
            gone = set(self._keys) - index.keys()
        else:
            # Counts forgotten (a fresh tracker, an undo): looked at whatever the caller says.
            todo, gone = self._appeared_and_gone() if look_for_new or not self._counts else ({}, set())
            light = {id_data.as_pointer() for id_data in shading_only}
            for dirty in dirty_ids:
                try:
                    owners = _owners(dirty)
                except ReferenceError:  # removed since it was reported; the length check covers it
                    continue
                for owner in owners:
                    if not is_synced(owner):
                        continue
                    uuid = ids.get_uuid(owner)
                    if owner is dirty and dirty.as_pointer() in light and self.is_heavy(uuid):
                        continue
                    todo[uuid] = (kind_of(owner), owner)
                    now, unlinked = self._linked_children(owner)
                    todo.update(now)
                    for child in unlinked - todo.keys() - gone:
                        found = self._find(child)
                        if found is not None:
                            todo[child] = found
                        else:  # _find walked its whole collection
                            gone.add(child)
        return self._compare(todo, gone)

    def scan_settled(
        self, dirty_ids: Iterable[bpy.types.ID], shading_only: Iterable[bpy.types.ID], unsettled: set[str]
    ) -> tuple[dict[str, bytes], list[str], list[bpy.types.ID]]:
        """While remote values are still being applied (a join filling in): ``(changed, deleted, held)``
        for the reported datablocks this tracker knows whose room values are all applied (uuid not in
        ``unsettled``); ``held``: the reported ones left for a later scan. New and removed datablocks are
        not looked for (the applier is making them), nor are linked children.

        A datablock with a room value still to apply is held: read now it could be half-built, and a value
        applied after an edit sent now would undo that edit here while the room keeps it."""
        todo: dict[str, tuple[str, bpy.types.ID]] = {}
        held: list[bpy.types.ID] = []
        light = {id_data.as_pointer() for id_data in shading_only}
        for dirty in dirty_ids:
            try:
                owners = _owners(dirty)
                light_only = dirty.as_pointer() in light
            except ReferenceError:
                continue
            for owner in owners:
                if not is_synced(owner):
                    continue
                uuid = ids.peek_uuid(owner)
                if uuid is None or uuid not in self._keys or self._uids.get(uuid) != owner.session_uid:
                    held.append(dirty)  # new here, or a copy holding another's uuid: the full scan's
                elif uuid in unsettled:
                    held.append(dirty)
                elif not (owner is dirty and light_only and self.is_heavy(uuid)):
                    todo[uuid] = (kind_of(owner), owner)
        changed, deleted = self._compare(todo, set(), members=False)
        return changed, deleted, list({id_data.as_pointer(): id_data for id_data in held}.values())

    def audit(self, max_visits: int, max_seconds: float | None = None) -> tuple[dict[str, bytes], list[str]]:
        """Look at up to ``max_visits`` datablocks (fewer once ``max_seconds`` have passed), resuming
        where the last call stopped; return ``(changed, deleted)`` like :meth:`scan`.

        The safety net for what Blender does not report. Each datablock is
        serialised and compared unless it is heavy (:meth:`is_heavy`). When
        the cursor has passed every collection, a datablock remembered but
        not seen during the pass (and not found by name or by a walk of its
        collection) is reported deleted.
        """
        deadline = None if max_seconds is None else time.perf_counter() + max_seconds
        visits = 0
        changed: dict[str, bytes] = {}
        deleted: list[str] = []
        ctx = None
        position, offset = self._audit_at
        sizes: dict[int, int] = {}  # len() of a bpy.data collection walks it: once per call
        while visits < max_visits and (deadline is None or time.perf_counter() < deadline):
            if position >= len(REGISTRY):
                gone = {uuid for uuid in set(self._keys) - self._audit_seen if self._find(uuid) is None}
                deleted += self._compare({}, gone)[1]
                position, offset = 0, 0
                self._audit_seen = set()
                self.audit_cycles += 1
                break
            kind = REGISTRY[position]
            collection = getattr(bpy.data, kind.collection)
            if position not in sizes:
                sizes[position] = len(collection)
            if offset >= sizes[position]:
                position, offset = position + 1, 0
                continue
            id_data = collection[offset]
            offset += 1
            visits += 1
            if not is_synced(id_data):
                continue
            uuid = ids.peek_uuid(id_data)
            known_uid = self._uids.get(uuid, id_data.session_uid) if uuid in self._keys else None
            if known_uid != id_data.session_uid:
                self._counts.pop(kind.name, None)  # new, or a copy holding another's uuid: scan() sorts it
                continue
            self._audit_seen.add(uuid)
            if uuid in self._unread:
                ctx = ctx or read_context()
                self._note_read(uuid, id_data, ctx)
            elif not self.is_heavy(uuid):
                ctx = ctx or read_context()
                # Members are left to the depsgraph path: re-reading them costs as much as the children.
                one_changed, one_deleted = self._compare(
                    {uuid: (kind.name, id_data)}, set(), ctx, members=False
                )
                changed.update(one_changed)
                deleted += one_deleted
        self._audit_at = (position, offset)
        self.audit_visits = visits
        return changed, deleted

    def _current_counts(self) -> dict[str, int]:
        return {kind.name: len(getattr(bpy.data, kind.collection)) for kind in REGISTRY}

    def _appeared_and_gone(self) -> tuple[dict[str, tuple[str, bpy.types.ID]], set[str]]:
        """Datablocks not remembered yet and remembered uuids with no datablock, in the collections
        whose length moved since the last look."""
        counts = self._current_counts()
        moved: list[Kind] = [kind for kind in REGISTRY if self._counts.get(kind.name) != counts[kind.name]]
        self._counts = counts
        if not moved:
            return {}, set()
        index = index_all(assign=True, kinds=moved)
        names = {kind.name for kind in moved}
        appeared = {uuid: entry for uuid, entry in index.items() if uuid not in self._keys}
        for uuid, (_kind, id_data) in index.items():
            self._uids[uuid] = id_data.session_uid
        gone = {uuid for uuid, kind in self._kinds.items() if kind in names and uuid not in index}
        return appeared, gone

    def _find(self, uuid: str) -> tuple[str, bpy.types.ID] | None:
        """The datablock holding ``uuid``: looked up by its last name, else by a walk of its collection."""
        kind_name = self._kinds.get(uuid)
        if kind_name is None:
            return None
        kind = BY_NAME[kind_name]
        collection = getattr(bpy.data, kind.collection)
        named = collection.get(self._names.get(uuid, ""))
        candidates = [named] if named is not None else []
        for id_data in itertools.chain(candidates, collection):
            if is_synced(id_data) and ids.peek_uuid(id_data) == uuid:
                return kind_name, id_data
        return None

    def _compare(
        self,
        todo: dict[str, tuple[str, bpy.types.ID]],
        gone: set[str],
        ctx: ReadContext | None = None,
        members: bool = True,
    ) -> tuple[dict[str, bytes], list[str]]:
        changed: dict[str, bytes] = {}
        deleted: list[str] = []
        if todo and ctx is None:
            ctx = read_context()
        for uuid in sorted(todo):
            kind, id_data = todo[uuid]
            current = self._serialise(uuid, kind, id_data, ctx)
            self._unread.pop(uuid, None)
            for key, value in current.items():
                old = self._values.get(key)
                if old != value:
                    changed[key] = value
                    self.previous.setdefault(key, old)
                    self.note_applied(key, value)
            for key in sorted(self._keys.get(uuid, set()) - current.keys()):
                deleted.append(key)
                self.previous.setdefault(key, self._values.get(key))
                self.note_applied(key, None)
            self._seen(uuid, id_data)
            if members:
                self._linked_children(id_data)
            if kind == "scene" and ids.ADOPT_PROP in id_data:
                del id_data[ids.ADOPT_PROP]  # shared now: remote scenes must no longer take it over
        for uuid in sorted(gone & self._keys.keys()):
            keys = sorted(self._keys[uuid], key=lambda k: (parse_key(k) or ("", "", ""))[2] == PRIMARY_PART)
            deleted.extend(keys)
            for key in keys:
                self.previous.setdefault(key, self._values.get(key))
            self.forget_uuid(uuid)
        return changed, deleted

    def _linked_children(self, owner: bpy.types.ID) -> tuple[dict[str, tuple[str, bpy.types.ID]], set[str]]:
        """Objects and collections linked under a collection or scene now (uuid -> (kind, datablock)),
        and the uuids of those linked at the last look and not now.

        An object unlinked from a collection is reported by Blender through the
        collection only, so the children seen last time count too.
        """
        kind = kind_of(owner)
        members = BY_NAME[kind].members if kind is not None else None
        if members is None:
            return {}, set()
        coll = members(owner)
        now: dict[str, tuple[str, bpy.types.ID]] = {}
        for child in itertools.chain(coll.objects, coll.children):
            if is_synced(child):
                now[ids.get_uuid(child)] = (kind_of(child), child)
        owner_uuid = ids.get_uuid(owner)
        before = self._members.get(owner_uuid, set())
        self._members[owner_uuid] = set(now)
        return now, before - now.keys()
