"""Nothing committed stops a node: an entry that fails to apply is the same failure on every replica.

Commands are validated before they are proposed, so a poison entry needs a way around that: entry data
handed straight to the driver's queue (as a follower's forwarded proposal reaches the leader), or written
into a stopped node's log on disk. A bug is injected the one way the tree cannot see coming: a node record
that fails to encode, on every replica alike (one process).
"""

from __future__ import annotations

import logging
from pathlib import Path

import msgpack
import pytest
import trio
from support import cluster

from replication import tree as tree_module
from replication.apply_guard import apply_committed
from replication.lmdb_store import LogRecord, Storage, WriteBatch
from replication.node import NodeConfig, Proposal, open_node
from replication.tree import machine as tree_machine

POISON = b"this payload's record cannot be encoded"


def put(key: str, value) -> dict:
    return {"then": [{"op": "put", "path": ["kv", key], "payload": value}]}


def raw(command: object) -> bytes:
    return msgpack.packb({"cmd": command}, use_bin_type=True)


# Entry data that bypassed validation: not msgpack, a broken blob entry, an unknown op, a name past the
# limit, a bad envelope.
UNVALIDATED = [
    b"\xc1",
    b"\xc1" + bytes(32) + (10**6).to_bytes(4, "big") + b"{}",  # a blob entry whose command overruns it
    raw({"then": [{"op": "explode"}]}),
    raw(put("x" * 2000, 1)),
    msgpack.packb({"cmd": put("a", 1), "client": 7, "seq": -1}),
]


@pytest.fixture
def unencodable_poison(monkeypatch):
    """A bug for the test: the record of a node holding POISON raises when encoded."""
    fields = tree_module.TreeNode.fields

    def broken(node):
        if node.payload == POISON:
            raise ValueError("cannot encode")
        return fields(node)

    monkeypatch.setattr(tree_module.TreeNode, "fields", broken)


def propose_unvalidated(node, data: bytes) -> Proposal:
    proposal = Proposal(data)
    node._queue.append(proposal)
    node._wakeup.set()
    return proposal


async def test_a_poison_entry_fails_alike_on_every_replica_and_nodes_go_on(
    tmp_path: Path, unencodable_poison, caplog
):
    caplog.set_level(logging.ERROR, logger="blendsync.replication")
    async with cluster(tmp_path, election_ticks=50) as c:  # one leader throughout, even on a busy machine
        leader = await c.leader()
        assert (await leader.propose(put("before", 1)))["ok"]
        late = next(i for i in c.nodes if i != leader.node_id)
        await c.stop(late)  # it will apply the poison when it catches up after its restart

        poisoned = await leader.propose(put("p", POISON))
        assert poisoned["ok"] is False and poisoned["error"] == "internal"
        assert poisoned["message"] == "internal error ValueError"
        refused = [await propose_unvalidated(leader, data).wait() for data in UNVALIDATED]
        assert [r["error"] for r in refused] == [
            "invalid_envelope",
            "invalid_envelope",
            "unknown_op",
            "invalid_path",
            "invalid_envelope",
        ]
        after = await leader.propose(put("after", 2))
        assert after["ok"]
        for node in c.nodes.values():
            await node.flush()  # persisting the tree once had to encode the poison record

        back = await c.start(late)
        with trio.fail_after(10):
            while back.tree.applied_index < after["index"]:
                await trio.sleep(0.02)
        assert back.read_local(("kv", "after"))[1] == 2
        last = (await back.propose(put("last", 3)))["index"]  # it serves
        with trio.fail_after(10):  # compare the trees at one applied index (a new leader adds an entry)
            while len({n.tree.applied_index for n in c.nodes.values()}) > 1 or back.tree.applied_index < last:
                await trio.sleep(c.poll)
        assert len({n.tree.state_hash() for n in c.nodes.values()}) == 1
        for node in c.nodes.values():
            assert node.read_local(("kv", "p")) is None  # the failed entry changed nothing
            assert node.status()["apply_failures"] == 1
        assert f"node {late}: entry {poisoned['index']} failed to apply" in caplog.text


def append_committed(data_dir: Path, entries: list[bytes]) -> list[int]:
    """Write entries into a stopped single node's log as committed, the way a past run would have."""
    storage = Storage(data_dir)
    try:
        term, vote, _ = storage.hard_state()
        first = storage.last_index() + 1
        records = [LogRecord(first + i, term, 0, data) for i, data in enumerate(entries)]
        storage.commit(WriteBatch(entries=records, hard_state=(term, vote, records[-1].index)))
        return [r.index for r in records]
    finally:
        storage.close()


async def test_a_poison_entry_in_the_log_on_disk_does_not_stop_a_restart(
    tmp_path: Path, unencodable_poison, caplog
):
    caplog.set_level(logging.ERROR, logger="blendsync.replication")
    config = NodeConfig(data_dir=tmp_path)
    async with open_node(config) as node:
        assert (await node.propose(put("before", 1)))["ok"]
    poison_index, *_ = append_committed(tmp_path, [raw(put("p", POISON)), *UNVALIDATED, raw(put("after", 2))])
    failures = []
    for _ in range(2):  # the first start applies the entries, the second starts from what it persisted
        async with open_node(config) as node:
            assert node.read_local(("kv", "before"))[1] == 1
            assert node.read_local(("kv", "after"))[1] == 2
            assert node.read_local(("kv", "p")) is None
            assert (await node.propose(put("served", True)))["ok"]
            failures.append(node.status()["apply_failures"])
    assert failures == [1, 0]
    assert f"node 1: entry {poison_index} failed to apply" in caplog.text


def test_a_failure_outside_the_command_is_recorded_and_changes_nothing(monkeypatch, caplog):
    """The driver's guard catches what escapes Tree.apply itself (here: a bug in compiling a command)."""
    tree = tree_module.Tree()
    tree.apply(1, raw(put("a", 1)))
    before = tree.records()
    compile_command = tree_machine._compile_command

    def broken(cmd):
        if cmd == put("p", POISON):
            raise TypeError("a bug")
        return compile_command(cmd)

    monkeypatch.setattr(tree_machine, "_compile_command", broken)
    data = msgpack.packb({"cmd": put("p", POISON), "client": "c", "seq": 1}, use_bin_type=True)
    with caplog.at_level(logging.ERROR, logger="blendsync.replication"):
        result, events, failed = apply_committed(tree, 2, data, node_id=7)
    assert failed and events == []
    assert result == {"ok": False, "error": "internal", "message": "internal error TypeError", "index": 2}
    assert tree.applied_index == 2 and tree.records() == before
    assert "node 7: entry 2 failed to apply" in caplog.text
    result, _, failed = apply_committed(tree, 3, raw(put("b", 2)), node_id=7)  # and goes on
    assert result["ok"] and not failed
