"""Settings from TOML ([server] and [limits]) with type checks, and the two log formats."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import pytest

from broadcaster.config import (
    ANNOUNCE_INTERVAL,
    MAX_FRAME_SIZE_LIMIT,
    SILENCE_LIMIT,
    ConfigError,
    ServerConfig,
    is_loopback,
    load_config,
    max_entry_bytes,
)
from broadcaster.logs import configure
from replication.transport import DEFAULT_MAX_FRAME as PEER_MAX_FRAME


def test_limits_table_and_types(tmp_path):
    path = tmp_path / "b.toml"
    path.write_text(
        '[server]\nport = 1\ndata_dir = "x"\ntokens_file = "t.toml"\n\n[limits]\nmax_rooms = 5\n'
        "max_ops_per_second = 100\n"
    )
    config = load_config(path, {"port": 2})
    assert (config.port, config.max_rooms, config.max_ops_per_second) == (2, 5, 100.0)
    assert config.data_dir == Path("x") and config.tokens_file == Path("t.toml")
    path.write_text("[limits]\nmax_rooms = 'many'\n")
    with pytest.raises(ValueError, match="max_rooms"):
        load_config(path)
    path.write_text("[limit]\nmax_rooms = 1\n")
    with pytest.raises(ValueError, match="unknown table"):
        load_config(path)
    with pytest.raises(ValueError, match="unknown setting"):
        ServerConfig().update({"max_romos": 1})


def test_unsafe_or_incomplete_settings_are_refused():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("") and not is_loopback("studio.lan")
    with pytest.raises(ConfigError, match="without authentication"):
        ServerConfig(host="::").check()
    ServerConfig(host="::", allow_no_auth=True).check()
    with pytest.raises(ConfigError, match="tls_cert and tls_key"):
        ServerConfig(tls_cert=Path("c.pem")).check()


def test_the_largest_frame_makes_an_entry_peers_can_carry():
    ServerConfig(max_frame_size=MAX_FRAME_SIZE_LIMIT).check()
    for refused in (MAX_FRAME_SIZE_LIMIT + 1, 0):
        with pytest.raises(ConfigError, match="max_frame_size"):
            ServerConfig(max_frame_size=refused).check()
    # The Raft message around the entry is small; 1 MiB is far more than it needs.
    assert max_entry_bytes(MAX_FRAME_SIZE_LIMIT) + 1024 * 1024 <= PEER_MAX_FRAME


def test_the_raft_tick_and_the_timeouts_must_be_more_than_zero(tmp_path):
    """A tick of 0 would spin and elect at once, a negative one stops the node's ticker, NaN (which TOML
    writes as nan) is no deadline at all, and an endless tick never calls an election."""
    ServerConfig(tick_interval=1e-6).check()
    ServerConfig(tick_interval=3600.0, heartbeat_timeout=math.inf).check()  # no deadline: allowed
    for name in ("tick_interval", "heartbeat_timeout", "handshake_timeout", "dead_node_timeout"):
        for refused in (0.0, -0.0, -1.0, -math.inf, math.nan):
            with pytest.raises(ConfigError, match=f"{name} must be more than 0"):
                ServerConfig(**{name: refused}).check()
    for name in ("tick_interval", "dead_node_timeout"):  # a dead node's locks would be held for ever
        with pytest.raises(ConfigError, match=f"{name} must be a finite"):
            ServerConfig(**{name: math.inf}).check()
    path = tmp_path / "b.toml"
    path.write_text("[server]\ntick_interval = nan\n")
    with pytest.raises(ConfigError, match="tick_interval must be more than 0"):
        load_config(path).check()


def test_the_dead_node_timeout_is_no_shorter_than_a_live_nodes_silence(tmp_path):
    """A live node announces itself every 2 s; a timeout near that released a busy node's locks now and then,
    so the shortest taken is the silence after which its members are dropped too (7 s)."""
    assert SILENCE_LIMIT == 3 * ANNOUNCE_INTERVAL + 1.0 == 7.0
    ServerConfig(dead_node_timeout=SILENCE_LIMIT).check()
    ServerConfig(dead_node_timeout=1e9).check()  # a day or a year: a dead node's locks go, late
    for refused in (math.nextafter(SILENCE_LIMIT, 0), ANNOUNCE_INTERVAL, 1e-6):
        with pytest.raises(ConfigError, match="dead_node_timeout must be at least 7 seconds"):
            ServerConfig(dead_node_timeout=refused).check()
    path = tmp_path / "b.toml"
    path.write_text("[server]\ndead_node_timeout = 2\n")  # an integer in TOML: still seconds
    with pytest.raises(ConfigError, match="dead_node_timeout must be at least 7 seconds"):
        load_config(path).check()


def test_json_log_lines(capsys):
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure("info", "json")
        logging.getLogger("blendsync.session").info(
            "closing %s", "abc", extra={"client_id": "abc", "code": "x"}
        )
        logging.getLogger("blendsync.session").debug("not shown at info")
        configure("warning", "text")
        logging.getLogger("blendsync").warning("plain %d", 1)
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    lines = capsys.readouterr().err.strip().splitlines()
    entry = json.loads(lines[0])
    assert entry["level"] == "info" and entry["logger"] == "blendsync.session"
    assert entry["message"] == "closing abc" and entry["client_id"] == "abc" and entry["ts"].endswith("Z")
    assert len(lines) == 2 and lines[1].endswith("WARNING blendsync: plain 1")
