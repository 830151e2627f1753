"""Large byte strings as content-addressed chunks (blender_addon/sync/chunks.py) and the gate that holds
remote values until their chunks are here (blender_addon/chunk_transfer.py). No server, no scene."""

from __future__ import annotations

import hashlib
import random

import msgpack
import pytest

pytest.importorskip("bpy", reason="bpy (Blender as a Python module) is not installed")

from hypothesis import given, settings
from hypothesis import strategies as st

from blender_addon.chunk_transfer import ChunkTransfer
from blender_addon.sync import chunks, decode_value, encode_value
from blender_addon.sync.codec import pack_f32, unpack_f32

pytestmark = pytest.mark.blender

SIZE = chunks.CHUNK_BYTES
LEVEL = SIZE * chunks.FANOUT  # the bytes one full list node covers
# Lengths around every boundary: empty, one chunk, one past it, several chunks, one full node and one past
# it (a second level), and a bit more.
lengths = st.sampled_from(
    [0, 1, SIZE - 1, SIZE, SIZE + 1, 2 * SIZE, 3 * SIZE + 17, LEVEL, LEVEL + 1, 2 * LEVEL + SIZE + 3]
) | st.integers(0, 5 * SIZE)


def fetch_all(value: bytes, sender: chunks.ChunkCache) -> chunks.ChunkCache:
    """A joiner's cache once it fetched what ``value`` needs level by level, as the gate does."""
    store = chunks.ChunkCache()
    while wanted := chunks.wanted(value, store):
        for blob in wanted:
            data = sender.get(blob)
            assert hashlib.sha256(data).digest() == blob
            store.put(blob, data)
    return store


