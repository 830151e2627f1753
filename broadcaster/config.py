"""Server settings: defaults, a TOML file, then command-line overrides.

Every setting is documented in docs/operations.md. In a TOML file, settings go in a ``[server]`` table;
the limits may also go in a ``[limits]`` table (same names).
"""

from __future__ import annotations

import ipaddress
import math
import tomllib
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from protocol import DEFAULT_MAX_FRAME_SIZE

ANNOUNCE_INTERVAL = 2.0  # seconds between a cluster node's announcements of its members (peers.py)
# A node silent this long is taken for gone: its members leave the rooms' lists (peers.py), and no shorter
# dead_node_timeout is taken, which would now and then release a live but busy node's locks.
SILENCE_LIMIT = 3 * ANNOUNCE_INTERVAL + 1.0

DEFAULT_PORT = 12800
# One room write is one log entry of up to two client frames (max_entry_bytes), and peers send an entry in one
# frame of their own (replication.transport.DEFAULT_MAX_FRAME, 512 MiB): a larger max_frame_size would let a
# client write what the cluster can never replicate.
MAX_FRAME_SIZE_LIMIT = 128 * 1024 * 1024


def max_entry_bytes(max_frame_size: int) -> int:
    """The largest log entry of a server with this max_frame_size.

    A room write holds each value twice (the key and the room's log entry), so a value as large as a
    client frame must fit twice in one command.
    """
    return 2 * max_frame_size + 1024 * 1024


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    data_dir: Path = Path("data")
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE
    send_queue_bytes: int = 32 * 1024 * 1024  # per client, beyond which it is cut as a slow consumer
    heartbeat_interval: float = 5.0  # ping an idle client this often
    heartbeat_timeout: float = 20.0  # drop a client silent for this long
    close_grace: float = 2.0  # how long a session being closed may take to deliver its last error frame
    handshake_timeout: float = 10.0  # from the accept to a complete hello, however the bytes trickle in
    # A frame must arrive within heartbeat_timeout + length / this (64 MiB: 20 s + 1024 s at 512 kbit/s).
    min_frame_bytes_per_second: int = 64 * 1024
    room_tail: int = 10_000  # operations of history kept per room (0: all); a room may set its own
    history_days: int = 0  # also drop logged operations older than this (0: no age limit)
    checkpoint_interval: float = 600.0  # seconds of activity between automatic checkpoints (0: none)
    auto_checkpoints_kept: int = 24  # per room, the oldest automatic checkpoints beyond this go (0: all kept)
    snapshot_chunk_bytes: int = 1024 * 1024
    presence_rate: float = 30.0  # presence updates relayed per client per second (extra ones coalesce)
    max_inflight_ops: int = 1024  # per client, before the server stops reading from it
    room_list_interval: float = 0.25  # room-list updates are coalesced over this period
    fsync: bool = True
    # Access. With a tokens file every client must present a token (docs/security.md).
    tokens_file: Path | None = None
    allow_no_auth: bool = False  # listen on a non-loopback address without auth (a trusted network)
    # TLS for client connections: with a certificate and key, the client port speaks TLS only.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None  # also require client certificates signed by this CA
    # The HTTP admin port (metrics, /status, status page); off unless a port is given.
    http_host: str = "127.0.0.1"
    http_port: int | None = None
    # msgpack wheels for the add-on zip the HTTP port serves (one per platform; else a pure-Python one).
    addon_wheels_dir: Path | None = None
    # Limits (0 = no limit). A client past one gets limit_exceeded or rate_limited naming it.
    max_rooms: int = 10_000
    max_clients: int = 1_000
    max_room_keys: int = 1_000_000
    max_room_bytes: int = 16 * 1024**3
    max_blob_bytes: int = 0  # all blobs of the server together (shared by rooms, stored once)
    max_room_blob_bytes: int = 0  # blobs referenced by one room's keys (counted per key)
    pin_grace: float = 600.0  # an unreferenced upload is kept this long after its session is gone
    max_ops_per_second: float = 0.0  # set/delete/batch/event per client, burst of one second's worth
    max_presence_per_second: float = 120.0  # presence messages accepted per client
    # Room-password guessing (docs/security.md): wrong passwords allowed before a lockout (0 = no limit),
    # then a lockout of password_lockout seconds, doubling per further failure up to password_lockout_max.
    password_failures_per_address: int = 5
    password_failures_per_room: int = 20
    password_lockout: float = 1.0
    password_lockout_max: float = 60.0
    # Cluster ([cluster] table). A node without peers is a one-node cluster: the embedded default.
    node_id: int = 1
    peers: str = ""  # the other initial members: "2=host:raftport,3=host:raftport"
    raft_listen: str | None = None  # host:port for the other nodes (cluster traffic)
    cluster_secret_file: Path | None = None  # nodes prove they know it before any Raft message
    join: bool = False  # start as a new member, to be added with `blendsync cluster add`
    advertise: str | None = None  # the client address other nodes hand out for this one
    cluster_ca: Path | None = None  # with tls_cert/tls_key: cluster traffic over TLS, peers checked by it
    tick_interval: float = 0.05  # Raft tick; elections time out after 10 to 20 ticks
    dead_node_timeout: float = 30.0  # the leader releases the locks of a node it has not heard for this long

    def update(self, values: dict[str, Any]) -> None:
        known = {f.name: f for f in fields(self)}
        hints = typing.get_type_hints(type(self))
        for name, value in values.items():
            if value is None:
                continue
            if name not in known:
                raise ValueError(f"unknown setting {name!r}")
            setattr(self, name, _coerce(name, hints[name], value))

    def peer_map(self) -> dict[int, str]:
        """``peers`` as {node id: raft address}; raises ConfigError when malformed."""
        peers: dict[int, str] = {}
        for item in filter(None, (part.strip() for part in self.peers.split(","))):
            node_id, sep, address = item.partition("=")
            if not sep or not node_id.strip().isdigit() or ":" not in address:
                raise ConfigError(f"peers must look like 2=host:port,3=host:port (got {item!r})")
            peers[int(node_id)] = address.strip()
        if self.node_id in peers:
            raise ConfigError(f"peers lists this node ({self.node_id}) itself")
        return peers

    @property
    def auth_enabled(self) -> bool:
        return self.tokens_file is not None

    @property
    def tls_enabled(self) -> bool:
        return self.tls_cert is not None

    def check(self) -> None:
        """Refuse settings that are unsafe or incomplete, saying why (raises ConfigError)."""
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("tls_cert and tls_key go together: give both or neither")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ConfigError("tls_client_ca needs tls_cert and tls_key")
        if not self.auth_enabled and not self.allow_no_auth:
            exposed = [h for h in [self.host] if not is_loopback(h)]
            if self.http_port is not None and not is_loopback(self.http_host):
                exposed.append(self.http_host)
            if exposed:
                raise ConfigError(
                    f"refusing to listen on {exposed[0]!r} without authentication: anyone who can reach it"
                    " could read and change every room. Set tokens_file (blendsync token add NAME creates"
                    " one), or pass --allow-no-auth (allow_no_auth = true) on a trusted network."
                )
        if self.cluster_ca is not None and self.tls_cert is None:
            raise ConfigError("cluster_ca needs tls_cert and tls_key (the node's own certificate)")
        if (self.peer_map() or self.join) and (not self.raft_listen or self.cluster_secret_file is None):
            raise ConfigError("a cluster node needs raft_listen and cluster_secret_file")
        if not 0 < self.max_frame_size <= MAX_FRAME_SIZE_LIMIT:
            raise ConfigError(
                f"max_frame_size must be 1 to {MAX_FRAME_SIZE_LIMIT} bytes: every write is replicated as"
                " one log entry of up to twice a frame"
            )
        for name in (
            "handshake_timeout",
            "heartbeat_timeout",
            "min_frame_bytes_per_second",
            "close_grace",
            "pin_grace",
            "tick_interval",
            "dead_node_timeout",
        ):
            if not getattr(self, name) > 0:  # NaN too: TOML has it, and no deadline can be NaN
                raise ConfigError(f"{name} must be more than 0")
        for name in ("tick_interval", "dead_node_timeout"):  # endless: never a campaign, never a release
            if not math.isfinite(getattr(self, name)):
                raise ConfigError(f"{name} must be a finite number of seconds")
        if self.dead_node_timeout < SILENCE_LIMIT:
            raise ConfigError(
                f"dead_node_timeout must be at least {SILENCE_LIMIT:g} seconds: a live node announces itself"
                f" every {ANNOUNCE_INTERVAL:g} s, and a shorter timeout would release a busy node's locks"
            )
        if not 0 < self.password_lockout <= self.password_lockout_max:
            raise ConfigError("password_lockout must be more than 0 and at most password_lockout_max")
        for name in (
            "max_rooms",
            "max_clients",
            "max_room_keys",
            "max_room_bytes",
            "max_blob_bytes",
            "max_room_blob_bytes",
            "password_failures_per_address",
            "password_failures_per_room",
            "room_tail",
            "history_days",
            "checkpoint_interval",
            "auto_checkpoints_kept",
        ):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be 0 (no limit) or more")


