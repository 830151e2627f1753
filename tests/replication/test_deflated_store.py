"""Log entries and tree records are stored deflated, against the blob they carry or name (storage layout 6,
docs/decisions/0012): read back, each is the same bytes it was, whatever it holds, and a store of plain
ones still reads."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import lmdb
import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from replication.blob_entries import MARK, entry_command, pack_blob_entry
from replication.deflate import MAX_DEFLATED, MIN_DEFLATED, VOCABULARY, DeflateError, deflate, inflate
from replication.lmdb_store import LAYOUT, LogRecord, Storage, StorageError, WriteBatch, tree_key, tree_value
from replication.node import NodeConfig, open_node
from replication.tree import encode_envelope


def node_put(children: list[bytes]) -> tuple[bytes, bytes]:
    """(hash, entry data) of a tree node's blob_put as the broadcaster makes it: its bytes are its
    children's hashes, and its command names each again."""
    content = b"".join(children)
    blob = hashlib.sha256(content).digest()
    command = {
        "then": [
            {
                "op": "put",
                "path": ["blobs", blob.hex()],
                "payload": len(content),
                "keep_while": {f"/blobs/{blob.hex()}/refs": {"child_count": [">", 0]}},
                "add_holds": [["blobs", c] for c in children],
            },
            {"op": "put", "path": ["blobs", blob.hex(), "refs", "p:" + "c" * 32], "payload": {"node": 1}},
        ]
    }
    return blob, pack_blob_entry(blob, content, encode_envelope(command))


def entry_command_of(entry: bytes) -> dict:
    return msgpack.unpackb(entry_command(entry), raw=False)["cmd"]


def stored_log(data_dir: Path) -> dict[int, list]:
    env = lmdb.open(str(data_dir), max_dbs=8, readonly=True, lock=False, subdir=True)
    try:
        with env.begin(db=env.open_db(b"log", create=False)) as txn:
            return {int.from_bytes(k, "big"): msgpack.unpackb(v, raw=False) for k, v in txn.cursor()}
    finally:
        env.close()


@given(data=st.binary(max_size=20_000), context=st.binary(max_size=6_000))
def test_what_is_deflated_inflates_to_itself_against_the_same_context(data: bytes, context: bytes):
    assert inflate(deflate(data, context), context) == data


def test_bytes_cut_short_running_on_damaged_or_of_another_context_do_not_inflate():
    """Never other bytes: a store read with another dictionary (another blob's bytes, another vocabulary)
    or damaged is an error."""
    context = os.urandom(64)
    packed = deflate(b"x" * 1000 + context, context)
    for bad in (
        packed[:-3],
        packed + b"\0",
        packed[:20] + bytes([packed[20] ^ 1]) + packed[21:],
        b"\xff" * 20,
    ):
        with pytest.raises(DeflateError):
            inflate(bad, context)
    with pytest.raises(DeflateError):
        inflate(packed, os.urandom(64))
    with pytest.raises(DeflateError):
        inflate(packed)


def test_the_vocabulary_is_frozen():
    """Stores hold commands deflated against it: changing it would make their logs unreadable."""
    assert hashlib.sha256(VOCABULARY).hexdigest() == (
        "e2e560dc1b4dfb173a5287f788a6538b0be9062464143f9987581e40411dc3f9"
    )


def test_every_kind_of_entry_reads_back_as_it_was(tmp_path: Path):
    """A node's put (deflated: its children's hashes come from its own bytes), a plain command, an empty
    entry, bytes that do not deflate, a chunk's put, and data that starts like a blob entry but is none."""
    children = sorted(os.urandom(32) for _ in range(32))
    node_blob, node_entry = node_put(children)
    chunk = os.urandom(32_768)
    chunk_blob = hashlib.sha256(chunk).digest()
    chunk_path = ["blobs", chunk_blob.hex()]
    chunk_put = {
        "then": [{"op": "put", "path": chunk_path, "payload": 32_768}, {"op": "delete", "path": ["a"]}]
    }
    chunk_entry = pack_blob_entry(chunk_blob, chunk, encode_envelope(chunk_put))
    plain = encode_envelope(
        {"then": [{"op": "put", "path": ["rooms", "r", "keys", "k"], "payload": b"v" * MIN_DEFLATED}]}
    )
    datas = [node_entry, plain, b"", os.urandom(300), chunk_entry, bytes([MARK]) + os.urandom(10)]
    storage = Storage(tmp_path)
    try:
        storage.commit(WriteBatch(entries=[LogRecord(i, 3, 0, d) for i, d in enumerate(datas, start=1)]))
        assert [e.data for e in storage.entries(1, 7)] == datas
        assert [storage.term(i) for i in range(1, 8)] == [3] * 6 + [None]
        assert storage.blob(node_blob) == b"".join(children) and storage.blob(chunk_blob) == chunk
    finally:
        storage.close()
    stored = stored_log(tmp_path)
    assert [len(stored[i]) for i in range(1, 7)] == [4, 4, 3, 3, 4, 3]  # deflated where that is smaller
    assert stored[1][3] == node_blob and stored[2][3] is None
    # The node's children are written once (in the blob table); its entry refers back to them (a few bytes
    # each) rather than spelling their 32 bytes again.
    assert len(stored[1][2]) < 32 * 10 + 100 < 32 * 32


