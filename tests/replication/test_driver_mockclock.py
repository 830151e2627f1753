"""The node driver's timers under trio's MockClock: real lmdb and real loopback TCP, virtual time.

The clock jumps only after 2 ms of real idleness (everything waiting on a timer), so fsyncs and socket
I/O are never skipped over, while timeouts of tens of seconds take a fraction of a second to test.
"""

from __future__ import annotations

import pytest
import trio
import trio.testing
from support import cluster

from replication.lmdb_store import Storage
from replication.node import NodeConfig, OutcomeUnknown, ReplicationError, open_node


@pytest.fixture
def mock_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0.002)


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
