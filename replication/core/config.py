"""``Config``: the tunables of one Raft node, checked once when the node is built."""

from __future__ import annotations

from dataclasses import dataclass


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