def test_a_damaged_deflated_entry_is_a_storage_error(tmp_path: Path):
    plain = encode_envelope(
        {"then": [{"op": "put", "path": ["rooms", "r", "keys", "k"], "payload": "v" * MIN_DEFLATED}]}
    )
    storage = Storage(tmp_path)
    storage.commit(WriteBatch(entries=[LogRecord(1, 1, 0, plain)]))
    with storage._env.begin(write=True, db=storage._log) as txn:
        term, kind, deflated, blob = msgpack.unpackb(txn.get((1).to_bytes(8, "big")), raw=False)
        txn.put((1).to_bytes(8, "big"), msgpack.packb([term, kind, deflated[:-4], blob], use_bin_type=True))
    try:
        with pytest.raises(StorageError, match="entry 1"):
            storage.entries(1, 2)
    finally:
        storage.close()


async def test_a_store_of_plain_entries_replays_them_beside_deflated_ones(tmp_path: Path):
    """A layout-5 store's log (every entry plain) is marked 6 when opened; a restart replays its old
    entries and the deflated ones written since, in order."""
    config = NodeConfig(data_dir=tmp_path)
    pad = "p" * MIN_DEFLATED  # shorter commands are stored as they are in either layout

    def put(i: int) -> dict:
        return {"then": [{"op": "put", "path": ["k", str(i)], "payload": [i, pad]}]}

    async with open_node(config) as node:
        for i in range(5):
            assert (await node.propose(put(i)))["ok"]
    env = lmdb.open(str(tmp_path), max_dbs=8, subdir=True)
    with env.begin(write=True) as txn:  # as layout 5 wrote them: [term, kind, data]
        log = env.open_db(b"log", txn=txn)
        for key, value in list(txn.cursor(db=log)):
            fields = msgpack.unpackb(value, raw=False)
            if len(fields) == 4:
                fields = [fields[0], fields[1], inflate(fields[2])]
            txn.put(key, msgpack.packb(fields, use_bin_type=True), db=log)
        txn.put(b"layout", msgpack.packb(5), db=env.open_db(b"meta", txn=txn))
        txn.put(b"applied", msgpack.packb(0), db=env.open_db(b"meta", txn=txn))
        txn.drop(env.open_db(b"tree", txn=txn), delete=False)  # nothing persisted: all is replayed
    env.close()
    assert all(len(fields) == 3 for fields in stored_log(tmp_path).values())
    async with open_node(config) as node:
        assert [node.read_local(("k", str(i)))[1] for i in range(5)] == [[i, pad] for i in range(5)]
        for i in range(5, 8):
            assert (await node.propose(put(i)))["ok"]
    assert {len(fields) for fields in stored_log(tmp_path).values()} == {3, 4}
    async with open_node(config) as node:
        assert [node.read_local(("k", str(i)))[1] for i in range(8)] == [[i, pad] for i in range(8)]
        assert node._storage.layout() == LAYOUT


def stored_record(storage: Storage, path: tuple) -> bytes:
    """A tree record as lmdb holds it (after the path)."""
    with storage._env.begin(db=storage._tree) as txn:
        value = txn.get(tree_key(path))
    return value[4 + int.from_bytes(value[:4], "big") :]


