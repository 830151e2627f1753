"""ReadIndex, the leader's side of linearizable reads (etcd's read_only.go): a read is answered at the
commit index once a heartbeat round started after it is acknowledged by a quorum.

Mixed into ``Raft`` (raft.py); the attributes below are the state it shares with the rest of the machine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .log import RaftLog
from .types import Message, MessageType, NotLeaderError, ReadState, Role


@dataclass(slots=True)
class _ReadRound:
    """One heartbeat round confirming leadership for the read requests received before it."""

    index: int
    requests: list[Message]
    acks: set[int] = field(default_factory=set)


class ReadOnlyMixin:
    id: int
    log: RaftLog
    role: Role
    leader: int | None
    voters: frozenset[int]
    read_states: list[ReadState]
    read_rounds: dict[int, _ReadRound]
    next_read_round: int
    reads_waiting_for_commit: list[Message]
    # Provided by Raft and the leader mixin.
    committed_entry_in_current_term: Any
    _bcast_heartbeat: Any
    _send: Any

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
