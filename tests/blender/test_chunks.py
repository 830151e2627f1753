"""Large byte strings as content-addressed chunks (blender_addon/sync/chunks.py) and the gate that holds
remote values until their chunks are here (blender_addon/chunk_transfer.py). No server, no scene."""

from __future__ import annotations

import hashlib

import pytest

pytest.importorskip("bpy", reason="bpy (Blender as a Python module) is not installed")

from hypothesis import given, settings
from hypothesis import strategies as st

from blender_addon.chunk_transfer import ChunkTransfer
from blender_addon.sync import chunks, decode_value, encode_value
from blender_addon.sync.codec import pack_f32, unpack_f32

pytestmark = pytest.mark.blender

SIZE = chunks.CHUNK_BYTES
# Lengths around every boundary: empty, one chunk, one past it, several chunks and a bit.
lengths = st.sampled_from([0, 1, SIZE - 1, SIZE, SIZE + 1, 2 * SIZE, 3 * SIZE + 17]) | st.integers(
    0, 5 * SIZE
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(lengths, st.integers(0, 255)), min_size=1, max_size=4), st.binary(max_size=64))
def test_chunking_and_reassembly_round_trip_arbitrary_arrays(arrays, small):
    doc = {"small": small, "arrays": [bytes([fill]) * n for n, fill in arrays], "nested": {"a": [small]}}
    store = chunks.ChunkCache()
    value = encode_value(doc)
    for n, _ in arrays:  # every array past one chunk travels as hashes, not bytes
        if n > SIZE:
            assert len(value) < sum(length for length, _ in arrays)
    assert decode_value(value) == doc
    # The same from a cache that got the chunks over the wire (by hash, checked):
    for blob in chunks.refs_of(value):
        data = chunks.cache.get(blob)
        assert hashlib.sha256(data).digest() == blob
        store.put(blob, data)
    assert chunks.missing(chunks.refs_of(value), store) == []


@settings(max_examples=30, deadline=None)
@given(st.integers(SIZE // 12 + 1, 40_000), st.data())
def test_moving_one_vertex_changes_one_chunk(count, data):
    positions = [float(i % 97) for i in range(3 * count)]
    before = chunks.refs_of(encode_value({"vertices": pack_f32(positions)}))
    index = data.draw(st.integers(0, 3 * count - 1))
    positions[index] += 1.0
    after = chunks.refs_of(encode_value({"vertices": pack_f32(positions)}))
    assert len(set(after) - set(before)) == 1
    assert len(before) == len(after)


def test_huge_arrays_get_larger_fixed_chunks_within_the_blob_limit():
    assert chunks.chunk_size(64 * 1024 * 1024) == SIZE
    assert chunks.chunk_size(64 * 1024 * 1024 + 1) == 2 * SIZE
    assert chunks.chunk_size(10**12) == chunks.MAX_CHUNK_BYTES


def test_a_value_whose_chunks_are_not_here_names_them():
    store = chunks.ChunkCache()
    ext = chunks.split(b"x" * (2 * SIZE + 5), store)
    value = encode_value({"geometry": ext})
    missing = [hashlib.sha256(b"x" * SIZE).digest(), hashlib.sha256(b"x" * 5).digest()]
    assert chunks.refs_of(value) == missing
    chunks.cache.clear()
    with pytest.raises(chunks.MissingChunks) as info:
        decode_value(value)
    assert info.value.hashes == [missing[0], missing[0], missing[1]]


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
    assert sorted(wanted) == sorted(set(chunks.refs_of(heavy)) | set(chunks.refs_of(gone)))
    assert gate.incoming([("obj", b"\x04"), ("mesh", b"\x05")]) == ([("obj", b"\x04")], [])  # none twice
    first, second = chunks.refs_of(heavy)
    assert gate.arrived(second, sender.get(second)) == []
    assert gate.arrived(first, sender.get(first)) == [("mesh", heavy), ("mesh", b"\x02"), ("mesh", b"\x05")]
    released = []
    for blob in chunks.refs_of(gone):
        released += gate.arrived(blob, None)  # the server no longer holds it: a later value replaced it
    assert released == [("old", None)] and gate.skipped == ["old"] and gate.waiting == 0


def test_uploads_go_once_per_connection_and_again_after_a_loss_unless_confirmed():
    store = chunks.ChunkCache()
    gate = ChunkTransfer(store)
    value = encode_value({"v": chunks.split(bytes(range(256)) * 600, store)})
    ops = gate.with_refs([["set", "k", value], ["set", "small", b"\x01"], ["delete", "gone"]])
    refs = chunks.refs_of(value)
    assert ops[0] == ["set", "k", value, refs] and ops[1] == ["set", "small", b"\x01"]
    puts = gate.uploads(ops)
    assert [p.hash for p in puts] == refs and all(hashlib.sha256(p.data).digest() == p.hash for p in puts)
    assert gate.uploads(ops) == []
    gate.stored(refs[0])
    gate.connection_lost()
    assert [p.hash for p in gate.uploads(ops)] == refs[1:]  # the confirmed one is not sent again
    gate.forget_stored(ops)
    gate.connection_lost()
    assert [p.hash for p in gate.uploads(ops)] == refs


def test_unpack_of_joined_chunks_is_the_array():
    values = [float(i) for i in range(50_000)]
    assert list(unpack_f32(decode_value(encode_value({"v": pack_f32(values)}))["v"])) == values
