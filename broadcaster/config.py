"""Server settings: defaults, a TOML file, then command-line overrides."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from protocol import DEFAULT_MAX_FRAME_SIZE

DEFAULT_PORT = 12800


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    data_dir: Path = Path("data")
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE
    send_queue_bytes: int = 32 * 1024 * 1024  # per client, beyond which it is cut as a slow consumer
    heartbeat_interval: float = 5.0  # ping an idle client this often
    heartbeat_timeout: float = 20.0  # drop a client silent for this long
    handshake_timeout: float = 10.0
    room_tail: int = 10_000  # operations of history kept per room for resume
    snapshot_chunk_bytes: int = 1024 * 1024
    presence_rate: float = 30.0  # presence updates relayed per client per second (extra ones coalesce)
    max_inflight_ops: int = 1024  # per client, before the server stops reading from it
    room_list_interval: float = 0.25  # room-list updates are coalesced over this period
    fsync: bool = True

    def update(self, values: dict[str, Any]) -> None:
        known = {f.name: f for f in fields(self)}
        for name, value in values.items():
            if value is None:
                continue
            if name not in known:
                raise ValueError(f"unknown setting {name!r}")
            if name == "data_dir":
                value = Path(value)
            setattr(self, name, value)


def load_config(path: str | Path | None, overrides: dict[str, Any] | None = None) -> ServerConfig:
    config = ServerConfig()
    if path is not None:
        with open(path, "rb") as f:
            document = tomllib.load(f)
        config.update(document.get("server", {}))
    if overrides:
        config.update(overrides)
    return config
