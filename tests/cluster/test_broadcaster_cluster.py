"""Broadcaster clusters as real OS processes: one order for everyone, failover with nothing lost."""

from __future__ import annotations

import itertools
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio
from ackcheck import Recorder, check_stream
from support import BroadcasterCluster, wait_for

from broadcaster.client import Client, ConnectionLost, ServerError, connect
from protocol import Ack, Applied


@pytest.fixture
async def cluster3(tmp_path: Path) -> AsyncIterator[BroadcasterCluster]:
    async with BroadcasterCluster(tmp_path / "cluster", 3) as cluster:
        yield cluster


class Writer:
    """Writes key after key through a failover client and records every acknowledgement."""

    def __init__(self, client: Client, name: str):
        self.client = client
        self.name = name
        self.acked: dict[str, int] = {}  # key -> seq
        self.ack_times: list[float] = []

    async def run(self, stop: trio.Event, pace: float = 0.005) -> None:
        i = 0
        while not stop.is_set():
            i += 1
            key = f"{self.name}/{i}"
            try:
                seq = await self.client.set(key, f"{self.name}-{i}".encode())
            except (ServerError, ConnectionLost):
                continue  # not acknowledged: it does not count (and may or may not be in the room)
            self.acked[key] = seq
            self.ack_times.append(trio.current_time())
            await trio.sleep(pace)

    def longest_gap(self) -> float:
        times = self.ack_times
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)


async def room_log(cluster: BroadcasterCluster, node_id: int, room: str) -> list[tuple[int, str]]:
    """Every (seq, key) in the room's held log, read through the given node."""
    async with connect(*cluster.address(node_id), name="auditor") as auditor:
        (info,) = [r for r in await auditor.list_rooms() if r["name"] == room]
        await auditor.join(room, since=0)
        logged: list[tuple[int, str]] = []
        with trio.fail_after(20):
            while not logged or logged[-1][0] < info["seq"]:
                event = await auditor.receive()
                if isinstance(event, Applied):
                    logged += [(event.seq, op[1]) for op in event.ops]
        return logged


async def test_clients_on_different_nodes_see_one_order(cluster3):
    await cluster3.leader()
    addresses = cluster3.addresses()
    async with (
        connect(*cluster3.address(1), name="c1", failover=True, addresses=addresses) as c1,
        connect(*cluster3.address(2), name="c2", failover=True, addresses=addresses) as c2,
        connect(*cluster3.address(3), name="c3", failover=True, addresses=addresses) as c3,
    ):
        clients = [c1, c2, c3]
        recorders = [Recorder(client) for client in clients]
        await c1.create_room("shared", keep_open=True)
        for client in clients:
            await client.join("shared")
        seen: list[list[int]] = [[], [], []]
        sent: list[dict[int, list[Any]]] = [{}, {}, {}]  # op_id -> ops
        acked: list[dict[int, int]] = [{}, {}, {}]  # op_id -> seq
        refused: list[int] = [0, 0, 0]

        async def watch(index: int, client: Client) -> None:
            while True:
                event = await client.receive()
                if isinstance(event, Applied):
                    seen[index].append(event.seq)

        async def settle(index: int, op_id: int, waiter: Any) -> None:
            try:
                acked[index][op_id] = await waiter.wait()
            except ServerError:
                # Not applied. Only after a leader change under load: an unavailable write is retried,
                # and a retry that a later write of the same client overtook is refused.
                refused[index] += 1

        async def write(index: int, client: Client, settling: trio.Nursery) -> None:
            for i in range(100):
                ops = [["set", f"k{i % 5}", f"{index}:{i}".encode()]]
                op_id, waiter = await client.send_ops(ops)
                sent[index][op_id] = ops
                settling.start_soon(settle, index, op_id, waiter)

        async with trio.open_nursery() as nursery:
            for index, client in enumerate(clients):
                nursery.start_soon(watch, index, client)
            with trio.fail_after(60):
                async with trio.open_nursery() as writers:  # done when every write has its answer
                    for index, client in enumerate(clients):
                        writers.start_soon(write, index, client, writers)
            last_seq = max(seq for seqs in acked for seq in seqs.values())
            # A client's own writes enter its state at their acks, which come after everyone else's
            # operations when its write was last: compare the states once each client is at the last seq.
            await wait_for(lambda: all(client.seq == last_seq for client in clients), timeout=30)
            others = [sum(len(acked[j]) for j in range(3) if j != i) for i in range(3)]
            await wait_for(lambda: [len(s) for s in seen] == others, timeout=30)
            nursery.cancel_scope.cancel()
        assert last_seq == sum(len(seqs) for seqs in acked)  # nothing committed without its ack
        assert sum(refused) < 30, refused
        assert c1.state == c2.state == c3.state
        for index in range(3):
            assert seen[index] == sorted(set(seen[index]))  # others' operations in seq order, each once
            assert check_stream(recorders[index].events, sent=sent[index]) == []  # own acks in place
        # The value of every key is its last write in seq order, as c1's stream ordered them.
        last: dict[str, bytes] = {}
        for event in recorders[0].events:
            ops = event.ops if isinstance(event, Applied) else sent[0].get(getattr(event, "op_id", 0), [])
            if isinstance(event, (Applied, Ack)):
                for op in ops:
                    last[op[1]] = op[2]
        assert c1.state == last
    async with connect(*cluster3.address(2), name="newcomer") as newcomer:
        # Every node's client address, this node's first: where a client fails over to.
        assert newcomer.welcome is not None
        assert newcomer.welcome.nodes[0] == cluster3.addresses()[1]
        assert sorted(newcomer.welcome.nodes) == sorted(cluster3.addresses())


