"""Selection leases: with the preference "lock what I select" on, each object this artist selects is locked
for them on the server (a prefix lock on ``obj/<uuid>/``: every key of the object, ones made later too),
and released when they deselect it, leave the room or drop.

Others' leases are learnt from ``locks_changed``. An edit of a leased object is not sent: its keys get back
the value they had before the edit (the tracker's ``previous``: the room's, as far as this Blender knows)
and the artist is told. An edit sent before the lease was known is refused by the server (``locked``) and
undone the same way; the rest of that batch goes out again. The holder's selection box in their colour
marks the object in the viewport (overlay.py), and the panel lists what others hold.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .protocol_shim import protocol

Change = tuple[str, bytes | None]


def prefix_of(uuid: str) -> str:
    return f"obj/{uuid}/"


def uuid_of(prefix: str) -> str | None:
    bits = prefix.split("/")
    return bits[1] if len(bits) == 3 and bits[0] == "obj" and bits[2] == "" else None


class Leases:
    def __init__(self, enabled: bool = False) -> None:
        self.enabled = enabled
        self.mine: set[str] = set()  # prefixes the server granted us
        self.asked: set[str] = set()  # requested, not answered yet
        self.denied: set[str] = set()  # someone else held it: asked again once it is released
        self.others: dict[str, str] = {}  # prefix -> owner client_id: other artists' leases

    # ---- ours ----------------------------------------------------------------------------------------------

    def wanted(self, selection: Iterable[str]) -> tuple[list[str], list[str]]:
        """(prefixes to lock, prefixes to unlock) for the selected object uuids."""
        want = {prefix_of(uuid) for uuid in selection} if self.enabled else set()
        self.denied &= want
        lock = sorted(want - self.mine - self.asked - self.denied - self.others.keys())
        unlock = sorted(self.mine - want)
        self.asked.update(lock)
        self.mine -= set(unlock)
        return lock, unlock

    def granted(self, prefixes: Iterable[str]) -> None:
        for prefix in prefixes:
            self.asked.discard(prefix)
            self.mine.add(prefix)

    def refused(self, prefixes: Iterable[str]) -> None:
        for prefix in prefixes:
            self.asked.discard(prefix)
            self.denied.add(prefix)

    def connection_lost(self) -> None:
        """The server released our leases with the connection; they are asked again when we are back."""
        self.mine.clear()
        self.asked.clear()
        self.denied.clear()

    def reset(self) -> None:
        self.connection_lost()
        self.others.clear()

    # ---- others' -------------------------------------------------------------------------------------------

    def locks_changed(self, event: Any, client_id: str) -> None:
        for prefix in event.unlocked_prefixes:
            self.others.pop(prefix, None)
            self.denied.discard(prefix)
            # Ours leave ``mine`` when we ask to release them: one of ours released here went without our
            # asking (our node was taken for dead, or an admin broke it) and is asked for again.
            self.mine.discard(prefix)
        for prefix, owner in event.prefixes.items():
            if owner != client_id:
                self.others[prefix] = owner
                self.mine.discard(prefix)

    def holder(self, key: str) -> str | None:
        """The client id of another artist whose lease covers ``key``."""
        if not self.others:
            return None
        for prefix in protocol.limits.covering_prefixes(key):
            owner = self.others.get(prefix)
            if owner is not None:
                return owner
        return None

    def outgoing(self, ops: list[list[Any]]) -> tuple[list[list[Any]], dict[str, str]]:
        """Our scanned changes without those of others' leased objects; those are returned as key -> owner."""
        if not self.others:
            return ops, {}
        kept, blocked = [], {}
        for op in ops:
            owner = self.holder(op[1])
            if owner is None:
                kept.append(op)
            else:
                blocked[op[1]] = owner
        return kept, blocked


def draw_leases(layout, session) -> None:
    """What other artists hold (a line per object) in the Artists panel."""
    leases = session.leases
    if not leases.others:
        return
    from .notices import datablock_name

    box = layout.box()
    box.label(text="Locked by others", icon="LOCKED")
    for prefix, owner in sorted(leases.others.items()):
        uuid = uuid_of(prefix)
        name = (datablock_name("obj", uuid) if uuid else None) or prefix
        who = session.users.get(owner, {}).get("name") or owner[:8]
        box.label(text=f"{name} ({who})")
