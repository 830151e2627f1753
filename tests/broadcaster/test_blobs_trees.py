"""Blob trees (docs/protocol.md section 3a): a node blob holds its children, a key names only roots, and the
command that drops a node drops every blob below it that nothing else holds. Real servers over real sockets
and lmdb, the trio client library.
"""

from __future__ import annotations

import hashlib

import pytest
import trio
from support import ana_and_ben_in_a_room, outcomes, running_broadcaster

from broadcaster.app import open_broadcaster
from broadcaster.blob_layout import blob_path, holder_path, pin_holder, put_blob_command
from broadcaster.client import ServerError, connect
from broadcaster.config import ServerConfig
from protocol import BlobGet, BlobPut, BlobQuery
from protocol.limits import MAX_BLOB_CHILDREN


def h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


async def stored(client, blobs) -> set[bytes]:
    blobs = list(blobs)
    return set(blobs) - set(await client.missing_blobs(blobs))


async def put_node(client, children: list[bytes]) -> bytes:
    """A list node as the add-on makes them: its children's hashes, concatenated."""
    return await client.put_blob(b"".join(children), children=sorted(set(children)))


async def test_a_key_holds_a_tree_through_its_root_and_releases_it_in_one_command(server):
    async with ana_and_ben_in_a_room(server) as (ana, ben):
        a, b, c, d = [await ana.put_blob(bytes([i]) * 5000) for i in range(4)]
        left = await put_node(ana, [a, b, a])  # a repeated chunk is one child
        root1 = await put_node(ana, [left, c])
        await ana.batch([["set", "mesh", b"v1", [root1]]])
        # Only the root is named, yet every blob below it is held: the uploads' pins ended as nodes and the
        # key took them over, so a set without refs drops the whole tree at once (none is pinned).
        everything = [a, b, c, d, left, root1]
        assert await stored(ben, everything) == set(everything)
        # The next version shares `left` and swaps c for d: c goes with the old root, the rest stays.
        root2 = await put_node(ana, [left, d])
        await ana.batch([["set", "mesh", b"v2", [root2]]])
        assert await stored(ben, [*everything, root2]) == {a, b, d, left, root2}
        assert await ben.get_blob(root2) == left + d
        # A second key shares the subtree `left`: dropping the first tree keeps it.
        await ana.batch([["set", "other", b"v", [left]], ["set", "mesh", b"small"]])
        assert await stored(ben, [*everything, root2]) == {a, b, left}
        await ana.delete("other")
        assert await stored(ben, [*everything, root2]) == set()


async def test_an_edits_blobs_and_batch_sent_without_waiting_are_taken_in_order(server):
    """As the add-on sends an edit: its chunk, the nodes above it (children first), then the batch naming the
    root, none waiting for the one before (``send_blob``, ``send_ops``): each is stored before the next."""
    async with ana_and_ben_in_a_room(server) as (ana, ben):
        for version in range(3):
            chunk = bytes([version]) * 6000
            sent = [await ana.send_blob(chunk)]
            node = h(chunk) + bytes(32)  # lists its child (and a hash it does not hold)
            sent.append(await ana.send_blob(node, children=[h(chunk)]))
            sent.append(await ana.send_blob(h(node), children=[h(node)]))
            _, written = await ana.send_ops([["set", "mesh", bytes([version]), [sent[2][0]]]])
            with trio.fail_after(20):  # a blob or the batch refused (no_such_blob) raises here
                for _, waiter in sent:
                    await waiter.wait()
                await written.wait()
            assert await stored(ben, [blob for blob, _ in sent]) == {blob for blob, _ in sent}
            assert await ben.get_blob(sent[1][0]) == node


