"""A merged node group interface (sync/merges.py) moves the sockets the artist added here: what names them
by position (links to the group's own group input and output nodes, group nodes elsewhere, geometry nodes
modifiers' inputs) must go out again under the new positions, in the same batch as the merged interface.

Sent alone, the merged interface would reach the others first, and a receiver reading its modifier then
(the audit) would send the new inputs' defaults, ordered after ours: our values lost. So the session holds
the merged value, has the applier leave those datablocks unread (as if the artist had changed them), and
sends the value with the next scan's reading of them once the applier is done.
"""

from __future__ import annotations

import bpy

from . import dirty, sync

Bases = dict[str, tuple[bytes | None, bytes]]  # key -> (theirs, our merged value)


class MergeRereads:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._reread: list[bpy.types.ID] = []  # read by the scan once the applier's queue is done
        self._held: Bases = {}  # merged interfaces to send then

    def hold(self, merged: dict[str, bytes], theirs: dict[str, bytes | None]) -> dict[str, bytes]:
        """The merged values to send now; the interfaces among them wait for their users' reading."""
        uuids = {
            bits[1]: key
            for key, bits in ((key, sync.split_key(key)) for key in merged)
            if bits and bits[0] == "ngroup" and bits[2] == "iface"
        }
        groups = {group for group in bpy.data.node_groups if uuids and sync.peek_uuid(group) in uuids}
        if not groups:
            return merged
        users = bpy.data.user_map(subset=groups)
        for group in groups:
            key = uuids[sync.peek_uuid(group)]
            self._held[key] = (theirs.get(key), merged[key])
            self._reread.extend((group, *users.get(group, ())))
        return {key: value for key, value in merged.items() if key not in self._held}

    def superseded(self, keys) -> None:
        """Newer room values of these keys arrived: a held merge of one is out of date (theirs stands)."""
        for key in keys:
            self._held.pop(key, None)

    def before_apply(self) -> None:
        """Noted as changed here: the applier does not read them back, and the next scan reads them."""
        dirty.note(self._reread)

    def applied(self) -> None:
        """The applier's queue is done."""
        self.before_apply()  # an apply that ended before this call's note still leaves them to the scan
        self._reread.clear()

    def release(self, changed: dict[str, bytes]) -> tuple[dict[str, bytes], Bases]:
        """``changed`` (a scan's) with the held merges once their users can be read; and, per key released,
        (theirs, merged): what a later merge of it starts from."""
        if not self._held or self._reread:
            return changed, {}
        held, self._held = self._held, {}
        released = {key: pair for key, pair in held.items() if key not in changed}
        return {**{key: pair[1] for key, pair in released.items()}, **changed}, released
