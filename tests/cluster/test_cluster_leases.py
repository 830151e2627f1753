"""Across the nodes of a real three-node cluster: a prefix lock taken on one node holds writes made on
another and goes when its holder's connection drops, and ``seen`` reaches clients of another node so the
overridden writer is told."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio
from support import BroadcasterCluster, wait_for

from broadcaster.client import ServerError, connect
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
