"""A room's history in the add-on: who last changed each part of a datablock (blame), the room's
checkpoints, naming one and restoring one (docs/protocol.md, "History").

Requests go out through the sync session like its others; their replies arrive through the session's
event listeners (``session_events.LISTENERS``) and land in a ``HistoryView`` kept beside the session. A
restore needs nothing here: it comes back as an ``applied`` operation, which the session applies to the
scene like any other. The panels are history_ui.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import bpy

from .protocol_shim import protocol
from .sync import peek_uuid
from .sync.index import kind_of
from .sync.linked import LINKABLE


@dataclass
class HistoryView:
    blame: dict[str, list[list[Any]]] = field(default_factory=dict)  # prefix -> [key, seq, id, name, time]
    checkpoints: list[dict[str, Any]] = field(default_factory=list)  # oldest first
    last_restore: tuple[int, int | None] | None = None  # (its seq, the checkpoint that undoes it)
    revision: int = 0  # bumped on every change, for the UI
    pending: dict[int, tuple[str, str]] = field(default_factory=dict)  # ref -> (kind, blame prefix)
    # A datablock picked in the outliner for the blame box: (bpy.data collection, name, uuid); None: the
    # box follows the active object. Kept by name and checked by uuid, never as a reference an undo frees.
    picked: tuple[str, str, str] | None = None


def view(session: Any) -> HistoryView:
    found = getattr(session, "history_view", None)
    if found is None:
        found = session.history_view = HistoryView()
    return found


def _ask(session: Any, kind: str, factory: Any, prefix: str = "") -> int:
    ref = session._request(kind, factory)
    view(session).pending[ref] = (kind, prefix)
    return ref


def request_blame(session: Any, prefix: str) -> int:
    return _ask(session, "history", lambda ref: protocol.History(prefix=prefix, ref=ref), prefix)


def request_checkpoints(session: Any) -> int:
    return _ask(session, "list_checkpoints", lambda ref: protocol.ListCheckpoints(ref=ref))


def name_checkpoint(session: Any, name: str) -> int:
    name = protocol.fit_name(name).strip() or "checkpoint"
    return _ask(session, "checkpoint", lambda ref: protocol.Checkpoint(name=name, ref=ref))


def restore(session: Any, checkpoint: int) -> int:
    return _ask(session, "restore", lambda ref: protocol.Restore(checkpoint=checkpoint, ref=ref))


def on_event(session: Any, event: Any) -> None:
    """A session event listener: the replies to the requests above."""
    history = view(session)
    ref = getattr(event, "ref", None)
    request = history.pending.pop(ref, None) if ref is not None else None
    if request is None:
        return
    session._requests.pop(ref, None)
    _, prefix = request
    P = protocol
    if isinstance(event, P.HistoryResult):
        history.blame[prefix] = event.keys
    elif isinstance(event, P.CheckpointList):
        history.checkpoints = list(event.checkpoints)
    elif isinstance(event, P.CheckpointMade):
        history.checkpoints.append(event.checkpoint)
        session.log(f"checkpoint {event.checkpoint.get('name')!r} named")
    elif isinstance(event, P.Restored):
        history.last_restore = (event.seq, event.undo)
        session.log(f"restored the room (seq {event.seq})")
        request_checkpoints(session)  # the restore added its undo checkpoint
    history.revision += 1  # (an error: the session has logged it)


def pick(session: Any, id_data: Any) -> bool:
    """Point the blame box at a datablock (picked in the outliner) and ask about it; False if it does not
    travel (nothing of it is in the room)."""
    collection = LINKABLE.get(getattr(id_data, "id_type", ""))
    uuid = peek_uuid(id_data) if kind_of(id_data) is not None else None
    if collection is None or uuid is None:
        return False
    view(session).picked = (collection, id_data.name, uuid)
    view(session).revision += 1
    for _, prefix in datablock_prefixes(id_data):
        request_blame(session, prefix)
    return True


def unpick(session: Any) -> None:
    view(session).picked = None
    view(session).revision += 1


def blamed(session: Any, active_object: Any) -> Any:
    """The datablock the blame box shows: the one picked in the outliner while it exists, else the active
    object."""
    picked = view(session).picked
    if picked is not None:
        collection, name, uuid = picked
        found = getattr(bpy.data, collection).get(name)
        if found is not None and peek_uuid(found) == uuid:
            return found
    return active_object


def datablock_prefixes(id_data: Any) -> list[tuple[str, str]]:
    """(label, key prefix) of a datablock and, for an object, of its data: what blame asks about."""
    found = []
    first = "object" if isinstance(id_data, bpy.types.Object) else "datablock"
    for label, block in ((first, id_data), ("data", getattr(id_data, "data", None))):
        kind = kind_of(block) if block is not None else None
        uuid = peek_uuid(block) if block is not None else None
        if kind is not None and uuid is not None:
            found.append((label, f"{kind}/{uuid}/"))
    return found


def blame_rows(session: Any, prefix: str) -> list[tuple[str, str, int]]:
    """(part, who, when) for each key under ``prefix`` the server reported, newest first."""
    rows = view(session).blame.get(prefix, [])
    return sorted(((key[len(prefix) :], name, when) for key, _, _, name, when in rows), key=lambda r: -r[2])