async def test_kill_9_the_leader_mid_stream_nothing_acknowledged_is_lost(cluster3):
    leader = await cluster3.leader()
    others = [i for i in cluster3.ids if i != leader]
    addresses = cluster3.addresses()
    async with connect(*cluster3.address(others[0]), name="setup") as setup:
        await setup.create_room("durable", keep_open=True)
    stop = trio.Event()
    async with (
        connect(*cluster3.address(leader), name="w-on-leader", failover=True, addresses=addresses) as a,
        connect(*cluster3.address(others[0]), name="w-on-follower", failover=True, addresses=addresses) as b,
    ):
        await a.join("durable")
        await b.join("durable")
        writers = [Writer(a, "a"), Writer(b, "b")]
        async with trio.open_nursery() as nursery:
            for writer in writers:
                nursery.start_soon(writer.run, stop)
            await wait_for(lambda: all(len(w.acked) > 50 for w in writers), timeout=20)
            cluster3.signal(leader, signal.SIGKILL)
            killed_at = trio.current_time()
            await wait_for(
                lambda: all(w.ack_times and w.ack_times[-1] > killed_at + 0.5 for w in writers), 20
            )
            await trio.sleep(0.5)
            stop.set()
        assert a.reconnects >= 1  # its node died under it
        for writer in writers:
            assert writer.longest_gap() < 3.0, f"{writer.name} waited {writer.longest_gap():.2f} s"
        await wait_for(lambda: a.seq == b.seq, timeout=10)
        assert a.state == b.state
    logged = await room_log(cluster3, others[1], "durable")
    assert [seq for seq, _ in logged] == list(range(1, logged[-1][0] + 1))
    keys = [key for _, key in logged]
    assert len(keys) == len(set(keys)), "an operation was applied twice"
    for writer in writers:
        for key, seq in writer.acked.items():
            assert (seq, key) in logged, f"acknowledged {key} at seq {seq} is missing"


async def test_a_paused_node_catches_up(cluster3):
    leader = await cluster3.leader()
    paused = next(i for i in cluster3.ids if i != leader)
    async with connect(*cluster3.address(leader), name="w") as w:
        await w.create_room("r", keep_open=True)
        await w.join("r")
        cluster3.signal(paused, signal.SIGSTOP)
        for i in range(200):
            await w.set(f"k{i}", b"v")  # a majority is still there: commits go on
        cluster3.signal(paused, signal.SIGCONT)
        async with connect(*cluster3.address(paused), name="late") as late:
            await late.join("r")
            await wait_for(lambda: late.seq == w.seq, timeout=20)
            assert late.state == w.state


