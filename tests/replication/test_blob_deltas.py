"""Small blobs kept as deltas against similar ones (storage layout 7, docs/decisions/0013): a tree node edited
one slot at a time costs a few dozen bytes, and every blob still reads back as its bytes, after a restart,
in a read-only copy and as its bases go. (The table against a model, with bases dropped in every order:
tests/replication/test_blob_table.py.)"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
import trio
from support import cluster

from replication.backup import check_store
from replication.blob_deltas import MAX_DELTA_BLOB, MAX_DEPTH, PIECE, BaseFinder
from replication.blob_entries import BLOB_ROOT, pack_blob_entry
from replication.lmdb_store import LogRecord, Storage, StorageError, WriteBatch
from replication.tree import encode_envelope


def blob_of(content: bytes) -> bytes:
    return hashlib.sha256(content).digest()


class Log:
    """Appends entries carrying blobs to a real store, as a node's storage thread does."""

    def __init__(self, storage: Storage):
        self.storage, self.index = storage, storage.last_index()

    def put(self, *contents: bytes) -> list[bytes]:
        entries = []
        for content in contents:
            self.index += 1
            command = encode_envelope({"then": [{"op": "put", "path": ["x"], "payload": self.index}]})
            entries.append(LogRecord(self.index, 1, 0, pack_blob_entry(blob_of(content), content, command)))
        self.storage.commit(WriteBatch(entries=entries))
        return [blob_of(content) for content in contents]


async def put_blob(node, content: bytes) -> bytes:
    """As the broadcaster stores a blob: its node /blobs/<hex>, the entry carrying its bytes."""
    blob = blob_of(content)
    command = {"then": [{"op": "put", "path": [BLOB_ROOT, blob.hex()], "payload": len(content)}]}
    assert (await node.submit(command, blob=(blob, content)).wait())["ok"]
    return blob


def stored(storage: Storage, blob: bytes) -> tuple[str, int]:
    """("whole" or "delta", bytes its rows take) of a kept blob."""
    with storage._env.begin() as txn:
        whole = txn.get(blob, db=storage._env.open_db(b"blobs", txn=txn))
        if whole is not None:
            return "whole", len(whole)
        row = txn.get(blob, db=storage._env.open_db(b"blob_deltas", txn=txn))
        assert row is not None, "not kept"
        return "delta", len(row)


def node(pieces: list[bytes]) -> bytes:
    return b"".join(pieces)


def edited(pieces: list[bytes], slot: int) -> list[bytes]:
    return [*pieces[:slot], os.urandom(PIECE), *pieces[slot + 1 :]]


def test_a_node_edited_one_slot_at_a_time_is_kept_as_deltas(tmp_path: Path):
    storage = Storage(tmp_path, sync=False)
    log = Log(storage)
    pieces = [os.urandom(PIECE) for _ in range(32)]
    versions = [node(pieces)]
    for slot in (3, 17, 30):
        pieces = edited(pieces, slot)
        versions.append(node(pieces))
    blobs = log.put(*versions[:2]) + log.put(*versions[2:])  # in one commit and across commits
    assert stored(storage, blobs[0]) == ("whole", 1024)
    for blob in blobs[1:]:
        kind, size = stored(storage, blob)
        assert kind == "delta" and size < 120, (kind, size)
    assert [storage.blob(blob) for blob in blobs] == versions
    assert [r.data[-1024:] for r in storage.entries(1, 5)] == versions  # entries rejoin their blobs whole
    storage.close()

    # After a restart the table is shown the log's last blobs: the next edit still finds its predecessor.
    storage = Storage(tmp_path, sync=False)
    assert [storage.blob(blob) for blob in blobs] == versions
    pieces = edited(pieces, 8)
    (after,) = Log(storage).put(node(pieces))
    assert stored(storage, after)[0] == "delta" and storage.blob(after) == node(pieces)
    storage.close()

    # A copy opened read-only (a backup) reads them too, and its check passes.
    readonly = Storage.open_readonly(tmp_path)
    try:
        assert [readonly.blob(blob) for blob in blobs] == versions
    finally:
        readonly.close()
    check_store(tmp_path)


