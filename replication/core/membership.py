"""Membership: proposing and applying single-server configuration changes (etcd's confchange handling),
one change at a time.

Mixed into ``Raft`` (raft.py); the attributes below are the state it shares with the rest of the machine.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from .config import Config
from .log import RaftLog
from .progress import Progress
from .types import (
    ConfChange,
    ConfChangeType,
    Entry,
    EntryKind,
    MessageType,
    NotLeaderError,
    ProposalDroppedError,
    Role,
)


class MembershipMixin:
    config: Config
    id: int
    log: RaftLog
    role: Role
    leader: int | None
    term: int
    voters: frozenset[int]
    progress: dict[int, Progress]
    lead_transferee: int | None
    pending_conf_index: int
    # Provided by Raft and the leader mixin.
    committed_entry_in_current_term: Any
    become_follower: Any
    _append_entries: Any
    _bcast_append: Any
    _maybe_commit: Any
    _maybe_send_append: Any
    _send: Any

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
