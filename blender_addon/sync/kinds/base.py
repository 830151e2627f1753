"""The record that describes one datablock kind to the generic machinery.

A kind module (``kinds/<bpy.data collection>.py``) builds one :class:`Kind`
and the registry (``kinds/__init__.py``) lists it.  The generic machinery
(serialise, apply, canonical, tracker, index) reaches a kind only through
this record; the kind reaches the rest of the scene only through the
context it is handed (:class:`~..context.ReadContext`,
:class:`~..context.ApplyContext`), so kind modules never import the
registry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import bpy

from ..context import ApplyContext, ReadContext
from ..items import Items

# Make a datablock from its primary part's document (uuid, document, context); None: it cannot be made
# before a link the context records as missing arrives (its parts wait, the primary part is applied again).
Create = Callable[[str, dict, ApplyContext], bpy.types.ID | None]
# Apply one part's document to a datablock; returns the datablock (which may be a new one).
ApplyPart = Callable[[bpy.types.ID, object, ApplyContext], bpy.types.ID]
# Every part's document of a datablock: {part: document}.
Serialise = Callable[[bpy.types.ID, ReadContext], dict[str, object]]
# The canonical description hashed by scene_hash (read from Blender, independently of serialise).
Describe = Callable[[bpy.types.ID, ReadContext], dict]


def _always(id_data: bpy.types.ID) -> bool:
    return True


NO_ACTION: dict[str, object] = {"action": None, "slot": None}  # an anim part: no action animates it


@dataclass(frozen=True, eq=False)
class Kind:
    """One synchronised datablock kind.

    ``parts`` maps each part to the function applying it (or to an
    :class:`Items` record for a part held as one key per item), in the order
    in which parts are applied; the first is the primary part (``meta``, a
    whole key): setting it creates the datablock, deleting it removes the
    datablock.

    ``members``: for collections and scenes, the collection whose objects
    and child collections it holds.  Membership is stored on the child side,
    and Blender reports an unlink on the holder only, so the change tracker
    reads the members again when the holder changes.
    """

    name: str  # the key's first segment: <name>/<uuid>/<part>
    collection: str  # the bpy.data collection holding it
    rna_type: str  # bl_rna identifier of its ID type; direct subclasses (PointLight...) count too
    parts: Mapping[str, ApplyPart | Items]
    create: Create
    serialise: Serialise
    describe: Describe
    accepts: Callable[[bpy.types.ID], bool] = _always  # which datablocks of the type are synchronised
    remove: Callable[[bpy.types.ID], None] | None = None  # default: bpy.data.<collection>.remove
    stub: Callable[[str, str], bpy.types.ID] | None = None  # (name, object type): stand-in object data
    pointer_type: str | None = None  # RNA type that pointers to this kind are declared as (default rna_type)
    object_types: tuple[str, ...] = ()  # object data: the Object.type values whose data is of this kind
    embedded: tuple[str, ...] = ()  # attributes holding embedded data that travels inside this kind
    members: Callable[[bpy.types.ID], bpy.types.Collection] | None = None  # objects/children held here
    # Whole parts keyed only while they differ from what every new datablock of the kind holds: part -> that
    # document. A deleted key applies it (most objects have no parent, delta or action: a key each was a
    # third of a room of boxes' keys, each applied by a joiner).
    unkeyed: Mapping[str, object] = field(default_factory=dict)

    def remove_datablock(self, id_data: bpy.types.ID) -> None:
        """Remove ``id_data``: with the kind's own ``remove``, else ``bpy.data.<collection>.remove``."""
        if self.remove is not None:
            self.remove(id_data)
        else:
            getattr(bpy.data, self.collection).remove(id_data)

    @property
    def primary(self) -> str:
        return next(iter(self.parts))

    @property
    def link_type(self) -> str:
        return self.pointer_type or self.rna_type
