"""Every client, on every node, gets the ack of its own operation at the operation's place in its stream.

Real ``blendsync serve`` processes; each interleaving is forced: a reply held in a proxy on the client's
link (tests/faults/proxy.py ``hold_back``), a node paused with SIGSTOP, a connection cut. Each client's
raw frames are recorded and checked by ``ackcheck.check_stream``; the states are then compared with each
other and with the room's log (last writer in seq order wins, for every key).
"""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
from ackcheck import Recorder, check_stream
from faults.proxy import LinkProxy, open_proxy
from support import BroadcasterCluster, wait_for

from broadcaster.client import Client, connect


def start_cluster(root: Path, extra: str = "") -> BroadcasterCluster:
    cluster = BroadcasterCluster(root, 3)
    cluster.extra_config = extra
    cluster.start_all()
    return cluster


@pytest.fixture
def cluster3(tmp_path: Path) -> Iterator[BroadcasterCluster]:
    cluster = start_cluster(tmp_path / "cluster")
    try:
        yield cluster
    finally:
        cluster.stop_all()


@asynccontextmanager
async def proxied(cluster: BroadcasterCluster, node_id: int) -> AsyncIterator[LinkProxy]:
    """A proxy on the link from a client to one node (to hold that node's replies)."""
    async with open_proxy(cluster.address(node_id), name=f"client->{node_id}") as proxy:
        yield proxy


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
