"""The node driver on real lmdb: commit, restart, crash recovery, compaction, watches, dedup."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import trio

from replication.lmdb_store import Storage
from replication.node import NodeConfig, ReplicationError, open_node
from replication.tree import Tree, TreeError


def put(path: list[str], payload) -> dict:
    return {"then": [{"op": "put", "path": path, "payload": payload}]}


async def test_propose_read_and_restart(tmp_path: Path):
    config = NodeConfig(data_dir=tmp_path)
    async with open_node(config) as node:
        result = await node.propose(put(["a", "b"], b"\x00\xffbytes"))
        assert result["ok"] and result["index"] >= 1
        first_index = result["index"]
        await node.propose(put(["a", "ü"], "héllo wörld ✓"))
        props, payload = node.read_local(("a", "b"))
        assert payload == b"\x00\xffbytes" and props.payload_version == 1
        assert [p for p, _, _ in await node.read_many(("a", "*"), consistency="linearizable")] == [
            ("a", "b"),
            ("a", "ü"),
        ]
        state = list(node.match_local(("**",)))
    async with open_node(config) as node:
        # the same nodes (the restarted leader's opening empty entry only moves the applied index)
        assert list(node.match_local(("**",))) == state
        assert node.read_local(("a", "ü"))[1] == "héllo wörld ✓"
        assert (await node.propose(put(["c"], 1)))["index"] > first_index + 1


async def test_bad_commands_are_refused_before_proposing(tmp_path: Path):
    async with open_node(NodeConfig(data_dir=tmp_path)) as node:
        applied = node.tree.applied_index
        for bad in [{"then": [{"op": "explode"}]}, {"then": [{"op": "put", "path": [""], "payload": 1}]}, []]:
            with pytest.raises(TreeError):
                await node.propose(bad)  # type: ignore[arg-type]
        assert node.tree.applied_index == applied  # nothing reached the log
        with pytest.raises(ValueError):
            await node.read(("a",), consistency="sometimes")


async def test_retried_proposal_applies_once(tmp_path: Path):
    async with open_node(NodeConfig(data_dir=tmp_path)) as node:
        command = {"then": [{"op": "append", "path": ["log"], "payload": "x"}]}
        first = node.submit(command, client="c1", seq=1)
        again = node.submit(command, client="c1", seq=1)
        assert (await first.wait()) == (await again.wait())
        assert not first.duplicate and again.duplicate
        assert node.read_local(("log",))[0].child_count == 1


async def test_watch_in_commit_order_with_backlog_and_overflow(tmp_path: Path):
    async with open_node(NodeConfig(data_dir=tmp_path)) as node:
        indexes = [(await node.propose(put(["rooms", "r", str(i)], i)))["index"] for i in range(5)]
        async with node.watch(("rooms", "r", "*"), after_index=indexes[1]) as events:
            await node.propose(put(["rooms", "other"], 0))  # not under the pattern
            last = (await node.propose(put(["rooms", "r", "5"], 5)))["index"]
            seen = []
            with trio.fail_after(5):
                async for event in events:
                    seen.append((event.index, event.path[-1]))
                    if event.index == last:
                        break
        assert seen == [(indexes[2], "2"), (indexes[3], "3"), (indexes[4], "4"), (last, "5")]
        with pytest.raises(ReplicationError):
            async with node.watch(("rooms", "**"), buffer=3) as events:
                for i in range(10):
                    await node.propose(put(["rooms", "r", f"x{i}"], i))
                async for _ in events:
                    pass


async def test_compaction_keeps_the_log_bounded_and_restart_works(tmp_path: Path):
    config = NodeConfig(data_dir=tmp_path, log_retain=100, tree_flush_entries=64)
    async with open_node(config) as node:
        for i in range(3000):
            node.submit(put(["k", str(i % 50)], i))
        await node.propose(put(["done"], True))
        await node.flush()
        state = list(node.match_local(("**",)))
    storage = Storage(tmp_path)
    try:
        assert storage.first_index() > 2000
        assert storage.last_index() == 3002  # 3001 writes and the leader's opening empty entry
    finally:
        storage.close()
    async with open_node(config) as node:
        assert list(node.match_local(("**",))) == state


CHILD = textwrap.dedent(
    """
    import sys, trio
    from pathlib import Path
    from replication.node import NodeConfig, open_node

    async def main():
        config = NodeConfig(data_dir=Path(sys.argv[1]), tree_flush_entries=int(sys.argv[2]), log_retain=10**9)
        async with open_node(config) as node:
            i = 0
            while True:
                i += 1
                batch = [node.submit({"then": [{"op": "put", "path": ["k", str(i * 10 + j)],
                                                "payload": b"v" * (i % 300)}]}) for j in range(10)]
                for j, proposal in enumerate(batch):
                    await proposal.wait()
                    print(i * 10 + j, flush=True)

    trio.run(main)
    """
)


async def test_a_write_longer_than_the_election_timeout_is_reported(tmp_path: Path, caplog):
    """Appends and acknowledgements wait while a write is made durable (only heartbeats go meanwhile): one
    that outlasts the election timeout holds up every write of the cluster, so the node says so, and keeps
    the longest write."""
    config = NodeConfig(data_dir=tmp_path, tick_interval=0.01, election_ticks=10)  # a 0.1 s window
    async with open_node(config) as node:
        await node.propose(put(["quick"], 1))
        storage = node._storage
        commit = storage.commit

        def slow_commit(batch):  # a disk that stalls once, as a shared one does
            time.sleep(0.15)
            return commit(batch)

        storage.commit = slow_commit
        try:
            await node.propose(put(["slow"], 2))
        finally:
            storage.commit = commit
    # (Any write of a loaded machine may be reported too: the stalled one must be.)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    took = re.compile(r"a durable write took (\d+\.\d+) s, longer than the election timeout \(0\.10 s\)")
    assert any((m := took.search(w)) and float(m[1]) >= 0.15 for w in warnings), warnings
    assert node.stats["fsync_seconds_max"] >= 0.15


@pytest.mark.parametrize("seed", range(4))
def test_killed_at_a_random_instant_reopens_consistent(tmp_path: Path, seed: int):
    """SIGKILL a writing process at a random moment: every acknowledged entry survives, and the persisted
    tree plus the replayed log equal a replay of the whole log from scratch."""
    rng = random.Random(seed)
    flush_every = rng.choice([1, 7, 1024])
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path), str(flush_every)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert child.stdout is not None
    deadline = time.monotonic() + rng.uniform(0.3, 1.2)
    acked: list[int] = []
    while time.monotonic() < deadline:
        line = child.stdout.readline()
        if line:
            acked.append(int(line))
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert acked

    async def check():
        async with open_node(NodeConfig(data_dir=tmp_path, log_retain=10**9)) as node:
            for key in acked:
                assert node.read_local(("k", str(key))) is not None, f"acknowledged write {key} was lost"
            recovered = node.tree.state_hash()
            applied = node.tree.applied_index
        storage = Storage(tmp_path)
        try:
            fresh = Tree()
            for record in storage.entries(1, applied + 1):
                if record.data and record.kind == 0:
                    fresh.apply(record.index, record.data)
                else:
                    fresh.advance(record.index)
        finally:
            storage.close()
        assert fresh.state_hash() == recovered

    trio.run(check)
