"""What a kind's functions may ask of the rest of the scene while they run.

Kind modules get one of these instead of importing the registry: whether a
datablock is synchronised, and the uuid of a linked datablock, depend on
every kind, so the generic machinery answers them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

import bpy

from . import derived, ids, linked, rna
from .later_links import LaterLinks

AFTER_STEP = "after-step:"  # pending-link token: tried again at the end of every Applier.step


def part_token(part: str, uuid: str) -> str:
    """Pending-link token of a value that waits for part ``part`` of datablock ``uuid`` to be applied."""
    return f"{part}:{uuid}"


def item_token(part: str, item: tuple[str, ...], uuid: str) -> str:
    """Pending-link token of a value that waits for one item of a part (a node of a tree, by its id): only
    that item's key wakes it, not every key of the part (a tree's links waited for each of its nodes)."""
    return f"{part}/{'/'.join(item)}:{uuid}"


Group = TypeVar("Group")


def _by_member(groups: Iterable[tuple[Group, Iterable[bpy.types.ID]]]) -> dict[int, list[Group]]:
    """Member pointer -> the groups holding it, in order, from one walk of every group's members. Blender's
    own reverse lookups (``Object.users_collection``, ``users_scene``) walk them all for each member asked
    about: a pass over N members cost N * N."""
    found: dict[int, list[Group]] = {}
    for group, members in groups:
        for member in members:
            found.setdefault(member.as_pointer(), []).append(group)
    return found


def _objects_by_data() -> dict[int, list[bpy.types.Object]]:
    """Object data pointer -> the objects using it, in ``bpy.data.objects`` order."""
    return _by_member((ob, (ob.data,)) for ob in bpy.data.objects if ob.data is not None)


# object data pointer -> the name of the local object object_user() found using it: a mesh audited alone
# (one per idle pump) need not walk every object to find its user again
_USER_NAMES: dict[int, str] = {}


def _named_user(ptr: int) -> bpy.types.Object | None:
    name = _USER_NAMES.get(ptr)
    ob = bpy.data.objects.get(name) if name is not None else None
    if ob is not None and ob.library is None and ob.data is not None and ob.data.as_pointer() == ptr:
        return ob
    return None


class ReadContext:
    """Lookups shared by every datablock read in one pass (serialising or describing the scene)."""

    def __init__(
        self, is_synced: Callable[[bpy.types.ID], bool], link_types: frozenset[str], masked: bool = True
    ) -> None:
        self.is_synced = is_synced
        self.masked_reads = masked  # read what animation writes as None (serialising, not describing)
        self.link_types = link_types  # RNA pointer types whose targets travel as uuids
        self.unsent: list[str] = []  # item keys longer than the protocol allows, kept local
        self.master_scene: dict[int, str] = {}
        self._animated: dict[int, derived.Paths] = {}
        self._object_users: dict[int, bpy.types.Object] | None = None
        self._object_collections: dict[int, list[bpy.types.Collection]] | None = None
        self._object_scenes: dict[int, list[bpy.types.Scene]] | None = None
        self._coll_parents: dict[int, list[str]] = {}
        for scene in bpy.data.scenes:
            if not is_synced(scene):
                continue
            scene_uuid = ids.get_uuid(scene)
            self.master_scene[scene.collection.as_pointer()] = scene_uuid
            for child in scene.collection.children:
                self._coll_parents.setdefault(child.as_pointer(), []).append(scene_uuid)
        for coll in bpy.data.collections:
            if not is_synced(coll):
                continue
            coll_uuid = ids.get_uuid(coll)
            for child in coll.children:
                self._coll_parents.setdefault(child.as_pointer(), []).append(coll_uuid)

    def ref(self, id_data: bpy.types.ID | None) -> str | list[str] | None:
        """How a pointer to ``id_data`` travels: the uuid of a synchronised datablock, ``[library uuid,
        collection, name]`` for one linked from a library that travels (:mod:`.linked`); None for nothing
        or for a datablock that does not travel."""
        if id_data is None:
            return None
        if id_data.library is not None:
            return linked.ref(id_data, self)
        return self.uuid(id_data)

    def uuid(self, id_data: bpy.types.ID | None) -> str | None:
        """uuid of a synchronised datablock (never a linked one); None otherwise."""
        if id_data is None or not self.is_synced(id_data):
            return None
        return ids.get_uuid(id_data)

    def collection_ref(self, coll: bpy.types.Collection) -> str | None:
        """uuid of a collection, or of the scene whose master collection it is."""
        scene_uuid = self.master_scene.get(coll.as_pointer())
        if scene_uuid is not None:
            return scene_uuid
        return self.uuid(coll)  # a linked collection holds no local datablock

    def collection_parents(self, coll: bpy.types.Collection) -> list[str]:
        """Sorted uuids of the synchronised collections and scenes ``coll`` is a child of."""
        return sorted(set(self._coll_parents.get(coll.as_pointer(), [])))

    def animated(self, id_data: bpy.types.ID) -> derived.Paths:
        """What animation, NLA and drivers write in ``id_data`` (read once per pass)."""
        if not self.masked_reads:
            return derived.NOTHING
        ptr = id_data.as_pointer()
        paths = self._animated.get(ptr)
        if paths is None:
            paths = self._animated[ptr] = derived.animated_paths(id_data)
        return paths

    def masked(
        self, struct: bpy.types.bpy_struct, attr: str, value: object, prefix: str | None = None
    ) -> object:
        """``value`` (read from ``struct.attr``) with what animation writes in it as None
        (:func:`.derived.mask`); ``prefix``: ``struct``'s data path, when the caller knows it."""
        paths = self.animated(struct.id_data)
        if not paths:
            return value
        path = derived.join(derived.path_of(struct) if prefix is None else prefix, attr)
        return derived.mask(value, paths.get(path))

    def masked_packed(self, id_data: bpy.types.ID, collection: str, attr: str, values, width: int):
        """A packed array read from the ``attr`` of the items at ``collection`` (a data path) with what
        animation writes in it as 0.0 (:func:`.derived.mask_packed`)."""
        paths = self.animated(id_data)
        return derived.mask_packed(values, width, paths, collection, attr) if paths else values

    def object_user(self, data: bpy.types.ID) -> bpy.types.Object | None:
        """An object using ``data`` (object data such as a mesh), if any: the one found last time while it
        still uses it (looked up by name: O(1), and safe after an undo), else the first in
        ``bpy.data.objects`` (the map is made once per pass: a walk of every object)."""
        ptr = data.as_pointer()
        ob = _named_user(ptr)
        if ob is not None:
            return ob
        if self._object_users is None:
            self._object_users = {ptr: users[0] for ptr, users in _objects_by_data().items()}
            for key in list(_USER_NAMES):  # still used by the object named: kept, as above
                ob = _named_user(key)
                if ob is not None:
                    self._object_users[key] = ob
            _USER_NAMES.clear()
            _USER_NAMES.update((key, ob.name) for key, ob in self._object_users.items() if ob.library is None)
        return self._object_users.get(ptr)

    def object_collections(self, ob: bpy.types.Object) -> list[bpy.types.Collection]:
        """The collections ``ob`` is in, then the scenes' master collections it is in (what
        ``Object.users_collection`` lists), from a map made once per pass."""
        if self._object_collections is None:
            colls = [*bpy.data.collections, *(scene.collection for scene in bpy.data.scenes)]
            self._object_collections = _by_member((coll, coll.objects) for coll in colls)
        return self._object_collections.get(ob.as_pointer(), [])

    def object_scenes(self, ob: bpy.types.Object) -> list[bpy.types.Scene]:
        """The scenes ``ob`` is in (``Object.users_scene``, which lists every scene's objects on each call),
        from a map made once per pass."""
        if self._object_scenes is None:
            self._object_scenes = _by_member((scene, scene.objects) for scene in bpy.data.scenes)
        return self._object_scenes.get(ob.as_pointer(), [])

    def props(
        self, struct: bpy.types.bpy_struct, skip: Iterable[str] = (), nested: Iterable[str] = ()
    ) -> dict[str, object]:
        """``struct``'s writable properties (:func:`.rna.read_props`), links as uuids."""
        return rna.read_props(struct, self, skip=skip, nested=nested)


