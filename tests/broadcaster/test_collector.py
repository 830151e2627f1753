"""The server process's garbage collection policy (broadcaster/collector.py): no full collection while
clients are served, one once the server rests."""

from __future__ import annotations

import gc
import math
import re
import urllib.request
import weakref

import pytest
import trio
from support import ServerProcess, artists_in_a_room

from broadcaster import collector
from broadcaster.collector import IDLE, MAX_GAP, MIN_GAP, full_collection_due
from tools.cluster import free_port

EPS = 1e-9


@pytest.mark.parametrize(
    ("promoted", "idle_for", "since_last", "due"),
    [
        (False, math.inf, math.inf, False),  # nothing new in the old generation: nothing to free
        (True, IDLE, MIN_GAP, True),  # rested, long enough after the last (or the start)
        (True, IDLE - EPS, MIN_GAP, False),
        (True, IDLE, MIN_GAP - EPS, False),
        (True, math.inf, 0.0, False),
        (True, 0.0, MAX_GAP, True),  # busy without pause: overdue
        (True, 0.0, MAX_GAP - EPS, False),
        (True, IDLE - EPS, math.inf, True),
        (False, 0.0, MAX_GAP, False),
    ],
)
def test_a_full_collection_is_due_at_the_edges(promoted, idle_for, since_last, due):
    assert full_collection_due(promoted, idle_for, since_last) is due


def test_the_outermost_install_restores_the_thresholds():
    before = gc.get_threshold()
    callbacks = list(gc.callbacks)
    outer = collector.install()
    inner = collector.install()
    try:
        assert gc.get_threshold()[:2] == (collector.YOUNG, collector.MIDDLE)
        assert gc.get_threshold()[2] > 10**9  # no full collection started by an allocation
    finally:
        collector.uninstall(outer)
        assert gc.get_threshold()[:2] == (collector.YOUNG, collector.MIDDLE)  # the inner one still runs
        collector.uninstall(inner)
    assert gc.get_threshold() == before
    assert gc.callbacks == callbacks
    gc.collect(0)
    assert outer.seconds[0] == inner.seconds[0] == 0.0  # no longer timing


async def _busy(activity: list[int], until: float) -> None:
    while trio.current_time() < until:
        activity[0] += 1
        await trio.sleep(collector.CHECK)


async def test_the_task_collects_once_activity_rests(autojump_clock):
    stats = collector.CollectorStats()
    activity = [0]
    gc.disable()  # no automatic collection resets the count this test sets by hand
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(collector.run_collections, stats, lambda: activity[0])
            gc.collect(1)  # promotes into the old generation
            await _busy(activity, 5 * IDLE)  # never at rest for IDLE
            assert stats.scheduled == 0
            await trio.sleep(IDLE + 2 * collector.CHECK)
            assert stats.scheduled == 1
            gc.collect(1)
            await trio.sleep(MIN_GAP / 2)  # at rest, but too soon after the last
            assert stats.scheduled == 1
            while stats.scheduled == 1:
                await trio.sleep(collector.CHECK)
            second = trio.current_time()
            assert 5 * IDLE + MIN_GAP <= second <= 5 * IDLE + MIN_GAP + IDLE + 3 * collector.CHECK
            await trio.sleep(MAX_GAP * 2)  # nothing promoted since: nothing to do
            assert stats.scheduled == 2
            gc.collect(1)
            await _busy(activity, trio.current_time() + 2 * collector.CHECK)  # busy without pause
            assert stats.scheduled == 3  # at once: overdue
            third = trio.current_time()
            gc.collect(1)
            await _busy(activity, third + MAX_GAP - 1)
            assert stats.scheduled == 3
            await _busy(activity, third + MAX_GAP + 1)
            assert stats.scheduled == 4
            nursery.cancel_scope.cancel()
    finally:
        gc.enable()


class _Cycle:
    """An object that refers to itself: only the cyclic collector frees it."""

    def __init__(self) -> None:
        self.me = self


async def test_the_task_collects_the_young_generation_on_the_clock(autojump_clock):
    """A young collection walks what was allocated since the last one: started only by the allocation count
    (allocations less deallocations), it waited while old objects were freed, and then walked tens of
    thousands of objects at once. The task collects the young generation every CHECK seconds."""
    stats = collector.CollectorStats()
    gc.disable()  # no allocation starts a collection: only the task does
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(collector.run_collections, stats, lambda: 0)
            for _ in range(3):
                garbage = _Cycle()
                gone = weakref.ref(garbage)
                del garbage
                assert gone() is not None  # a cycle: reference counting does not free it
                await trio.sleep(collector.CHECK + EPS)
                assert gone() is None
            assert stats.scheduled == 0  # young collections only
            nursery.cancel_scope.cancel()
    finally:
        gc.enable()


def _gc_metrics(http_port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        name: float(value) for name, value in re.findall(r"^(blendsync_gc_\S+) (\S+)$", text, re.MULTILINE)
    }


async def test_a_server_collects_everything_once_its_clients_rest(tmp_path):
    """25,000 keys written in batches: with CPython's defaults the server walks its whole heap several
    times meanwhile; under ``blendsync serve`` it does not, nor while a client goes on sending presence,
    and it frees it all once its client rests."""
    http_port = free_port()
    server = ServerProcess(tmp_path / "d", extra=["--http-port", str(http_port)])
    host, port = server.start()
    try:
        async with artists_in_a_room((host, port), ("ana",), "r") as (ana,):
            before = await trio.to_thread.run_sync(_gc_metrics, http_port)
            for batch in range(250):
                await ana.batch([["set", f"k{batch}/{i}", b"x" * 50] for i in range(100)])
            busy = await trio.to_thread.run_sync(_gc_metrics, http_port)
            full = 'blendsync_gc_collections_total{generation="2"}'
            assert busy[full] == before[full]
            assert busy["blendsync_gc_scheduled_total"] == 0
            assert busy['blendsync_gc_collections_total{generation="1"}'] > 0  # promoted: one is due
            for _ in range(int(3 * IDLE / 0.2)):  # no write, but a client still at work: not at rest
                await ana.presence(view=[1.0, 2.0, 3.0])
                await trio.sleep(0.2)
            busy = await trio.to_thread.run_sync(_gc_metrics, http_port)
            assert busy[full] == before[full]
            with trio.fail_after(10):
                while (rested := await trio.to_thread.run_sync(_gc_metrics, http_port))[full] == busy[full]:
                    await trio.sleep(0.1)
            assert rested["blendsync_gc_scheduled_total"] == 1
            assert rested[full] == busy[full] + 1
            assert rested['blendsync_gc_longest_seconds{generation="2"}'] > 0
    finally:
        server.stop()
