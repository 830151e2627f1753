"""The core's view of the durable log: :class:`RaftLogStorage`, the core's ``LogStorage`` over lmdb."""

from __future__ import annotations

from collections.abc import Callable

from .core import CompactedError, Entry, EntryKind, HardState, Snapshot, UnavailableError
from .core.storage import limit_size
from .lmdb_store import Storage

# The last entries persisted, kept whole: a leader commits its entries a Ready after it persisted them
# (once followers acknowledge), and a follower learns the commit later too, so each entry used to be
# read back from lmdb (inflated, its blob joined back) to be applied. Bounded; older entries are read.
RECENT_MAX_BYTES = 16 * 1024 * 1024
RECENT_MAX_ENTRIES = 4096


class RaftLogStorage:
    """The core's read view of the durable log (``LogStorage``), over lmdb, with the terms of recent entries
    and the last entries persisted kept in memory."""

    def __init__(self, storage: Storage, bootstrap_voters: frozenset[int], snapshot: Callable[[], Snapshot]):
        self._storage = storage
        self._bootstrap_voters = bootstrap_voters
        self._snapshot = snapshot
        self._terms: dict[int, int] = {}
        self._recent: dict[int, Entry] = {}  # consecutive indexes, oldest first
        self._recent_bytes = 0
        self._last_index = storage.last_index()
        self.snap_index, self.snap_term, _ = storage.snapshot_meta()
        # Each entry's bytes (its blob's included), in index order: what the log keeps (log_retain_bytes).
        self._sizes: dict[int, int] = dict(storage.entry_sizes(self.snap_index))
        self.log_bytes = sum(self._sizes.values())

    def initial_state(self) -> tuple[HardState, frozenset[int]]:
        term, vote, commit = self._storage.hard_state()
        voters = self._storage.voters()
        return HardState(term, vote, commit), frozenset(
            voters if voters is not None else self._bootstrap_voters
        )

    def first_index(self) -> int:
        return self.snap_index + 1

    def last_index(self) -> int:
        return self._last_index

    def term(self, index: int) -> int:
        if index == self.snap_index:
            return self.snap_term
        if index < self.snap_index:
            raise CompactedError(f"entry {index} is compacted")
        if index > self._last_index:
            raise UnavailableError(f"entry {index} is not in the log yet")
        term = self._terms.get(index)
        if term is None:
            term = self._storage.term(index)
            if term is None:
                raise UnavailableError(f"entry {index} is missing")
        return term

    def entries(self, lo: int, hi: int, max_bytes: int) -> list[Entry]:
        if lo <= self.snap_index:
            raise CompactedError(f"entry {lo} is compacted")
        if hi > self._last_index + 1:
            raise UnavailableError(f"entries up to {hi - 1} are not in the log")
        recent = self._recent
        if lo in recent and hi - 1 in recent:  # consecutive: the whole range is here
            return limit_size([recent[i] for i in range(lo, hi)], max_bytes)
        return [
            Entry(r.term, r.index, EntryKind(r.kind), r.data)
            for r in self._storage.entries(lo, hi, max_bytes)
        ]

    def snapshot(self) -> Snapshot:
        return self._snapshot()

    # The driver tells the cache what it persisted.
    def note_appended(self, entries: list[Entry]) -> None:
        if not entries:
            return
        first = entries[0].index
        if first <= self._last_index:
            for index in [i for i in self._terms if i >= first]:
                del self._terms[index]
            self._forget_sizes(lambda i: i >= first)
        if self._recent and first != next(reversed(self._recent)) + 1:
            self._forget_recent(lambda index: True)  # an overwritten suffix, or a gap: start again
        for entry in entries:
            self._terms[entry.index] = entry.term
            self._sizes[entry.index] = len(entry.data)
            self.log_bytes += len(entry.data)
            self._recent[entry.index] = entry
            self._recent_bytes += len(entry.data)
        while self._recent and (
            self._recent_bytes > RECENT_MAX_BYTES or len(self._recent) > RECENT_MAX_ENTRIES
        ):
            oldest = next(iter(self._recent))
            self._recent_bytes -= len(self._recent.pop(oldest).data)
        self._last_index = entries[-1].index
        if len(self._terms) > 65536:
            for index in sorted(self._terms)[: len(self._terms) - 32768]:
                del self._terms[index]

    def note_compacted(self, index: int, term: int) -> None:
        self.snap_index, self.snap_term = index, term
        self._forget_recent(lambda i: i <= index)
        self._forget_sizes(lambda i: i <= index)
        for i in [i for i in self._terms if i <= index]:
            del self._terms[i]
        self._last_index = max(self._last_index, index)

    def note_snapshot_installed(self, index: int, term: int) -> None:
        self._terms.clear()
        self._forget_recent(lambda i: True)
        self._sizes.clear()
        self.log_bytes = 0
        self.snap_index, self.snap_term = index, term
        self._last_index = index

    def compact_point_for_bytes(self, applied: int, limit: int) -> int:
        """Where to compact to (never past ``applied``) for the log to keep at most half of ``limit`` bytes
        of entries, once it holds more than ``limit``; 0 when it need not. Half, so that a log of large
        values is not compacted at every write."""
        if self.log_bytes <= limit:
            return 0
        behind = sum(size for index, size in self._sizes.items() if index <= applied)
        if behind <= limit:
            return 0
        point = 0
        for index, size in self._sizes.items():
            if index > applied or behind <= limit // 2:
                break
            behind -= size
            point = index
        return point

    def _forget_sizes(self, which: Callable[[int], bool]) -> None:
        for index in [i for i in self._sizes if which(i)]:
            self.log_bytes -= self._sizes.pop(index)

    def _forget_recent(self, which: Callable[[int], bool]) -> None:
        for index in [i for i in self._recent if which(i)]:
            self._recent_bytes -= len(self._recent.pop(index).data)
