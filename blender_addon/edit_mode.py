"""Live edit mode: while an artist edits a mesh, the others see it change, and the mesh is theirs alone.

Blender keeps edit-mode changes in the edit mesh (bmesh) until the artist leaves edit mode, so a scan of the
mesh does not see them; the depsgraph does report the mesh when the edit mesh changes. The sync loop then
copies the edit mesh into the mesh (``Object.update_from_editmode``) and marks it changed: the scan sends its
changed keys as usual (with chunks, only the chunks that changed). An edit after a quiet moment goes out in
the next pump; while the artist keeps editing, copies are paced: at least ``EDIT_INTERVAL`` seconds apart
(or ``COST_FACTOR`` times what reading the mesh last cost, so that a heavy mesh takes at most a quarter of
the main thread), and only once the previous edit of that mesh's geometry has been acknowledged (the server
sets the pace). A copy tags the mesh too: once the scan has sent it, the loop evaluates the depsgraph and
drops that report (:meth:`EditModeSync.settle`), so only the artist's edits start the next copy. A script
that changes the edit mesh without telling the depsgraph is caught by a copy every ``SAFETY_INTERVAL``
seconds (or ``SAFETY_FACTOR`` times the cost) while the mesh is in edit mode.

**Lease.** Entering edit mode on a synchronised mesh locks its ``geometry`` and ``shapes`` keys on the server
(docs/protocol.md section 3, locks): other artists' writes to them are refused (``locked``) until this artist
leaves edit mode (unlock) or its session ends (the server releases a session's locks when it closes or drops).
Everyone learns who edits which mesh from ``locks_changed`` (``SyncSession.editors``).
"""

from __future__ import annotations

from collections.abc import Callable

import bpy

from . import sync

EDIT_INTERVAL = 0.1  # seconds between two edit-mode copies of one mesh (10 Hz at most)...
COST_FACTOR = 4.0  # ...and at least this many times the last serialisation of the mesh (a heavy mesh: slower)
SAFETY_INTERVAL = 2.0  # a copy without a report at least this often...
SAFETY_FACTOR = 20.0  # ...and no more often than this many times the mesh's cost (5% of the main thread)
LEASED_PARTS = ("geometry", "shapes")


def lease_keys(uuid: str) -> list[str]:
    return [sync.make_key("mesh", uuid, part) for part in LEASED_PARTS]


class EditModeSync:
    def __init__(self) -> None:
        self.leased: dict[str, list[str]] = {}  # mesh uuid -> keys locked for it
        self._last: dict[str, float] = {}  # mesh uuid -> when it was last copied
        self._quiet: dict[str, float] = {}  # mesh uuid -> since when no copy was made (entry or last copy)
        self._edited: set[str] = set()  # meshes reported changed since their last copy

    @staticmethod
    def meshes_in_edit_mode() -> dict[str, bpy.types.Object]:
        """Synchronised meshes in edit mode here, by their data's uuid."""
        out = {}
        for ob in getattr(bpy.context, "objects_in_mode_unique_data", None) or ():
            if ob.type == "MESH" and ob.mode == "EDIT":
                uuid = sync.peek_uuid(ob.data)
                if uuid is not None:
                    out[uuid] = ob
        return out

    def step(
        self,
        now: float,
        pending: dict[str, int],
        cost: Callable[[str], float],
        reported: Callable[[bpy.types.ID], bool],
    ) -> tuple[list[bpy.types.ID], list[str], list[str]]:
        """(meshes to mark changed, keys to lock, keys to unlock) for this pump; ``cost(uuid)``: seconds the
        last serialisation of that mesh took; ``reported(mesh)``: the depsgraph reported it changed since
        the last scan."""
        editing = self.meshes_in_edit_mode()
        lock: list[str] = []
        unlock: list[str] = []
        for uuid in editing:
            if uuid not in self.leased:
                self.leased[uuid] = lease_keys(uuid)
                lock += self.leased[uuid]
                self._quiet[uuid] = now  # entering edit mode changes nothing
        for uuid in [u for u in self.leased if u not in editing]:
            unlock += self.leased.pop(uuid)
            self._last.pop(uuid, None)
            self._quiet.pop(uuid, None)
            self._edited.discard(uuid)
        changed = []
        for uuid, ob in editing.items():
            if reported(ob.data):
                self._edited.add(uuid)
            seconds = cost(uuid)
            quiet = self._quiet.get(uuid, 0.0)
            if uuid not in self._edited and now < quiet + max(SAFETY_INTERVAL, SAFETY_FACTOR * seconds):
                continue  # nothing reported, and the safety copy is not due
            last = self._last.get(uuid, 0.0)
            if now < last + max(EDIT_INTERVAL, COST_FACTOR * seconds) or lease_keys(uuid)[0] in pending:
                continue  # too soon after the last copy, or it is not acknowledged yet
            self._last[uuid] = self._quiet[uuid] = now
            self._edited.discard(uuid)
            if ob.update_from_editmode():
                changed.append(ob.data)
        return changed, lock, unlock

    @staticmethod
    def settle(copied: list[bpy.types.ID], discard: Callable[[list[bpy.types.ID]], None]) -> None:
        """After the scan sent the copies: evaluate the depsgraph now and ``discard`` its report of them.

        A copy tags its mesh; evaluated later, that report could hold an edit the artist made meanwhile and
        would not be told apart from it. Evaluated here, before any operator can run, it holds the copy
        (and the edits made before it, which the copy carries). Done after the scan, so that the copy goes
        out first."""
        view_layer = getattr(bpy.context, "view_layer", None)
        if view_layer is not None:
            view_layer.update()
            discard(copied)

    def reset(self) -> None:
        """Left the room: the server released the locks with it."""
        self.leased.clear()
        self._last.clear()
        self._quiet.clear()
        self._edited.clear()


def editors_of(locks: dict[str, str]) -> dict[str, list[str]]:
    """client_id -> names of the meshes that artist holds in edit mode, from the room's key locks."""
    uuids: dict[str, str] = {}
    for key, owner in locks.items():
        parsed = sync.split_key(key)
        if parsed is not None and parsed[0] == "mesh" and parsed[2] == "geometry":
            uuids[parsed[1]] = owner
    out: dict[str, list[str]] = {}
    if uuids:
        for me in bpy.data.meshes:
            owner = uuids.get(sync.peek_uuid(me) or "")
            if owner is not None:
                out.setdefault(owner, []).append(me.name)
    return out
