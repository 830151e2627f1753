"""The blob table: a blob's bytes are written once per node, beside the log entry that carries them, and
stay while a tree record or a retained log entry names them (docs/decisions/0008)."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import lmdb
import msgpack
import pytest
import trio
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from support import cluster

from replication.blob_entries import BLOB_ROOT, pack_blob_entry
from replication.lmdb_store import LAYOUT, LogRecord, Storage, WriteBatch
from replication.node import NodeConfig, open_node
from replication.tree import encode_envelope


def blob_of(content: bytes) -> bytes:
    return hashlib.sha256(content).digest()


def store_command(blob: bytes, size: int) -> dict:
    """What the broadcaster proposes: the node /blobs/<hex> holds the size, the entry carries the bytes."""
    return {
        "compare": [{"exists": [BLOB_ROOT, blob.hex()]}],
        "then": [],
        "else": [{"op": "put", "path": [BLOB_ROOT, blob.hex()], "payload": size}],
    }


async def put_blob(node, content: bytes) -> bytes:
    blob = blob_of(content)
    result = await node.submit(store_command(blob, len(content)), blob=(blob, content)).wait()
    assert result["ok"], result
    return blob


def raw_log(data_dir: Path) -> dict[int, bytes]:
    """Each log entry's data as lmdb holds it."""
    env = lmdb.open(str(data_dir), max_dbs=8, readonly=True, lock=False, subdir=True)
    try:
        with env.begin(db=env.open_db(b"log", create=False)) as txn:
            return {
                int.from_bytes(key, "big"): msgpack.unpackb(value, raw=False)[2]
                for key, value in txn.cursor()
            }
    finally:
        env.close()


async def test_a_blob_is_written_once_and_read_back_whole(tmp_path: Path):
    content = os.urandom(300_000)
    async with open_node(NodeConfig(data_dir=tmp_path)) as node:
        blob = await put_blob(node, content)
        await node.flush()  # the tree records too
        assert node.read_local((BLOB_ROOT, blob.hex()))[1] == len(content)  # the tree keeps the size
        assert node.read_blob(blob) == content
        index = node.tree.applied_index
    stored = raw_log(tmp_path)[index]
    assert len(stored) < 1000 and content[:64] not in stored  # the log keeps the entry without the bytes
    storage = Storage(tmp_path)
    try:
        assert storage.blob(blob) == content
        assert all(content[:64] not in record for _, record in storage.tree_records())
        (whole,) = storage.entries(index, index + 1)
        command = encode_envelope(store_command(blob, len(content)), client=None, seq=None)
        assert whole.data == pack_blob_entry(blob, content, command)  # what a lagging follower is sent
    finally:
        storage.close()


async def test_the_log_keeps_at_most_log_retain_bytes_of_blobs_nothing_holds(tmp_path: Path):
    """40 blobs of 64 KiB, each let go at once: the log's entries kept their bytes on disk until the log
    was compacted past them (8,192 entries by default: gigabytes of blobs nothing held). Past
    log_retain_bytes it compacts to half of it, and the table keeps only what its entries still carry;
    the count is read again after a restart."""
    limit = 1024 * 1024
    config = NodeConfig(data_dir=tmp_path, log_retain=10**9, log_retain_bytes=limit, tree_flush_entries=4)

    async def put_and_let_go(node, content: bytes) -> bytes:
        blob = await put_blob(node, content)
        await node.propose({"then": [{"op": "delete", "path": [BLOB_ROOT, blob.hex()]}]})
        return blob

    def table_bytes(node) -> int:
        return sum(len(node._storage.blob(blob)) for blob in node._storage.blob_hashes())

    async with open_node(config) as node:
        blobs = [await put_and_let_go(node, os.urandom(64 * 1024)) for _ in range(40)]
        await node.flush()
        kept = node._storage.blob_hashes()
        assert set(kept) == set(blobs[-len(kept) :]) and 0 < len(kept) < 40  # the last ones, in order
        assert table_bytes(node) <= limit and node._log.log_bytes <= limit + 64 * 1024 + 4096
        assert node._storage.entries(1, 2) == []  # compacted
    async with open_node(config) as node:
        log_bytes = node._log.log_bytes
        assert limit // 4 < log_bytes <= limit + 64 * 1024 + 4096  # counted from lmdb again
        blobs = [await put_and_let_go(node, os.urandom(64 * 1024)) for _ in range(20)]
        await node.flush()
        assert table_bytes(node) <= limit and set(blobs[-4:]) <= set(node._storage.blob_hashes())


