"""Errors of replication: what a proposal, read or watch may fail with."""

from __future__ import annotations


class ReplicationError(Exception):
    """A proposal or read could not be served (no leader, shutting down, timed out)."""


class NotLeader(ReplicationError):
    def __init__(self, leader: int | None):
        super().__init__(f"not the leader (leader: {leader})")
        self.leader = leader


class OutcomeUnknown(ReplicationError):
    """The proposal was sent but no answer came in time: it may or may not commit (retry with its seq)."""
