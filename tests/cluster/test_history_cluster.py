"""A room's history in a real 3-node cluster: after the leader is killed, another node serves blame (of a
change the log no longer retains, the same on every node), checkpoints, restore and fork from the
replicated store."""

from __future__ import annotations

import signal
from pathlib import Path

from support import BroadcasterCluster, wait_for

from broadcaster import history_client as hc
from broadcaster.client import connect


async def test_after_a_leader_kill_another_node_serves_blame_restore_and_fork(tmp_path: Path):
    async with BroadcasterCluster(tmp_path / "cluster", 3) as cluster:
        leader = await cluster.leader()
        follower = next(i for i in cluster.ids if i != leader)
        async with connect(*cluster.address(leader), name="ana") as ana:
            await ana.create_room("shot", keep_open=True)
            await ana.join("shot")
            await ana.batch([["set", "obj/1/a", b"1"], ["set", "obj/2/a", b"2"]])
            made = await hc.checkpoint(ana, "before")
            wanted = dict(ana.state)
            await hc.set_retention(ana, ops=2)
            changed = await ana.set("obj/1/a", b"changed")
            for _ in range(2):  # the log keeps these: the change of obj/1/a is no longer in it
                await ana.set("obj/2/a", b"again")
                await ana.delete("obj/2/a")
            before = await hc.blame(ana, "")
        cluster.signal(leader, signal.SIGKILL)
        assert await cluster.leader(timeout=30) != leader
        async with (
            connect(*cluster.address(follower), name="ben") as ben,
            connect(
                *cluster.address(next(i for i in cluster.ids if i not in (leader, follower))), name="cy"
            ) as cy,
        ):
            await ben.join("shot")
            await cy.join("shot")
            rows, _ = await hc.blame(ben, "obj/1/")
            assert [(r[0], r[1], r[3]) for r in rows] == [("obj/1/a", changed, "ana")]
            assert await hc.blame(ben, "") == await hc.blame(cy, "") == before
            assert [c["name"] for c in await hc.checkpoints(cy)] == ["before"]
            seq, undo = await hc.restore(ben, checkpoint=made["id"])
            await wait_for(lambda: cy.seq == seq, timeout=20)
            assert dict(ben.state) == dict(cy.state) == wanted
            assert await hc.fork(cy, "shot-try", checkpoint=undo) == seq - 1
            await ben.leave()
            await ben.join("shot-try")
            assert dict(ben.state) == {"obj/1/a": b"changed"}