def arbitrary(length: int, seed: int) -> bytes:
    """Bytes of any kind: random, with runs (repeated chunks) when the seed says so."""
    rng = random.Random(seed)
    if seed % 3 == 0:
        return bytes([seed % 256]) * length
    if seed % 3 == 1:
        return rng.randbytes(length)
    run = rng.randbytes(rng.randint(1, 3 * SIZE))
    return (run * (length // len(run) + 1))[:length]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(lengths, st.integers(0, 2**32)), min_size=1, max_size=3), st.binary(max_size=64))
def test_chunking_and_tree_reassembly_round_trip_arbitrary_byte_strings(arrays, small):
    doc = {"small": small, "arrays": [arbitrary(n, seed) for n, seed in arrays], "nested": {"a": [small]}}
    sender = chunks.ChunkCache()
    value = msgpack.packb(chunks.chunked(doc, sender), use_bin_type=True)
    for n, _ in arrays:  # every array past one chunk travels as a root, not bytes
        if n > SIZE:
            assert len(value) < sum(length for length, _ in arrays)
    store = fetch_all(value, sender)
    assert msgpack.unpackb(value, raw=False, ext_hook=chunks.join_hook(store)) == doc
    # The refs are the roots only, one per distinct large array.
    roots = {chunks.split(a, chunks.ChunkCache()).data[-32:] for a in doc["arrays"] if len(a) > SIZE}
    assert set(chunks.refs_of(value)) == roots
    assert encode_value(doc) and decode_value(encode_value(doc)) == doc  # through the add-on's codec


@given(st.lists(lengths, max_size=4), st.booleans())
@settings(max_examples=40, deadline=None)
def test_a_value_is_encoded_as_the_walk_of_its_document_gives_it(sizes, nested):
    """A value packed to at most a chunk is sent as packed, without walking it for byte strings to cut; any
    other is walked: byte strings of exactly a chunk stay whole, one byte more is cut."""
    doc: object = {f"b{i}": bytes([i]) * size for i, size in enumerate(sizes)}
    if nested:
        doc = {"parts": [doc, {"n": 1}], "name": "x"}
    walked = msgpack.packb(chunks.chunked(doc), use_bin_type=True)
    assert encode_value(doc) == walked
    assert decode_value(encode_value(doc)) == doc


@settings(max_examples=30, deadline=None)
@given(st.integers(SIZE // 12 + 1, 120_000), st.data())
def test_moving_one_vertex_sends_one_chunk_and_one_node_per_level(count, data):
    store = chunks.ChunkCache()
    positions = [float(i % 97) for i in range(3 * count)]
    before = msgpack.packb(chunks.chunked({"vertices": pack_f32(positions)}, store), use_bin_type=True)
    index = data.draw(st.integers(0, 3 * count - 1))
    positions[index] += 1.0
    after = msgpack.packb(chunks.chunked({"vertices": pack_f32(positions)}, store), use_bin_type=True)
    (tree,) = chunks.trees_of(after)
    there = set(chunks.tree_blobs(before, store))
    sent = chunks.uploads(after, there.__contains__, store)
    assert [children is None for _, children in sent] == [True] + [False] * tree.depth
    assert sum(len(store.get(blob)) for blob, _ in sent) <= SIZE + tree.depth * chunks.FANOUT * 32
    assert chunks.refs_of(after) == [tree.root]


def test_a_value_of_the_flat_format_is_still_read():
    store = chunks.ChunkCache()
    pieces = [b"a" * SIZE, b"b" * SIZE, b"a" * SIZE, b"c" * 5]
    for piece in pieces:
        store.put(hashlib.sha256(piece).digest(), piece)
    hashes = [hashlib.sha256(piece).digest() for piece in pieces]
    ext = msgpack.ExtType(chunks.CHUNKED_EXT, (3 * SIZE + 5).to_bytes(8, "big") + b"".join(hashes))
    value = msgpack.packb({"v": ext}, use_bin_type=True)
    distinct = [hashes[0], hashes[1], hashes[3]]  # first seen
    assert chunks.holds_chunks(value)
    assert chunks.refs_of(value) == distinct  # every chunk is a ref, as the server knows them
    assert msgpack.unpackb(value, raw=False, ext_hook=chunks.join_hook(store)) == {"v": b"".join(pieces)}
    assert chunks.uploads(value, lambda _: False, store) == [(blob, None) for blob in distinct]
    assert chunks.wanted(value, chunks.ChunkCache()) == distinct


def tree_ext(length: int, chunk: int = SIZE, fanout: int = chunks.FANOUT, root: bytes = b"r" * 32) -> bytes:
    return length.to_bytes(8, "big") + chunk.to_bytes(4, "big") + fanout.to_bytes(2, "big") + root


def test_a_malformed_tree_is_refused_not_followed():
    assert chunks.Tree(tree_ext(SIZE + 1)).depth == 1
    assert chunks.Tree(tree_ext(2**7, chunk=1, fanout=2)).depth == 7
    assert chunks.Tree(tree_ext(chunks.MAX_TREE_BYTES)).length == chunks.MAX_TREE_BYTES  # the longest
    assert chunks.Tree(tree_ext(2, chunk=1, fanout=256)).depth == 1
    for bad in (
        tree_ext(SIZE),  # one chunk is no tree
        tree_ext(0),
        tree_ext(SIZE + 1, chunk=0),
        tree_ext(SIZE + 1, chunk=chunks.MAX_CHUNK_BYTES + 1),
        tree_ext(SIZE + 1, fanout=1),
        tree_ext(SIZE + 1, fanout=0),
        tree_ext(SIZE + 1, fanout=chunks.MAX_FANOUT + 1),
        tree_ext(2**64 - 1, chunk=1, fanout=2),  # the largest length: far deeper than MAX_DEPTH
        tree_ext(2**8 + 1, chunk=1, fanout=2),  # nine levels
        tree_ext(chunks.MAX_TREE_BYTES + 1),  # a few repeated blobs could claim it: never joined
        tree_ext(SIZE + 1)[:-1],
        tree_ext(SIZE + 1) + b"\0",
        b"",
    ):
        with pytest.raises(ValueError):
            chunks.Tree(bad)
    # Nodes that do not hold what the extension says: refused when followed.
    store = chunks.ChunkCache()
    ext = chunks.split(b"x" * (3 * SIZE), store)
    root = ext.data[-32:]
    for node in (b"", b"y" * 31, b"z" * 64, b"w" * 32 * (chunks.FANOUT + 1)):
        forged = chunks.ChunkCache()
        forged.put(root, node)
        value = msgpack.packb({"v": ext}, use_bin_type=True)
        with pytest.raises(ValueError):
            msgpack.unpackb(value, raw=False, ext_hook=chunks.join_hook(forged))
        gate = ChunkTransfer(forged)
        assert gate.incoming([("k", value)])[0] == [("k", value)]  # to the applier, which refuses it


def test_a_value_whose_tree_is_not_here_names_what_to_fetch_next():
    sender = chunks.ChunkCache()
    data = b"x" * (LEVEL + 5)  # two levels: a root, two nodes, 33 chunks (32 of them alike)
    value = encode_value({"geometry": chunks.split(data, sender)})
    (tree,) = chunks.trees_of(value)
    assert tree.depth == 2 and chunks.refs_of(value) == [tree.root]
    store = chunks.ChunkCache()
    with pytest.raises(chunks.MissingChunks) as info:
        msgpack.unpackb(value, raw=False, ext_hook=chunks.join_hook(store))
    assert info.value.hashes == [tree.root]
    store.put(tree.root, sender.get(tree.root))
    nodes = chunks.node_hashes(sender.get(tree.root))
    assert chunks.wanted(value, store) == nodes
    for node in nodes:
        store.put(node, sender.get(node))
    assert chunks.wanted(value, store) == [
        hashlib.sha256(b"x" * SIZE).digest(),
        hashlib.sha256(b"x" * 5).digest(),
    ]


def test_the_cache_is_bounded_least_recently_used_first():
    store = chunks.ChunkCache(max_bytes=10)
    store.put(b"a", b"1234")
    store.put(b"b", b"1234")
    store.get(b"a")
    store.put(b"c", b"1234")
    assert b"a" in store and b"c" in store and b"b" not in store


def test_the_gate_lets_light_values_pass_keeps_each_key_in_order_and_skips_a_value_whose_chunk_is_gone():
    chunks.cache.clear()
    gate = ChunkTransfer(chunks.ChunkCache())
    sender = chunks.ChunkCache()
    heavy = encode_value({"v": chunks.split(b"h" * (SIZE + 1), sender)})
    gone = encode_value({"v": chunks.split(b"g" * (SIZE + 1), sender)})
    changes = [
        ("obj", b"\x01"),
        ("mesh", heavy),
        ("mesh", b"\x02"),
        ("old", gone),
        ("old", None),
        ("mat", b"\x03"),
    ]
    ready, gets = gate.incoming(changes)
    assert ready == [("obj", b"\x01"), ("mat", b"\x03")]  # light data first: a progressive join
    wanted = [blob for get in gets for blob in get.hashes]
    assert wanted == chunks.refs_of(heavy) + chunks.refs_of(gone)  # the roots first
    assert gate.incoming([("obj", b"\x04"), ("mesh", b"\x05")]) == ([("obj", b"\x04")], [])  # none twice
    (root,) = chunks.refs_of(heavy)
    first, second = chunks.node_hashes(sender.get(root))
    assert gate.arrived(root, sender.get(root)) == []
    assert [get.hashes for get in gate.take_gets()] == [[first, second]]  # the next level, known now
    assert gate.take_gets() == []
    assert gate.arrived(second, sender.get(second)) == []
    assert gate.arrived(first, sender.get(first)) == [("mesh", heavy), ("mesh", b"\x02"), ("mesh", b"\x05")]
    assert gate.take_gets() == []
    released = gate.arrived(chunks.refs_of(gone)[0], None)  # no longer stored: a later value replaced it
    assert released == [("old", None)] and gate.skipped == ["old"] and gate.waiting == 0
    assert gate.take_gets() == []


def test_blobs_pushed_with_an_applied_let_its_value_through_the_gate_at_once():
    """An edit's new chunk and the nodes above it, come with the applied (protocol 3), complete the tree the
    cache holds from the previous version: no blob_get; without them the gate asks for the new root."""
    sender = chunks.ChunkCache()
    data = bytearray(b"p" * (LEVEL + 5))  # a root, two nodes, 33 chunks
    before = encode_value({"v": chunks.split(bytes(data), sender)})
    data[SIZE + 7] = 0  # one byte of the second chunk
    after = encode_value({"v": chunks.split(bytes(data), sender)})
    ben = fetch_all(before, sender)
    new = [blob for blob, _ in chunks.uploads(after, lambda blob: blob in ben, sender)]
    assert len(new) == 3  # what the editor uploads: the chunk, its node, the root
    assert ChunkTransfer(fetch_all(before, sender)).incoming([("mesh", after)])[1] != []
    gate = ChunkTransfer(ben)
    gate.pushed([[blob, sender.get(blob)] for blob in reversed(new)])  # top level first, as sent
    gate.pushed(None)
    assert gate.incoming([("mesh", after)]) == ([("mesh", after)], [])
    assert (gate.stats["pushed"], gate.stats["fetched"]) == (3, 0)
    assert set(new) <= ben.on_server  # a value referencing them is live: not uploaded again


def test_uploads_go_children_first_once_per_connection_and_again_after_a_loss_unless_confirmed():
    store = chunks.ChunkCache()
    gate = ChunkTransfer(store)
    value = encode_value({"v": chunks.split(bytes(range(256)) * 600, store)})  # 153,600 bytes: 5 chunks
    ops = gate.with_refs([["set", "k", value], ["set", "small", b"\x01"], ["delete", "gone"]])
    (root,) = refs = chunks.refs_of(value)
    assert ops[0] == ["set", "k", value, refs] and ops[1] == ["set", "small", b"\x01"]
    leaves = chunks.node_hashes(store.get(root))
    distinct = list(dict.fromkeys(leaves))
    puts = gate.uploads(ops)
    assert [p.hash for p in puts] == [*distinct, root]
    assert [p.children for p in puts] == [None] * len(distinct) + [distinct]
    assert all(hashlib.sha256(p.data).digest() == p.hash for p in puts)
    assert gate.uploads(ops) == []
    gate.stored(distinct[0])
    gate.connection_lost()
    assert [p.hash for p in gate.uploads(ops)] == [*distinct[1:], root]  # the confirmed one is not sent again
    gate.stored(root)
    gate.connection_lost()
    assert gate.uploads(ops) == []  # a stored node stands for its subtree
    gate.forget_stored(ops)
    gate.connection_lost()
    assert [p.hash for p in gate.uploads(ops)] == [*distinct, root]


def test_unpack_of_joined_chunks_is_the_array():
    values = [float(i) for i in range(50_000)]
    assert list(unpack_f32(decode_value(encode_value({"v": pack_f32(values)}))["v"])) == values


def test_an_array_split_again_hashes_only_the_chunks_that_changed_and_names_the_same_tree(monkeypatch):
    """A large array read again (a mesh copied out of edit mode, one vertex moved) is compared with the
    last split of its length chunk by chunk: an equal chunk keeps its hash. The tree is the one a fresh
    split names, and a chunk evicted from the cache since is put back."""
    rng = random.Random(7)
    first = rng.randbytes(40 * SIZE + 5)
    moved = bytearray(first)
    moved[17 * SIZE + 3] ^= 0xFF
    moved = bytes(moved)
    store = chunks.ChunkCache()
    chunks._recent.clear()
    chunks.split(first, store)
    other = rng.randbytes(len(first))  # another array of that length (a mesh's corner edges)
    chunks.split(other, store)
    hashed: list[int] = []
    sha256 = hashlib.sha256

    def counting(data=b""):
        hashed.append(len(data))
        return sha256(data)

    monkeypatch.setattr(chunks.hashlib, "sha256", counting)
    evicted = sha256(first[:SIZE]).digest()
    store._chunks.pop(evicted)
    again = chunks.split(moved, store)
    assert [length for length in hashed if length > chunks.FANOUT * chunks.HASH_BYTES] == [SIZE]  # not nodes
    monkeypatch.setattr(chunks.hashlib, "sha256", sha256)
    assert again == chunks.split(moved, chunks.ChunkCache())
    assert store.get(evicted) == first[:SIZE]
    assert chunks.split(moved, store) == again and chunks.split(other, store) == chunks.split(
        other, chunks.ChunkCache()
    )


def test_an_unchanged_array_read_into_a_reused_buffer_is_the_byte_string_split_last():
    """A mesh in edit mode is read several times a second into reused buffers (arrays.scratch): an array
    equal to one split lately packs to that very byte string (no copy, and split finds it equal at once);
    a changed one packs to a fresh copy of its bits, which later reads cannot change."""
    from blender_addon.sync import arrays
    from blender_addon.sync.codec import pack_i32, pack_known, packs_to

    chunks._recent.clear()
    values = list(range(3 * chunks.REUSE_BYTES // 4))
    sent = pack_i32(values)
    chunks.split(sent, chunks.ChunkCache())
    buf = arrays.scratch("i", len(values))
    buf[:] = memoryview(bytearray(sent)).cast("i")
    assert pack_known(buf) is sent and packs_to(buf, sent)
    assert arrays.scratch("i", len(values)).obj is buf.obj  # the same memory, read again
    buf[5] = -1
    fresh = pack_known(buf)
    assert fresh is not sent and fresh == pack_i32([*values[:5], -1, *values[6:]]) and not packs_to(buf, sent)
    buf[5] = 5
    assert fresh[20:24] == pack_i32([-1])  # its own copy
    short = arrays.scratch("i", 8)
    short[:] = memoryview(bytearray(pack_i32(range(8)))).cast("i")
    assert pack_known(short) == pack_i32(range(8))  # too short to look for: packed as it is