async def test_a_minority_refuses_writes_and_acknowledges_nothing(cluster3):
    await cluster3.leader()
    async with connect(*cluster3.address(1), name="member") as member:
        await member.create_room("r", keep_open=True)
        await member.join("r")
        await member.set("before", b"1")
        cluster3.signal(2, signal.SIGSTOP)
        cluster3.signal(3, signal.SIGSTOP)
        try:
            # Node 1 is alone: it acknowledges nothing, and says so.
            with pytest.raises(ServerError) as info:
                with trio.fail_after(30):
                    await member.set("during", b"2")
            assert info.value.code == "unavailable"
            async with connect(*cluster3.address(1), name="newcomer") as newcomer:
                with pytest.raises(ServerError) as info:
                    await newcomer.join("r")  # a join needs the latest state: not from a minority
                assert info.value.code == "unavailable"
        finally:
            cluster3.signal(2, signal.SIGCONT)
            cluster3.signal(3, signal.SIGCONT)
    async with connect(*cluster3.address(2), name="after") as after:
        with trio.fail_after(20):  # the resumed majority elects a leader first; until then: unavailable
            while True:
                try:
                    await after.join("r")
                    break
                except ServerError as exc:
                    assert exc.code == "unavailable"
                    await trio.sleep(0.2)
        assert after.state["before"] == b"1"
        assert await after.set("after", b"3") > 0


async def test_rolling_restart_under_continuous_writes_loses_nothing(cluster3):
    await cluster3.leader()
    addresses = cluster3.addresses()
    async with connect(*cluster3.address(1), name="setup") as setup:
        await setup.create_room("rolling", keep_open=True)
    stop = trio.Event()
    async with (
        connect(*cluster3.address(1), name="w1", failover=True, addresses=addresses) as a,
        connect(*cluster3.address(3), name="w3", failover=True, addresses=addresses) as b,
    ):
        await a.join("rolling")
        await b.join("rolling")
        writers = [Writer(a, "a"), Writer(b, "b")]
        async with trio.open_nursery() as nursery:
            for writer in writers:
                nursery.start_soon(writer.run, stop, 0.01)
            for node_id in list(cluster3.ids):
                await trio.sleep(0.5)
                cluster3.signal(node_id, signal.SIGTERM)
                await trio.sleep(0.3)
                await cluster3.start(node_id)
                await cluster3.leader(timeout=20)
            await trio.sleep(1.0)
            stop.set()
        await wait_for(lambda: a.seq == b.seq, timeout=10)
        assert a.state == b.state
    logged = await room_log(cluster3, 2, "rolling")
    keys = [key for _, key in logged]
    assert len(keys) == len(set(keys))
    for writer in writers:
        assert len(writer.acked) > 20
        for key, seq in writer.acked.items():
            assert (seq, key) in logged


async def test_add_a_fourth_node_and_remove_one_while_writing(cluster3):
    await cluster3.leader()
    addresses = cluster3.addresses()
    async with connect(*cluster3.address(1), name="setup") as setup:
        await setup.create_room("growing", keep_open=True)
    stop = trio.Event()
    async with connect(*cluster3.address(2), name="w", failover=True, addresses=addresses) as w:
        await w.join("growing")
        writer = Writer(w, "w")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(writer.run, stop, 0.01)
            await trio.sleep(0.5)
            await cluster3.start(4, join=True)
            leader = await cluster3.leader()
            async with connect(*cluster3.address(leader), name="admin", kind="admin") as admin:
                members = await admin.admin("add_member", node_id=4, raft=cluster3.raft[4])
                assert members == [1, 2, 3, 4]
                await trio.sleep(0.5)
                removed = next(i for i in (1, 3) if i != leader) if leader != 1 else 3
                members = await admin.admin("remove_member", node_id=removed)
                assert removed not in members
            await trio.sleep(1.0)
            stop.set()
        async with connect(*cluster3.address(4), name="on-four") as reader:
            await reader.join("growing")
            await wait_for(lambda: reader.seq >= w.seq, timeout=20)
            for key in writer.acked:
                assert key in reader.state
            status = await cluster3.status(4)
            assert 4 in status["members"] and removed not in status["members"]


