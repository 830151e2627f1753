"""The Raft state machine: inputs are ticks, peer messages and local requests; outputs are queued
messages, log entries to persist and a commit index. No I/O, no clock, no threads.

``RawNode`` (rawnode.py) wraps this in the ready()/advance() contract the driver uses.
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .log import RaftLog
from .progress import Progress, ProgressState
from .quorum import VoteResult, committed_index, has_quorum, vote_result
from .storage import LogStorage
from .types import (
    NO_NODE,
    CompactedError,
    ConfChange,
    ConfChangeType,
    Entry,
    EntryKind,
    HardState,
    Message,
    MessageType,
    NotLeaderError,
    ProposalDroppedError,
    ReadState,
    Role,
    Snapshot,
    SnapshotTemporarilyUnavailableError,
    SoftState,
)

# Vote requests carrying this context come from a leadership transfer: they bypass PreVote and the
# leader lease, because the current leader asked for them.
CAMPAIGN_TRANSFER = b"transfer"


@dataclass(frozen=True, slots=True)
class Config:
    node_id: int
    election_tick: int = 10
    heartbeat_tick: int = 1
    pre_vote: bool = True
    check_quorum: bool = True
    max_inflight_msgs: int = 256
    max_entries_per_msg: int = 512
    max_bytes_per_msg: int = 1 << 20
    seed: int = 0
    # Index the driver's state machine has already applied (on restart); 0 means "replay from the
    # snapshot".
    applied: int = 0
    # Cap on the bytes of committed entries handed out in one Ready.
    max_committed_bytes_per_ready: int = 64 << 20

    def validate(self) -> None:
        if self.node_id <= 0:
            raise ValueError("node_id must be a positive integer")
        if self.heartbeat_tick <= 0:
            raise ValueError("heartbeat_tick must be positive")
        if self.election_tick <= self.heartbeat_tick:
            raise ValueError("election_tick must be greater than heartbeat_tick")
        if self.max_inflight_msgs <= 0 or self.max_entries_per_msg <= 0 or self.max_bytes_per_msg <= 0:
            raise ValueError("message limits must be positive")
        if self.applied < 0:
            raise ValueError("applied must be >= 0")


@dataclass(slots=True)
class _ReadRound:
    """One heartbeat round confirming leadership for the read requests received before it."""

    index: int
    requests: list[Message]
    acks: set[int] = field(default_factory=set)


class Raft:
    def __init__(self, config: Config, storage: LogStorage) -> None:
        config.validate()
        self.config = config
        self.id = config.node_id
        self.log = RaftLog(storage)
        # Mix the id in so that nodes sharing a seed still draw different timeouts.
        self.rng = random.Random(f"{config.seed}:{config.node_id}")
        self.term = 0
        self.vote = NO_NODE
        self.leader: int | None = None
        self.role = Role.FOLLOWER
        self.voters: frozenset[int] = frozenset()
        self.progress: dict[int, Progress] = {}
        self.votes: dict[int, bool] = {}
        self.msgs: list[Message] = []
        self.read_states: list[ReadState] = []
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_election_timeout = config.election_tick
        self.lead_transferee: int | None = None
        self.pending_conf_index = 0
        self.read_rounds: dict[int, _ReadRound] = {}
        self.next_read_round = 1  # never reset, so a stale ack can never match a newer round
        self.reads_waiting_for_commit: list[Message] = []

        hard_state, voters = storage.initial_state()
        self._set_voters(voters)
        if hard_state != HardState():
            if hard_state.commit > self.log.last_index():
                raise ValueError(
                    f"persisted commit {hard_state.commit} is past the last index {self.log.last_index()}"
                )
            self.term = hard_state.term
            self.vote = hard_state.vote
            self.log.commit_to(hard_state.commit)
        if config.applied > self.log.committed:
            raise ValueError(f"applied {config.applied} is past the persisted commit {self.log.committed}")
        if config.applied > self.log.applied:
            self.log.applied_to(config.applied)
        self.become_follower(self.term, None)

    # -- state snapshots ------------------------------------------------------------------------

    def soft_state(self) -> SoftState:
        return SoftState(self.leader, self.role)

    def hard_state(self) -> HardState:
        return HardState(self.term, self.vote, self.log.committed)

    def promotable(self) -> bool:
        return self.id in self.voters and not self.log.has_pending_snapshot()

    def committed_entry_in_current_term(self) -> bool:
        return self.log.term_or_zero(self.log.committed) == self.term

    # -- role transitions -----------------------------------------------------------------------

    def _reset(self, term: int) -> None:
        if self.term != term:
            self.term = term
            self.vote = NO_NODE
        self.leader = None
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_election_timeout = self.rng.randrange(
            self.config.election_tick, 2 * self.config.election_tick
        )
        self.lead_transferee = None
        self.votes = {}
        last = self.log.last_index()
        for peer in self.voters:
            self.progress[peer] = Progress(
                last + 1, self.config.max_inflight_msgs, match=last if peer == self.id else 0
            )
        self.pending_conf_index = 0
        self.read_rounds = {}
        self.reads_waiting_for_commit = []

    def become_follower(self, term: int, leader: int | None) -> None:
        self._reset(term)
        self.leader = leader
        self.role = Role.FOLLOWER

    def _become_pre_candidate(self) -> None:
        # Deliberately leaves term and vote alone: a pre-election must not disturb anything.
        self.role = Role.PRE_CANDIDATE
        self.votes = {}
        self.leader = None

    def _become_candidate(self) -> None:
        self._reset(self.term + 1)
        self.vote = self.id
        self.role = Role.CANDIDATE

    def _become_leader(self) -> None:
        self._reset(self.term)
        self.leader = self.id
        self.role = Role.LEADER
        me = self.progress[self.id]
        me.become_replicate()
        me.recent_active = True
        # Any conf change in the uncommitted tail may still be pending: be conservative.
        self.pending_conf_index = self.log.last_index()
        # The no-op lets the new leader commit (and so learn the commit point of) earlier terms.
        self._append_entries([Entry(0, 0, EntryKind.NORMAL, b"")])

    # -- ticks ----------------------------------------------------------------------------------

    def tick(self) -> None:
        if self.role is Role.LEADER:
            self._tick_heartbeat()
        else:
            self._tick_election()

    def _tick_election(self) -> None:
        self.election_elapsed += 1
        if self.promotable() and self.election_elapsed >= self.randomized_election_timeout:
            self.election_elapsed = 0
            self.hup()

    def _tick_heartbeat(self) -> None:
        self.heartbeat_elapsed += 1
        self.election_elapsed += 1
        if self.election_elapsed >= self.config.election_tick:
            self.election_elapsed = 0
            if self.config.check_quorum:
                self._check_quorum()
            if self.role is Role.LEADER and self.lead_transferee is not None:
                self.lead_transferee = None  # the transfer did not finish in an election timeout
        if self.role is not Role.LEADER:
            return
        if self.heartbeat_elapsed >= self.config.heartbeat_tick:
            self.heartbeat_elapsed = 0
            self._bcast_heartbeat()

    def _check_quorum(self) -> None:
        active = {peer for peer, pr in self.progress.items() if peer == self.id or pr.recent_active}
        if not has_quorum(self.voters, active):
            self.become_follower(self.term, None)
            return
        for peer, pr in self.progress.items():
            if peer != self.id:
                pr.recent_active = False

    # -- elections ------------------------------------------------------------------------------

    def hup(self, transfer: bool = False) -> None:
        """Start an election (a pre-election first when PreVote is on, unless transferring)."""
        if self.role is Role.LEADER or not self.promotable():
            return
        if self._has_unapplied_conf_change():
            # The configuration we would campaign in is about to change; wait for it.
            return
        self._campaign(pre=self.config.pre_vote and not transfer, transfer=transfer)

    def _has_unapplied_conf_change(self) -> bool:
        if self.log.committed <= self.log.applied:
            return False
        try:
            pending = self.log.slice(self.log.applied + 1, self.log.committed + 1)
        except CompactedError:
            return False
        return any(e.kind is EntryKind.CONF_CHANGE for e in pending)

    def _campaign(self, pre: bool, transfer: bool = False) -> None:
        if pre:
            self._become_pre_candidate()
            vote_type, term = MessageType.PRE_VOTE, self.term + 1
        else:
            self._become_candidate()
            vote_type, term = MessageType.VOTE, self.term
        if self._poll(self.id, True) is VoteResult.WON:
            # A single-voter configuration wins on its own vote.
            if pre:
                self._campaign(pre=False, transfer=transfer)
            else:
                self._become_leader()
            return
        context = CAMPAIGN_TRANSFER if transfer else b""
        last_index = self.log.last_index()
        last_term = self.log.last_term()
        for peer in sorted(self.voters):
            if peer != self.id:
                self._send(vote_type, peer, term=term, index=last_index, log_term=last_term, context=context)

    def _poll(self, peer: int, granted: bool) -> VoteResult:
        self.votes.setdefault(peer, granted)
        return vote_result(self.voters, self.votes)

    # -- the message entry point ----------------------------------------------------------------

    def step(self, m: Message) -> None:
        if m.term == 0:
            # Only forwarded requests travel without a term.
            if m.type not in (MessageType.READ_INDEX, MessageType.PROPOSE):
                return
        elif m.term > self.term:
            if m.type in (MessageType.VOTE, MessageType.PRE_VOTE):
                forced = m.context == CAMPAIGN_TRANSFER
                in_lease = (
                    self.config.check_quorum
                    and self.leader is not None
                    and self.election_elapsed < self.config.election_tick
                )
                if in_lease and not forced:
                    # We heard from a live leader within the minimum election timeout: a node
                    # asking for votes now is disruptive (partitioned or removed), ignore it.
                    return
            if m.type is MessageType.PRE_VOTE:
                pass  # a pre-vote never changes our term
            elif m.type is MessageType.PRE_VOTE_RESP and not m.reject:
                pass  # the term in a granted pre-vote is the one we will campaign in
            elif m.type in (MessageType.APPEND, MessageType.HEARTBEAT, MessageType.SNAPSHOT):
                self.become_follower(m.term, m.src)
            else:
                self.become_follower(m.term, None)
        elif m.term < self.term:
            if (self.config.check_quorum or self.config.pre_vote) and m.type in (
                MessageType.APPEND,
                MessageType.HEARTBEAT,
            ):
                # A stale leader would otherwise never learn of the newer term (our pre-votes and
                # lease keep us from disturbing it): tell it, so it steps down.
                self._send(MessageType.APPEND_RESP, m.src)
            elif m.type is MessageType.PRE_VOTE:
                self._send(MessageType.PRE_VOTE_RESP, m.src, reject=True)
            return

        if m.type in (MessageType.VOTE, MessageType.PRE_VOTE):
            self._handle_vote_request(m)
        elif self.role is Role.LEADER:
            self._step_leader(m)
        elif self.role is Role.FOLLOWER:
            self._step_follower(m)
        else:
            self._step_candidate(m)

    def _handle_vote_request(self, m: Message) -> None:
        resp_type = MessageType.VOTE_RESP if m.type is MessageType.VOTE else MessageType.PRE_VOTE_RESP
        can_vote = (
            self.vote == m.src
            or (self.vote == NO_NODE and self.leader is None)
            or (m.type is MessageType.PRE_VOTE and m.term > self.term)
        )
        if can_vote and self.log.is_up_to_date(m.index, m.log_term):
            # Answer in the requested term: the candidate discards answers for any other term.
            self._send(resp_type, m.src, term=m.term)
            if m.type is MessageType.VOTE:
                self.election_elapsed = 0
                self.vote = m.src  # persisted (Ready.hard_state) before the answer is sent
        else:
            self._send(resp_type, m.src, reject=True)

    # -- leader ---------------------------------------------------------------------------------

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

    # -- ReadIndex ------------------------------------------------------------------------------

    def _leader_read_index(self, m: Message) -> None:
        if self.voters == {self.id}:
            self._answer_read(m, self.log.committed)
        elif not self.committed_entry_in_current_term():
            # Our commit index may lag the true one until our no-op commits.
            self.reads_waiting_for_commit.append(m)
        else:
            self._start_read_round(m)

    def _start_read_round(self, m: Message) -> None:
        seq = self.next_read_round
        self.next_read_round += 1
        self.read_rounds[seq] = _ReadRound(self.log.committed, [m], {self.id})
        self._bcast_heartbeat(seq.to_bytes(8, "big"))

    def _answer_read(self, req: Message, index: int) -> None:
        if req.src == self.id:
            self.read_states.append(ReadState(index, req.context))
        else:
            self._send(MessageType.READ_INDEX_RESP, req.src, index=index, context=req.context)

    def read_index(self, context: bytes) -> None:
        m = Message(MessageType.READ_INDEX, self.id, self.id, context=context)
        if self.role is Role.LEADER:
            self._leader_read_index(m)
        elif self.leader is None:
            raise NotLeaderError(None)
        else:
            self._send(MessageType.READ_INDEX, self.leader, term=0, context=context)

    # -- follower and candidates ----------------------------------------------------------------

    def _step_follower(self, m: Message) -> None:
        if m.type is MessageType.APPEND:
            self.election_elapsed = 0
            self.leader = m.src
            self._handle_append(m)
        elif m.type is MessageType.HEARTBEAT:
            self.election_elapsed = 0
            self.leader = m.src
            self._handle_heartbeat(m)
        elif m.type is MessageType.SNAPSHOT:
            self.election_elapsed = 0
            self.leader = m.src
            self._handle_snapshot(m)
        elif m.type is MessageType.TIMEOUT_NOW:
            # The leader asked us to take over: skip the pre-election and the lease.
            self.hup(transfer=True)
        elif m.type is MessageType.READ_INDEX_RESP:
            self.read_states.append(ReadState(m.index, m.context))

    def _step_candidate(self, m: Message) -> None:
        expected = MessageType.PRE_VOTE_RESP if self.role is Role.PRE_CANDIDATE else MessageType.VOTE_RESP
        if m.type is MessageType.APPEND:
            self.become_follower(m.term, m.src)  # a leader exists for this term
            self._handle_append(m)
        elif m.type is MessageType.HEARTBEAT:
            self.become_follower(m.term, m.src)
            self._handle_heartbeat(m)
        elif m.type is MessageType.SNAPSHOT:
            self.become_follower(m.term, m.src)
            self._handle_snapshot(m)
        elif m.type is expected:
            result = self._poll(m.src, not m.reject)
            if result is VoteResult.WON:
                if self.role is Role.PRE_CANDIDATE:
                    self._campaign(pre=False)
                else:
                    self._become_leader()
                    self._bcast_append()
            elif result is VoteResult.LOST:
                self.become_follower(self.term, None)

    def _handle_append(self, m: Message) -> None:
        if m.index < self.log.committed:
            # Everything up to our commit index matches any leader's log.
            self._send(MessageType.APPEND_RESP, m.src, index=self.log.committed)
            return
        last_new = self.log.maybe_append(m.index, m.log_term, m.commit, m.entries)
        if last_new is not None:
            self._send(MessageType.APPEND_RESP, m.src, index=last_new)
            return
        # Tell the leader where to look next: the last entry of ours at or before its probe point
        # whose term is not above the term it probed with.
        hint_index, hint_term = self.log.find_conflict_by_term(
            min(m.index, self.log.last_index()), m.log_term
        )
        self._send(
            MessageType.APPEND_RESP,
            m.src,
            index=m.index,
            reject=True,
            reject_hint=hint_index,
            log_term=hint_term,
        )

    def _handle_heartbeat(self, m: Message) -> None:
        self.log.commit_to(m.commit)
        self._send(MessageType.HEARTBEAT_RESP, m.src, context=m.context)

    def _handle_snapshot(self, m: Message) -> None:
        snap = m.snapshot
        if snap is not None and self._restore(snap):
            self._send(MessageType.APPEND_RESP, m.src, index=self.log.last_index())
        else:
            self._send(MessageType.APPEND_RESP, m.src, index=self.log.committed)

    def _restore(self, snap: Snapshot) -> bool:
        if snap.meta.index <= self.log.committed:
            return False
        if self.log.match_term(snap.meta.index, snap.meta.term):
            # We already hold this prefix: just learn that it is committed.
            self.log.commit_to(snap.meta.index)
            return False
        self.log.restore(snap)
        self._set_voters(snap.meta.voters)
        return True

    # -- local requests -------------------------------------------------------------------------

    def propose_entries(self, payloads: list[bytes]) -> int:
        if self.role is not Role.LEADER:
            raise NotLeaderError(self.leader)
        if self.id not in self.progress:
            raise ProposalDroppedError("this node was removed from the configuration")
        if self.lead_transferee is not None:
            raise ProposalDroppedError(f"leadership is being transferred to {self.lead_transferee}")
        last = self._append_entries([Entry(0, 0, EntryKind.NORMAL, data) for data in payloads])
        self._bcast_append()
        return last

    def propose_conf_change(self, cc: ConfChange) -> int:
        if self.role is not Role.LEADER:
            raise NotLeaderError(self.leader)
        if self.lead_transferee is not None:
            raise ProposalDroppedError(f"leadership is being transferred to {self.lead_transferee}")
        if self.pending_conf_index > self.log.applied:
            raise ProposalDroppedError(
                f"configuration change at {self.pending_conf_index} is not applied yet"
            )
        if not self.committed_entry_in_current_term():
            # Without this a change could be decided by a quorum that an earlier-term change
            # (uncommitted, overwritten) made unsafe (the single-server change bug found in 2015).
            raise ProposalDroppedError("leader has not committed an entry of its term yet")
        if cc.node_id <= 0:
            raise ProposalDroppedError("node ids must be positive")
        if cc.type is ConfChangeType.ADD_NODE and cc.node_id in self.voters:
            raise ProposalDroppedError(f"node {cc.node_id} is already a voter")
        if cc.type is ConfChangeType.REMOVE_NODE:
            if cc.node_id not in self.voters:
                raise ProposalDroppedError(f"node {cc.node_id} is not a voter")
            if self.voters == {cc.node_id}:
                raise ProposalDroppedError("cannot remove the last voter")
        # No other change is pending, so our voters are the configuration this change applies to.
        if cc.type is ConfChangeType.ADD_NODE:
            result = self.voters | {cc.node_id}
        else:
            result = self.voters - {cc.node_id}
        cc = dataclasses.replace(cc, voters=result)
        last = self._append_entries([Entry(0, 0, EntryKind.CONF_CHANGE, cc.to_bytes())])
        self.pending_conf_index = last
        self._bcast_append()
        return last

    def apply_conf_change(self, cc: ConfChange) -> frozenset[int]:
        """Make a committed configuration change take effect (idempotent, so replays are fine)."""
        if cc.voters is not None:
            voters = set(cc.voters)
        else:
            voters = set(self.voters)
            if cc.type is ConfChangeType.ADD_NODE:
                voters.add(cc.node_id)
            else:
                voters.discard(cc.node_id)
        added = voters - self.voters
        self._set_voters(voters)
        if cc.type is ConfChangeType.REMOVE_NODE and cc.node_id == self.lead_transferee:
            self.lead_transferee = None
        if self.role is Role.LEADER:
            if self.id not in self.voters:
                self._step_down_after_removal()
            elif self._maybe_commit():
                self._bcast_append()  # the quorum shrank
            else:
                for peer in sorted(self.progress):
                    if peer != self.id:
                        # Probe a new member at once rather than at the next heartbeat.
                        self._maybe_send_append(peer, send_if_empty=peer in added)
        return self.voters

    def _step_down_after_removal(self) -> None:
        # Hand over to an up-to-date voter so the cluster does not wait an election timeout.
        last = self.log.last_index()
        candidates = sorted(peer for peer, pr in self.progress.items() if pr.match == last)
        if candidates:
            self._send(MessageType.TIMEOUT_NOW, candidates[0])
        self.become_follower(self.term, None)

    def _set_voters(self, voters: Iterable[int]) -> None:
        self.voters = frozenset(voters)
        last = self.log.last_index()
        for peer in self.voters:
            if peer not in self.progress:
                pr = Progress(last + 1, self.config.max_inflight_msgs, match=last if peer == self.id else 0)
                pr.recent_active = True  # a new member gets a full timeout before CheckQuorum counts it
                self.progress[peer] = pr
        for peer in [p for p in self.progress if p not in self.voters]:
            del self.progress[peer]

    def transfer_leader(self, to: int) -> None:
        if self.role is not Role.LEADER:
            raise NotLeaderError(self.leader)
        if to not in self.progress:
            raise ProposalDroppedError(f"node {to} is not a voter")
        if self.lead_transferee is not None:
            if self.lead_transferee == to:
                return
            self.lead_transferee = None
        if to == self.id:
            return
        # The transfer must finish within one election timeout or it is abandoned.
        self.election_elapsed = 0
        self.lead_transferee = to
        if self.progress[to].match == self.log.last_index():
            self._send(MessageType.TIMEOUT_NOW, to)
        else:
            self._send_append(to)

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

    # -- output ---------------------------------------------------------------------------------

    def _send(
        self,
        msg_type: MessageType,
        to: int,
        *,
        term: int | None = None,
        **fields: Any,
    ) -> None:
        self.msgs.append(
            Message(msg_type, self.id, to, term=self.term if term is None else term, **fields)
        )

    def status(self) -> dict[str, Any]:
        progress = (
            {peer: pr.describe() for peer, pr in sorted(self.progress.items())}
            if self.role is Role.LEADER
            else {}
        )
        return {
            "id": self.id,
            "role": self.role.value,
            "term": self.term,
            "vote": self.vote,
            "leader": self.leader,
            "commit": self.log.committed,
            "applied": self.log.applied,
            "last_index": self.log.last_index(),
            "voters": sorted(self.voters),
            "progress": progress,
            "lead_transferee": self.lead_transferee,
        }
