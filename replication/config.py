"""The configuration of one replication node."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class NodeConfig:
    data_dir: Path
    node_id: int = 1
    # Other initial voters: id -> "host:port". With join, the current members (addresses only).
    peers: dict[int, str] = field(default_factory=dict)
    raft_listen: str | None = None  # "host:port" for peers; needed with peers or join
    join: bool = False  # start as a non-voter waiting to be added (see add_member)
    cluster_secret: bytes | None = None
    server_ssl: ssl.SSLContext | None = None
    client_ssl: ssl.SSLContext | None = None
    tick_interval: float = 0.05
    election_ticks: int = 10  # 0.5 s to 1 s with the default tick
    heartbeat_ticks: int = 1
    fsync: bool = True
    request_timeout: float = 5.0  # forwarded proposals and reads give up after this
    max_batch_entries: int = 4096
    max_entry_bytes: int = 64 * 1024 * 1024 + 4096
    log_retain: int = 8192  # entries kept behind the applied index (for lagging followers)
    # ... and at most this many bytes of them (half of it once compacted): the blobs entries carried stay
    # on disk while the log keeps the entries, whether anything still holds them or not.
    log_retain_bytes: int = 1024 * 1024 * 1024
    # The tree is persisted every this many applied entries, or after tree_flush_idle seconds without
    # writes: between two flushes the log holds the difference, so fewer pages are fsync'd per commit.
    # The entries bound what a restart re-applies; the idle flush only tidies a resting node, so it waits
    # for a real rest: an artist's edits seconds apart share one flush instead of one each.
    tree_flush_entries: int = 1024
    tree_flush_idle: float = 10.0
    watch_backlog: int = 65536  # recent events kept so watch(after_index=...) can start in the past
    seed: int | None = None  # for the election timer; random when None
