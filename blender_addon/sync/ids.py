"""Persistent identity of datablocks.

Every synchronised datablock carries a uuid in the custom property
``ID["blendsync_uuid"]``.  It is assigned the first time the layer sees the
datablock and survives renames, file saves and reloads.  Duplicating a
datablock in Blender copies its custom properties, so :func:`.index.index_all`
detects duplicated uuids and gives the copy a fresh one (:func:`owner_of`
tells which datablock held the uuid first).
"""

from __future__ import annotations

import uuid as _uuid

import bpy

from .codec import valid_uuid

UUID_PROP = "blendsync_uuid"

ADOPT_PROP = "blendsync_adopt"  # on a local scene that the room's scene may take over

# Which uuid owns which datablock (session_uid), used to settle duplicated uuids.
_owner: dict[str, int] = {}


def new_uuid() -> str:
    return _uuid.uuid4().hex


def peek_uuid(id_data: bpy.types.ID | None) -> str | None:
    """The datablock's uuid, or None if it has none yet (never assigns). A value that cannot be a uuid
    (edited by hand or by a script: too long, with '/' or control characters) counts as none, so the
    datablock gets a fresh one instead of keys the server would refuse."""
    if id_data is None:
        return None
    value = id_data.get(UUID_PROP)
    return value if valid_uuid(value) else None


def set_uuid(id_data: bpy.types.ID, value: str) -> None:
    id_data[UUID_PROP] = value
    _owner[value] = id_data.session_uid


def owner_of(value: str) -> int | None:
    """``session_uid`` of the datablock that was given ``value`` in this session, if any."""
    return _owner.get(value)


def get_uuid(id_data: bpy.types.ID) -> str:
    """The datablock's uuid, assigning one on first sight."""
    value = peek_uuid(id_data)
    if value is None:
        value = new_uuid()
        set_uuid(id_data, value)
    return value


def retyped(id_data: bpy.types.ID, new_type: str, collection: bpy.types.bpy_prop_collection) -> bpy.types.ID:
    """Set ``id_data.type``; the datablock's struct changes class with it, so it is fetched again by uuid."""
    if id_data.type == new_type:
        return id_data
    uuid = peek_uuid(id_data)
    id_data.type = new_type
    return next(other for other in collection if peek_uuid(other) == uuid)


def exists(id_data: bpy.types.ID) -> bool:
    """False once Blender has removed the datablock (every use of it then raises ReferenceError)."""
    try:
        id_data.name  # noqa: B018 - reading it is the test
    except ReferenceError:
        return False
    return True