async def test_a_tree_nodes_record_is_stored_against_its_bytes_and_reads_back(tmp_path: Path):
    """The record of a blob tree's node lists its children (its holds), which are the node's own bytes:
    stored, it refers back to them; read back (and after a restart) it is the same record."""
    config = NodeConfig(data_dir=tmp_path)
    children = sorted(os.urandom(32) for _ in range(32))
    async with open_node(config) as node:
        for child in children:
            put = {"then": [{"op": "put", "path": ["blobs", child.hex()], "payload": 1}]}
            assert (await node.propose(put))["ok"]
        blob, entry = node_put(children)
        assert (await node.submit(entry_command_of(entry), blob=(blob, b"".join(children))).wait())["ok"]
        await node.flush()
        records = dict(node.tree.records())
    path, leaf = ("blobs", blob.hex()), ("blobs", children[0].hex())
    storage = Storage(tmp_path)
    try:
        stored = stored_record(storage, path)
        assert stored[:2] == b"\xc1\x01" and len(stored) < 32 * 10 + 100 < len(records[path])
        assert stored_record(storage, leaf) == records[leaf]  # too small to gain anything
        assert dict(storage.tree_records()) == records
    finally:
        storage.close()
    async with open_node(config) as node:
        assert node.tree.holds_of(path) == tuple(("blobs", c.hex()) for c in children)


def test_a_record_stored_before_its_blob_reads_back_after_it(tmp_path: Path):
    """A node /blobs/<hex> whose bytes the table did not hold was deflated against the vocabulary alone;
    the bytes stored later do not change how it reads. One deflated against bytes the table lost is a
    storage error naming the record, never another record."""
    content = os.urandom(64) * 8
    blob = hashlib.sha256(content).digest()
    path, other = ("blobs", blob.hex()), ("blobs", "ab" * 32)
    record = msgpack.packb([1, 1, 2, 2, True, "keep_while" * 20, 1, [[["blobs", blob.hex(), "refs"], {}]]])
    storage = Storage(tmp_path)
    try:
        storage.commit(WriteBatch(tree_records=[(path, record)]))
        assert stored_record(storage, path)[:2] == b"\xc1\x00"
        storage.commit(WriteBatch(blobs=[(blob, content)], tree_records=[(other, record + content[:40])]))
        assert dict(storage.tree_records()) == {path: record, other: record + content[:40]}
        storage.commit(WriteBatch(tree_records=[(path, record + content[:200])]))  # now against the bytes
        assert stored_record(storage, path)[:2] == b"\xc1\x01"
        with storage._env.begin(write=True) as txn:
            txn.delete(blob, db=storage._blobs)
        with pytest.raises(StorageError, match="the tree record of"):
            dict(storage.tree_records())
        storage.commit(WriteBatch(tree_records=[(path, None)]))
        with storage._env.begin(write=True) as txn:  # a mark this version does not know
            txn.put(tree_key(other), tree_value(other, b"\xc1\x07" + deflate(record)), db=storage._tree)
        with pytest.raises(StorageError, match="unknown kind"):
            dict(storage.tree_records())
    finally:
        storage.close()


def test_plain_records_of_an_older_layout_read_as_they_are(tmp_path: Path):
    records = {
        ("a",): msgpack.packb([1, 1, 1, 1, True, "x" * 300]),
        ("blobs", "cd" * 32): b"\x93\x01\x02\x03",
    }
    storage = Storage(tmp_path)
    try:
        with storage._env.begin(write=True) as txn:
            for path, record in records.items():
                txn.put(tree_key(path), tree_value(path, record), db=storage._tree)
        assert dict(storage.tree_records()) == records
    finally:
        storage.close()


def test_the_shortest_and_longest_commands_and_records_deflated_and_one_past_them_kept_plain(tmp_path: Path):
    """Deflating sits on the path of every commit: a command or record over MAX_DEFLATED is kept plain (its
    bulk is values), and so is one under MIN_DEFLATED (a few bytes saved for a commit three times dearer)."""
    sizes = (MIN_DEFLATED - 1, MIN_DEFLATED, MAX_DEFLATED, MAX_DEFLATED + 1)
    datas = [b"a" * size for size in sizes]
    records = {(f"r{size}",): b"\x91" + b"b" * (size - 1) for size in sizes}
    storage = Storage(tmp_path)
    try:
        storage.commit(WriteBatch(entries=[LogRecord(i, 1, 0, d) for i, d in enumerate(datas, start=1)]))
        storage.commit(WriteBatch(tree_records=list(records.items())))
        assert [e.data for e in storage.entries(1, 5)] == datas
        assert dict(storage.tree_records()) == records
        kept = [stored_record(storage, path)[:2] == b"\xc1\x00" for path in records]
        assert kept == [False, True, True, False]
    finally:
        storage.close()
    assert [len(stored_log(tmp_path)[i]) for i in (1, 2, 3, 4)] == [3, 4, 4, 3]
