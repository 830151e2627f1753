"""blendsync broadcaster: rooms, fan-out and presence over the replicated tree store."""

__version__ = "0.1.0"
