"""Clusters of real nodes in one process, over real TCP on 127.0.0.1 and real lmdb."""

from __future__ import annotations

import pytest
import trio
from support import SECRET, LocalCluster, cluster, free_port

from replication.node import ReplicationError
from replication.transport import Transport


def put(key: str, value) -> dict:
    return {"then": [{"op": "put", "path": ["kv", key], "payload": value}]}


async def test_three_nodes_elect_one_leader_and_replicate(tmp_path):
    async with cluster(tmp_path) as c:
        leader = await c.leader()
        follower = next(n for n in c.nodes.values() if n is not leader)
        assert (await leader.propose(put("a", 1)))["ok"]
        result = await follower.propose(put("b", b"\x00\xff"))  # forwarded to the leader
        assert result["ok"]
        found = await follower.read(("kv", "a"), consistency="linearizable")
        assert found is not None and found[1] == 1
        for node in c.nodes.values():
            await node.wait_applied(result["index"])
            assert node.read_local(("kv", "b"))[1] == b"\x00\xff"
        statuses = [n.status() for n in c.nodes.values()]
        assert {s["leader"] for s in statuses} == {leader.node_id}
        assert all(s["members"] == [1, 2, 3] for s in statuses)


async def test_leader_loss_then_rejoin(tmp_path):
    async with cluster(tmp_path) as c:
        old = await c.leader()
        for i in range(20):
            await old.propose(put(f"k{i}", i))
        await c.stop(old.node_id)
        new = await c.leader()
        assert new.node_id != old.node_id
        with trio.fail_after(5):
            while True:
                try:
                    await new.propose(put("after", True))
                    break
                except ReplicationError:
                    await trio.sleep(0.05)
        back = await c.start(old.node_id)
        with trio.fail_after(10):
            while back.read_local(("kv", "after")) is None:
                await trio.sleep(0.02)
        assert [back.read_local(("kv", f"k{i}"))[1] for i in range(20)] == list(range(20))


async def test_minority_cannot_commit_or_read(tmp_path):
    async with cluster(tmp_path, request_timeout=1.0) as c:
        leader = await c.leader()
        await leader.propose(put("x", 1))
        survivor = leader
        for node_id in list(c.nodes):
            if node_id != survivor.node_id:
                await c.stop(node_id)
        with pytest.raises(ReplicationError):
            await survivor.propose(put("x", 2))  # never acknowledged without a majority
        with pytest.raises(ReplicationError):
            await survivor.read(("kv", "x"), consistency="linearizable")
        assert survivor.read_local(("kv", "x"))[1] in (1, 2)


async def test_add_and_remove_members_while_writing(tmp_path):
    async with trio.open_nursery() as nursery:
        c = LocalCluster(nursery, tmp_path, 4)
        for node_id in (1, 2, 3):
            await c.start(node_id, peers={i: c.addresses[i] for i in (1, 2, 3) if i != node_id})
        leader = await c.leader()
        for i in range(30):
            await leader.propose(put(f"k{i}", i))
        newcomer = await c.start(4, join=True, peers={i: c.addresses[i] for i in (1, 2, 3)})
        await leader.add_member(4, c.addresses[4])
        await leader.propose(put("with-four", True))
        with trio.fail_after(10):
            while newcomer.read_local(("kv", "with-four")) is None:
                await trio.sleep(0.02)
        assert newcomer.read_local(("kv", "k29"))[1] == 29
        assert leader.status()["members"] == [1, 2, 3, 4]
        removed = next(i for i in (1, 2, 3) if i != leader.node_id)
        await leader.remove_member(removed)
        assert removed not in leader.status()["members"]
        await leader.propose(put("without", removed))
        nursery.cancel_scope.cancel()


async def test_lagging_follower_gets_a_snapshot(tmp_path):
    async with cluster(tmp_path, log_retain=50, tree_flush_entries=20) as c:
        leader = await c.leader()
        lagging = next(i for i in c.nodes if i != leader.node_id)
        await c.stop(lagging)
        for i in range(1500):
            leader.submit(put(f"k{i % 100}", i))
        await leader.propose(put("last", True))
        await leader.flush()
        assert leader.status()["commit"] > 1500
        node = await c.start(lagging)
        with trio.fail_after(15):
            while node.read_local(("kv", "last")) is None:
                await trio.sleep(0.05)
        assert list(node.match_local(("kv", "*"))) == list(leader.match_local(("kv", "*")))


async def test_a_process_without_the_secret_cannot_disturb_the_group(tmp_path):
    async with cluster(tmp_path) as c:
        leader = await c.leader()
        term = leader.status()["term"]
        received = []
        intruder = Transport(
            9, b"wrong secret", lambda peer, frame: received.append(frame), lambda peer: None
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(intruder.run, f"127.0.0.1:{free_port()}")
            for node_id, address in c.addresses.items():
                intruder.set_peer(node_id, address)
            # A vote request for a far higher term: it would depose the leader if it got through.
            vote = [2, 9, node_id, term + 100, term + 100, 10**6, [], 0, False, 0, None, b""]
            for _ in range(20):
                for node_id in c.addresses:
                    intruder.send(node_id, ["r", vote])
                await trio.sleep(0.05)
            nursery.cancel_scope.cancel()
        assert sum(n.status().get("rejected_connections", 0) for n in c.nodes.values()) >= 3
        assert leader.status()["role"] == "leader" and leader.status()["term"] == term
        assert (await leader.propose(put("still", "fine")))["ok"]


async def test_malformed_frames_from_a_peer_are_dropped(tmp_path):
    async with cluster(tmp_path) as c:
        leader = await c.leader()
        sender = Transport(7, SECRET, lambda peer, frame: None, lambda peer: None)
        async with trio.open_nursery() as nursery:
            await nursery.start(sender.run, f"127.0.0.1:{free_port()}")
            sender.set_peer(leader.node_id, c.addresses[leader.node_id])
            for garbage in (["r", "nonsense"], ["r", [1, 2]], ["fwd", "x"], ["zzz"], 42, ["r", [2] * 12]):
                sender.send(leader.node_id, garbage)
            await trio.sleep(0.3)
            nursery.cancel_scope.cancel()
        assert leader.status()["role"] == "leader"
        assert (await leader.propose(put("ok", 1)))["ok"]


async def test_cluster_traffic_over_tls(tmp_path):
    """With TLS contexts the nodes replicate as usual, and a plain-TCP peer gets nowhere."""
    import ssl

    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    server_ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ssl)
    ca.configure_trust(server_ssl)
    server_ssl.verify_mode = ssl.CERT_REQUIRED  # peers must present a certificate from the cluster CA
    client_ssl = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ca.configure_trust(client_ssl)
    cert.configure_cert(client_ssl)
    async with cluster(tmp_path, server_ssl=server_ssl, client_ssl=client_ssl) as c:
        leader = await c.leader()
        follower = next(n for n in c.nodes.values() if n is not leader)
        assert (await follower.propose(put("secure", b"\x00"))).get("ok")
        plain = Transport(9, SECRET, lambda peer, frame: None, lambda peer: None)  # right secret, no TLS
        async with trio.open_nursery() as nursery:
            await nursery.start(plain.run, f"127.0.0.1:{free_port()}")
            plain.set_peer(leader.node_id, c.addresses[leader.node_id])
            plain.send(
                leader.node_id, ["r", [2, 9, leader.node_id, 99, 99, 10**6, [], 0, False, 0, None, b""]]
            )
            await trio.sleep(0.5)
            nursery.cancel_scope.cancel()
        assert leader.status()["rejected_connections"] >= 1
        assert leader.status()["role"] == "leader"
