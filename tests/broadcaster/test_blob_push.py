"""The blobs a write makes new travel with it (docs/protocol.md section 3a, "Pushed with the write"): a
member of protocol 3 gets them in the write's ``applied`` and needs no ``blob_get``, within the limits of
protocol/limits.py; a member of an older version gets the ``applied`` it always got. Real servers over real
sockets and lmdb, the trio client library.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
import trio
from support import ana_and_ben_in_a_room, running_broadcaster

from broadcaster.client import ServerError
from protocol import Applied, encode_frame
from protocol.framing import FrameReader, unpack_body
from protocol.limits import MAX_PUSHED_BLOBS, MAX_PUSHED_BYTES


def h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


async def put_node(client, children: list[bytes]) -> bytes:
    """A list node as the add-on makes them: its children's hashes, concatenated (and named in order)."""
    return await client.put_blob(b"".join(children), children=list(dict.fromkeys(children)))


async def next_applied(client) -> Applied:
    with trio.fail_after(20):
        while True:
            event = await client.receive()
            if isinstance(event, Applied):
                return event


def missing(root: bytes, have: dict[bytes, bytes], leaves: set[bytes]) -> set[bytes]:
    """What a member holding ``have`` would still fetch to read the tree under ``root``."""
    lacking, todo = set(), [root]
    while todo:
        blob = todo.pop()
        if blob not in have:
            lacking.add(blob)
        elif blob not in leaves:
            todo += [have[blob][i : i + 32] for i in range(0, len(have[blob]), 32)]
    return lacking


async def test_the_blobs_a_write_makes_new_reach_the_other_members_with_it(server):
    async with ana_and_ben_in_a_room(server) as (ana, ben):
        chunks = [bytes([i]) * 4000 for i in range(4)]
        leaves = [await ana.put_blob(chunk) for chunk in chunks]
        left, right = await put_node(ana, leaves[:2]), await put_node(ana, leaves[2:])
        root1 = await put_node(ana, [left, right])
        seq = await ana.batch([["set", "mesh", b"v1", [root1]]])  # the author's ack as always
        first = await next_applied(ben)
        assert first.seq == seq
        # Top level first, each blob once, with its bytes.
        assert [blob for blob, _ in first.blobs] == [root1, left, right, *leaves]
        have = {blob: data for blob, data in first.blobs}
        assert all(h(data) == blob for blob, data in have.items())
        assert missing(root1, have, set(leaves)) == set()
        # An edit of one chunk: that chunk, the node above it and the root are new; nothing else is sent.
        edited = await ana.put_blob(b"\xff" * 4000)
        right2 = await put_node(ana, [leaves[2], edited])
        root2 = await put_node(ana, [left, right2])
        await ana.batch([["set", "mesh", b"v2", [root2]]])
        second = await next_applied(ben)
        assert [blob for blob, _ in second.blobs] == [root2, right2, edited]
        have.update((blob, data) for blob, data in second.blobs)
        assert missing(root2, have, {*leaves, edited}) == set()  # Ben needs no blob_get
        # A write naming nothing new (a value without refs, then refs already sent) carries no blobs.
        await ana.batch([["set", "name", b"Grid"]])
        await ana.batch([["set", "copy", b"v2", [root2]]])
        assert (await next_applied(ben)).blobs is None
        assert (await next_applied(ben)).blobs is None