async def test_a_tree_outlives_its_uploader_only_through_a_key(tmp_path):
    """The pins of a tree's upload end with the session's grace; a key's hold on the root keeps it all."""
    async with running_broadcaster(tmp_path / "d", pin_grace=0.2) as address:
        async with connect(*address, name="ana") as ana:
            await ana.create_room("r", keep_open=True)
            await ana.join("r")
            leaves = [await ana.put_blob(bytes([i]) * 100) for i in range(3)]
            held = await put_node(ana, leaves[:2])
            unheld = await put_node(ana, leaves[1:])  # uploaded, never referenced
            await ana.batch([["set", "k", b"v", [held]]])
        async with connect(*address, name="ben") as ben:
            with trio.fail_after(20):
                while await stored(ben, [unheld, leaves[2]]):
                    await trio.sleep(0.05)
            assert await stored(ben, [held, *leaves]) == {held, *leaves[:2]}


async def test_bad_tree_input_is_refused_and_changes_nothing(server):
    async with connect(*server, name="ana") as ana:
        await ana.create_room("r", keep_open=True)
        await ana.join("r")

        async def put(data: bytes, children: list[bytes]) -> None:
            make = lambda ref: BlobPut(hash=h(data), data=data, ref=ref, children=children)  # noqa: E731
            await ana._request(*ana.session.request(make))

        async def refused(children) -> ServerError:
            data = b"".join(children) or b"node"  # a node lists its children's hashes
            with pytest.raises(ServerError) as info:
                await put(data, children)
            assert await ana.missing_blobs([h(data)]) == [h(data)]
            return info.value

        leaf = await ana.put_blob(b"leaf")
        unknown = await refused([leaf, h(b"nobody uploaded this")])
        assert unknown.code == "no_such_blob" and h(b"nobody uploaded this").hex() in unknown.message
        assert (await refused([])).code == "bad_message"
        assert (await refused([leaf, leaf])).message == "blob_put.children must not name a blob twice"
        many = [i.to_bytes(32, "big") for i in range(MAX_BLOB_CHILDREN + 1)]
        too_many = await refused(many)
        assert too_many.message.startswith(f"blob_put.children must have 1 to {MAX_BLOB_CHILDREN}")
        # A node naming itself (no real content can: its hash would be in its own bytes).
        data = b"self"
        with pytest.raises(ServerError) as info:
            await put(data, [h(data)])
        assert (info.value.code, info.value.message) == (
            "bad_message",
            "blob_put.children must not name the blob itself",
        )
        # A node's bytes list each child's hash at an offset that is a multiple of 32.
        for data in (b"node", bytes(1) + leaf + bytes(31), leaf[:31] + leaf + bytes(1)):
            with pytest.raises(ServerError) as info:
                await put(data, [leaf])
            assert (info.value.code, info.value.message) == (
                "bad_message",
                f"blob_put.children names {leaf.hex()}, which data does not list at an offset that is a "
                "multiple of 32",
            )
            assert await ana.missing_blobs([h(data)]) == [h(data)]
        # The session goes on; a referenced leaf stays a leaf.
        node = await put_node(ana, [leaf])
        assert await ana.batch([["set", "k", b"v", [node]]]) == 1


async def test_nobody_can_make_a_stored_blob_hold_a_cycle_or_blobs_of_their_choosing(tmp_path):
    """What a node holds follows from its bytes: another room's artist cannot put a room's well-known chunk
    again naming her own blobs (the room's quota and export would count them, its share links read them),
    nor close a cycle through a node that lists it (nothing would ever drop them). Both are refused, and
    the room's tree goes with its key as before."""
    async with running_broadcaster(tmp_path / "d", max_room_blob_bytes=40_000) as address:
        async with connect(*address, name="ana") as ana, connect(*address, name="eve") as eve:
            for client, room in ((ana, "a"), (eve, "e")):
                await client.create_room(room, keep_open=True)
                await client.join(room)
            zeros = await ana.put_blob(bytes(32 * 1024))  # a chunk anyone can make: empty vertices
            root = await put_node(ana, [zeros])
            await ana.batch([["set", "mesh", b"v", [root]]])
            hers = await eve.put_blob(b"eve" * 10_000)
            await eve.batch([["set", "k", b"v", [hers]]])
            for children in ([hers], [root]):  # her blob; a cycle: root lists zeros
                with pytest.raises(ServerError) as info:
                    await eve.put_blob(bytes(32 * 1024), children=children)
                assert info.value.code == "bad_message" and "does not list" in info.value.message
            await ana.batch([["set", "mesh", b"w", [root]]])  # 32,800 bytes: hers would pass 40,000
            await ana.delete("mesh")
            assert await stored(ana, [zeros, root, hers]) == {hers}


