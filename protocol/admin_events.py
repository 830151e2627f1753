"""Server messages that stream an admin action's data before its ``admin_result``: a room's export and an
online backup (docs/protocol.md, *Admin*)."""

from __future__ import annotations

from dataclasses import field

from .blob_rules import check_tree_blob
from .events import Event, Sender, _event
from .limits import BlobChildren, BlobData, BlobHash, Items, KeyAuthors, KeyRefs, Ref, RoomName


@_event("export_items", Sender.SERVER)
class ExportItems(Event):
    """A chunk of an exported room's keys; the export's admin_result follows the last one."""

    room: RoomName
    items: Items
    refs: KeyRefs = field(default_factory=list)  # [key, refs] for the keys of items that reference blobs
    ref: Ref | None = None
    # Who last changed the keys of items, as blame rows: only to an export that asks (``authors: true``),
    # so a client that does not know the field is never sent it (it refuses unknown fields).
    authors: KeyAuthors | None = None


@_event("export_blob", Sender.SERVER)
class ExportBlob(Event):
    """One blob that an exported room's keys reference or hold through tree nodes, after its last
    export_items, each after its children; admin_result follows the last one. A tree node names the
    blobs it holds as ``children`` (docs/protocol.md section 3a)."""

    hash: BlobHash
    data: BlobData
    ref: Ref | None = None
    children: BlobChildren | None = None

    def check(self) -> None:
        check_tree_blob(self.hash, self.data, self.children)


@_event("backup_data", Sender.SERVER)
class BackupData(Event):
    """A chunk of an online backup of the store (admin ``backup``); its admin_result follows the last one."""

    data: bytes
    ref: Ref | None = None