async def test_bytes_that_are_not_their_hash_are_refused(tmp_path: Path):
    async with open_node(NodeConfig(data_dir=tmp_path)) as node:
        with pytest.raises(Exception, match="do not match"):
            node.submit(store_command(blob_of(b"a"), 1), blob=(blob_of(b"a"), b"b"))
        with pytest.raises(Exception, match="do not match"):
            node.submit(store_command(blob_of(b""), 1), blob=(blob_of(b"")[:31], b""))


async def test_a_follower_that_was_down_gets_blobs_by_the_log(tmp_path: Path):
    async with cluster(tmp_path) as c:
        leader = await c.leader()
        down = next(i for i in c.nodes if i != leader.node_id)
        await c.stop(down)
        contents = [os.urandom(70_000 + i) for i in range(5)]
        blobs = [await put_blob(leader, content) for content in contents]
        node = await c.start(down)
        with trio.fail_after(15):
            await node.wait_applied(leader.tree.applied_index)
        for blob, content in zip(blobs, contents, strict=True):
            assert node.read_blob(blob) == content


async def test_a_follower_that_was_down_gets_blobs_by_a_snapshot(tmp_path: Path, monkeypatch):
    # The follower's write that installs the snapshot is held: its tree already serves reads meanwhile.
    held, release = threading.Event(), threading.Event()
    commit = Storage.commit

    def holding_commit(storage: Storage, batch: WriteBatch) -> None:
        if batch.tree_reset and not release.is_set():
            held.set()
            release.wait(30)
        commit(storage, batch)

    monkeypatch.setattr(Storage, "commit", holding_commit)
    async with cluster(tmp_path, log_retain=50, tree_flush_entries=20) as c:
        leader = await c.leader()
        down = next(i for i in c.nodes if i != leader.node_id)
        await c.stop(down)
        contents = [os.urandom(70_000 + i) for i in range(3)]
        blobs = [await put_blob(leader, content) for content in contents]
        for i in range(1500):  # the log moves past the entries that carried the blobs
            leader.submit({"then": [{"op": "put", "path": ["kv", str(i % 50)], "payload": i}]})
        await leader.propose({"then": [{"op": "put", "path": ["kv", "last"], "payload": True}]})
        await leader.flush()
        node = await c.start(down)
        with trio.fail_after(15):
            while not held.is_set():
                await trio.sleep(0.05)
        try:
            assert node.read_local(("kv", "last")) is not None  # the snapshot's tree, not yet written
            for blob, content in zip(blobs, contents, strict=True):
                assert node.read_blob(blob) == content
        finally:
            release.set()
        assert node.status()["persisted_applied"] > 1000  # it installs a snapshot, not the log
        with trio.fail_after(15):
            while node._installing_blobs:  # the held write is done
                await trio.sleep(0.05)
        for blob, content in zip(blobs, contents, strict=True):
            assert node._storage.blob(blob) == content
            assert node.read_blob(blob) == content


async def test_a_blob_appended_but_not_applied_is_there_after_a_restart(tmp_path: Path):
    """The state a kill -9 between the durable append and the apply leaves: the entry, no tree record."""
    content = os.urandom(100_000)
    blob = blob_of(content)
    async with open_node(NodeConfig(data_dir=tmp_path)) as node:
        first = node.tree.applied_index
        term = node.status()["term"]
    data = pack_blob_entry(blob, content, encode_envelope(store_command(blob, len(content))))
    storage = Storage(tmp_path)
    try:
        storage.commit(
            WriteBatch(entries=[LogRecord(first + 1, term, 0, data)], hard_state=(term, 1, first + 1))
        )
        assert storage.applied() < first + 1  # appended and committed, not applied
    finally:
        storage.close()
    async with open_node(NodeConfig(data_dir=tmp_path)) as node:
        assert node.read_local((BLOB_ROOT, blob.hex()))[1] == len(content)
        assert node.read_blob(blob) == content


CHILD = textwrap.dedent(
    """
    import hashlib, os, sys, trio
    from replication.node import NodeConfig, open_node

    async def main():
        config = NodeConfig(data_dir=sys.argv[1], tree_flush_entries=int(sys.argv[2]), log_retain=5)
        async with open_node(config) as node:
            for i in range(0, 10**6, 32):
                batch = []
                for j in range(i, i + 32):
                    content = os.urandom(1024) + j.to_bytes(8, "big")
                    blob = hashlib.sha256(content).digest()
                    put = {"op": "put", "path": ["blobs", blob.hex()], "payload": len(content)}
                    command = {"then": [put]}
                    batch.append((blob, node.submit(command, blob=(blob, content))))
                for blob, proposal in batch:
                    assert (await proposal.wait())["ok"]
                    print(blob.hex(), flush=True)
    trio.run(main)
    """
)


