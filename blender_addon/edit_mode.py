"""Live edit mode: while an artist edits a mesh, curve, text, lattice, armature or metaball, the others see
it change, and the parts edit mode changes are theirs alone.

Blender keeps a mesh's edit-mode changes in the edit mesh (bmesh) until the artist leaves edit mode, so a
scan of the mesh does not see them; the depsgraph does report the mesh when the edit mesh changes. The sync
loop then copies the edit mesh into the mesh (``Object.update_from_editmode``) and marks it changed: the scan
sends its changed keys as usual (with chunks, only the chunks that changed). A text's edits are copied the
same way. The other kinds are read directly: a curve's ``splines`` and a lattice's ``points`` are the edit
data in edit mode, a metaball's elements are edited in place, and the armature kind reads the edit bones of
an armature in edit mode (a copy would rebuild every object's depsgraph relations, and every object would be
reported). Their reports are held back until a copy would be due, so a scan reads them at the same pace. A
curve or lattice with shape keys is held back until the artist leaves edit mode: Blender writes its edits into
the shape keys, which it is evaluated from, only then.

An edit after a quiet moment goes out in the next pump; while the artist keeps editing, copies are paced:
at least ``EDIT_INTERVAL`` seconds apart (or ``COST_FACTOR`` times what reading the datablock last cost, so
that a heavy mesh takes at most a quarter of the main thread), and only once the previous edit of its first
leased key has been acknowledged (the server sets the pace). A copy tags the datablock too: once the scan has
sent it, the loop evaluates the depsgraph and drops that report (:meth:`EditModeSync.settle`), so only the
artist's edits start the next copy. A script that changes the edit data without telling the depsgraph is
caught by a copy every ``SAFETY_INTERVAL`` seconds (or ``SAFETY_FACTOR`` times the cost) while it is in edit
mode.

**Lease.** Entering edit mode on a synchronised datablock locks the keys of the parts edit mode changes
(``LIVE``; a mesh's ``geometry`` and ``shapes``) on the server (docs/protocol.md section 3, locks): other
artists' writes to them are refused (``locked``) until this artist leaves edit mode (unlock) or its session
ends (the server releases a session's locks when it closes or drops). Everyone learns who edits which
datablock from ``locks_changed`` (``SyncSession.editors``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import bpy

from . import sync

EDIT_INTERVAL = 0.1  # seconds between two edit-mode copies of one datablock (10 Hz at most)...
COST_FACTOR = 4.0  # ...and at least this many times its last serialisation (a heavy mesh: slower)
SAFETY_INTERVAL = 2.0  # a copy without a report at least this often...
SAFETY_FACTOR = 20.0  # ...and no more often than this many times the datablock's cost (5% of the main thread)


@dataclass(frozen=True)
class Live:
    """How an object type's data is live in edit mode."""

    kind: str  # the sync kind of the object's data
    collection: str  # its bpy.data collection
    parts: tuple[str, ...]  # the parts of its keys edit mode changes: leased; the first one paces the copies
    copy: bool  # the edits are in edit data a scan does not read: Object.update_from_editmode copies them out
    object_reports: bool = False  # the depsgraph reports an edit on the object only (armature operators)


_CURVE = Live("curve", "curves", ("splines", "shapes"), copy=False)
LIVE: dict[str, Live] = {
    "MESH": Live("mesh", "meshes", ("geometry", "shapes"), copy=True),
    "CURVE": _CURVE,
    "SURFACE": _CURVE,
    "FONT": Live("curve", "curves", ("text",), copy=True),  # the body is in the edit font until copied
    "LATTICE": Live("lattice", "lattices", ("points", "shapes"), copy=False),
    "ARMATURE": Live("arm", "armatures", ("bones",), copy=False, object_reports=True),
    "META": Live("mball", "metaballs", ("elements",), copy=False),
    # Edited in place (no edit data): read as they are, like curves.
    "CURVES": Live("hair", "hair_curves", ("curves",), copy=False),
    "POINTCLOUD": Live("pcloud", "pointclouds", ("points",), copy=False),
    "GREASEPENCIL": Live("gpencil", "grease_pencils", ("strokes",), copy=False),
}


def lease_keys(uuid: str, live: Live = LIVE["MESH"]) -> list[str]:
    return [sync.make_key(live.kind, uuid, part) for part in live.parts]


