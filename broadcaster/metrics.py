"""Counters kept by the broadcaster and their Prometheus text rendering (exposition format 0.0.4).

Counting is plain integer arithmetic on attributes, done where the work already happens (per received
chunk, per written batch, per operation), so it costs the hot path next to nothing. Everything else is
computed when scraped.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_left
from collections import deque
from collections.abc import Iterable
from typing import Any

FSYNC_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)
WRITE_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
RECENT_SAMPLES = 4096  # observations kept per second for the status page's p99 (a uniform sample beyond)


class Histogram:
    def __init__(self, buckets: Iterable[float]):
        self.bounds = tuple(buckets)
        self.counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf
        self.total = 0.0
        self.count = 0

    def observe(self, value: float, times: int = 1) -> None:
        self.counts[bisect_left(self.bounds, value)] += times
        self.total += value * times
        self.count += times


class Recent:
    """The observations since the last ``take``: at most RECENT_SAMPLES of them, a uniform sample
    (reservoir) when there were more, so that a busy second costs bounded memory."""

    def __init__(self) -> None:
        self.values: list[float] = []
        self.seen = 0

    def add(self, value: float) -> None:
        self.seen += 1
        if len(self.values) < RECENT_SAMPLES:
            self.values.append(value)
        elif (slot := random.randrange(self.seen)) < RECENT_SAMPLES:
            self.values[slot] = value

    def take_p99(self) -> float | None:
        """The 99th percentile of what came since the last call (None: nothing came), and start over."""
        values, self.values, self.seen = sorted(self.values), [], 0
        if not values:
            return None
        return values[min(len(values) - 1, math.ceil(0.99 * len(values)) - 1)]


class Metrics:
    def __init__(self) -> None:
        self.connections_total = 0
        self.received_bytes = 0
        self.sent_bytes = 0
        self.operations = 0  # set/delete/batch accepted for commit
        self.events = 0  # relayed room events
        self.presence = 0  # presence messages received
        self.blob_bytes_received = 0  # blob_put data accepted for storing
        self.blob_bytes_sent = 0  # blob_data sent
        self.errors: dict[str, int] = {}  # error frames sent, by code
        self.limits: dict[str, int] = {}  # refusals by limit name
        self.auth_failures = 0
        self.token_rechecks = 0  # hellos whose token was unknown here: looked up again once caught up
        self.fsync = Histogram(FSYNC_BUCKETS)  # each durable write, as the node reports it (Node.on_fsync)
        # Each client write, from its arrival to its commit and fan-out to the room's members here.
        self.writes = Histogram(WRITE_BUCKETS)
        self.recent_fsync = Recent()
        self.recent_writes = Recent()
        self._samples: deque[tuple[float, int, int, int]] = deque(maxlen=11)

    def observe_fsync(self, seconds: float) -> None:
        self.fsync.observe(seconds)
        self.recent_fsync.add(seconds)

    def observe_write(self, seconds: float) -> None:
        self.writes.observe(seconds)
        self.recent_writes.add(seconds)

    def error(self, code: str) -> None:
        self.errors[code] = self.errors.get(code, 0) + 1

    def limit(self, name: str) -> None:
        self.limits[name] = self.limits.get(name, 0) + 1

    def sample(self, now: float) -> None:
        """Called every second: keeps the last ten seconds for the rates shown on /status."""
        self._samples.append((now, self.operations, self.received_bytes, self.sent_bytes))

    def rates(self) -> dict[str, float]:
        if len(self._samples) < 2:
            return {"ops_per_second": 0.0, "received_bytes_per_second": 0.0, "sent_bytes_per_second": 0.0}
        (t0, o0, r0, s0), (t1, o1, r1, s1) = self._samples[0], self._samples[-1]
        dt = max(t1 - t0, 1e-9)
        return {
            "ops_per_second": round((o1 - o0) / dt, 1),
            "received_bytes_per_second": round((r1 - r0) / dt, 1),
            "sent_bytes_per_second": round((s1 - s0) / dt, 1),
        }


class Exposition:
    """Builds the text format: ``# HELP``, ``# TYPE`` and samples, one family at a time."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str, samples: Iterable[tuple[dict[str, Any], Any]]):
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            self.lines.append(f"{name}{_labels(labels)} {_number(value)}")

    def one(self, name: str, kind: str, help_text: str, value: Any) -> None:
        self.family(name, kind, help_text, [({}, value)])

    def histogram(self, name: str, help_text: str, histogram: Histogram) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} histogram")
        cumulative = 0
        for bound, count in zip((*histogram.bounds, math.inf), histogram.counts, strict=True):
            cumulative += count
            le = "+Inf" if bound == math.inf else repr(bound)
            self.lines.append(f'{name}_bucket{{le="{le}"}} {cumulative}')
        self.lines.append(f"{name}_sum {_number(histogram.total)}")
        self.lines.append(f"{name}_count {histogram.count}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _labels(labels: dict[str, Any]) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{k}="{_escape(str(v))}"' for k, v in labels.items())
    return "{" + inner + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isinf(value):
            return "+Inf" if value > 0 else "-Inf"
        return repr(value)
    return "NaN"