async def test_a_partitioned_minority_refuses_writes_then_converges(tmp_path):
    """A real network partition (a proxy on every cluster link) isolates one node from the other two."""
    from tools.proxy import open_links

    async with open_links([1, 2, 3]) as links:
        cluster = BroadcasterCluster(tmp_path / "cluster", 3, links=links)
        try:
            await cluster.start_all()
            await cluster.leader()
            async with (
                connect(*cluster.address(1), name="cut-off") as alone,
                connect(*cluster.address(2), name="majority") as majority,
            ):
                await majority.create_room("split", keep_open=True)
                await majority.join("split")
                await alone.join("split")
                await majority.set("before", b"1")
                links.isolate(1)
                with pytest.raises(ServerError) as info:
                    with trio.fail_after(30):
                        await alone.set("minority-write", b"x")
                assert info.value.code == "unavailable"  # refused, never acknowledged
                for i in range(20):
                    await majority.set(f"during-{i}", b"y")  # the majority side goes on
                links.heal_all()
                await wait_for(lambda: alone.seq >= majority.seq, timeout=30)
                assert "during-19" in alone.state
                assert await alone.set("after-heal", b"z") > 0
                await wait_for(lambda: majority.state.get("after-heal") == b"z", timeout=10)
                assert alone.state == majority.state
        finally:
            cluster.close()


async def write_through_a_fault(client: Client, count: int) -> dict[str, int]:
    """``count`` writes, each of which must be acknowledged: the client has to move on by itself."""
    acked: dict[str, int] = {}
    with trio.fail_after(client.failover_timeout):  # a client that waits the timeout out fails here
        for i in range(count):
            acked[f"k{i}"] = await client.set(f"k{i}", str(i).encode())
    return acked


async def every_node_registered(cluster: BroadcasterCluster, node_id: int) -> None:
    """Wait until ``node_id`` lists every node's client address (what welcome.nodes will hold)."""
    with trio.fail_after(20):
        while len((await cluster.status(node_id))["clients"]) < len(cluster.ids):
            await trio.sleep(0.1)


async def assert_logged_once(cluster: BroadcasterCluster, node_id: int, acked: dict[str, int]) -> None:
    logged = await room_log(cluster, node_id, "moving")
    keys = [key for _, key in logged]
    assert len(keys) == len(set(keys))  # nothing resent was applied twice
    for key, seq in acked.items():
        assert (seq, key) in logged


async def test_a_failover_client_leaves_a_node_cut_off_in_a_minority(tmp_path):
    """A node isolated from the other two answers writes with `unavailable`: the client fails over to
    another node from welcome.nodes at once (not after failover_timeout) and resends what was unacked."""
    from tools.proxy import open_links

    async with open_links([1, 2, 3]) as links:
        async with BroadcasterCluster(tmp_path / "cluster", 3, links=links) as cluster:
            leader = await cluster.leader()
            cut_off = next(i for i in cluster.ids if i != leader)
            await every_node_registered(cluster, cut_off)  # the client learns the others from welcome
            async with connect(
                *cluster.address(cut_off), name="mover", failover=True, failover_timeout=60
            ) as mover:
                assert len(mover.welcome.nodes) == 3  # where it may go, as the server says
                await mover.create_room("moving", keep_open=True)
                await mover.join("moving")
                await mover.set("before", b"1")
                links.isolate(cut_off)
                acked = await write_through_a_fault(mover, 20)
                assert mover.address != cluster.address(cut_off) and mover.reconnects >= 1
                await assert_logged_once(cluster, leader, acked)
            links.heal_all()


async def test_a_failover_client_leaves_a_silent_node(tmp_path):
    """A node that stops answering (paused, its connection open) is left after three heartbeat intervals
    (of 1 s here: the default 5 s would make the test wait 15 s for the same thing)."""
    cluster = BroadcasterCluster(tmp_path / "cluster", 3)
    cluster.extra_config = "[server]\nheartbeat_interval = 1.0\n"
    async with cluster:
        await _leave_a_silent_node(cluster)


