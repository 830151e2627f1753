"""The leader's view of each follower: how much of the log it holds and how to feed it more."""

from __future__ import annotations

from collections import deque
from enum import Enum


class ProgressState(Enum):
    # One AppendEntries at a time until we learn where the follower's log matches ours.
    PROBE = "probe"
    # Log matches: stream entries optimistically, bounded by the inflight window.
    REPLICATE = "replicate"
    # The entries the follower needs are compacted; a snapshot is on its way.
    SNAPSHOT = "snapshot"


class Inflights:
    """Last index of each unacknowledged AppendEntries sent in REPLICATE state (a sliding window)."""

    __slots__ = ("_indexes", "capacity")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._indexes: deque[int] = deque()

    def add(self, last_index: int) -> None:
        if self.full():
            raise AssertionError("inflight window overflow")
        self._indexes.append(last_index)

    def free_le(self, index: int) -> None:
        """An ack up to ``index`` frees every message that ended at or before it."""
        while self._indexes and self._indexes[0] <= index:
            self._indexes.popleft()

    def free_first(self) -> None:
        if self._indexes:
            self._indexes.popleft()

    def full(self) -> bool:
        return len(self._indexes) >= self.capacity

    def count(self) -> int:
        return len(self._indexes)

    def reset(self) -> None:
        self._indexes.clear()


class Progress:
    __slots__ = ("inflights", "match", "next", "pending_snapshot", "probe_sent", "recent_active", "state")

    def __init__(self, next_index: int, max_inflight: int, match: int = 0) -> None:
        self.match = match  # highest index known to be stored on the follower
        self.next = next_index  # next index to send
        self.state = ProgressState.PROBE
        self.probe_sent = False  # in PROBE: a probe is outstanding, wait for an answer or heartbeat
        self.pending_snapshot = 0  # in SNAPSHOT: index of the snapshot being sent
        self.recent_active = False  # heard from within the current election timeout (CheckQuorum)
        self.inflights = Inflights(max_inflight)

    def _reset_state(self, state: ProgressState) -> None:
        self.probe_sent = False
        self.pending_snapshot = 0
        self.state = state
        self.inflights.reset()

    def become_probe(self) -> None:
        if self.state is ProgressState.SNAPSHOT:
            # Resume right after the snapshot if it made it; the follower will tell us otherwise.
            pending = self.pending_snapshot
            self._reset_state(ProgressState.PROBE)
            self.next = max(self.match + 1, pending + 1)
        else:
            self._reset_state(ProgressState.PROBE)
            self.next = self.match + 1

    def become_replicate(self) -> None:
        self._reset_state(ProgressState.REPLICATE)
        self.next = self.match + 1

    def become_snapshot(self, snapshot_index: int) -> None:
        self._reset_state(ProgressState.SNAPSHOT)
        self.pending_snapshot = snapshot_index

    def maybe_update(self, index: int) -> bool:
        """Record an acknowledgement up to ``index``; False if it tells us nothing new."""
        updated = False
        if self.match < index:
            self.match = index
            updated = True
            self.probe_sent = False
        self.next = max(self.next, index + 1)
        return updated

    def maybe_decrease_to(self, rejected: int, match_hint: int) -> bool:
        """Handle a rejection of the append whose previous index was ``rejected``.

        Returns False for stale rejections (answers to messages we already moved past).
        """
        if self.state is ProgressState.REPLICATE:
            if rejected <= self.match:
                return False
            # An earlier message of the optimistic stream was lost: resend from what we know matches.
            self.next = self.match + 1
            return True
        if self.next - 1 != rejected:
            return False
        self.next = max(min(rejected, match_hint + 1), self.match + 1)
        self.probe_sent = False
        return True

    def sent_entries(self, last_index: int | None) -> None:
        """Account for an AppendEntries just sent (``last_index`` is None for an empty one)."""
        if self.state is ProgressState.REPLICATE:
            if last_index is not None:
                self.next = last_index + 1
                self.inflights.add(last_index)
        elif self.state is ProgressState.PROBE:
            self.probe_sent = True

    def is_paused(self) -> bool:
        if self.state is ProgressState.PROBE:
            return self.probe_sent
        if self.state is ProgressState.REPLICATE:
            return self.inflights.full()
        return True

    def describe(self) -> dict[str, object]:
        return {"match": self.match, "next": self.next, "state": self.state.value}
