"""The convergence rule of docs/protocol.md section 3, for a client that shows its own edits at once.

A client applies its own edit of a key at once. While that edit is unacknowledged, remote values for the key
are ordered before it (the server places our ack at our op's position, so whatever arrives first was
committed first) and are held back instead of applied. When the ack comes, our value is the current one;
a held value is released only if it is ordered after our edit, which happens only when a resume turned
into a snapshot (the snapshot's values carry the snapshot's seq). When the edit is refused for good, the
held value is the room's value and is released.

Pure bookkeeping: callers get back the ``(key, value)`` pairs to apply (``value`` None: the key is gone).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Change = tuple[str, bytes | None]


def op_changes(ops: list[list[Any]]) -> list[Change]:
    """``[["set", k, v], ["delete", k]]`` -> ``[(k, v), (k, None)]``."""
    return [(op[1], op[2] if op[0] == "set" else None) for op in ops]


class PendingEdits:
    """Own unacknowledged edits per key, and the remote values they hold back."""

    def __init__(self) -> None:
        self.pending: dict[str, int] = {}  # key -> op_id of its latest unacknowledged edit
        self.held: dict[str, tuple[int, bytes | None]] = {}  # key -> (seq, value) held back

    def edit(self, op_id: int, ops: list[list[Any]]) -> None:
        """Our own edit, already applied locally, sent under ``op_id``."""
        for op in ops:
            self.pending[op[1]] = op_id

    def remote(self, seq: int, ops: list[list[Any]]) -> list[Change]:
        """Another client's operation at ``seq``: what to apply now (the rest is held)."""
        apply: list[Change] = []
        for key, value in op_changes(ops):
            if key in self.pending:
                self.held[key] = (seq, value)
            else:
                apply.append((key, value))
        return apply

    def acked(self, op_id: int, ops: list[list[Any]], seq: int) -> list[Change]:
        """Our op ``op_id`` committed at ``seq``: held values ordered after it, to apply now."""
        release: list[Change] = []
        for op in ops:
            key = op[1]
            if self.pending.get(key) != op_id:
                continue  # a later edit of ours still holds the key
            del self.pending[key]
            held = self.held.pop(key, None)
            if held is not None and held[0] > seq:
                release.append((key, held[1]))
        return release

    def refused(self, op_id: int, ops: list[list[Any]]) -> list[Change]:
        """Our op had no effect and will not be sent again: the held values are the room's."""
        release: list[Change] = []
        for op in ops:
            key = op[1]
            if self.pending.get(key) != op_id:
                continue
            del self.pending[key]
            held = self.held.pop(key, None)
            if held is not None:
                release.append((key, held[1]))
        return release

    def snapshot(self, seq: int, items: list[list[Any]]) -> list[Change]:
        """Part of a snapshot at ``seq`` replacing what we had (a resume the server could not serve)."""
        apply: list[Change] = []
        for key, value in items:
            if key in self.pending:
                self.held[key] = (seq, value)
            else:
                apply.append((key, value))
        return apply

    def snapshot_missing(self, seq: int, keys: set[str]) -> None:
        """Pending keys the snapshot at ``seq`` did not have: absent in the room unless our edit wins."""
        for key in self.pending:
            if key not in keys:
                self.held[key] = (seq, None)

    def clear(self) -> None:
        self.pending.clear()
        self.held.clear()


@dataclass(frozen=True, slots=True)
class Overridden:
    """Our committed value of ``key`` (at ``our_seq``) was replaced at ``seq`` by ``client_id``'s op
    ``op_id``, made before its author had seen ours: a real conflict that server order decided against us.
    ``value`` is theirs (None: they deleted the key)."""

    key: str
    our_seq: int
    seq: int
    client_id: str
    op_id: int
    value: bytes | None


class Overrides:
    """Which of our committed values another client replaced without having seen them.

    For each key, the seq our latest committed edit of it got. A later operation of someone else on that
    key replaces it; it is an override (and not turn-taking) when its author's ``seen`` (the last seq they
    had when they made the edit) is below our seq. A key we are editing again (pending) is not reported:
    our newer edit wins over theirs. Without ``seen`` (an older client) nothing is reported.
    """

    def __init__(self) -> None:
        self.ours: dict[str, int] = {}  # key -> seq of our latest committed edit, until someone replaces it

    def committed(self, seq: int, ops: list[list[Any]]) -> None:
        for op in ops:
            self.ours[op[1]] = seq

    def remote(
        self,
        seq: int,
        client_id: str,
        op_id: int,
        ops: list[list[Any]],
        seen: int | None,
        pending: dict[str, int],
    ) -> list[Overridden]:
        found: list[Overridden] = []
        for key, value in op_changes(ops):
            ours = self.ours.pop(key, None)
            if ours is None or seen is None or seen >= ours or seq <= ours or key in pending:
                continue
            found.append(Overridden(key, ours, seq, client_id, op_id, value))
        return found

    def clear(self) -> None:
        self.ours.clear()
