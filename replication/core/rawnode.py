"""``RawNode``: the driver-facing API of the Raft core (the ready()/advance() contract).

The driver loop, in order, for each Ready:

1. persist ``rd.snapshot`` (if any), then ``rd.entries`` (truncating conflicting suffixes), then
   ``rd.hard_state`` (if any) -- fsync when ``rd.must_sync``;
2. only then send ``rd.messages`` (they may promise what step 1 made durable: votes, acks);
   heartbeats and their answers promise nothing unpersisted, and ``take_heartbeats`` hands them out
   at once, even while a write is in flight;
3. restore the state machine from ``rd.snapshot`` and apply ``rd.committed_entries`` in order,
   calling ``apply_conf_change`` for each CONF_CHANGE entry; hand ``rd.read_states`` to waiting readers;
4. call ``advance(rd)``.

Only one Ready may be outstanding: call ``advance`` before the next ``ready``.
"""

from __future__ import annotations

from typing import Any

from .raft import Config, Raft
from .storage import LogStorage
from .types import ConfChange, HardState, Message, MessageType, Ready, SoftState

# A leader's heartbeat carries its term and a commit index no higher than what that follower has
# acknowledged, so durable there; the answer says only that the follower heard it. Neither depends on
# what this node has yet to persist (a vote, an entry), so they may leave before its write is durable.
HEARTBEATS = frozenset({MessageType.HEARTBEAT, MessageType.HEARTBEAT_RESP})


class RawNode:
    def __init__(self, config: Config, storage: LogStorage) -> None:
        self.raft = Raft(config, storage)
        self._prev_soft: SoftState = self.raft.soft_state()
        self._prev_hard: HardState = self.raft.hard_state()

    @property
    def id(self) -> int:
        return self.raft.id

    # -- inputs ---------------------------------------------------------------------------------

    def tick(self) -> None:
        """Advance logical time by one tick (election and heartbeat timeouts count ticks)."""
        self.raft.tick()

    def step(self, msg: Message) -> None:
        """Feed a message received from a peer."""
        if msg.dst != self.raft.id:
            raise ValueError(f"message for node {msg.dst} stepped into node {self.raft.id}")
        if msg.src == self.raft.id:
            raise ValueError("a node does not send messages to itself")
        self.raft.step(msg)

    def campaign(self) -> None:
        """Start an election now (a pre-election first if PreVote is on)."""
        self.raft.hup()

    def propose(self, data: bytes) -> int:
        """Append ``data`` as a NORMAL entry; returns its index.

        The entry is ours if the committed entry at that index has the term current at proposal.
        Raises NotLeaderError or ProposalDroppedError.
        """
        return self.raft.propose_entries([data])

    def propose_many(self, payloads: list[bytes]) -> int:
        """Append several NORMAL entries with one broadcast; returns the index of the last one.

        The i-th payload gets index ``last - len(payloads) + 1 + i``.
        """
        return self.raft.propose_entries(payloads)

    def propose_conf_change(self, cc: ConfChange) -> int:
        """Propose a single-server change; returns the index of its entry."""
        return self.raft.propose_conf_change(cc)

    def apply_conf_change(self, cc: ConfChange) -> frozenset[int]:
        """Make a committed CONF_CHANGE entry take effect; returns the new voters to persist."""
        return self.raft.apply_conf_change(cc)

    def read_index(self, ctx: bytes) -> None:
        """Ask for a linearizable read point; answered later as ``ReadState(index, ctx)``."""
        self.raft.read_index(ctx)

    def transfer_leader(self, to: int) -> None:
        self.raft.transfer_leader(to)

    def report_unreachable(self, peer: int) -> None:
        self.raft.report_unreachable(peer)

    def report_snapshot(self, peer: int, ok: bool) -> None:
        """Tell the leader whether a SNAPSHOT message to ``peer`` was delivered."""
        self.raft.report_snapshot(peer, ok)

    # -- outputs --------------------------------------------------------------------------------

    def take_heartbeats(self) -> list[Message]:
        """Take the heartbeats and heartbeat answers out of the next Ready, to send now.

        A node that sends only after each durable write goes silent for as long as a write takes: a
        leader whose fsync outlasts the election timeout loses its followers, and followers busy
        writing a large entry fail the leader's check-quorum. Heartbeats sent meanwhile keep both.
        Every other message still waits for the Ready it belongs to (the Raft thesis, 10.2.1, lets a
        leader send appends early too, but this core counts the leader's own entries at append).
        """
        msgs = self.raft.msgs
        taken = [m for m in msgs if m.type in HEARTBEATS]
        if taken:
            self.raft.msgs = [m for m in msgs if m.type not in HEARTBEATS]
        return taken

    def has_ready(self) -> bool:
        r = self.raft
        return bool(
            r.soft_state() != self._prev_soft
            or r.hard_state() != self._prev_hard
            or r.log.unstable.entries
            or r.log.has_pending_snapshot()
            or r.msgs
            or r.read_states
            or r.log.has_next_committed_entries()
        )

    def ready(self) -> Ready:
        r = self.raft
        rd = Ready(
            entries=r.log.unstable_entries(),
            snapshot=r.log.unstable.snapshot,
            committed_entries=r.log.next_committed_entries(r.config.max_committed_bytes_per_ready),
            messages=r.msgs,
            read_states=r.read_states,
        )
        r.msgs = []
        r.read_states = []
        soft = r.soft_state()
        if soft != self._prev_soft:
            rd.soft_state = soft
            self._prev_soft = soft
        hard = r.hard_state()
        if hard != self._prev_hard:
            rd.hard_state = hard
        # Commit-index changes alone can be recovered after a crash; term, vote and entries cannot.
        rd.must_sync = bool(
            rd.entries
            or rd.snapshot is not None
            or hard.term != self._prev_hard.term
            or hard.vote != self._prev_hard.vote
        )
        return rd

    def advance(self, rd: Ready) -> None:
        """Confirm that ``rd`` was persisted and applied as described in the module docstring."""
        log = self.raft.log
        if rd.hard_state is not None:
            self._prev_hard = rd.hard_state
        if rd.snapshot is not None:
            log.stable_snapshot_to(rd.snapshot.meta.index)
            log.applied_to(rd.snapshot.meta.index)
        if rd.entries:
            last = rd.entries[-1]
            log.stable_to(last.index, last.term)
        if rd.committed_entries:
            log.applied_to(rd.committed_entries[-1].index)

    def status(self) -> dict[str, Any]:
        return self.raft.status()
