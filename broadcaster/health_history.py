"""The last ten minutes of this node's health, one sample a second, kept in memory for the status page.

Each sample: ops/s (writes accepted), connected clients, the p99 of write delivery (a client write's arrival
to its commit and fan-out to the room's members here) and of fsync over that second, and the replication lag
(entries) of every peer as this node sees it (a leader knows each follower's; every node knows its own apply
lag). ``GET /history`` on the HTTP port serves it as columns, which the page's charts (uPlot) draw as they
are. Nothing here survives a restart: Prometheus (docs/grafana-dashboard.json) keeps the long view.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from .metrics import Metrics

WINDOW_SECONDS = 600


@dataclass
class Sample:
    time: float  # seconds since the epoch
    ops_per_second: float
    clients: int
    write_p99: float | None  # seconds; None when no write completed in that second
    fsync_p99: float | None
    lag: dict[str, int] = field(default_factory=dict)  # peer (or "apply") -> entries behind


class HealthHistory:
    def __init__(self, window: int = WINDOW_SECONDS):
        self.samples: deque[Sample] = deque(maxlen=window)
        self._last: tuple[float, int] | None = None  # (time, operations) at the previous sample

    def sample(self, now: float, metrics: Metrics, clients: int, node: dict[str, Any]) -> Sample:
        """Record one second (called every second by the server)."""
        rate = 0.0
        if self._last is not None and now > self._last[0]:
            rate = (metrics.operations - self._last[1]) / (now - self._last[0])
        self._last = (now, metrics.operations)
        sample = Sample(
            time=now,
            ops_per_second=round(rate, 2),
            clients=clients,
            write_p99=metrics.recent_writes.take_p99(),
            fsync_p99=metrics.recent_fsync.take_p99(),
            lag=node_lag(node),
        )
        self.samples.append(sample)
        return sample

    def document(self, node_id: Any = None) -> dict[str, Any]:
        """Columns, as uPlot takes them: ``time`` and one list per series (None where there is no value)."""
        samples = list(self.samples)
        peers = sorted({peer for s in samples for peer in s.lag}, key=_peer_order)
        return {
            "node": node_id,
            "window_seconds": self.samples.maxlen,
            "time": [round(s.time, 3) for s in samples],
            "ops_per_second": [s.ops_per_second for s in samples],
            "clients": [s.clients for s in samples],
            "write_p99_ms": [_ms(s.write_p99) for s in samples],
            "fsync_p99_ms": [_ms(s.fsync_p99) for s in samples],
            "lag": {peer: [s.lag.get(peer) for s in samples] for peer in peers},
        }


def node_lag(node: dict[str, Any]) -> dict[str, int]:
    """Entries behind, by peer (the leader's view of each follower) and "apply" (committed, not applied)."""
    lag = {}
    me = str(node.get("id"))
    for peer, value in (node.get("lag") or {}).items():
        if isinstance(value, int | float) and not isinstance(value, bool) and str(peer) != me:
            lag[f"node {peer}"] = int(value)
    commit, applied = node.get("commit"), node.get("applied")
    if isinstance(commit, int) and isinstance(applied, int):
        lag["apply"] = max(0, commit - applied)
    return lag


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def _peer_order(name: str) -> tuple[int, str]:
    return (0 if name == "apply" else 1, name)