def test_chains_stay_at_most_max_depth_deltas_deep(tmp_path: Path):
    storage = Storage(tmp_path, sync=False)
    log = Log(storage)
    pieces = [os.urandom(PIECE) for _ in range(13)]  # a root over 13 list nodes, one of them new each edit
    contents = []
    for edit in range(3 * MAX_DEPTH):
        pieces = edited(pieces, edit * 5 % 13)
        contents.append(node(pieces))
    blobs = log.put(*contents)
    with storage._env.begin() as txn:
        depths = [storage._table._depth(txn, blob) for blob in blobs]
    assert max(depths) == MAX_DEPTH  # as deep as allowed, never deeper
    assert sum(stored(storage, blob)[0] == "whole" for blob in blobs) <= 3
    assert [storage.blob(blob) for blob in blobs] == contents
    storage.close()


@pytest.mark.parametrize(
    ("size", "kept_as"),
    [
        (PIECE, "whole"),  # one hash: nothing to share
        (2 * PIECE, "whole"),  # shareable, but a delta would not save its own rows
        (1000, "whole"),  # not a run of 32-byte pieces: data, not a node
        (MAX_DELTA_BLOB, "delta"),  # the largest node (256 children)
        (MAX_DELTA_BLOB + PIECE, "whole"),  # one piece past it: data
    ],
)
def test_which_blobs_may_be_deltas(tmp_path: Path, size: int, kept_as: str):
    storage = Storage(tmp_path, sync=False)
    first = os.urandom(size)
    second = bytearray(first)
    second[:PIECE] = os.urandom(PIECE)  # the same but for its first piece
    _, blob = Log(storage).put(first, bytes(second))
    assert stored(storage, blob)[0] == kept_as
    assert storage.blob(blob) == bytes(second)
    storage.close()


def test_a_damaged_delta_is_a_storage_error_not_other_bytes(tmp_path: Path):
    storage = Storage(tmp_path, sync=False)
    pieces = [os.urandom(PIECE) for _ in range(32)]
    _, blob = Log(storage).put(node(pieces), node(edited(pieces, 5)))
    assert stored(storage, blob)[0] == "delta"
    env = storage._env
    with env.begin(write=True) as txn:
        db = env.open_db(b"blob_deltas", txn=txn)
        row = bytearray(txn.get(blob, db=db))
        row[-3] ^= 0xFF
        txn.put(blob, bytes(row), db=db)
    with pytest.raises(StorageError, match=blob.hex()):
        storage.blob(blob)
    storage.close()


def test_a_base_dropped_leaves_its_deltas_readable_and_nothing_behind(tmp_path: Path):
    """Blobs go when nothing names them (decision 0008); a delta whose base goes is kept again."""
    storage = Storage(tmp_path, sync=False)
    pieces = [os.urandom(PIECE) for _ in range(32)]
    contents = [node(pieces)]
    for slot in range(1, 6):
        pieces = edited(pieces, slot)
        contents.append(node(pieces))
    blobs = Log(storage).put(*contents)
    assert [stored(storage, blob)[0] for blob in blobs[1:]] == ["delta"] * 5
    # The oldest three go (compacted past their entries, no tree record names them), the rest stay.
    storage.commit(WriteBatch(compact_to=3, snapshot_meta=(3, 1, [1])))
    assert storage.blob_hashes() == sorted(blobs[3:])
    assert [storage.blob(blob) for blob in blobs[3:]] == contents[3:]
    assert stored(storage, blobs[3])[0] == "whole"  # its bases are gone: it is the new whole one
    assert stored(storage, blobs[4])[0] == "delta"
    storage.commit(WriteBatch(compact_to=6, snapshot_meta=(6, 1, [1])))
    assert storage.blob_hashes() == []
    with storage._env.begin() as txn:
        for name in (b"blob_deltas", b"blob_based"):
            assert txn.stat(storage._env.open_db(name, txn=txn))["entries"] == 0
    storage.close()


