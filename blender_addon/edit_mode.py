"""Live edit mode: while an artist edits a mesh, the others see it change, and the mesh is theirs alone.

Blender keeps edit-mode changes in the edit mesh (bmesh) until the artist leaves edit mode, so neither the
depsgraph nor a scan of the mesh sees them. At most every ``EDIT_INTERVAL`` seconds (or ``COST_FACTOR``
times what reading the mesh last cost, so that a heavy mesh takes at most a quarter of the main thread), and
only when the previous edit of that mesh's geometry has been acknowledged (the server sets the pace), the
sync loop copies the edit mesh into the mesh (``Object.update_from_editmode``) and marks it changed: the
scan then sends its changed keys as usual (with chunks, only the chunks that changed).

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
LEASED_PARTS = ("geometry", "shapes")


def lease_keys(uuid: str) -> list[str]:
    return [sync.make_key("mesh", uuid, part) for part in LEASED_PARTS]


class EditModeSync:
    def __init__(self) -> None:
        self.leased: dict[str, list[str]] = {}  # mesh uuid -> keys locked for it
        self._next: dict[str, float] = {}  # mesh uuid -> earliest time of its next copy

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
        self, now: float, pending: dict[str, int], cost: Callable[[str], float]
    ) -> tuple[list[bpy.types.ID], list[str], list[str]]:
        """(meshes to mark changed, keys to lock, keys to unlock) for this pump; ``cost(uuid)``: seconds the
        last serialisation of that mesh took."""
        editing = self.meshes_in_edit_mode()
        lock: list[str] = []
        unlock: list[str] = []
        for uuid in editing:
            if uuid not in self.leased:
                self.leased[uuid] = lease_keys(uuid)
                lock += self.leased[uuid]
        for uuid in [u for u in self.leased if u not in editing]:
            unlock += self.leased.pop(uuid)
            self._next.pop(uuid, None)
        changed = []
        for uuid, ob in editing.items():
            if now < self._next.get(uuid, 0.0) or lease_keys(uuid)[0] in pending:
                continue  # too soon, or the previous copy is not acknowledged yet
            self._next[uuid] = now + max(EDIT_INTERVAL, COST_FACTOR * cost(uuid))
            if ob.update_from_editmode():
                changed.append(ob.data)
        return changed, lock, unlock

    def reset(self) -> None:
        """Left the room: the server released the locks with it."""
        self.leased.clear()
        self._next.clear()


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