class EditModeSync:
    def __init__(self) -> None:
        self.leased: dict[str, list[str]] = {}  # data uuid -> keys locked for it
        self._last: dict[str, float] = {}  # data uuid -> when it was last copied
        self._quiet: dict[str, float] = {}  # data uuid -> since when no copy was made (entry or last copy)
        self._edited: set[str] = set()  # datablocks reported changed since their last copy

    @property
    def waiting(self) -> bool:
        """An edit reported here waits for its copy (paced, or its previous copy not acknowledged yet)."""
        return bool(self._edited)

    @staticmethod
    def in_edit_mode() -> dict[str, tuple[bpy.types.Object, Live]]:
        """Synchronised datablocks of a live type in edit mode here, by their uuid."""
        out = {}
        for ob in getattr(bpy.context, "objects_in_mode_unique_data", None) or ():
            live = LIVE.get(ob.type)
            if live is not None and ob.mode == "EDIT":
                uuid = sync.peek_uuid(ob.data)
                if uuid is not None:
                    out[uuid] = (ob, live)
        return out

    @classmethod
    def meshes_in_edit_mode(cls) -> dict[str, bpy.types.Object]:
        """Synchronised meshes in edit mode here, by their data's uuid."""
        return {uuid: ob for uuid, (ob, live) in cls.in_edit_mode().items() if live.kind == "mesh"}

    def step(
        self,
        now: float,
        pending: dict[str, int],
        cost: Callable[[str], float],
        reported: Callable[[bpy.types.ID], bool],
    ) -> tuple[list[bpy.types.ID], list[str], list[str], list[bpy.types.ID]]:
        """(datablocks to mark changed, keys to lock, keys to unlock, datablocks whose reports to hold back)
        for this pump; ``cost(uuid)``: seconds the last serialisation of that datablock took;
        ``reported(id)``: the depsgraph reported it changed since the last scan."""
        editing = self.in_edit_mode()
        lock: list[str] = []
        unlock: list[str] = []
        for uuid, (_, live) in editing.items():
            if uuid not in self.leased:
                self.leased[uuid] = lease_keys(uuid, live)
                lock += self.leased[uuid]
                self._quiet[uuid] = now  # entering edit mode changes nothing
        for uuid in [u for u in self.leased if u not in editing]:
            unlock += self.leased.pop(uuid)
            self._last.pop(uuid, None)
            self._quiet.pop(uuid, None)
            self._edited.discard(uuid)
        changed: list[bpy.types.ID] = []
        held: list[bpy.types.ID] = []
        for uuid, (ob, live) in editing.items():
            if not live.copy and getattr(ob.data, "shape_keys", None) is not None:
                # Evaluated from its shape keys, which Blender writes when the artist leaves edit mode (the
                # edit data is the active key's shape): sent then, whole, rather than a base nobody sees.
                held += [ob.data, ob.data.shape_keys]  # a report of the key is one of its owner's
                continue
            if reported(ob.data) or (live.object_reports and reported(ob)):
                self._edited.add(uuid)
            seconds = cost(uuid)
            quiet = self._quiet.get(uuid, 0.0)
            if uuid not in self._edited and now < quiet + max(SAFETY_INTERVAL, SAFETY_FACTOR * seconds):
                continue  # nothing reported, and the safety copy is not due
            last = self._last.get(uuid, 0.0)
            if now < last + max(EDIT_INTERVAL, COST_FACTOR * seconds) or self.leased[uuid][0] in pending:
                if not live.copy:
                    held.append(ob.data)  # read directly: a scan now would read it out of pace
                continue  # too soon after the last copy, or it is not acknowledged yet
            self._last[uuid] = self._quiet[uuid] = now
            self._edited.discard(uuid)
            if not live.copy or ob.update_from_editmode():
                changed.append(ob.data)
        return changed, lock, unlock, held

    @staticmethod
    def settle(copied: list[bpy.types.ID], discard: Callable[[list[bpy.types.ID]], None]) -> None:
        """After the scan sent the copies: evaluate the depsgraph now and ``discard`` its report of them.

        A copy tags its datablock; evaluated later, that report could hold an edit the artist made meanwhile
        and would not be told apart from it. Evaluated here, before any operator can run, it holds the copy
        (and the edits made before it, which the copy carries). Done after the scan, so that the copy goes
        out first."""
        view_layer = getattr(bpy.context, "view_layer", None)
        if view_layer is not None:
            view_layer.update()
            discard(copied)

    def released(self, keys: Iterable[str]) -> None:
        """Keys of ours the server no longer holds for us without our asking (our node was taken for dead,
        or an admin broke the lock): the datablocks still in edit mode ask for their lease again."""
        gone = set(keys)
        for uuid in [uuid for uuid, leased in self.leased.items() if gone.intersection(leased)]:
            del self.leased[uuid]

    def reset(self) -> None:
        """Left the room: the server released the locks with it."""
        self.leased.clear()
        self._last.clear()
        self._quiet.clear()
        self._edited.clear()


_LEASED = frozenset((live.kind, live.parts[0]) for live in LIVE.values())


def lease_held(locks: dict[str, str]) -> bool:
    """Whether someone in the room (this artist too) holds a datablock in edit mode, from the room's key
    locks: their copies come up to 10 times a second."""
    for key in locks:
        parsed = sync.split_key(key)
        if parsed is not None and (parsed[0], parsed[2]) in _LEASED:
            return True
    return False


def editors_of(locks: dict[str, str]) -> dict[str, list[str]]:
    """client_id -> names of the datablocks that artist holds in edit mode, from the room's key locks."""
    leases = {(live.kind, live.parts[0]): live.collection for live in LIVE.values()}
    uuids: dict[str, dict[str, str]] = {}  # collection -> uuid -> owner
    for key, owner in locks.items():
        parsed = sync.split_key(key)
        if parsed is not None and (parsed[0], parsed[2]) in leases:
            uuids.setdefault(leases[parsed[0], parsed[2]], {})[parsed[1]] = owner
    out: dict[str, list[str]] = {}
    for collection, owners in uuids.items():
        for data in getattr(bpy.data, collection):
            owner = owners.get(sync.peek_uuid(data) or "")
            if owner is not None:
                out.setdefault(owner, []).append(data.name)
    return out
