"""The core's view of the lmdb log keeps the last entries persisted: what it hands out is what lmdb holds,
through appends, overwritten suffixes, compactions and snapshot installs."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from replication import log_storage
from replication.core import Entry, EntryKind, Snapshot
from replication.lmdb_store import LogRecord, Storage, WriteBatch
from replication.log_storage import RaftLogStorage


def _no_snapshot() -> Snapshot:
    raise AssertionError("not asked for here")


def _persist(storage: Storage, entries: list[Entry]) -> None:
    records = [LogRecord(e.index, e.term, int(e.kind), e.data) for e in entries]
    storage.commit(WriteBatch(entries=records))


def test_committed_entries_are_not_read_back_from_lmdb(tmp_path: Path, monkeypatch):
    storage = Storage(tmp_path)
    try:
        log = RaftLogStorage(storage, frozenset({1}), _no_snapshot)
        entries = [Entry(1, i, EntryKind.NORMAL, b"x" * i) for i in range(1, 6)]
        _persist(storage, entries)
        log.note_appended(entries)
        monkeypatch.setattr(storage, "entries", lambda *a: (_ for _ in ()).throw(AssertionError("lmdb read")))
        assert log.entries(2, 6, 1 << 30) == entries[1:]
        assert log.entries(2, 6, 5) == entries[1:2]  # the byte cap as the core counts it: at least one
        assert log.entries(2, 6, 2 * 16 + 2 + 3) == entries[1:3]
    finally:
        storage.close()


def test_entries_past_the_bounds_are_read_from_lmdb(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(log_storage, "RECENT_MAX_ENTRIES", 3)
    storage = Storage(tmp_path)
    try:
        log = RaftLogStorage(storage, frozenset({1}), _no_snapshot)
        entries = [Entry(1, i, EntryKind.NORMAL, bytes([i]) * 10) for i in range(1, 9)]
        for entry in entries:
            _persist(storage, [entry])
            log.note_appended([entry])
        assert log.entries(1, 9, 1 << 30) == entries  # the oldest from lmdb, whole
        monkeypatch.setattr(log_storage, "RECENT_MAX_BYTES", 15)
        big = Entry(1, 9, EntryKind.NORMAL, b"y" * 16)  # larger than the cache: not kept, still read
        _persist(storage, [big])
        log.note_appended([big])
        assert log.entries(9, 10, 1 << 30) == [big]
    finally:
        storage.close()


def test_the_point_to_compact_to_keeps_half_the_bytes_and_nothing_past_applied(tmp_path: Path):
    storage = Storage(tmp_path)
    try:
        log = RaftLogStorage(storage, frozenset({1}), _no_snapshot)
        entries = [Entry(1, i, EntryKind.NORMAL, b"x" * 100) for i in range(1, 11)]  # 1,000 bytes
        _persist(storage, entries)
        log.note_appended(entries)
        assert log.compact_point_for_bytes(10, 1000) == 0  # at the limit: kept
        assert log.compact_point_for_bytes(10, 999) == 6  # one past: down to 400 <= 499 kept
        assert log.compact_point_for_bytes(3, 999) == 0  # applied holds 300: nothing to compact yet
        assert log.compact_point_for_bytes(8, 500) == 6  # 200 behind applied kept, and what is past it
        assert log.compact_point_for_bytes(3, 100) == 3  # never past applied
        assert log.compact_point_for_bytes(10, 0) == 10  # no log at all behind applied
    finally:
        storage.close()


class LogOverLmdb(RuleBasedStateMachine):
    """Appends (a new leader's may overwrite a suffix), compactions and snapshot installs, as the node's
    driver makes them; after each, every range read through the kept entries equals a fresh read of lmdb."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.TemporaryDirectory()
        self.storage = Storage(Path(self.dir.name))
        self.log = RaftLogStorage(self.storage, frozenset({1}), _no_snapshot)
        self.term = 1
        log_storage.RECENT_MAX_ENTRIES, self.saved = 6, (log_storage.RECENT_MAX_ENTRIES,)

    def teardown(self) -> None:
        (log_storage.RECENT_MAX_ENTRIES,) = self.saved
        self.storage.close()
        self.dir.cleanup()

    @rule(back=st.integers(0, 4), count=st.integers(1, 4), size=st.integers(0, 40))
    def append(self, back: int, count: int, size: int) -> None:
        first = max(self.log.first_index(), self.log.last_index() + 1 - back)
        if first <= self.log.last_index():
            self.term += 1  # only a newer leader overwrites
        entries = [
            Entry(self.term, first + i, EntryKind.NORMAL, bytes([self.term % 256]) * size)
            for i in range(count)
        ]
        _persist(self.storage, entries)
        self.log.note_appended(entries)

    @precondition(lambda self: self.log.last_index() >= self.log.first_index())
    @rule(data=st.data())
    def compact(self, data: st.DataObject) -> None:
        index = data.draw(st.integers(self.log.first_index(), self.log.last_index()))
        term = self.log.term(index)
        self.log.note_compacted(index, term)
        self.storage.commit(WriteBatch(compact_to=index, snapshot_meta=(index, term, [1])))

    @rule(ahead=st.integers(0, 5))
    def install_snapshot(self, ahead: int) -> None:
        index = self.log.last_index() + ahead
        self.term += 1
        last = self.log.last_index()
        self.log.note_snapshot_installed(index, self.term)
        batch = WriteBatch(
            compact_to=max(last, index), snapshot_meta=(index, self.term, [1]), tree_reset=True
        )
        self.storage.commit(batch)

    @invariant()
    def kept_entries_are_the_last_ones_counted_right(self) -> None:
        kept = self.log._recent
        assert list(kept) == list(range(self.log.last_index() - len(kept) + 1, self.log.last_index() + 1))
        assert self.log._recent_bytes == sum(len(e.data) for e in kept.values())

    @invariant()
    def every_entry_is_sized_and_counted(self) -> None:
        fresh = RaftLogStorage(self.storage, frozenset({1}), _no_snapshot)  # sizes read from lmdb
        indexes = list(range(self.log.first_index(), self.log.last_index() + 1))
        assert list(self.log._sizes) == indexes == list(fresh._sizes)
        assert self.log.log_bytes == sum(self.log._sizes.values())
        assert fresh.log_bytes == sum(fresh._sizes.values())
        for index in indexes:  # what lmdb holds of an entry: its data and a few bytes of term and kind
            assert self.log._sizes[index] <= fresh._sizes[index] <= self.log._sizes[index] + 16

    @invariant()
    def reads_equal_lmdb(self) -> None:
        fresh = RaftLogStorage(self.storage, frozenset({1}), _no_snapshot)
        first, last = self.log.first_index(), self.log.last_index()
        assert (first, last) == (fresh.first_index(), fresh.last_index())
        for lo in range(first, last + 1):
            for hi in range(lo + 1, last + 2):
                whole = fresh.entries(lo, hi, 1 << 30)
                assert self.log.entries(lo, hi, 1 << 30) == whole
                for cap in (0, 60):  # a prefix, never empty (lmdb and the core count bytes apart)
                    capped = self.log.entries(lo, hi, cap)
                    assert capped and capped == whole[: len(capped)]
            assert self.log.term(lo) == fresh.term(lo)


LogOverLmdb.TestCase.settings = settings(max_examples=60, stateful_step_count=25, deadline=None)
test_log_over_lmdb = LogOverLmdb.TestCase
