"""The server process's garbage collection: young collections less often, full ones when nothing happens.

CPython's cyclic collector walks every tracked object of the generations it collects. A server's heap is
mostly its replicated tree (an object per key with its payload), so a full collection (generation 2) of a
server holding a 2,000-object scene walks it for ~0.25 s, stalling every client of every room. By default
the collector starts one whenever the long-lived objects grew by a quarter, which is exactly while an
artist publishes a heavy scene: 15 full collections, 1.6 s, during one such publish. Young collections
come every 700 net allocations by default: that publish made 3,613 of them (312 with this policy).
(docs/decisions/0011, docs/performance.md.)

So ``blendsync serve`` (not a broadcaster run inside another program: the policy is the process's):
- collects the young generation every :data:`CHECK` seconds (:func:`run_collections`), and also after
  :data:`YOUNG` net allocations, the middle one every :data:`MIDDLE` young collections. A young collection
  walks every object allocated since the last one that is still alive; the allocation count alone let that
  grow to tens of thousands (CPython counts allocations less deallocations, and a server frees old
  objects all the time): 20 to 50 ms pauses while 500 viewers were connected. On the clock it is what
  a quarter of a second allocated, a millisecond or two;
- never starts a full collection on an allocation. :func:`run_collections` runs them, once objects
  were promoted to the old generation since the last one, when the server did nothing for :data:`IDLE`
  seconds (no write committed or replicated, no byte received or sent, no connection) and :data:`MIN_GAP`
  passed since the last one; or, busy or not, when :data:`MAX_GAP` passed (garbage cycles among
  long-lived objects are freed on a server that never rests too).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import trio

YOUNG: Final = 10_000  # net allocations of tracked objects between young collections (CPython: 700)
MIDDLE: Final = 10  # young collections between middle ones (CPython's)
_NEVER: Final = 2**31 - 1  # middle collections before a full one: never, in practice (CPython: 10)
IDLE: Final = 1.0  # seconds without activity before a full collection may run
MIN_GAP: Final = 30.0  # seconds between full collections run because the server was idle
MAX_GAP: Final = 600.0  # seconds after which a full collection runs whatever the load
CHECK: Final = 0.25  # how often the task collects the young generation and looks at the old (seconds)


def full_collection_due(promoted: bool, idle_for: float, since_last: float) -> bool:
    """Whether to collect the old generation now: something was promoted into it since the last full
    collection, and either the server rested :data:`IDLE` seconds at least :data:`MIN_GAP` after the
    last one, or :data:`MAX_GAP` passed."""
    if not promoted:
        return False
    return since_last >= MAX_GAP or (idle_for >= IDLE and since_last >= MIN_GAP)


@dataclass
class CollectorStats:
    """The collections of this process, timed by a ``gc.callbacks`` hook, for /metrics."""

    seconds: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])  # by generation
    longest: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    scheduled: int = 0  # full collections run by run_collections
    _started: float = 0.0

    def callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        generation = info["generation"]
        elapsed = time.perf_counter() - self._started
        self.seconds[generation] += elapsed
        self.longest[generation] = max(self.longest[generation], elapsed)


_installed: list[CollectorStats] = []  # installs not undone yet
_before: list[tuple[int, int, int]] = []  # the thresholds before the first of them


def install() -> CollectorStats:
    """Set this process's thresholds and start timing its collections (undo with :func:`uninstall`)."""
    stats = CollectorStats()
    if not _installed:
        _before[:] = [gc.get_threshold()]
    _installed.append(stats)
    gc.set_threshold(YOUNG, MIDDLE, _NEVER)
    gc.callbacks.append(stats.callback)
    return stats


def uninstall(stats: CollectorStats) -> None:
    """Stop timing for ``stats``; the last one undone puts the thresholds back."""
    if stats in _installed:
        _installed.remove(stats)
        gc.callbacks.remove(stats.callback)
        if not _installed:
            gc.set_threshold(*_before.pop())


async def run_collections(stats: CollectorStats, activity: Callable[[], int]) -> None:
    """Collect the young generation every :data:`CHECK` seconds, and the old one when it is due
    (:func:`full_collection_due`), until cancelled. ``activity`` is a number that changes whenever the server
    does something for its clients."""
    last_activity = activity()
    active_at = trio.current_time()
    # As if one ran MIN_GAP before the start: the first may run at the first rest, and a busy start (rooms
    # loaded, a scene published) is not overdue for the next MAX_GAP - MIN_GAP.
    last_full = active_at - MIN_GAP
    while True:
        await trio.sleep(CHECK)
        gc.collect(0)
        now = trio.current_time()
        seen = activity()
        if seen != last_activity:
            last_activity, active_at = seen, now
        if full_collection_due(gc.get_count()[2] > 0, now - active_at, now - last_full):
            gc.collect()
            stats.scheduled += 1
            last_full = trio.current_time()
