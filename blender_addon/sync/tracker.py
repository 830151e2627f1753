"""Change detection: which keys differ from what was last sent or applied."""

from __future__ import annotations

from collections.abc import Iterable

import bpy

from . import ids
from .index import index_all, is_synced, kind_of
from .keys import PRIMARY_PART, parse_key
from .kinds import BY_NAME, REGISTRY
from .serialise import read_context, serialise_parts


def ids_from_depsgraph(depsgraph: bpy.types.Depsgraph) -> list[bpy.types.ID]:
    """Original datablocks behind the updates of a ``depsgraph_update_post`` call."""
    out = []
    for update in depsgraph.updates:
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
        self._names: dict[str, str] = {}  # uuid -> datablock name when last serialised
        self._members: dict[str, set[str]] = {}  # collection/scene uuid -> linked children seen last

    # ------------------------------------------------------------ memory

    @property
    def values(self) -> dict[str, bytes]:
        """The remembered key -> value map (read-only view; do not mutate)."""
        return self._values

    def reset(self, values: dict[str, bytes] | None = None) -> None:
        """Forget everything, or start from a known key -> value map."""
        self._values = {}
        self._keys = {}
        self._names = {}
        self._members = {}
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
                    del self._keys[uuid]
                    self._names.pop(uuid, None)
            return
        self._values[key] = value
        self._keys.setdefault(uuid, set()).add(key)

    def forget_uuid(self, uuid: str) -> None:
        """Drop every key of a datablock (it was removed by a remote operation)."""
        for key in self._keys.pop(uuid, set()):
            self._values.pop(key, None)
        self._names.pop(uuid, None)
        self._members.pop(uuid, None)

    def note_datablocks(self, id_datas: Iterable[bpy.types.ID]) -> None:
        """Take the current state of these datablocks as already known (no change to report)."""
        ctx = read_context()
        for id_data in id_datas:
            if not is_synced(id_data):
                continue
            kind = kind_of(id_data)
            uuid = ids.get_uuid(id_data)
            current = serialise_parts(kind, id_data, ctx)
            for key in self._keys.get(uuid, set()) - current.keys():
                self.note_applied(key, None)
            for key, value in current.items():
                self.note_applied(key, value)
            self._names[uuid] = id_data.name
            self._linked_children(id_data)

    # ------------------------------------------------------------ scanning

    def scan(self, dirty_ids: Iterable[bpy.types.ID] | None = None) -> tuple[dict[str, bytes], list[str]]:
        """Return ``(changed, deleted)`` since the last scan or applied value.

        Without ``dirty_ids`` every datablock is serialised and compared.
        With ``dirty_ids`` (e.g. from :func:`ids_from_depsgraph`) only those
        datablocks are serialised, plus datablocks that appeared, were
        renamed, or are linked under a dirty collection or scene; deletions
        are found by comparing the sets of uuids, which is cheap.
        """
        index = index_all(assign=True)
        ctx = read_context()
        if dirty_ids is None:
            todo = set(index)
        else:
            todo = {uuid for uuid in index if uuid not in self._keys}
            for uuid, (_kind, id_data) in index.items():
                if self._names.get(uuid, id_data.name) != id_data.name:
                    todo.add(uuid)
            for dirty in dirty_ids:
                try:
                    owners = _owners(dirty)
                except ReferenceError:  # removed since it was reported; the set diff covers it
                    continue
                for owner in owners:
                    if not is_synced(owner):
                        continue
                    todo.add(ids.get_uuid(owner))
                    todo.update(self._linked_children(owner))
            todo &= index.keys()
        changed: dict[str, bytes] = {}
        deleted: list[str] = []
        for uuid in sorted(todo):
            kind, id_data = index[uuid]
            current = serialise_parts(kind, id_data, ctx)
            for key, value in current.items():
                if self._values.get(key) != value:
                    changed[key] = value
                    self.note_applied(key, value)
            for key in sorted(self._keys.get(uuid, set()) - current.keys()):
                deleted.append(key)
                self.note_applied(key, None)
            self._names[uuid] = id_data.name
            self._linked_children(id_data)
            if kind == "scene" and ids.ADOPT_PROP in id_data:
                del id_data[ids.ADOPT_PROP]  # shared now: remote scenes must no longer take it over
        for uuid in sorted(set(self._keys) - set(index)):
            keys = sorted(self._keys[uuid], key=lambda k: (parse_key(k) or ("", "", ""))[2] == PRIMARY_PART)
            deleted.extend(keys)
            self.forget_uuid(uuid)
        return changed, deleted

    def _linked_children(self, owner: bpy.types.ID) -> set[str]:
        """uuids of objects and collections linked under a collection or scene, now or at the last look.

        An object unlinked from a collection is reported by Blender through the
        collection only, so the children seen last time are included too.
        """
        kind = kind_of(owner)
        members = BY_NAME[kind].members if kind is not None else None
        if members is None:
            return set()
        coll = members(owner)
        now = {ids.get_uuid(ob) for ob in coll.objects if is_synced(ob)}
        now |= {ids.get_uuid(child) for child in coll.children if is_synced(child)}
        owner_uuid = ids.get_uuid(owner)
        before = self._members.get(owner_uuid, set())
        self._members[owner_uuid] = now
        return now | before