async def test_a_write_past_the_push_limits_carries_its_upper_levels_or_nothing(server):
    async with ana_and_ben_in_a_room(server) as (ana, ben):
        # Ten 32 KiB chunks under one node: 320 KiB, past MAX_PUSHED_BYTES. The root and the node come,
        # then as many chunks as fit; Ben fetches the rest in one round, their parents being here.
        size = 32 * 1024
        leaves = [await ana.put_blob(bytes([i]) * size) for i in range(10)]
        node = await put_node(ana, leaves)
        root = await put_node(ana, [node])
        await ana.batch([["set", "big", b"v", [root]]])
        blobs = (await next_applied(ben)).blobs
        fit = (MAX_PUSHED_BYTES - 32 - 10 * 32) // size  # what the root and the node leave
        assert [blob for blob, _ in blobs] == [root, node, *leaves[:fit]] and fit == 7
        assert sum(len(data) for _, data in blobs) <= MAX_PUSHED_BYTES
        # More new blobs than MAX_PUSHED_BLOBS (each small): the first MAX_PUSHED_BLOBS in level order.
        small = [await ana.put_blob(b"s%d" % i) for i in range(MAX_PUSHED_BLOBS + 5)]
        wide = await put_node(ana, small)
        await ana.batch([["set", "wide", b"v", [wide]]])
        pushed = [blob for blob, _ in (await next_applied(ben)).blobs]
        assert pushed == [wide, *small[: MAX_PUSHED_BLOBS - 1]]
        # One blob larger than the whole budget: nothing is pushed, and the applied is as before.
        huge = await ana.put_blob(b"h" * (MAX_PUSHED_BYTES + 1))
        await ana.batch([["set", "huge", b"v", [huge]]])
        assert (await next_applied(ben)).blobs is None


async def test_blobs_that_would_not_fit_one_frame_beside_the_ops_are_not_pushed(tmp_path):
    async with running_broadcaster(tmp_path / "d", max_frame_size=400 * 1024) as address:
        async with ana_and_ben_in_a_room(address) as (ana, ben):
            leaf = await ana.put_blob(b"c" * (200 * 1024))
            root = await put_node(ana, [leaf])
            await ana.batch([["set", "big", b"v" * (250 * 1024), [root]]])  # with the blobs: past 400 KiB
            assert (await next_applied(ben)).blobs is None
            leaf = await ana.put_blob(b"d" * (200 * 1024))
            root = await put_node(ana, [leaf])
            await ana.batch([["set", "big", b"v" * 1024, [root]]])
            assert [blob for blob, _ in (await next_applied(ben)).blobs] == [root, leaf]


async def test_a_write_refused_before_it_is_submitted_leaves_its_blobs_new_for_the_next_one(server):
    async with ana_and_ben_in_a_room(server) as (ana, ben):
        await ben.lock(["mesh"])
        leaf = await ana.put_blob(b"chunk" * 100)
        root = await put_node(ana, [leaf])
        with pytest.raises(ServerError) as refused:
            await ana.batch([["set", "mesh", b"v", [root]]])
        assert refused.value.code == "locked"
        await ben.unlock(["mesh"])
        await ana.batch([["set", "mesh", b"v", [root]]])
        applied = await next_applied(ben)
        assert [blob for blob, _ in applied.blobs] == [root, leaf]


async def read_bodies(stream: trio.SocketStream, reader: FrameReader, until: str) -> list[dict[str, Any]]:
    bodies: list[dict[str, Any]] = []
    with trio.fail_after(20):
        while True:
            payload = reader.next_payload()
            if payload is None:
                reader.feed(await stream.receive_some(1 << 16))
                continue
            bodies.append(unpack_body(payload))
            if bodies[-1]["type"] == until:
                return bodies


async def test_a_member_of_protocol_2_gets_the_applied_it_always_got(server):
    """Clients refuse fields they do not know: an older one is never sent ``blobs``."""
    async with ana_and_ben_in_a_room(server) as (ana, ben):
        stream = await trio.open_tcp_stream(*server)
        reader = FrameReader(1 << 24)
        try:
            hello = {"type": "hello", "protocol": 2, "protocol_min": 1, "client_name": "old"}
            await stream.send_all(encode_frame(hello) + encode_frame({"type": "join_room", "room": "r"}))
            await read_bodies(stream, reader, "snapshot_end")
            leaf = await ana.put_blob(b"chunk" * 100)
            await ana.batch([["set", "mesh", b"v", [await put_node(ana, [leaf])]]])
            old = (await read_bodies(stream, reader, "applied"))[-1]
        finally:
            await stream.aclose()
        assert old["ops"][0][:2] == ["set", "mesh"] and "blobs" not in old
        assert (await next_applied(ben)).blobs is not None  # the same write, to a member of protocol 3
