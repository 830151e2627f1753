"""The leader's step function and its side of log replication (etcd's stepLeader): append and heartbeat
answers, sending entries or a snapshot to each follower's ``Progress``, and advancing the commit index.

Mixed into ``Raft`` (raft.py); the attributes below are the state it shares with the rest of the machine.
"""

from __future__ import annotations

import contextlib
from typing import Any

from .config import Config
from .log import RaftLog
from .progress import Progress, ProgressState
from .quorum import VoteResult, committed_index, vote_result
from .read_only import _ReadRound
from .types import (
    CompactedError,
    Entry,
    EntryKind,
    Message,
    MessageType,
    ProposalDroppedError,
    Role,
    SnapshotTemporarilyUnavailableError,
)


class LeaderMixin:
    config: Config
    id: int
    log: RaftLog
    role: Role
    term: int
    voters: frozenset[int]
    progress: dict[int, Progress]
    lead_transferee: int | None
    read_rounds: dict[int, _ReadRound]
    reads_waiting_for_commit: list[Message]
    # Provided by Raft and the ReadIndex mixin.
    committed_entry_in_current_term: Any
    propose_entries: Any
    _leader_read_index: Any
    _start_read_round: Any
    _answer_read: Any
    _send: Any

    def _step_leader(self, m: Message) -> None:
        if m.type is MessageType.PROPOSE:
            if m.src in self.progress and all(e.kind is EntryKind.NORMAL for e in m.entries):
                # The forwarder learns nothing if we drop it; its own timeout covers that.
                with contextlib.suppress(ProposalDroppedError):
                    self.propose_entries([e.data for e in m.entries])
            return
        if m.type is MessageType.READ_INDEX:
            if m.src == self.id or m.src in self.progress:
                self._leader_read_index(m)
            return
        pr = self.progress.get(m.src)
        if pr is None:
            return
        if m.type is MessageType.APPEND_RESP:
            self._handle_append_response(m, pr)
        elif m.type is MessageType.HEARTBEAT_RESP:
            self._handle_heartbeat_response(m, pr)

    def _handle_append_response(self, m: Message, pr: Progress) -> None:
        pr.recent_active = True
        if m.reject:
            next_probe = m.reject_hint
            if m.log_term > 0:
                # Skip every entry of ours whose term is above the follower's term at the hint:
                # none of them can match.
                next_probe, _ = self.log.find_conflict_by_term(m.reject_hint, m.log_term)
            if pr.maybe_decrease_to(m.index, next_probe):
                if pr.state is ProgressState.REPLICATE:
                    pr.become_probe()
                self._send_append(m.src)
            return

        was_paused = pr.is_paused()
        if pr.maybe_update(m.index) or (pr.match == m.index and pr.state is ProgressState.PROBE):
            if pr.state is ProgressState.PROBE:
                pr.become_replicate()
            elif pr.state is ProgressState.SNAPSHOT and pr.match + 1 >= self.log.first_index():
                # The snapshot landed and our log continues right after it.
                pr.become_probe()
                pr.become_replicate()
            elif pr.state is ProgressState.REPLICATE:
                pr.inflights.free_le(m.index)
            if self._maybe_commit():
                self._bcast_append()
            elif was_paused:
                self._send_append(m.src)
            while self._maybe_send_append(m.src, send_if_empty=False):
                pass
            if m.src == self.lead_transferee and pr.match == self.log.last_index():
                self._send(MessageType.TIMEOUT_NOW, m.src)

    def _handle_heartbeat_response(self, m: Message, pr: Progress) -> None:
        pr.recent_active = True
        pr.probe_sent = False
        if pr.state is ProgressState.REPLICATE and pr.inflights.full():
            # The follower is alive but our window is stuck (messages lost): let one more through,
            # its rejection or ack resynchronises the stream.
            pr.inflights.free_first()
        if pr.match < self.log.last_index() or pr.state is ProgressState.PROBE:
            self._send_append(m.src)
        if len(m.context) != 8:
            return
        seq = int.from_bytes(m.context, "big")
        read_round = self.read_rounds.get(seq)
        if read_round is None:
            return
        read_round.acks.add(m.src)
        if vote_result(self.voters, dict.fromkeys(read_round.acks, True)) is not VoteResult.WON:
            return
        # A quorum still follows us after this round started, so every round before it (and the
        # reads they carry) is confirmed as well.
        for done_seq in sorted(s for s in self.read_rounds if s <= seq):
            done = self.read_rounds.pop(done_seq)
            for req in done.requests:
                self._answer_read(req, done.index)

    def _maybe_commit(self) -> bool:
        index = committed_index(self.voters, {peer: pr.match for peer, pr in self.progress.items()})
        # Only an entry of our own term is committed by counting replicas (Figure 8); earlier
        # entries become committed indirectly, as its prefix.
        if not self.log.maybe_commit(index, self.term):
            return False
        if self.reads_waiting_for_commit and self.committed_entry_in_current_term():
            waiting, self.reads_waiting_for_commit = self.reads_waiting_for_commit, []
            for req in waiting:
                self._start_read_round(req)
        return True

    def _append_entries(self, entries: list[Entry]) -> int:
        last = self.log.last_index()
        stamped = [Entry(self.term, last + 1 + i, e.kind, e.data) for i, e in enumerate(entries)]
        last = self.log.append(stamped)
        # Our own copy counts towards the quorum at once: nothing is sent before the driver has
        # persisted it (Ready contract).
        self.progress[self.id].maybe_update(last)
        self._maybe_commit()
        return last

    def _maybe_send_append(self, to: int, send_if_empty: bool = True) -> bool:
        pr = self.progress[to]
        if pr.is_paused():
            return False
        prev_index = pr.next - 1
        try:
            prev_term = self.log.term(prev_index)
            entries = self.log.entries_from(pr.next, self.config.max_bytes_per_msg)
        except CompactedError:
            return self._maybe_send_snapshot(to, pr)
        if len(entries) > self.config.max_entries_per_msg:
            entries = entries[: self.config.max_entries_per_msg]
        if not entries and not send_if_empty:
            return False
        self._send(
            MessageType.APPEND,
            to,
            index=prev_index,
            log_term=prev_term,
            entries=tuple(entries),
            commit=self.log.committed,
        )
        pr.sent_entries(entries[-1].index if entries else None)
        return True

    def _send_append(self, to: int) -> None:
        self._maybe_send_append(to, send_if_empty=True)

    def _maybe_send_snapshot(self, to: int, pr: Progress) -> bool:
        if not pr.recent_active:
            return False  # do not ship a snapshot to a node that may well be down
        try:
            snap = self.log.snapshot()
        except SnapshotTemporarilyUnavailableError:
            return False
        if snap.is_empty():
            raise AssertionError("entries are compacted but there is no snapshot")
        pr.become_snapshot(snap.meta.index)
        self._send(MessageType.SNAPSHOT, to, snapshot=snap)
        return True

    def _bcast_append(self) -> None:
        for peer in sorted(self.progress):
            if peer != self.id:
                self._send_append(peer)

    def _bcast_heartbeat(self, context: bytes = b"") -> None:
        for peer in sorted(self.progress):
            if peer == self.id:
                continue
            pr = self.progress[peer]
            # Never tell a follower to commit beyond what it is known to hold.
            commit = min(pr.match, self.log.committed)
            self._send(MessageType.HEARTBEAT, peer, commit=commit, context=context)

    def report_unreachable(self, peer: int) -> None:
        pr = self.progress.get(peer) if self.role is Role.LEADER else None
        if pr is not None and pr.state is ProgressState.REPLICATE:
            pr.become_probe()

    def report_snapshot(self, peer: int, ok: bool) -> None:
        pr = self.progress.get(peer) if self.role is Role.LEADER else None
        if pr is None or pr.state is not ProgressState.SNAPSHOT:
            return
        if not ok:
            pr.pending_snapshot = 0
        pr.become_probe()
        # Wait for the next heartbeat answer before probing, rather than firing at once.
        pr.probe_sent = True