@pytest.mark.parametrize("seed", range(3))
def test_killed_while_writing_blobs_keeps_every_acknowledged_one(tmp_path: Path, seed: int):
    """SIGKILL a process storing blobs at a random instant after its log was compacted past the first
    ones: every acknowledged blob is named by the tree and readable after the restart."""
    rng = random.Random(seed)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path), str(rng.choice([1, 7, 64]))],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert child.stdout is not None
    wanted = rng.randrange(1100, 1600)  # compaction starts past 1,024 entries beyond the retained ones
    deadline = time.monotonic() + 120
    acked: list[bytes] = []
    while len(acked) < wanted and time.monotonic() < deadline:
        line = child.stdout.readline()
        if line:
            acked.append(bytes.fromhex(line.strip()))
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert len(acked) >= wanted

    async def check():
        async with open_node(NodeConfig(data_dir=tmp_path)) as node:
            assert node.status()["persisted_applied"] > 1024  # the log was compacted
            for blob in acked:
                content = node.read_blob(blob)
                assert content is not None, f"acknowledged blob {blob.hex()} was lost"
                assert blob_of(content) == blob

    trio.run(check)


# ---- the table against a model: it never drops bytes something names, and keeps none nothing names -------


class BlobTable(RuleBasedStateMachine):
    """Appends (some carrying blobs, some replacing an uncommitted suffix), tree records of /blobs/<hex>
    put and deleted, compactions, snapshot installs and reopening, as the node issues them; after every
    step each blob a tree record or a retained entry names is readable, and every retained entry and every
    record reads back as the bytes written (stored deflated against their blob or not: decision 0012)."""

    CONTENTS = [bytes([i]) * (1000 + i) for i in range(3)] + [os.urandom(1000 + i) for i in range(3, 6)]
    # Tree nodes (runs of 32-byte hashes): a chain of six, each the one before with a slot changed, and
    # half of the first. The table keeps most as deltas against each other (docs/decisions/0013) and must
    # keep every one readable as its bases go, in any order and any few at a time.
    _PIECES = [os.urandom(32) for _ in range(40)]
    _CHAIN = [_PIECES[:32]]
    for _slot in (3, 9, 3, 20, 31):
        _CHAIN.append([*_CHAIN[-1][:_slot], _PIECES[32 + len(_CHAIN)], *_CHAIN[-1][_slot + 1 :]])
    CONTENTS += [b"".join(pieces) for pieces in _CHAIN] + [b"".join(_PIECES[:16])]
    LAST = len(CONTENTS) - 1

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(os.environ.get("TMPDIR", "/tmp")) / f"blob-table-{os.getpid()}-{id(self)}"
        self.dir.mkdir()
        self.storage = Storage(self.dir, sync=False)
        self.log: dict[int, tuple[bytes | None, bytes]] = {}  # retained index -> (blob it carries, data)
        self.compacted = 0
        self.records: dict[tuple, bytes] = {}  # the tree records of /blobs/<hex>
        self.high = 0  # the highest index ever appended (a replaced suffix's included)

    @property
    def named(self) -> set[bytes]:  # blobs with a tree record
        return {bytes.fromhex(path[1]) for path in self.records}

    def teardown(self) -> None:
        self.storage.close()
        for name in os.listdir(self.dir):
            os.unlink(self.dir / name)
        self.dir.rmdir()

    def last(self) -> int:
        return max(self.log, default=self.compacted)

    @rule(
        back=st.integers(0, 3),
        carried=st.lists(st.one_of(st.none(), st.integers(0, LAST)), min_size=1, max_size=4),
        quoted=st.integers(0, 300),
    )
    def append(self, back: int, carried: list[int | None], quoted: int) -> None:
        first = max(self.compacted + 1, self.last() + 1 - back)  # back > 0: a new leader's overwrite
        entries = []
        for offset, which in enumerate(carried):
            index = first + offset
            if which is None:
                data, blob = (
                    encode_envelope({"then": [{"op": "delete", "path": ["x"] * (1 + quoted % 9)}]}),
                    None,
                )
            else:
                content = self.CONTENTS[which]
                blob = blob_of(content)
                # A command that repeats some of its blob's bytes, as a tree node's names its children.
                command = encode_envelope(
                    {"then": [], "else": [{"op": "put", "path": ["x"], "payload": content[:quoted]}]}
                )
                data = pack_blob_entry(blob, content, command)
            entries.append(LogRecord(index, 1, 0, data))
        for index in [i for i in self.log if i >= first]:
            del self.log[index]
        self.high = max(self.high, entries[-1].index)
        for entry, which in zip(entries, carried, strict=True):
            self.log[entry.index] = (None if which is None else blob_of(self.CONTENTS[which]), entry.data)
        self.storage.commit(WriteBatch(entries=entries))

    @rule(which=st.integers(0, LAST), present=st.booleans(), quoted=st.integers(0, 600))
    def tree_record(self, which: int, present: bool, quoted: int) -> None:
        blob = blob_of(self.CONTENTS[which])
        if present and blob not in self.storage.blob_hashes():
            return  # the tree names only blobs an entry brought (or a snapshot)
        path = (BLOB_ROOT, blob.hex())
        record = b"\x92\x01" + self.CONTENTS[which][:quoted]  # a node's record repeats its children
        self.storage.commit(WriteBatch(tree_records=[(path, record if present else None)]))
        if present:
            self.records[path] = record
        else:
            self.records.pop(path, None)

    @rule()
    def reopen(self) -> None:
        self.storage.close()
        self.storage = Storage(self.dir, sync=False)

    @precondition(lambda self: self.log)
    @rule(data=st.data())
    def compact(self, data) -> None:
        to = data.draw(st.integers(self.compacted + 1, self.last()))
        self.storage.commit(WriteBatch(compact_to=to, snapshot_meta=(to, 1, [1])))
        self.compacted = to
        self.log = {i: b for i, b in self.log.items() if i > to}

    @rule(names=st.sets(st.integers(0, LAST), max_size=3), ahead=st.integers(0, 3))
    def install_snapshot(self, names: set[int], ahead: int) -> None:
        index = self.last() + ahead
        blobs = [(blob_of(self.CONTENTS[i]), self.CONTENTS[i]) for i in sorted(names)]
        records = [((BLOB_ROOT, blob.hex()), b"\x92\x02" + content[:500]) for blob, content in blobs]
        self.storage.commit(
            WriteBatch(
                tree_reset=True,
                tree_records=records,
                blobs=blobs,
                compact_to=max(self.last(), index),
                snapshot_meta=(index, 1, [1]),
            )
        )
        self.compacted, self.log = index, {}
        self.high = max(self.high, index)
        self.records = dict(records)

    @invariant()
    def named_blobs_are_readable(self) -> None:
        needed = self.named | {blob for blob, _ in self.log.values() if blob is not None}
        contents = {blob_of(content): content for content in self.CONTENTS}
        for blob in needed:
            assert self.storage.blob(blob) == contents[blob], f"lost {blob.hex()[:8]}, still named"
        if self.log:
            read = self.storage.entries(min(self.log), self.last() + 1)
            assert [(r.index, r.data) for r in read] == [(i, self.log[i][1]) for i in sorted(self.log)]
        assert dict(self.storage.tree_records()) == self.records

    def collect_everything(self) -> None:
        self.storage.commit(WriteBatch(tree_records=[(path, None) for path in sorted(self.records)]))
        self.records = {}
        to = max(self.high, self.compacted) + 1  # the log moved on past every index once appended
        self.storage.commit(WriteBatch(compact_to=to, snapshot_meta=(to, 1, [1])))
        self.compacted, self.log = to, {}


