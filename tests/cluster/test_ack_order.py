"""Every client, on every node, gets the ack of its own operation at the operation's place in its stream.

Real ``blendsync serve`` processes; each interleaving is forced: a reply held in a proxy on the client's
link (tools/proxy.py ``hold_back``), a node paused with SIGSTOP, a connection cut. Each client's
raw frames are recorded and checked by ``ackcheck.check_stream``; the states are then compared with each
other and with the room's log (last writer in seq order wins, for every key).
"""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
from ackcheck import Recorder, check_stream
from support import BroadcasterCluster, wait_for

from broadcaster.client import Client, ServerError, connect
from protocol import Applied
from tools.proxy import LinkProxy, open_proxy


def cluster_of_3(root: Path, extra: str = "") -> BroadcasterCluster:
    cluster = BroadcasterCluster(root, 3)
    cluster.extra_config = extra
    return cluster


@pytest.fixture
async def cluster3(tmp_path: Path) -> AsyncIterator[BroadcasterCluster]:
    async with cluster_of_3(tmp_path / "cluster") as cluster:
        yield cluster


@asynccontextmanager
async def proxied(cluster: BroadcasterCluster, node_id: int) -> AsyncIterator[LinkProxy]:
    """A proxy on the link from a client to one node (to hold that node's replies)."""
    async with open_proxy(cluster.address(node_id), name=f"client->{node_id}") as proxy:
        yield proxy


def address(proxy: LinkProxy) -> str:
    host, port = proxy.address
    return f"{host}:{port}"


async def drain(client: Client) -> None:
    """Consume a client's events (its state follows the stream either way; this keeps the channel short)."""
    while True:
        await client.receive()


async def wait_synced(*clients: Client, timeout: float = 20) -> None:
    await wait_for(lambda: len({c.seq for c in clients}) == 1 and clients[0].seq > 0, timeout=timeout)


def assert_in_place(recorder: Recorder, sent: list[int]) -> None:
    problems = check_stream(recorder.events, sent=sent)
    assert problems == [], "\n".join(problems[:10])


async def test_the_authors_own_write_enters_its_state_at_its_ack(cluster3):
    """What made ``test_clients_on_different_nodes_see_one_order`` flaky, forced: all of a client's
    ``applied`` frames can be in while its own last ack is still on the wire. Until it arrives the
    client's state is that of the seq before, so states may be compared only once every own ack is in."""
    leader = await cluster3.leader()
    follower = next(i for i in cluster3.ids if i != leader)
    async with (
        proxied(cluster3, follower) as link,
        connect(*cluster3.address(leader), name="c1") as c1,
        connect(*link.address, name="c3") as c3,
    ):
        recorder = Recorder(c3)
        await c1.create_room("r", keep_open=True)
        await c1.join("r")
        await c3.join("r")
        await c1.set("k0", b"1:95")
        await wait_synced(c1, c3)
        link.hold_back()
        op_id, acked = await c3.send_ops([["set", "k0", b"3:95"]])
        await wait_for(lambda: c1.state.get("k0") == b"3:95", timeout=20)  # committed, last in the room
        assert not acked.done.is_set()
        assert c3.state["k0"] == b"1:95"  # everything of the others is in; its own write is not, yet
        link.release_back()
        with trio.fail_after(20):
            assert await acked.wait() == c1.seq
        assert c3.state == c1.state
        assert_in_place(recorder, [op_id])


async def test_a_write_forwarded_by_a_paused_follower_is_acked_in_place(cluster3):
    """The follower forwards its client's write, then is paused while the leader commits others' writes;
    when it resumes it applies the backlog, answers the forwarded proposal and fans out, in one order."""
    leader = await cluster3.leader()
    follower = next(i for i in cluster3.ids if i != leader)
    async with (
        connect(*cluster3.address(leader), name="on-leader") as b,
        connect(*cluster3.address(follower), name="on-follower") as a,
    ):
        recorders = {"a": Recorder(a), "b": Recorder(b)}
        await b.create_room("r", keep_open=True)
        await b.join("r")
        await a.join("r")
        sent: dict[str, list[int]] = {"a": [], "b": []}
        waiters = []
        for i in range(5):
            op_id, waiter = await a.send_ops([["set", "k", f"a{i}".encode()]])
            sent["a"].append(op_id)
            waiters.append(waiter)
        # a's writes reached the leader and committed there; now hold the follower.
        await wait_for(lambda: b.state.get("k") == b"a4", timeout=20)
        cluster3.signal(follower, signal.SIGSTOP)
        try:
            for i in range(20):
                op_id, waiter = await b.send_ops([["set", "k", f"b{i}".encode()]])
                sent["b"].append(op_id)
                waiters.append(waiter)
            for waiter in waiters[5:]:
                with trio.fail_after(20):
                    await waiter.wait()  # a majority commits without the paused follower
            for i in range(5, 10):  # queued in the paused follower's socket, forwarded when it resumes
                op_id, waiter = await a.send_ops([["set", "k", f"a{i}".encode()]])
                sent["a"].append(op_id)
                waiters.append(waiter)
        finally:
            cluster3.signal(follower, signal.SIGCONT)
        for waiter in waiters:
            with trio.fail_after(20):
                await waiter.wait()
        await wait_synced(a, b)
        assert a.state == b.state == {"k": b"a9"}
        for name, recorder in recorders.items():
            assert_in_place(recorder, sent[name])
            assert sorted(recorder.acks()) == sent[name]


