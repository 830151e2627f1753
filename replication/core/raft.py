"""The Raft state machine: inputs are ticks, peer messages and local requests; outputs are queued
messages, log entries to persist and a commit index. No I/O, no clock, no threads.

``RawNode`` (rawnode.py) wraps this in the ready()/advance() contract the driver uses. The leader's
replication (leader.py), ReadIndex (read_only.py) and membership changes (membership.py) are mixed in.
"""

from __future__ import annotations

import random
from typing import Any

from .config import Config
from .leader import LeaderMixin
from .log import RaftLog
from .membership import MembershipMixin
from .progress import Progress
from .quorum import VoteResult, has_quorum, vote_result
from .read_only import ReadOnlyMixin, _ReadRound
from .storage import LogStorage
from .types import (
    NO_NODE,
    CompactedError,
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
    SoftState,
)

# Vote requests carrying this context come from a leadership transfer: they bypass PreVote and the
# leader lease, because the current leader asked for them.
CAMPAIGN_TRANSFER = b"transfer"


class Raft(LeaderMixin, ReadOnlyMixin, MembershipMixin):
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

    # -- output ---------------------------------------------------------------------------------

    def _send(
        self,
        msg_type: MessageType,
        to: int,
        *,
        term: int | None = None,
        **fields: Any,
    ) -> None:
        self.msgs.append(Message(msg_type, self.id, to, term=self.term if term is None else term, **fields))

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