async def _leave_a_silent_node(cluster3: BroadcasterCluster) -> None:
    leader = await cluster3.leader()
    silent = next(i for i in cluster3.ids if i != leader)
    await every_node_registered(cluster3, silent)
    async with connect(*cluster3.address(silent), name="mover", failover=True, failover_timeout=60) as mover:
        assert len(mover.welcome.nodes) == 3
        await mover.create_room("moving", keep_open=True)
        await mover.join("moving")
        await mover.set("before", b"1")
        cluster3.signal(silent, signal.SIGSTOP)
        try:
            acked = await write_through_a_fault(mover, 5)
            assert mover.address != cluster3.address(silent) and mover.reconnects >= 1
            await assert_logged_once(cluster3, leader, acked)
        finally:
            cluster3.signal(silent, signal.SIGCONT)


async def test_cluster_with_tls_everywhere(tmp_path):
    """Client port and cluster port both over TLS (``tls_cert``/``tls_key`` and ``cluster_ca``)."""
    import trustme

    from broadcaster.tls import client_context

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    files = tmp_path / "tls"
    files.mkdir()
    cert.private_key_pem.write_to_path(str(files / "node.key"))
    cert.cert_chain_pems[0].write_to_path(str(files / "node.pem"))
    ca.cert_pem.write_to_path(str(files / "ca.pem"))
    extra = (
        f'[server]\ntls_cert = "{files / "node.pem"}"\ntls_key = "{files / "node.key"}"\n'
        f'[cluster]\ncluster_ca = "{files / "ca.pem"}"\ntick_interval = 0.05\n'
    )
    cluster = BroadcasterCluster(tmp_path / "cluster", 3, tick_interval=None)
    cluster.extra_config = extra
    try:
        await cluster.start_all()
        context = client_context(ca=files / "ca.pem")
        async with (
            connect(*cluster.address(1), name="a", ssl_context=context) as a,
            connect(*cluster.address(3), name="b", ssl_context=context) as b,
        ):
            await a.create_room("secure", keep_open=True)
            await a.join("secure")
            await b.join("secure")
            seq = await a.set("k", b"over tls")
            await wait_for(lambda: b.seq >= seq, timeout=20)
            assert b.state["k"] == b"over tls"
        with pytest.raises((ConnectionLost, OSError, trio.TooSlowError)):
            with trio.fail_after(5):
                async with connect(*cluster.address(2), name="plain") as plain:  # no TLS: refused
                    await plain.list_rooms()
    finally:
        cluster.close()


async def test_a_blob_is_on_a_majority_before_the_write_that_references_it_is_acked(cluster3):
    """A blob uploaded through one follower and referenced there is acknowledged only once committed; the
    leader is then killed, and the third node serves the blob and refuses nothing that referenced it."""
    leader = await cluster3.leader()
    others = [i for i in cluster3.ids if i != leader]
    data = b"chunk of a mesh " * 4096
    async with connect(*cluster3.address(others[0]), name="ana") as ana:
        await ana.create_room("blobs", keep_open=True)
        await ana.join("blobs")
        blob = await ana.put_blob(data)
        seq = await ana.batch([["set", "mesh/1/geometry", b"value", [blob]]])
    cluster3.signal(leader, signal.SIGKILL)
    async with connect(*cluster3.address(others[1]), name="ben") as ben:
        with trio.fail_after(30):
            while await ben.get_blob(blob) != data:
                await trio.sleep(0.1)
        joined = await ben.join("blobs")
        assert joined.seq >= seq
        # The key holds it on the surviving majority: a write there that drops it collects it.
        with trio.fail_after(30):
            while True:
                try:
                    await ben.delete("mesh/1/geometry")
                    break
                except (ServerError, ConnectionLost):
                    await trio.sleep(0.2)  # no leader yet
        assert await ben.missing_blobs([blob]) == [blob]
