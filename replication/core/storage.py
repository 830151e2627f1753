"""What the core may read from durable storage, and an in-memory implementation.

The core never writes storage: the driver persists what ``Ready`` hands it and then calls
``advance``. ``LogStorage`` is the read side the core needs; ``MemoryStorage`` adds the write side used
by tests and the simulator (an lmdb-backed implementation lives with the driver).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol, runtime_checkable

from .types import (
    CompactedError,
    Entry,
    HardState,
    Snapshot,
    SnapshotMeta,
    SnapshotOutOfDateError,
    UnavailableError,
)


@runtime_checkable
class LogStorage(Protocol):
    def initial_state(self) -> tuple[HardState, frozenset[int]]:
        """The persisted hard state and the latest persisted set of voters."""
        ...

    def first_index(self) -> int:
        """Index of the first entry still held (snapshot index + 1)."""
        ...

    def last_index(self) -> int:
        """Index of the last persisted entry (the snapshot index if the log is empty)."""
        ...

    def term(self, index: int) -> int:
        """Term of entry ``index``; valid for snapshot index..last_index.

        Raises CompactedError below that range and UnavailableError above it.
        """
        ...

    def entries(self, lo: int, hi: int, max_bytes: int) -> list[Entry]:
        """Entries [lo, hi), at least one if the range is not empty, then up to ``max_bytes``."""
        ...

    def snapshot(self) -> Snapshot:
        """The most recent snapshot (may raise SnapshotTemporarilyUnavailableError)."""
        ...


def limit_size(entries: Sequence[Entry], max_bytes: int) -> list[Entry]:
    """The longest prefix within ``max_bytes``, but never fewer than one entry."""
    if not entries:
        return []
    total = entries[0].size()
    end = 1
    while end < len(entries):
        total += entries[end].size()
        if total > max_bytes:
            break
        end += 1
    return list(entries[:end])


class MemoryStorage:
    """A ``LogStorage`` kept in memory. ``_log[0]`` is a placeholder for the snapshot point."""

    def __init__(self, voters: Iterable[int] = ()) -> None:
        self.hard_state = HardState()
        self.voters: frozenset[int] = frozenset(voters)
        self._snapshot = Snapshot(SnapshotMeta(0, 0, self.voters))
        self._log: list[Entry] = [Entry(0, 0)]

    # -- read side (LogStorage) -----------------------------------------------------------------

    def initial_state(self) -> tuple[HardState, frozenset[int]]:
        return self.hard_state, self.voters

    def first_index(self) -> int:
        return self._log[0].index + 1

    def last_index(self) -> int:
        return self._log[0].index + len(self._log) - 1

    def term(self, index: int) -> int:
        offset = self._log[0].index
        if index < offset:
            raise CompactedError(f"index {index} is compacted (snapshot at {offset})")
        if index - offset >= len(self._log):
            raise UnavailableError(f"index {index} is past the last index {self.last_index()}")
        return self._log[index - offset].term

    def entries(self, lo: int, hi: int, max_bytes: int) -> list[Entry]:
        offset = self._log[0].index
        if lo <= offset:
            raise CompactedError(f"entries from {lo} are compacted (snapshot at {offset})")
        if hi > self.last_index() + 1:
            raise UnavailableError(f"entries up to {hi - 1} requested, last index is {self.last_index()}")
        return limit_size(self._log[lo - offset : hi - offset], max_bytes)

    def snapshot(self) -> Snapshot:
        return self._snapshot

    # -- write side -----------------------------------------------------------------------------

    def set_hard_state(self, hard_state: HardState) -> None:
        self.hard_state = hard_state

    def set_voters(self, voters: Iterable[int]) -> None:
        """Record the configuration the driver has applied (persisted with the applied index)."""
        self.voters = frozenset(voters)

    def append(self, entries: Sequence[Entry]) -> None:
        """Persist ``entries``; a conflicting suffix of the stored log is replaced."""
        if not entries:
            return
        first = self.first_index()
        last = entries[-1].index
        if last < first:
            return  # entirely covered by the snapshot
        if entries[0].index < first:
            entries = entries[first - entries[0].index :]
        offset = entries[0].index - self._log[0].index
        if offset > len(self._log):
            raise UnavailableError(f"gap: appending at {entries[0].index}, last index {self.last_index()}")
        del self._log[offset:]
        self._log.extend(entries)

    def apply_snapshot(self, snap: Snapshot) -> None:
        """Replace the whole log with ``snap`` (a snapshot received from the leader)."""
        if snap.meta.index <= self._snapshot.meta.index:
            raise SnapshotOutOfDateError(f"snapshot {snap.meta.index} <= {self._snapshot.meta.index}")
        self._snapshot = snap
        self._log = [Entry(snap.meta.term, snap.meta.index)]
        self.voters = snap.meta.voters

    def create_snapshot(self, index: int, voters: Iterable[int], data: bytes) -> Snapshot:
        """Record a snapshot of the state machine at applied ``index`` (does not compact)."""
        if index <= self._snapshot.meta.index:
            raise SnapshotOutOfDateError(f"snapshot {index} <= {self._snapshot.meta.index}")
        if index > self.last_index():
            raise UnavailableError(f"snapshot index {index} > last index {self.last_index()}")
        self._snapshot = Snapshot(SnapshotMeta(index, self.term(index), frozenset(voters)), data)
        return self._snapshot

    def compact(self, index: int) -> None:
        """Drop entries before ``index``; it must be covered by a snapshot the caller took."""
        offset = self._log[0].index
        if index <= offset:
            raise CompactedError(f"already compacted up to {offset}")
        if index > self.last_index():
            raise UnavailableError(f"compact {index} > last index {self.last_index()}")
        placeholder = Entry(self._log[index - offset].term, index)
        self._log = [placeholder, *self._log[index - offset + 1 :]]

    def all_entries(self) -> list[Entry]:
        """Every stored entry after the snapshot point (for tests and invariant checks)."""
        return self._log[1:]
