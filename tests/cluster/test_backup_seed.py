"""A backup of one server seeds a new 3-node cluster: restored on its first node, the others added; after
that first node is killed, the others serve the restored rooms and their history."""

from __future__ import annotations

import signal
from pathlib import Path

import trio
from support import BroadcasterCluster, ServerProcess, blendsync_cli, wait_for

from broadcaster import history_client as hc
from broadcaster.client import connect


async def test_a_backup_seeds_a_new_cluster(tmp_path: Path):
    source = ServerProcess(tmp_path / "source")
    host, port = source.start()
    try:
        async with connect(host, port, name="ana") as ana:
            await ana.create_room("shot", keep_open=True)
            await ana.join("shot")
            await ana.batch([["set", f"obj/{i}/a", bytes([i])] for i in range(50)])
            made = await hc.checkpoint(ana, "one")
            await ana.set("obj/1/a", b"changed")
            state, seq = dict(ana.state), ana.seq
        done = await trio.to_thread.run_sync(
            lambda: blendsync_cli("admin", "--port", str(port), "backup", str(tmp_path / "b"))
        )
        assert done.returncode == 0, done.stderr
    finally:
        source.kill()
    cluster = BroadcasterCluster(tmp_path / "cluster", 3)
    try:
        seeded = await trio.to_thread.run_sync(
            lambda: blendsync_cli(
                "restore", str(tmp_path / "b"), "--data-dir", str(cluster.nodes[1].data_dir)
            )
        )
        assert seeded.returncode == 0, seeded.stderr
        await cluster.start(1)
        for i in (2, 3):
            await cluster.start(i, join=True)
            leader = await cluster.leader(among=[1], timeout=30)  # elected alone, from the seeded store
            async with connect(*cluster.address(leader), name="admin") as admin:
                await admin.admin("add_member", node_id=i, raft=cluster.raft[i])
        async with connect(*cluster.address(3), name="late") as late:
            await late.join("shot")
            await wait_for(lambda: late.seq == seq, timeout=20)
        cluster.signal(1, signal.SIGKILL)
        assert await cluster.leader(timeout=30) in (2, 3)
        async with connect(*cluster.address(2), name="ben") as ben:
            joined = await ben.join("shot")
            assert (joined.seq, dict(ben.state)) == (seq, state)
            await hc.restore(ben, checkpoint=made["id"])
            assert dict(ben.state)["obj/1/a"] == b"\x01"
            assert await ben.set("new", b"1") == ben.seq
    finally:
        cluster.close()