def placeholder_name(uuid: str) -> str:
    """The name a datablock is made with when none is queued for it: its ``name`` key replaces it."""
    return f"pending-{uuid[:8]}"


class DataUsers:
    """Object data -> the objects using it, mapped from one walk of ``bpy.data.objects`` and kept until
    :meth:`forget`. The applier forgets it at each step and whenever it changes an object (made, given other
    data, removed): looking through every object for each mesh a join rebuilt cost N * N."""

    def __init__(self) -> None:
        self._users: dict[int, list[bpy.types.Object]] | None = None

    def forget(self) -> None:
        self._users = None

    def of(self, data: bpy.types.ID) -> list[bpy.types.Object]:
        if self._users is None:
            self._users = _objects_by_data()
        try:
            return [ob for ob in self._users.get(data.as_pointer(), ()) if ob.data == data]
        except ReferenceError:  # an object removed since the map was made (not by the applier): map again
            self._users = None
            return self.of(data)


class ApplyContext:
    """What applying one operation may ask of the applier; collects what could not be resolved yet.

    ``missing`` gathers pending-link tokens: a uuid (a linked datablock that
    has not arrived), :func:`part_token` (a part of a datablock that has
    not been applied yet) or :data:`AFTER_STEP` + uuid.  The applier applies
    the operation again when the token is resolved.
    """

    def __init__(
        self,
        index: dict[str, tuple[str, bpy.types.ID]],
        make_stub: Callable[[str, str, str], bpy.types.ID],
        deleting: bool = False,
        users: DataUsers | None = None,
        later: LaterLinks | None = None,
    ) -> None:
        self._index = index
        self._later = later
        self._make_stub = make_stub
        self._users = users if users is not None else DataUsers()  # made on the first users_of(), if any
        # An item part's function gets None both for a deleted item key and for an item whose value is
        # None (a setting pointing at nothing): this tells them apart.
        self.deleting = deleting
        self.missing: set[str] = set()
        self.created: list[str] = []  # uuids of stand-in datablocks made while applying
        self.errors: list[str] = []  # what could not be applied (kept in Applier.errors for the panel)
        # The datablock was replaced by a new one (an object whose type changed): the applier applies its
        # other keys to it again.
        self.replaced = False
        self.touched: dict[str, bpy.types.ID] = {}  # other datablocks whose keys this value changed
        # The name queued for a datablock this value makes (its ``name`` key, applied after): made with it,
        # it is not renamed (a rename moves it in Blender's sorted list again: ~7 ms per 1,000 datablocks).
        self.name: str | None = None

    def new_name(self, uuid: str) -> str:
        """The name to make the datablock ``uuid`` with: the one queued for it, else a placeholder."""
        return self.name or placeholder_name(uuid)

    def users_of(self, data: bpy.types.ID) -> list[bpy.types.Object]:
        """The objects using ``data``, from the applier's map of them (DataUsers)."""
        return self._users.of(data)

    def link_later(self, ob: bpy.types.Object, ref: str) -> bool:
        """Whether the applier holds the link of a new object into collection (or scene) ``ref`` until
        the objects it is placing are all made (:mod:`.later_links`)."""
        return self._later is not None and self._later.hold(ob, ref)

    def touch(self, uuid: str, id_data: bpy.types.ID) -> None:
        """Read another datablock back with the ones the step applied to: what was applied changed its keys
        too (a collection linked into a scene gives its view layers keys for it), which are the room's, not
        edits to send."""
        self.touched[uuid] = id_data

    def report(self, message: str) -> None:
        """Record that part of a value cannot be applied here; the rest goes on."""
        self.errors.append(message)

    def lookup(self, uuid: str | None) -> bpy.types.ID | None:
        """The datablock with this uuid, if it is there (nothing recorded when it is not)."""
        found = self._index.get(uuid) if uuid else None
        return found[1] if found is not None else None

    def resolve(self, uuid: str | list[str] | None) -> bpy.types.ID | None:
        """The datablock a link (a uuid, or a link into a library, see :meth:`ReadContext.ref`) names; a
        link to one that has not arrived is recorded as missing."""
        if not uuid:
            return None
        if not isinstance(uuid, str):
            return linked.resolve(uuid, self) if linked.is_ref(uuid) else None
        found = self._index.get(uuid)
        if found is None:
            self.missing.add(uuid)
            return None
        return found[1]

    def resolve_collection(self, uuid: str) -> bpy.types.Collection | None:
        """A collection, or the master collection of the scene with this uuid."""
        target = self.resolve(uuid)
        if target is None:
            return None
        return target.collection if isinstance(target, bpy.types.Scene) else target

    def object_data(self, kind: str, uuid: str, object_type: str) -> bpy.types.ID:
        """An object's data, or an empty stand-in under its uuid that the data's own keys fill in later."""
        data = self.lookup(uuid)
        if data is None:
            data = self._make_stub(kind, uuid, object_type)
            self.created.append(uuid)
        return data

    def wait_for(self, part: str, uuid: str) -> None:
        """Apply this operation again once part ``part`` of datablock ``uuid`` has been applied."""
        self.missing.add(part_token(part, uuid))

    def wait_for_item(self, part: str, item: tuple[str, ...], uuid: str) -> None:
        """Apply this operation again once the key of item ``item`` of part ``part`` of ``uuid`` applied."""
        self.missing.add(item_token(part, item, uuid))

    def retry_after_step(self, uuid: str) -> None:
        """Apply this operation again at the end of the applier's step (and of every later one)."""
        self.missing.add(AFTER_STEP + uuid)

    def forget(self, uuid: str) -> None:
        """Drop a uuid from the index (a datablock taken over under another uuid)."""
        self._index.pop(uuid, None)
