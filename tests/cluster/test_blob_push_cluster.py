"""The blobs a write makes new travel with it on every node of a cluster: a member on another node than the
writer's gets them in the write's ``applied``, read from its own node's blob table (docs/protocol.md
section 3a). Real ``blendsync serve`` processes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio
from support import BroadcasterCluster, ana_and_ben_in_a_room

from protocol import Applied


@pytest.fixture
async def cluster3(tmp_path: Path) -> AsyncIterator[BroadcasterCluster]:
    async with BroadcasterCluster(tmp_path / "cluster", 3) as cluster:
        yield cluster


async def test_a_member_on_another_node_gets_the_blobs_a_write_made_new(cluster3):
    leader = await cluster3.leader()
    follower = next(i for i in cluster3.ids if i != leader)
    async with ana_and_ben_in_a_room(cluster3.address(follower), ben_at=cluster3.address(leader)) as (
        ana,
        ben,
    ):
        leaves = [await ana.put_blob(bytes([i]) * 3000) for i in range(3)]
        root = await ana.put_blob(b"".join(leaves), children=leaves)
        seq = await ana.batch([["set", "mesh", b"v", [root]]])
        with trio.fail_after(20):
            while not isinstance(applied := await ben.receive(), Applied):
                pass
        assert applied.seq == seq
        assert applied.blobs == [
            [root, b"".join(leaves)],
            *([leaf, bytes([i]) * 3000] for i, leaf in enumerate(leaves)),
        ]
