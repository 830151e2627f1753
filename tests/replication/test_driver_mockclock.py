"""The node driver's timers under trio's MockClock: real lmdb and real loopback TCP, virtual time.

The clock jumps after 2 ms of real idleness, so timeouts of tens of seconds take a fraction of a second to
test. Trio counts a task waiting for a worker thread as idle, so a storage write (an fsync) that takes more
than 2 ms, as it does on a loaded machine, would let virtual time run ahead of the write: heartbeats look
late, elections start, and proposals time out that a real clock would have seen commit. The clock below
does not jump while the node's storage thread is working. (Loopback TCP needs no such guard: a sent frame
is readable at once, and trio is not idle while it has something to read.)
"""

from __future__ import annotations

import pytest
import trio
import trio.testing
from support import cluster

from replication.lmdb_store import Storage
from replication.node import NodeConfig, OutcomeUnknown, ReplicationError, open_node


@pytest.fixture
def mock_clock(monkeypatch: pytest.MonkeyPatch) -> trio.testing.MockClock:
    """A MockClock that does not autojump while a storage write runs on its worker thread."""
    clock = trio.testing.MockClock(autojump_threshold=0.002)
    writes_in_flight = 0
    autojump = clock._autojump  # what trio's run loop calls after autojump_threshold of idleness

    def autojump_unless_writing() -> None:
        if writes_in_flight == 0:
            autojump()

    monkeypatch.setattr(clock, "_autojump", autojump_unless_writing)
    run_sync = trio.to_thread.run_sync  # the node's only thread: lmdb commits (docs/decisions/0002)

    async def counted_run_sync(*args, **kwargs):
        nonlocal writes_in_flight
        writes_in_flight += 1
        try:
            return await run_sync(*args, **kwargs)
        finally:
            writes_in_flight -= 1

    monkeypatch.setattr(trio.to_thread, "run_sync", counted_run_sync)
    return clock


def put(key: str, value) -> dict:
    return {"then": [{"op": "put", "path": ["kv", key], "payload": value}]}


async def test_idle_node_persists_its_tree_after_the_idle_period(tmp_path, mock_clock):
    config = NodeConfig(data_dir=tmp_path, tick_interval=1.0, tree_flush_idle=120.0, tree_flush_entries=10**6)
    async with open_node(config) as node:
        index = (await node.propose(put("a", 1)))["index"]
        assert node.status()["persisted_applied"] < index  # only the log holds it so far
        start = trio.current_time()
        while node.status()["persisted_applied"] < index:
            await trio.sleep(10)
        waited = trio.current_time() - start
        assert 100 <= waited <= 260
    storage = Storage(tmp_path)
    try:
        assert storage.applied() >= index
    finally:
        storage.close()


async def test_writes_seconds_apart_share_one_flush_of_the_tree(tmp_path, mock_clock):
    """By default the tree waits for a real rest: writes 1.5 s apart (an artist's pace) stay in the log, whose
    entries are durable, and the records they changed are written once, 10 s after the last of them."""
    async with open_node(NodeConfig(data_dir=tmp_path, tick_interval=0.5)) as node:
        first = node.status()["persisted_applied"]
        for i in range(10):
            index = (await node.propose(put("a", i)))["index"]
            await trio.sleep(1.5)
        assert node.status()["persisted_applied"] == first
        start = trio.current_time()
        while node.status()["persisted_applied"] < index:
            await trio.sleep(0.5)
        assert 8 <= trio.current_time() - start <= 12


async def test_leader_without_quorum_steps_down_and_times_proposals_out(tmp_path, mock_clock):
    async with cluster(tmp_path, tick_interval=1.0, election_ticks=10, request_timeout=60.0) as c:
        leader = await c.leader(timeout=120)
        await leader.propose(put("x", 1))
        for node_id in list(c.nodes):
            if node_id != leader.node_id:
                await c.stop(node_id)
        start = trio.current_time()
        with pytest.raises(OutcomeUnknown):
            await leader.propose(put("x", 2))
        # Not acknowledged, and given up on exactly at the request timeout (virtual seconds).
        assert 55 <= trio.current_time() - start <= 70
        # CheckQuorum: within about two election timeouts it no longer claims to lead.
        assert leader.status()["role"] != "leader"
        with pytest.raises(ReplicationError):
            await leader.read(("kv", "x"), consistency="linearizable")


async def test_followers_elect_a_new_leader_within_the_election_timeout(tmp_path, mock_clock):
    async with cluster(tmp_path, tick_interval=1.0, election_ticks=10) as c:
        old = await c.leader(timeout=120)
        await old.propose(put("before", 1))
        await c.stop(old.node_id)
        start = trio.current_time()
        new = await c.leader(timeout=120)
        elapsed = trio.current_time() - start
        assert new.node_id != old.node_id
        # A randomized timeout in [10, 20) ticks, plus a pre-vote and a vote round.
        assert elapsed < 2 * 20 + 5
        assert (await new.propose(put("after", 2)))["ok"]


async def test_forwarded_proposal_fails_fast_when_the_leader_goes(tmp_path, mock_clock):
    async with cluster(tmp_path, tick_interval=1.0, election_ticks=10, request_timeout=300.0) as c:
        leader = await c.leader(timeout=120)
        follower = next(n for n in c.nodes.values() if n is not leader)
        await follower.propose(put("warm", 0))
        await c.stop(leader.node_id)
        start = trio.current_time()
        try:
            await follower.propose(put("during", 1))
        except (OutcomeUnknown, ReplicationError):
            pass
        # Either it went through a new leader or it failed when the leadership changed: well before 300 s.
        assert trio.current_time() - start < 120


async def test_a_slow_disk_does_not_let_virtual_time_run_ahead(tmp_path, mock_clock, monkeypatch):
    """Every fsync takes 20 ms of real time, as on a loaded machine: far past the clock's 2 ms autojump.
    The cluster must still see its heartbeats in time: one leader, every proposal committed."""
    import time

    commit = Storage.commit

    def slow_commit(self, batch):
        time.sleep(0.02)
        return commit(self, batch)

    monkeypatch.setattr(Storage, "commit", slow_commit)
    async with cluster(tmp_path, tick_interval=1.0, election_ticks=10, request_timeout=60.0) as c:
        leader = await c.leader(timeout=120)
        term = leader.status()["term"]
        for i in range(20):
            assert (await leader.propose(put(f"k{i}", i)))["ok"]
        assert leader.status()["role"] == "leader" and leader.status()["term"] == term