class BlobTableCollects(BlobTable):
    """The same, ending with nothing named: then the table is empty (no blob is kept for ever)."""

    def teardown(self) -> None:
        try:
            self.collect_everything()
            assert self.storage.blob_hashes() == []
            with self.storage._env.begin() as txn:  # and no delta's row or index row is left behind
                for name in (b"blob_deltas", b"blob_based"):
                    assert txn.stat(self.storage._env.open_db(name, txn=txn))["entries"] == 0, name
        finally:
            super().teardown()


TestBlobTable = BlobTable.TestCase
TestBlobTable.settings = settings(max_examples=60, stateful_step_count=25, deadline=None)
TestBlobTableCollects = BlobTableCollects.TestCase
TestBlobTableCollects.settings = settings(max_examples=30, stateful_step_count=25, deadline=None)


async def test_a_layout_2_store_keeps_serving_the_blobs_its_tree_holds(tmp_path: Path):
    """Before the blob table, a blob's bytes were the payload of /blobs/<hex>: such a store still serves."""
    content = os.urandom(70_000)
    blob = blob_of(content)
    async with open_node(NodeConfig(data_dir=tmp_path)) as node:
        put = {"op": "put", "path": [BLOB_ROOT, blob.hex()], "payload": content}
        assert (await node.propose({"then": [put]}))["ok"]
    env = lmdb.open(str(tmp_path), max_dbs=8, subdir=True)
    try:
        with env.begin(write=True, db=env.open_db(b"meta")) as txn:
            txn.put(b"layout", msgpack.packb(2))
    finally:
        env.close()
    async with open_node(NodeConfig(data_dir=tmp_path)) as node:
        assert node.read_blob(blob) == content
        assert node._storage.layout() == LAYOUT  # marked current: nothing to rewrite
