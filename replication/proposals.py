"""Proposals and where each one is until it is answered.

A proposal is queued, then on the leader handed to the core (pending at its log index until applied) or on
a follower forwarded to the leader (kept under a request id until the leader answers, then until this node
has applied it too). :class:`ProposalTracking` is the part of the node that keeps that.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import trio

from .config import NodeConfig
from .core import NotLeaderError, ProposalDroppedError, RawNode, Role
from .errors import OutcomeUnknown, ReplicationError
from .transport import Transport
from .tree import Tree


@dataclass(eq=False)
class Proposal:
    data: bytes
    done: trio.Event = field(default_factory=trio.Event)
    result: dict[str, Any] | None = None
    error: BaseException | None = None
    index: int = 0  # the log index it was committed at
    submitted_at: float = field(default_factory=trio.current_time)
    callbacks: list[Callable[[Proposal], None]] = field(default_factory=list)

    @property
    def duplicate(self) -> bool:
        """True when this was a retry: the result is the one cached from the first commit."""
        return self.result is not None and self.result.get("index") != self.index

    def add_done_callback(self, callback: Callable[[Proposal], None]) -> None:
        """Run ``callback(self)`` when the proposal completes (cheaper than a task per write)."""
        if self.done.is_set():
            callback(self)
        else:
            self.callbacks.append(callback)

    def finish(self, result: dict[str, Any] | None = None, error: BaseException | None = None) -> None:
        if self.done.is_set():
            return
        self.result, self.error = result, error
        self.done.set()
        for callback in self.callbacks:
            callback(self)

    async def wait(self) -> dict[str, Any]:
        await self.done.wait()
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


@dataclass(eq=False)
class RemoteProposal:
    """A proposal forwarded to us (the leader) by a follower: answered over the transport."""

    peer: int
    request: int


class ProposalTracking:
    """The node's proposals from submission to answer (a part of :class:`~replication.node.Node`)."""

    # Provided by Node.
    config: NodeConfig
    tree: Tree
    stats: dict[str, Any]
    _raw: RawNode
    _role: Role
    _leader: int | None
    _transport: Transport | None

    def _init_proposal_tracking(self) -> None:
        self._queue: deque[Proposal] = deque()  # submitted, not yet handed to the core or forwarded
        # index -> (term, proposal, deadline); in index order, which is also deadline order
        self._pending: dict[int, tuple[int, Proposal | RemoteProposal, float]] = {}
        # request -> (proposal, deadline, leader)
        self._forwarded: dict[int, tuple[Proposal, float, int]] = {}
        self._request_ids = itertools.count(1)
        self._awaiting_apply: dict[int, list[tuple[Proposal, dict[str, Any]]]] = {}

    def _fail_outstanding(self) -> None:
        """The node is stopping: nothing waiting here will be answered."""
        error = ReplicationError("node is shutting down")
        for proposal in self._queue:
            proposal.finish(error=error)
        for _, waiter, _ in self._pending.values():
            if isinstance(waiter, Proposal):
                waiter.finish(error=OutcomeUnknown("node shut down before the outcome was known"))
        for proposal, _, _ in self._forwarded.values():
            proposal.finish(error=OutcomeUnknown("node shut down before the outcome was known"))

    def _forget_forwarded_to(self, previous_leader: int) -> None:
        # Whatever we forwarded to the old leader may never be answered: let callers retry now
        # rather than at their timeout (a retry with the same session seq applies at most once).
        for request, (proposal, _, sent_to) in list(self._forwarded.items()):
            if sent_to == previous_leader:
                del self._forwarded[request]
                proposal.finish(error=OutcomeUnknown(f"leader {previous_leader} changed before answering"))

    def _hand_proposals_to_core(self) -> None:
        """Proposals go to the core on the leader, to the leader elsewhere; in submission order.

        On the leader the whole queue goes in one call, so followers get one append for the batch.
        """
        if not self._queue:
            return
        if self._role is Role.LEADER:
            batch = [
                self._queue.popleft() for _ in range(min(len(self._queue), self.config.max_batch_entries))
            ]
            try:
                term = self._raw.raft.term
                last = self._raw.propose_many([proposal.data for proposal in batch])
            except (ProposalDroppedError, NotLeaderError):
                self._queue.extendleft(reversed(batch))  # e.g. a leadership transfer: try again next turn
                return
            deadline = trio.current_time() + self.config.request_timeout
            first = last - len(batch) + 1
            for offset, proposal in enumerate(batch):
                self._pending[first + offset] = (term, proposal, deadline)
            self.stats["proposals"] += len(batch)
        elif self._leader is not None and self._transport is not None:
            deadline = trio.current_time() + self.config.request_timeout
            frames = []
            while self._queue:
                proposal = self._queue.popleft()
                request = next(self._request_ids)
                self._forwarded[request] = (proposal, deadline, self._leader)
                frames.append([request, proposal.data])
            # One frame for the lot: they stay in order and cost one message.
            self._transport.send(self._leader, ["fwd", frames])
            self.stats["proposals"] += len(frames)
        # else: no leader yet; the ticker fails what waits past the request timeout

    def _expire_forwarded(self) -> None:
        now = trio.current_time()
        for request, (proposal, deadline, _) in list(self._forwarded.items()):
            if now >= deadline:
                del self._forwarded[request]
                proposal.finish(error=OutcomeUnknown("no answer from the leader in time"))
        # Entries in our log that did not commit in time (e.g. we lost the quorum): the outcome is unknown.
        while self._pending:
            index = next(iter(self._pending))
            _, waiter, deadline = self._pending[index]
            if now < deadline:
                break
            del self._pending[index]
            if isinstance(waiter, Proposal):
                waiter.finish(error=OutcomeUnknown("not committed in time (no quorum?)"))
        # Waiting for a leader is bounded too: nothing was sent yet, so these surely did not commit.
        while self._queue and now - self._queue[0].submitted_at >= self.config.request_timeout:
            self._queue.popleft().finish(
                error=ReplicationError("no leader to take the proposal (no quorum?)")
            )

    def _release_awaiting(self) -> None:
        """Finish forwarded proposals whose index this node has now applied (or skipped by a snapshot)."""
        if self._awaiting_apply:
            for index in [i for i in self._awaiting_apply if i <= self.tree.applied_index]:
                for proposal, answer in self._awaiting_apply.pop(index):
                    proposal.finish(answer)

    def _answer(
        self,
        waiter: Proposal | RemoteProposal,
        index: int,
        result: dict[str, Any] | None,
        error: Exception | None,
    ) -> None:
        if isinstance(waiter, Proposal):
            waiter.index = index
            waiter.finish(result, error)
        elif self._transport is not None:
            if error is None:
                self._transport.send(waiter.peer, ["fwd_ok", waiter.request, result, index])
            else:
                self._transport.send(waiter.peer, ["fwd_err", waiter.request, str(error)])

    def _on_forwarded(self, peer: int, requests: list[tuple[int, bytes]]) -> None:
        assert self._transport is not None
        if not requests:
            return
        try:
            if self._role is not Role.LEADER:
                raise NotLeaderError(self._leader)
            term = self._raw.raft.term
            last = self._raw.propose_many([data for _, data in requests])
        except (NotLeaderError, ProposalDroppedError) as exc:
            for request, _ in requests:
                self._transport.send(peer, ["fwd_err", request, f"not accepted: {exc}"])
            return
        deadline = trio.current_time() + self.config.request_timeout
        first = last - len(requests) + 1
        for offset, (request, _) in enumerate(requests):
            self._pending[first + offset] = (term, RemoteProposal(peer, request), deadline)

    def _on_forward_ok(self, frame: Any) -> None:
        """The leader committed a proposal we forwarded: ``["fwd_ok", request, result, index]``."""
        entry = self._forwarded.pop(int(frame[1]), None)
        if entry is not None:
            proposal = entry[0]
            if not isinstance(frame[2], dict):
                raise ValueError("malformed result")
            proposal.index = int(frame[3])
            if self.tree.applied_index >= proposal.index:
                proposal.finish(frame[2])
            else:
                # Read-your-writes on this node: answer once our own tree has applied it too.
                self._awaiting_apply.setdefault(proposal.index, []).append((proposal, frame[2]))

    def _on_forward_err(self, frame: Any) -> None:
        """The leader refused a proposal we forwarded: ``["fwd_err", request, text]``."""
        entry = self._forwarded.pop(int(frame[1]), None)
        if entry is not None:
            entry[0].finish(error=ReplicationError(str(frame[2])))