async def _retry_scenario(cluster: BroadcasterCluster, later_writes: int) -> dict[str, Any]:
    """A failover client writes through a proxy to a follower; its ack is held in the proxy while the op
    commits and ``later_writes`` operations of another client follow it; then its connection is cut. The
    client reconnects to another node, resumes ``since`` its last seq (a tail, or a snapshot when the tail
    is gone) and resends the op under its op_id: a retry of an operation that already committed."""
    leader = await cluster.leader()
    first, second = [i for i in cluster.ids if i != leader]
    async with (
        proxied(cluster, first) as link,
        connect(*cluster.address(leader), name="other") as other,
    ):
        await other.create_room("r", keep_open=True)
        await other.join("r")
        await other.set("k", b"other:0")
        addresses = [address(link), f"{cluster.address(second)[0]}:{cluster.address(second)[1]}"]
        async with connect(*link.address, name="retrier", failover=True, addresses=addresses) as client:
            recorder = Recorder(client)
            await client.join("r")
            await wait_synced(client, other)
            link.hold_back()
            op_id, acked = await client.send_ops([["set", "k", b"mine"]])
            await wait_for(lambda: other.state.get("k") == b"mine", timeout=20)
            mine_seq = other.seq
            for i in range(later_writes):
                await other.set("k" if i == 0 else f"later{i}", f"other:{i + 1}".encode())
            link.cut()  # the held ack is lost with the connection; the client fails over to ``second``
            link.release_back()
            with trio.fail_after(30):
                assert await acked.wait() == mine_seq
            await other.set("after", b"x")
            await wait_synced(client, other)
            assert client.reconnects == 1
            return {
                "client_state": dict(client.state),
                "other_state": dict(other.state),
                "events": list(recorder.events),
                "op_id": op_id,
                "mine_seq": mine_seq,
                "acks": recorder.acks(),
            }


async def test_a_retry_of_a_committed_op_after_a_resume_is_acked_once_in_place(cluster3):
    """The resumed tail carries the op's ack at its place; the resend must not be acked a second time
    (a second ack after later operations is a misplaced ack: a client applying it would go back)."""
    outcome = await _retry_scenario(cluster3, later_writes=3)
    assert check_stream(outcome["events"], sent=[outcome["op_id"]]) == []
    assert outcome["acks"] == {outcome["op_id"]: [outcome["mine_seq"]]}
    assert outcome["client_state"] == outcome["other_state"]
    assert outcome["client_state"]["k"] == b"other:1"  # written after "mine": it wins


async def test_a_retry_of_an_op_inside_the_resume_snapshot_changes_nothing(tmp_path):
    """With the tail gone the client resumes from a snapshot that already holds its op (and the later
    write that replaced it). The retry's ack carries the op's seq, at or below the snapshot's: the client
    must not apply it again over the newer value."""
    async with cluster_of_3(tmp_path / "cluster", extra="[server]\nroom_tail = 2\n") as cluster:
        outcome = await _retry_scenario(cluster, later_writes=5)
    assert check_stream(outcome["events"], sent=[outcome["op_id"]]) == []
    assert outcome["acks"] == {outcome["op_id"]: [outcome["mine_seq"]]}
    assert outcome["client_state"] == outcome["other_state"]
    assert outcome["client_state"]["k"] == b"other:1"