def test_the_base_finder_forgets_the_oldest_pieces_past_its_bound():
    finder = BaseFinder(limit=64)
    old = os.urandom(32 * PIECE)
    finder.remember(b"old", old)
    assert finder.candidates(old) == [b"old"]
    finder.remember(b"new", os.urandom(48 * PIECE))
    assert finder.candidates(old) == [b"old"]  # 16 of its pieces are still remembered
    finder.remember(b"newer", os.urandom(32 * PIECE))
    assert finder.candidates(old) == []
    finder = BaseFinder()
    finder.remember(b"a", old[: 4 * PIECE])
    finder.remember(b"b", old[4 * PIECE : 24 * PIECE])
    assert finder.candidates(old) == [b"b", b"a"]  # the one sharing most pieces first
    finder.remember(b"c", old[:PIECE])  # the last blob to list a piece is the one it names
    assert finder.candidates(old) == [b"b", b"a", b"c"]


@pytest.mark.parametrize("trial", range(8))
def test_bases_dropped_every_other_link_of_a_chain(tmp_path: Path, trial: int):
    """W0 <- W1 <- W2 <- W3 (each a delta of the one before); W0 and W2 go, W1 stays (a tree record names
    it) and W3 stays (a retained entry carries it): W1 becomes whole and W3 leans on W1, whichever of the
    two the table moves first (the hashes decide)."""
    from replication.blob_entries import blob_tree_path

    storage = Storage(tmp_path, sync=False)
    pieces = [os.urandom(PIECE) for _ in range(32)]
    contents = [node(pieces)]
    for slot in (4, 9, 20):
        pieces = edited(pieces, slot)
        contents.append(node(pieces))
    blobs = Log(storage).put(*contents)
    assert [stored(storage, blob)[0] for blob in blobs] == ["whole", "delta", "delta", "delta"]
    storage.commit(WriteBatch(tree_records=[(blob_tree_path(blobs[1]), b"\x92\x01\x01")]))
    storage.commit(WriteBatch(compact_to=3, snapshot_meta=(3, 1, [1])))
    assert storage.blob_hashes() == sorted([blobs[1], blobs[3]])
    assert storage.blob(blobs[1]) == contents[1] and storage.blob(blobs[3]) == contents[3]
    assert stored(storage, blobs[1])[0] == "whole" and stored(storage, blobs[3])[0] == "delta"
    storage.close()


async def test_nodes_kept_as_deltas_reach_a_follower_by_the_log_of_a_restarted_leader(tmp_path: Path):
    """The log entries that carry tree nodes are read back from lmdb (the leader restarted: nothing is in
    memory), their blobs rejoined through their deltas, and sent to a follower that was down; every node
    reads each blob as its bytes."""
    async with cluster(tmp_path) as c:
        leader = await c.leader()
        down = next(i for i in c.nodes if i != leader.node_id)
        await c.stop(down)
        pieces = [os.urandom(PIECE) for _ in range(32)]
        contents = [node(pieces)]
        for slot in (2, 11, 2, 29, 17):
            pieces = edited(pieces, slot)
            contents.append(node(pieces))
        blobs = [await put_blob(leader, content) for content in contents]
        await leader.flush()
        assert sum(stored(leader._storage, blob)[0] == "delta" for blob in blobs) == 5
        for node_id in list(c.nodes):
            await c.stop(node_id)
        for node_id in c.addresses:
            await c.start(node_id)
        leader = await c.leader()
        await leader.propose({"then": [{"op": "put", "path": ["kv", "after"], "payload": 1}]})
        with trio.fail_after(15):
            for each in c.nodes.values():
                await each.wait_applied(leader.tree.applied_index)
        for each in c.nodes.values():
            assert [each.read_blob(blob) for blob in blobs] == contents
