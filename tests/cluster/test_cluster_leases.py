"""Across the nodes of a real three-node cluster: a prefix lock taken on one node holds writes made on
another and goes when its holder's connection drops, and ``seen`` reaches clients of another node so the
overridden writer is told."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio
from support import BroadcasterCluster, ana_and_ben_in_a_room, wait_for

from broadcaster.client import ServerError, connect
from broadcaster.config import SILENCE_LIMIT
from protocol import Applied, Overridden

OBJ = "obj/" + "c" * 32 + "/"


@pytest.fixture
async def cluster3(tmp_path: Path) -> AsyncIterator[BroadcasterCluster]:
    async with BroadcasterCluster(tmp_path / "cluster", 3) as cluster:
        yield cluster


async def next_of(client, kind, timeout: float = 10.0):
    with trio.fail_after(timeout):
        while not isinstance(event := await client.receive(), kind):
            pass
    return event


async def test_a_prefix_lock_on_one_node_holds_writes_on_another_until_its_holder_drops(cluster3):
    await cluster3.leader()
    async with connect(*cluster3.address(2), name="ben") as ben:
        async with connect(*cluster3.address(1), name="ana") as ana:
            await ana.create_room("r", keep_open=True)
            await ana.join("r")
            await ben.join("r")
            await ana.lock_prefixes([], [OBJ])
            await wait_for(lambda: OBJ in ben.prefix_locks)
            with pytest.raises(ServerError) as info:
                await ben.set(OBJ + "made-later", b"b")
            assert info.value.code == "locked"
            await ben.set("free", b"b")

            # seen crosses nodes: Ben overrides a value of Ana's he had not seen; only she is told.
            before = ben.seq
            ours = await ana.set("shared", b"a")
            _, waiter = await ben.send_ops([["set", "shared", b"b"]], seen=before)
            theirs = await waiter.wait()
            applied = await next_of(ana, Applied)
            while applied.seq != theirs:
                applied = await next_of(ana, Applied)
            assert applied.seen == before
            notice = await next_of(ana, Overridden)
            assert (notice.key, notice.our_seq, notice.seq) == ("shared", ours, theirs)
        # Ana's connection is gone (closed without leaving): node 1 releases her lock for everyone.
        await wait_for(lambda: not ben.prefix_locks, timeout=20)
        await ben.set(OBJ + "made-later", b"b")


# Above the shortest the server takes (SILENCE_LIMIT, 7 s: three of a live node's 2 s announcements and a
# second): at 2 s, a node that was up was now and then taken for dead on a loaded machine, and its
# sessions' locks released.
DEAD_NODE_TIMEOUT = SILENCE_LIMIT + 1.0
KEY = "obj/" + "d" * 32 + "/data"


@pytest.fixture
async def quick_release(tmp_path: Path) -> AsyncIterator[BroadcasterCluster]:
    """Three nodes whose leader releases the locks of a node silent for ``DEAD_NODE_TIMEOUT``."""
    cluster = BroadcasterCluster(tmp_path / "cluster", 3)
    cluster.extra_config = f"[server]\ndead_node_timeout = {DEAD_NODE_TIMEOUT}\n"
    async with cluster:
        yield cluster


async def refused(client, key: str) -> bool:
    try:
        await client.set(key, b"b")
    except ServerError as exc:
        assert exc.code == "locked", exc
        return True
    return False


@pytest.mark.parametrize("holder_is_leader", [False, True])
async def test_the_locks_of_a_node_that_dies_are_released_after_the_dead_node_timeout(
    quick_release, holder_is_leader
):
    cluster = quick_release
    leader = await cluster.leader()
    holder = leader if holder_is_leader else next(i for i in cluster.ids if i != leader)
    other = next(i for i in cluster.ids if i not in (leader, holder))
    async with ana_and_ben_in_a_room(cluster.address(holder), ben_at=cluster.address(other)) as (ana, ben):
        await ana.lock([KEY], [OBJ])
        await wait_for(lambda: KEY in ben.locks and OBJ in ben.prefix_locks)
        # A node that is up keeps its sessions' locks however long: two timeouts, and still held.
        await trio.sleep(2 * DEAD_NODE_TIMEOUT)
        assert await refused(ben, KEY) and await refused(ben, OBJ + "name")
        cluster.kill(holder)  # Ana's node dies with her session: nothing of it will release her locks
        await wait_for(lambda: not ben.locks and not ben.prefix_locks, timeout=30)
        await ben.set(KEY, b"b")
        await ben.set(OBJ + "name", b"b")
        # Ben takes what she held while her node is down; it starts again with her locks in its copy, and
        # releases them (sessions from before a restart are gone) only where they are still hers.
        assert await ben.lock([KEY], [OBJ])
        await cluster.start(holder)
        async with connect(*cluster.address(holder), name="cy") as cy:
            await cy.join("r")
            await wait_for(lambda: KEY in cy.locks and OBJ in cy.prefix_locks)
            await cy.set("after-the-restart", b"c")  # through that node, after its release was submitted
            await trio.sleep(1.0)
            assert ben.locks == {KEY: ben.client_id} and ben.prefix_locks == {OBJ: ben.client_id}
            assert await refused(cy, KEY) and await refused(cy, OBJ + "name")


async def test_a_paused_node_loses_its_locks_and_its_sessions_hear_of_it_when_it_is_back(quick_release):
    """A node that stops answering (paused, or cut off) for longer than the timeout is taken for dead; its
    sessions, which could not write meanwhile, are told their locks went once it is back."""
    cluster = quick_release
    leader = await cluster.leader()
    holder = next(i for i in cluster.ids if i != leader)
    async with ana_and_ben_in_a_room(cluster.address(holder), ben_at=cluster.address(leader)) as (ana, ben):
        await ana.lock([KEY])
        await wait_for(lambda: KEY in ben.locks)
        cluster.pause(holder)
        try:
            await wait_for(lambda: not ben.locks, timeout=30)
            await ben.set(KEY, b"b")
        finally:
            cluster.resume(holder)
        await wait_for(lambda: KEY not in ana.locks, timeout=30)
        assert await ana.lock([KEY])  # hers again, through her own node
        await wait_for(lambda: KEY in ben.locks)
        assert await refused(ben, KEY)


async def test_a_session_resumed_on_another_node_keeps_its_locks_and_writes_under_them(cluster3):
    """Ana's node dies while she holds a lock; her client resumes her session on another node. The lock is
    still hers (others stay out), and at once she may write under it and release it, not only after the
    leader has given the dead node up."""
    leader = await cluster3.leader()
    holder = next(i for i in cluster3.ids if i != leader)
    async with (
        connect(*cluster3.address(holder), name="ana", failover=True, addresses=cluster3.addresses()) as ana,
        connect(*cluster3.address(leader), name="ben") as ben,
    ):
        await ana.create_room("r", keep_open=True)
        await ana.join("r")
        await ben.join("r")
        await ana.lock([KEY], [OBJ])
        await wait_for(lambda: KEY in ben.locks and OBJ in ben.prefix_locks)
        cluster3.kill(holder)
        with trio.fail_after(20):  # well inside dead_node_timeout (30 s): the lock is not released
            await ana.set(KEY, b"a")  # waits for the failover, then goes through under her lock
            await ana.set(OBJ + "name", b"a")
        assert ben.locks == {KEY: ana.client_id} and ben.prefix_locks == {OBJ: ana.client_id}
        assert await refused(ben, KEY) and await refused(ben, OBJ + "name")
        assert sorted(await ana.unlock()) == sorted([KEY, OBJ])
        await wait_for(lambda: not ben.locks and not ben.prefix_locks)
        await ben.set(KEY, b"b")
        await ben.set(OBJ + "name", b"b")