async def test_a_leader_change_with_writes_in_flight_keeps_every_ack_in_place(cluster3):
    """Failover clients on every node pipeline writes to shared keys; the leader is paused mid-stream until
    another node leads, then resumed. Forwarded proposals fail over, retries hit the duplicate path."""
    leader = await cluster3.leader()
    addresses = cluster3.addresses()
    async with connect(*cluster3.address(leader), name="setup") as setup:
        await setup.create_room("r", keep_open=True)
    async with (
        connect(*cluster3.address(1), name="w1", failover=True, addresses=addresses) as w1,
        connect(*cluster3.address(2), name="w2", failover=True, addresses=addresses) as w2,
        connect(*cluster3.address(3), name="w3", failover=True, addresses=addresses) as w3,
    ):
        writers = [w1, w2, w3]
        recorders = [Recorder(w) for w in writers]
        for w in writers:
            await w.join("r")
        sent: list[list[int]] = [[], [], []]
        acked: list[dict[int, int]] = [{}, {}, {}]
        refused: list[int] = [0, 0, 0]

        async def settle(index: int, op_id: int, waiter: Any) -> None:
            try:
                acked[index][op_id] = await waiter.wait()
            except ServerError:
                refused[index] += 1  # e.g. a retry overtaken by a later op of the same client: not applied

        async def write(index: int, client: Client, paused: trio.Event, count: int) -> None:
            async with trio.open_nursery() as settling:
                for i in range(count):
                    if i == count // 2:
                        await paused.wait()
                    op_id, waiter = await client.send_ops([["set", f"k{i % 3}", f"{index}:{i}".encode()]])
                    sent[index].append(op_id)
                    settling.start_soon(settle, index, op_id, waiter)

        paused = trio.Event()
        async with trio.open_nursery() as nursery:
            for client in writers:
                nursery.start_soon(drain, client)
            async with trio.open_nursery() as writing:
                for index, client in enumerate(writers):
                    writing.start_soon(write, index, client, paused, 60)
                await wait_for(lambda: all(len(s) >= 30 for s in sent), timeout=20)
                cluster3.signal(leader, signal.SIGSTOP)  # writes in flight on every node
                try:
                    paused.set()
                    await cluster3.leader(among=[i for i in cluster3.ids if i != leader], timeout=30)
                finally:
                    cluster3.signal(leader, signal.SIGCONT)
            await wait_synced(*writers, timeout=30)
            nursery.cancel_scope.cancel()
        assert w1.state == w2.state == w3.state
        for index, recorder in enumerate(recorders):
            assert_in_place(recorder, sent[index])
            assert {op: seqs[0] for op, seqs in recorder.acks().items()} == acked[index]
        assert sum(len(a) for a in acked) > 100
        # Against the room's log: every acked write is at its seq, and the state is its last writer per key.
        async with connect(*cluster3.address(leader), name="auditor") as auditor:
            await auditor.join("r", since=0)
            await wait_for(lambda: auditor.seq == w1.seq, timeout=20)
            log: dict[int, tuple[str, int, list]] = {}
            while len(log) < auditor.seq:
                event = await auditor.receive()
                if isinstance(event, Applied):
                    log[event.seq] = (event.client_id, event.op_id, event.ops)
        by_client = {w.client_id: i for i, w in enumerate(writers)}
        for seq, (client_id, op_id, _) in log.items():
            if client_id in by_client:
                assert acked[by_client[client_id]].get(op_id) == seq
        last: dict[str, bytes] = {}
        for seq in sorted(log):
            for op in log[seq][2]:
                last[op[1]] = op[2]
        assert w1.state == last


async def test_an_op_answered_unavailable_that_commits_enters_the_authors_state(tmp_path):
    """A follower that stops hearing from the leader answers its client's forwarded write `unavailable`:
    it cannot know the outcome. The write commits anyway; once the follower catches up, its ack arrives
    at its place and the client (which did not retry) applies it there, like everyone else."""
    from tools.proxy import open_links

    async with open_links([1, 2, 3]) as links:
        # Slow ticks: the write reaches the leader long before the cut-off follower gives up on it.
        cluster = BroadcasterCluster(tmp_path / "cluster", 3, tick_interval=0.2, links=links)
        await cluster.start_all()
        try:
            leader = await cluster.leader(timeout=30)
            follower = next(i for i in cluster.ids if i != leader)
            async with (
                connect(*cluster.address(leader), name="observer") as observer,
                connect(*cluster.address(follower), name="author") as author,
            ):
                recorder = Recorder(author)
                await observer.create_room("r", keep_open=True)
                await observer.join("r")
                await author.join("r")
                await observer.set("k", b"before")
                await wait_synced(observer, author)
                links.cut(leader, follower, both=False)  # the follower's forwards still reach the leader
                op_id, acked = await author.send_ops([["set", "k", b"mine"]])
                await wait_for(lambda: observer.state.get("k") == b"mine", timeout=20)  # committed
                with pytest.raises(ServerError) as info:
                    with trio.fail_after(30):
                        await acked.wait()
                assert info.value.code == "unavailable"
                links.heal_all()
                await observer.set("after", b"x")
                await wait_for(lambda: author.state.get("after") == b"x", timeout=30)
                assert author.state == observer.state == {"k": b"mine", "after": b"x"}
                assert_in_place(recorder, [op_id])
        finally:
            cluster.close()
