"""The record of a part held as one key per item (used by kinds and the shared tree and modifier helpers)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import bpy

from .context import ApplyContext

# Apply one item of an item part: (datablock, item segments, document or None when its key was deleted).
ApplyItem = Callable[[bpy.types.ID, tuple[str, ...], object, ApplyContext], bpy.types.ID]


@dataclass(frozen=True)
class Items:
    """A part held as one key per item: ``<kind>/<uuid>/<part>/<item segment>...``.

    The unit of conflict is the key, so a part whose pieces two artists may
    change at the same moment (a set member, a modifier setting, a node, a
    node input, a link) is split into items.  ``serialise`` gives such a
    part as ``{item segments (tuple of str): document}``; a key that
    disappears is deleted, and applying a deleted key calls ``apply`` with
    None (remove the member, the node, the link...).
    """

    apply: ApplyItem
    depth: int = 1  # number of segments of an item