class ConfigError(ValueError):
    """Settings the server refuses to start with; the message says why and what to do."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # "", "0.0.0.0"-like names and host names: treat as exposed


def _coerce(name: str, tp: Any, value: Any) -> Any:
    options = [t for t in typing.get_args(tp) if t is not type(None)] or [tp]
    target = options[0]
    if target is Path:
        if not isinstance(value, str | Path):
            raise ValueError(f"setting {name!r} must be a path")
        return Path(value)
    if target is bool:
        if type(value) is not bool:
            raise ValueError(f"setting {name!r} must be true or false")
        return value
    if target is int:
        if type(value) is not int:
            raise ValueError(f"setting {name!r} must be an integer")
        return value
    if target is float:
        if type(value) not in (int, float):
            raise ValueError(f"setting {name!r} must be a number")
        return float(value)
    if target is str and not isinstance(value, str):
        raise ValueError(f"setting {name!r} must be a string")
    return value


def load_config(path: str | Path | None, overrides: dict[str, Any] | None = None) -> ServerConfig:
    config = ServerConfig()
    if path is not None:
        with open(path, "rb") as f:
            document = tomllib.load(f)
        unknown = set(document) - {"server", "limits", "cluster"}
        if unknown:
            raise ValueError(
                f"unknown table(s) {sorted(unknown)} in {path} (expected [server], [limits], [cluster])"
            )
        config.update(document.get("server", {}))
        config.update(document.get("limits", {}))
        cluster = dict(document.get("cluster", {}))
        if isinstance(cluster.get("peers"), dict):  # [cluster.peers] 2 = "host:port"
            cluster["peers"] = ",".join(f"{k}={v}" for k, v in cluster["peers"].items())
        config.update(cluster)
    if overrides:
        config.update(overrides)
    return config
