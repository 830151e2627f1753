"""lmdb storage: every path the tree accepts is stored and read back; older layouts are upgraded on open."""

from __future__ import annotations

from pathlib import Path

import lmdb
import msgpack
import pytest

from replication.lmdb_store import LAYOUT, Storage, StorageError, WriteBatch, encode_path
from replication.node import NodeConfig, open_node
from replication.tree import MAX_NAME_BYTES, MAX_PATH_LEN, Tree


def put(path: list[str], payload) -> dict:
    return {"then": [{"op": "put", "path": path, "payload": payload}]}


def longest_name(tag: str) -> str:
    """MAX_NAME_BYTES of UTF-8, multi-byte characters and pattern characters included."""
    name = f"{tag}*/%✓"
    name += "é" * ((MAX_NAME_BYTES - len(name.encode())) // 2)
    return name + "x" * (MAX_NAME_BYTES - len(name.encode()))


async def test_longest_paths_and_client_ids_survive_a_restart(tmp_path: Path):
    deep = [longest_name(str(i)) for i in range(MAX_PATH_LEN)]
    assert all(len(n.encode()) == MAX_NAME_BYTES for n in deep)
    client = longest_name("client")
    config = NodeConfig(data_dir=tmp_path)
    async with open_node(config) as node:
        assert (await node.propose(put(deep, b"deep")))["ok"]
        assert (await node.propose(put(deep[:3], "mid"), client=client, seq=7))["ok"]
        await node.flush()  # the tree records themselves are written, not only the log
        state = node.tree.dump()
    storage = Storage(tmp_path)
    try:
        paths = {path for path, _ in storage.tree_records()}
        assert tuple(deep) in paths and tuple(deep[:3]) in paths
        assert storage.applied() == Tree.load(state).applied_index  # nothing left for the log to replay
    finally:
        storage.close()
    async with open_node(config) as node:
        assert node.read_local(tuple(deep))[1] == b"deep"
        assert node.tree.session(client)[0] == 7
        # The restarted node appended its own opening entry; the tree's nodes are the same.
        assert list(node.match_local(("**",))) == list(Tree.load(state).match(("**",)))


def test_a_deleted_long_path_is_gone_after_reopening(tmp_path: Path):
    path = tuple(longest_name(str(i)) for i in range(4))
    storage = Storage(tmp_path)
    storage.commit(WriteBatch(tree_records=[(path, b"record"), (path[:1], b"parent")]))
    storage.commit(WriteBatch(tree_records=[(path, None)]))
    storage.close()
    storage = Storage(tmp_path)
    try:
        assert list(storage.tree_records()) == [(path[:1], b"parent")]
    finally:
        storage.close()


def write_layout_1(data_dir: Path, tree: Tree) -> None:
    """A store as layout 1 wrote it: tree records keyed by the encoded path, no layout in meta."""
    env = lmdb.open(str(data_dir), max_dbs=4, subdir=True)
    try:
        meta, records = env.open_db(b"meta"), env.open_db(b"tree")
        env.open_db(b"log")
        with env.begin(write=True) as txn:
            for path, record in tree.records():
                txn.put(encode_path(path), record, db=records)
            txn.put(b"applied", msgpack.packb(tree.applied_index), db=meta)
            txn.put(b"hard_state", msgpack.packb([1, 1, tree.applied_index]), db=meta)
            txn.put(b"voters", msgpack.packb([1]), db=meta)
            txn.put(b"snapshot", msgpack.packb([tree.applied_index, 1, [1]]), db=meta)  # log compacted
    finally:
        env.close()


async def test_a_layout_1_store_is_upgraded_on_open(tmp_path: Path):
    tree = Tree()
    commands = [
        put(["rooms", "r", "keys", "k"], b"v"),
        put(["rooms", "r", "meta"], {"keep_open": True}),
        {"then": [{"op": "append", "path": ["rooms", "r", "log"], "payload": {"o": 1}, "cap": 10}]},
    ]
    for index, command in enumerate(commands, start=1):
        tree.apply(index, msgpack.packb({"cmd": command, "client": "c1", "seq": index}))
    tree.take_dirty()
    write_layout_1(tmp_path, tree)

    storage = Storage(tmp_path)
    try:
        with storage._env.begin(db=storage._meta) as txn:
            assert msgpack.unpackb(txn.get(b"layout")) == LAYOUT
        upgraded = Tree.from_records(storage.tree_records(), storage.applied())
    finally:
        storage.close()
    assert upgraded == tree
    async with open_node(NodeConfig(data_dir=tmp_path)) as node:
        assert node.read_local(("rooms", "r", "keys", "k"))[1] == b"v"
        assert node.tree.session("c1")[0] == 3
        assert (await node.propose(put(["rooms", "r", "keys", "k2"], b"w")))["ok"]
        await node.flush()
    async with open_node(NodeConfig(data_dir=tmp_path)) as node:  # opening an upgraded store changes nothing
        assert node.read_local(("rooms", "r", "keys", "k"))[1] == b"v"
        assert node.read_local(("rooms", "r", "keys", "k2"))[1] == b"w"


@pytest.mark.parametrize("old_layout", [3, 4, 5, 6])
async def test_an_older_store_is_marked_7_and_its_nodes_take_holds_by_hash_bytes(tmp_path: Path, old_layout):
    """Layout 4 may hold nine-field records (a node's holds), which layout 3 cannot read, layout 5 names
    a held hash by its bytes there, which layout 4 cannot read, layout 6 deflates log entries, which
    layout 5 cannot read, and layout 7 keeps blobs as deltas, which layout 6 cannot read: opening any
    marks it 7 and keeps its records; holds made then persist compact and come back as the same names with
    their counts."""
    blob = "ab" * 32
    async with open_node(NodeConfig(data_dir=tmp_path)) as node:
        assert (await node.propose(put(["blobs", blob], 1)))["ok"]
        await node.flush()
    env = lmdb.open(str(tmp_path), max_dbs=10, subdir=True)
    with env.begin(write=True) as txn:
        txn.put(b"layout", msgpack.packb(old_layout), db=env.open_db(b"meta", txn=txn))
        # Layouts 3 to 6 kept each blob's last entry on disk; layout 7 reads it from blob_log instead.
        txn.put(bytes.fromhex(blob), (7).to_bytes(8, "big"), db=env.open_db(b"blob_last", txn=txn))
    env.close()
    async with open_node(NodeConfig(data_dir=tmp_path)) as node:
        assert node.read_local(("blobs", blob))[1] == 1
        held = [["blobs", bytes.fromhex(blob)]]
        holder = {"then": [{"op": "put", "path": ["blobs", "n"], "payload": 2, "holds": held}]}
        assert (await node.propose(holder))["ok"]
        await node.flush()
    storage = Storage(tmp_path)
    try:
        assert storage.layout() == LAYOUT == 7
        with storage._env.begin() as txn, pytest.raises(lmdb.NotFoundError):
            storage._env.open_db(b"blob_last", txn=txn, create=False)
        records = dict(storage.tree_records())
        tree = Tree.from_records(storage.tree_records(), storage.applied())
    finally:
        storage.close()
    assert msgpack.unpackb(records[("blobs", "n")])[8] == [["blobs", bytes.fromhex(blob)]]
    assert tree.holds_of(("blobs", "n")) == (("blobs", blob),) and tree.held_count(("blobs", blob)) == 1


def test_a_store_from_a_newer_version_is_refused(tmp_path: Path):
    Storage(tmp_path).close()
    env = lmdb.open(str(tmp_path), max_dbs=4, subdir=True)
    with env.begin(write=True) as txn:
        txn.put(b"layout", msgpack.packb(LAYOUT + 1), db=env.open_db(b"meta", txn=txn))
    env.close()
    with pytest.raises(StorageError, match="layout"):
        Storage(tmp_path)