async def test_a_node_put_again_naming_other_children_holds_at_most_256_in_all(server):
    """Its bytes list 512 hashes; put with the first 256 as children, then again with one more, it is
    refused with limit_exceeded (it was `unavailable`, which a client retries, past the tree's 1,024, and
    nothing below that)."""
    async with connect(*server, name="ana") as ana:
        sent = [await ana.send_blob(i.to_bytes(4, "big")) for i in range(2 * MAX_BLOB_CHILDREN)]
        with trio.fail_after(30):
            for _, waiter in sent:
                await waiter.wait()
        leaves = [blob for blob, _ in sent]
        data = b"".join(leaves)
        node = await ana.put_blob(data, children=leaves[:MAX_BLOB_CHILDREN])
        assert await ana.put_blob(data, children=leaves[:MAX_BLOB_CHILDREN]) == node  # the same: fine
        assert await ana.put_blob(data, children=leaves[1 : MAX_BLOB_CHILDREN // 2]) == node  # a subset
        with pytest.raises(ServerError) as info:
            await ana.put_blob(data, children=leaves[1 : MAX_BLOB_CHILDREN + 1])
        assert (info.value.code, info.value.message) == (
            "limit_exceeded",
            f"tree node {node.hex()} would hold more than {MAX_BLOB_CHILDREN} children in all",
        )
        assert await ana.get_blob(node) == data
        # The same sent without waiting (puts of one node are taken one at a time, each reading the last).
        data = b"".join(reversed(leaves))
        first, second = [
            await ana.send_blob(data, children=half)
            for half in (leaves[:MAX_BLOB_CHILDREN], leaves[MAX_BLOB_CHILDREN:])
        ]
        with trio.fail_after(20):
            await first[1].wait()
            with pytest.raises(ServerError) as info:
                await second[1].wait()
        assert info.value.code == "limit_exceeded"


async def test_blob_requests_are_answered_in_order_with_the_puts_sent_before_them(server):
    """A put of 1 MiB, then, without waiting, a query and a get of it and a put refused at once: the query
    and the get see the blob (they said it was missing, and gave no bytes), and every answer comes in the
    order sent (the refusal came before the first put's answer)."""
    async with connect(*server, name="ana") as ana:
        answered: list[str] = []  # in the order the client's reader takes the answers

        def track(name: str, waiter):
            if waiter.done.is_set():
                answered.append(name)
            else:
                resolve = waiter.resolve
                waiter.resolve = lambda *a, **k: (answered.append(name), resolve(*a, **k))
            return waiter

        data = bytes(range(256)) * 4096
        blob, stored = await ana.send_blob(data)
        track("put", stored)
        request = ana.session.request
        query = track(
            "query", await ana._send_request(*request(lambda ref: BlobQuery(hashes=[blob], ref=ref)))
        )
        get = track("get", await ana._send_request(*request(lambda ref: BlobGet(hashes=[blob], ref=ref))))
        nobody = h(b"nobody uploaded this")
        refused = track("refused", (await ana.send_blob(nobody, children=[nobody]))[1])
        with trio.fail_after(20):
            for waiter in (stored, query, get):
                await waiter.wait()
            with pytest.raises(ServerError) as info:
                await refused.wait()
        assert info.value.code == "no_such_blob"
        assert answered == ["put", "query", "get", "refused"]
        assert query.value.missing == [] and get.value.data == data


async def test_the_room_quota_counts_a_tree_whole(tmp_path):
    async with running_broadcaster(tmp_path / "d", max_room_blob_bytes=2500) as address:
        async with connect(*address, name="ana") as ana:
            await ana.create_room("r", keep_open=True)
            await ana.join("r")
            leaves = [await ana.put_blob(bytes([i]) * 1000) for i in range(3)]
            small, big = await put_node(ana, leaves[:2]), await put_node(ana, leaves)
            await ana.batch([["set", "k1", b"v", [small]]])  # 2000 bytes of chunks, 64 of node
            with pytest.raises(ServerError) as info:
                await ana.batch([["set", "k2", b"v", [leaves[2]]]])
            assert info.value.code == "limit_exceeded" and "max_room_blob_bytes (2500)" in info.value.message
            with pytest.raises(ServerError) as info:
                await ana.batch([["set", "k1", b"v", [big]]])  # 3096 bytes: a root of 96 is not the size
            assert info.value.code == "limit_exceeded"
            await ana.batch([["set", "k1", b"v", [leaves[2]]]])  # replacing the tree frees its bytes
            # (`small` went with k1's old value; its chunks stay: the pinned upload `big` holds them)
            await ana.batch([["set", "k2", b"v", [leaves[0]]]])
            assert await stored(ana, [small, big, *leaves]) == {big, *leaves}


async def test_the_room_quota_counts_writes_still_in_flight(tmp_path):
    """Writes sent without waiting, each naming another 1,000-byte blob under a quota of 3,000: exactly
    three are taken (they were all taken: the quota read only what had committed)."""
    async with running_broadcaster(tmp_path / "d", max_room_blob_bytes=3000) as address:
        async with connect(*address, name="ana") as ana:
            await ana.create_room("r", keep_open=True)
            await ana.join("r")
            blobs = [await ana.put_blob(bytes([i]) * 1000) for i in range(6)]
            sent = [await ana.send_ops([["set", f"k{i}", b"v", [blob]]]) for i, blob in enumerate(blobs)]
            with trio.fail_after(20):
                codes = await outcomes([waiter for _, waiter in sent], "max_room_blob_bytes (3000)")
            assert codes == ["ok"] * 3 + ["limit_exceeded"] * 3
            await ana.delete("k0")  # what a write freed, and what refused ones held, is free again
            await ana.batch([["set", "k5", b"v", [blobs[5]]]])
            with pytest.raises(ServerError) as info:
                await ana.batch([["set", "k4", b"v", [blobs[4]]]])
            assert info.value.code == "limit_exceeded"


async def test_the_servers_tree_edges_follow_the_nodes_holds_and_go_with_them(tmp_path):
    """Each node mirrors the edges of its committed trees (for quotas, fetch order, a viewer's reach): made
    from a node's holds when it is stored, gone when it goes."""
    config = ServerConfig(host="127.0.0.1", port=0, data_dir=tmp_path / "d")
    async with open_broadcaster(config) as broadcaster:
        host, port = broadcaster.listen_addresses[0].rsplit(":", 1)
        async with connect(host, int(port), name="ana") as ana:
            await ana.create_room("r", keep_open=True)
            await ana.join("r")
            leaves = [await ana.put_blob(bytes([i]) * 1000) for i in range(3)]
            left = await put_node(ana, leaves[:2])
            root = await put_node(ana, [left, leaves[2]])
            await ana.batch([["set", "k", b"v", [root]]])
            blobs = broadcaster.blobs
            assert blobs.children == {root: {left, leaves[2]}, left: set(leaves[:2])}
            assert blobs.parents == {left: {root}, leaves[2]: {root}, **{leaf: {left} for leaf in leaves[:2]}}
            await ana.delete("k")
            assert await stored(ana, [root, left, *leaves]) == set()
            assert blobs.children == {} and blobs.parents == {}


async def test_a_tree_held_through_a_restart_is_counted_and_dropped_whole(tmp_path):
    """A node's holds live in its own record: a restarted server counts the tree whole against the room's
    quota (its edges read back from the records) and still drops every blob below a released root."""
    async with running_broadcaster(tmp_path / "d", max_room_blob_bytes=2500) as address:
        async with connect(*address, name="ana") as ana:
            await ana.create_room("r", keep_open=True)
            await ana.join("r")
            leaves = [await ana.put_blob(bytes([i]) * 1000) for i in range(3)]
            root = await put_node(ana, [await put_node(ana, leaves[:1]), leaves[1]])
            await ana.batch([["set", "k1", b"v", [root]]])  # 2000 bytes of chunks under two nodes
    async with running_broadcaster(tmp_path / "d", max_room_blob_bytes=2500) as address:
        async with connect(*address, name="ana") as ana:
            await ana.join("r")
            with pytest.raises(ServerError) as info:
                await ana.batch([["set", "k2", b"v", [leaves[2]]]])
            assert info.value.code == "limit_exceeded"
            assert await stored(ana, [root, *leaves[:2]]) == {root, *leaves[:2]}
            await ana.delete("k1")
            assert await stored(ana, [root, *leaves[:2]]) == set()


def test_a_node_put_names_each_child_once_in_its_own_record():
    """A node's holds are one list in its store op (docs/tree.md, holds): no record, rule or condition per
    child (a put of /blobs/<child>/refs/n:<node> each, with a rule and an 'if', was half of what an edit of
    a large value wrote). The only op per child is the end of the uploader's pin, for those it pinned."""
    node, children = h(b"node"), sorted(h(bytes([i])) for i in range(32))
    command = put_blob_command(node, 1024, "ana-00000001", 1, children, pinned=children)
    assert set(command) == {"then"}
    store, pin, *released = command["then"]
    assert store["path"] == list(blob_path(node))
    assert store["add_holds"] == [["blobs", c] for c in children]  # the hashes' bytes, not their hex
    assert pin["path"] == list(holder_path(node, pin_holder("ana-00000001")))
    assert released == [
        {"op": "delete", "path": list(holder_path(c, pin_holder("ana-00000001")))} for c in children
    ]
    edit = put_blob_command(node, 1024, "ana-00000001", 1, children, pinned=children[3:4])
    assert edit["then"][2:] == [
        {"op": "delete", "path": list(holder_path(children[3], pin_holder("ana-00000001")))}
    ]
    leaf = put_blob_command(children[0], 10, "ana-00000001", 1)
    assert "add_holds" not in leaf["then"][0]  # a leaf (or a node put again as one) keeps what it holds


async def test_a_blob_put_again_keeps_its_bytes_and_gains_a_nodes_holds(server):
    """Stored as a plain chunk, put again as a node naming children (it holds them from then on), and
    again as a plain chunk by another artist (the holds stay): the same bytes throughout, and everything
    goes with the last key that holds the node."""
    async with ana_and_ben_in_a_room(server) as (ana, ben):
        a, b = [await ana.put_blob(bytes([i]) * 3000) for i in range(2)]
        node = await ana.put_blob(a + b)  # the node's bytes, first as a plain chunk
        assert await put_node(ana, [a, b]) == node  # now as a node: it holds a and b, her pins on them end
        await ana.batch([["set", "mesh", b"v", [node]]])  # her pin on the node ends
        assert await ben.put_blob(a + b) == node  # stored already: put again by another artist
        assert await ben.get_blob(node) == a + b
        await ben.batch([["set", "other", b"v", [node]]])
        await ana.delete("mesh")
        assert await stored(ben, [a, b, node]) == {a, b, node}  # the node's holds were kept
        await ben.delete("other")
        assert await stored(ben, [a, b, node]) == set()
