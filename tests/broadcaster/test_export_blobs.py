"""Export and import carry the blobs a room's values reference, against real ``blendsync serve`` processes:
the imported room is whole on a server that never held them (its keys hold them), a rerun sends only what
the server lacks, and a damaged file or a missing blob is refused with no room created."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import msgpack
import pytest
import trio
from support import REPO, ServerProcess, running_broadcaster

from broadcaster.client import ServerError, connect
from broadcaster.roomfile import (
    VERSION,
    RoomFileError,
    check_document,
    make_document,
    read_room_file,
    write_room_file,
)
from broadcaster.roomtransfer import export_room, import_room, upload_blobs
from protocol.limits import MAX_BLOB_BYTES, MAX_BLOB_CHILDREN

GRACE = "[server]\npin_grace = 0.3\n"  # an upload no key references goes soon after its session


def serve(tmp_path: Path, name: str) -> ServerProcess:
    config = tmp_path / f"{name}.toml"
    config.write_text(GRACE)
    return ServerProcess(tmp_path / name, extra=["--config", str(config)])


@pytest.fixture
def servers(tmp_path: Path):
    source, target = serve(tmp_path, "a"), serve(tmp_path, "b")
    try:
        yield source.start(), target.start()
    finally:
        source.kill()
        target.kill()


async def room_map(host: str, port: int, room: str) -> tuple[int, dict[str, bytes]]:
    async with connect(host, port, name="checker") as checker:
        joined = await checker.join(room)
        state = dict(checker.state)
        # Left, not only disconnected: the server may see the closed connection after the caller's next
        # request, and a room with a member cannot be deleted.
        await checker.leave()
        return joined.seq, state


async def held(client, blobs) -> set[bytes]:
    blobs = list(blobs)
    return set(blobs) - set(await client.missing_blobs(blobs))


async def fill(client, room: str) -> dict[bytes, bytes]:
    """A room with chunked values: a mesh of three chunks (one of exactly the largest blob size), a
    chunk two keys share, plain keys; and a blob a key referenced and no longer does. Returns the blobs
    the live keys reference."""
    chunks = [os.urandom(MAX_BLOB_BYTES), b"middle" * 5000, b"\0"]
    shared, gone = os.urandom(1000), b"replaced" * 100
    blobs = {await client.put_blob(data): data for data in [*chunks, shared]}
    hashes = list(blobs)
    old = await client.put_blob(gone)
    await client.create_room(room, keep_open=True)
    await client.join(room)
    await client.batch(
        [
            ["set", "mesh/geometry", b"three chunks", hashes[:3]],
            ["set", "image/a", b"shared", [hashes[3]]],
            ["set", "image/b", b"shared too", [hashes[3]]],
            ["set", "plain", b"v"],
            ["set", "mesh/old", b"old", [old]],
        ]
    )
    await client.set("mesh/old", b"no chunks now")
    return blobs


async def test_an_exported_room_with_blobs_imports_whole_into_a_fresh_server(servers, tmp_path):
    (host_a, port_a), (host_b, port_b) = servers
    async with connect(host_a, port_a, name="ana") as ana:
        blobs = await fill(ana, "shot")
        document = await export_room(ana, "shot")
        before = await room_map(host_a, port_a, "shot")
    path = tmp_path / "shot.blendsync"
    write_room_file(path, document)
    loaded = read_room_file(path)
    assert loaded["version"] == VERSION and dict(map(tuple, loaded["blobs"])) == blobs  # not the released one
    assert sorted(map(tuple, loaded["refs"]))[0] == ("image/a", [list(blobs)[3]])

    async with connect(host_b, port_b, name="root") as root:
        result = await import_room(root, loaded, chunk_bytes=64)  # a part per key
        assert result == {"room": "shot", "keys": 5, "done": True, "blobs_uploaded": 4}
        assert await room_map(host_b, port_b, "shot") == before
        for blob, data in blobs.items():
            assert await root.get_blob(blob) == data
    async with connect(host_b, port_b, name="later") as later:
        # The import released the pins of the uploads in the transaction that made the keys hold them.
        assert await held(later, blobs) == set(blobs)
        joined = await later.join("shot")
        assert joined.seq == before[0]
        await later.set("image/a", b"no chunks")  # image/b still holds the shared chunk
        assert await held(later, blobs) == set(blobs)
        await later.leave()
        await later.delete_room("shot")  # the room was all that held them
        assert await held(later, blobs) == set()


async def test_a_rerun_sends_only_the_blobs_the_server_lacks(servers, tmp_path):
    (host_a, port_a), (host_b, port_b) = servers
    async with connect(host_a, port_a, name="ana") as ana:
        blobs = await fill(ana, "shot")
        document = await export_room(ana, "shot")
    first_two = set(list(blobs)[:2])
    async with connect(host_b, port_b, name="interrupted") as interrupted:  # within pin_grace of a rerun
        assert await upload_blobs(interrupted, document["blobs"], first_two) == 2
        result = await import_room(interrupted, document)
        assert result["blobs_uploaded"] == 2  # the other two
        result = await import_room(interrupted, document, name="shot-again")
        assert result["blobs_uploaded"] == 0
        assert (await room_map(host_b, port_b, "shot-again"))[1] == (await room_map(host_b, port_b, "shot"))[
            1
        ]


async def put_tree(client) -> tuple[bytes, dict[bytes, bytes], dict[bytes, list[bytes]]]:
    """Two levels of tree nodes over four chunks: a root over two nodes that share a chunk. Returns the root,
    every blob's bytes and each node's children."""
    blobs: dict[bytes, bytes] = {}
    children: dict[bytes, list[bytes]] = {}

    async def put(data: bytes, below: list[bytes] | None = None) -> bytes:
        blob = await client.put_blob(data, children=below)
        blobs[blob] = data
        if below:
            children[blob] = sorted(below)
        return blob

    chunks = [await put(data) for data in (os.urandom(MAX_BLOB_BYTES), b"chunk" * 999, b"\0", b"last")]
    nodes = [await put(b"".join(part), part) for part in (chunks[:2], chunks[1:])]
    return await put(b"".join(nodes), nodes), blobs, children


async def test_a_room_of_tree_values_exports_every_blob_and_imports_the_trees_whole(servers, tmp_path):
    """Export sends every blob below the roots its keys name, each node with its children after them;
    import stores the trees again, so the room holds every chunk through them and lets go of them all."""
    (host_a, port_a), (host_b, port_b) = servers
    async with connect(host_a, port_a, name="ana") as ana:
        root, blobs, children = await put_tree(ana)
        node = next(n for n in children[root] if len(children[n]) == 3)  # also a key's own ref
        await ana.create_room("shot", keep_open=True)
        await ana.join("shot")
        await ana.batch(
            [["set", "mesh/tree", b"root", [root]], ["set", "mesh/part", b"node", [node]], ["set", "p", b"v"]]
        )
        document = await export_room(ana, "shot")
        before = await room_map(host_a, port_a, "shot")
    write_room_file(tmp_path / "shot", document)
    loaded = read_room_file(tmp_path / "shot")
    assert loaded["version"] == VERSION
    assert {blob[0]: blob[1] for blob in loaded["blobs"]} == blobs and len(loaded["blobs"]) == len(blobs)
    assert {blob[0]: blob[2] for blob in loaded["blobs"] if len(blob) == 3} == children
    order = [blob[0] for blob in loaded["blobs"]]
    assert all(order.index(c) < order.index(n) for n, below in children.items() for c in below)

    async with connect(host_b, port_b, name="root") as importer:
        reversed_file = dict(loaded, blobs=loaded["blobs"][::-1])  # parents first: import orders them itself
        result = await import_room(importer, reversed_file)
        assert result["blobs_uploaded"] == len(blobs) == 7
        assert (await import_room(importer, loaded, name="again"))["blobs_uploaded"] == 0
        await importer.delete_room("again")
        assert await room_map(host_b, port_b, "shot") == before
        for blob, data in blobs.items():
            assert await importer.get_blob(blob) == data
        # The importer's session is still there: only the trees the keys name hold the blobs, no pin does.
        await importer.join("shot")
        await importer.set("mesh/tree", b"no tree")  # the root goes, and the chunk only its first node held
        below_node = {node, *children[node]}
        assert await held(importer, blobs) == below_node
        await importer.leave()
        await importer.delete_room("shot")
        assert await held(importer, blobs) == set()


def tree_document(blobs: list[list[object]], refs: list[list[object]], version: int = 3) -> dict:
    document = make_document("r", {"keep_open": True, "password": None, "created_by": "ana"}, 4, [], refs)
    return dict(document, items=[[key, b"v"] for key, _ in refs], blobs=blobs, version=version)


def node_of(*below: bytes) -> list[object]:
    data = b"".join(below) or b"empty"
    return [hashlib.sha256(data).digest(), data, list(below)]


def leaf(data: bytes) -> list[object]:
    return [hashlib.sha256(data).digest(), data]


async def test_a_file_whose_trees_do_not_add_up_is_refused(servers, tmp_path):
    """A node's children must be in the file, 1 to MAX_BLOB_CHILDREN, distinct, never the node, and never
    above it: hashes cannot form a cycle but a file can claim one. Refused by the reader, and by import
    before anything reaches the server."""
    _, (host, port) = servers
    leaves = [leaf(b"%d" % i) for i in range(MAX_BLOB_CHILDREN + 1)]
    hashes = [blob[0] for blob in leaves]
    widest = node_of(*hashes[:MAX_BLOB_CHILDREN])
    good = tree_document([*leaves, widest], [["k", [widest[0]]]])
    check_document(good)
    a, b = leaf(b"a")[0], leaf(b"b")[0]
    cases = {
        "which the file lacks": [leaves[0], node_of(*hashes[:2])],
        "must not name the blob itself": [[a, b"a", [a]]],
        "(a cycle)": [[a, b"a", [b]], [b, b"b", [a]]],
        "must not name a blob twice": [*leaves[:1], node_of(hashes[0], hashes[0])],
        f"must have 1 to {MAX_BLOB_CHILDREN} items; it has {MAX_BLOB_CHILDREN + 1}": [
            *leaves,
            node_of(*hashes),
        ],
        f"must have 1 to {MAX_BLOB_CHILDREN} items; it has 0": [node_of()],
        "[0] must be 32 bytes": [node_of(b"short")],
        "must be list": [[a, b"a", b"not a list"]],
    }
    async with connect(host, port, name="root") as root:
        for reason, blobs in cases.items():
            document = tree_document(blobs, [["k", [blobs[-1][0]]]])
            write_room_file(tmp_path / "bad", document)
            with pytest.raises(RoomFileError, match=re.escape(reason)):
                read_room_file(tmp_path / "bad")
            with pytest.raises(RoomFileError, match=re.escape(reason)):
                await import_room(root, document)
        cycle = [[a, b"a", [b]], [b, b"b", [hashes[0]]], [hashes[0], b"0", [a]]]  # a longer one
        with pytest.raises(RoomFileError, match=re.escape("(a cycle)")):
            check_document(tree_document(cycle, [["k", [b]]]))
        # A version 2 file has no nodes.
        with pytest.raises(RoomFileError, match=re.escape("must be [hash: 32 bytes, data: bin]")):
            check_document(tree_document([*leaves[:2], node_of(*hashes[:2])], [["k", hashes[:1]]], 2))
        assert await root.list_rooms() == []
        assert await import_room(root, good) == {"room": "r", "keys": 1, "done": True, "blobs_uploaded": 257}


async def test_a_version_2_file_without_children_still_imports(servers, tmp_path):
    """Files of the flat export (every blob a key names, none a node) import as before, their keys
    holding the blobs."""
    _, (host, port) = servers
    chunk = os.urandom(5000)
    blob = hashlib.sha256(chunk).digest()
    old = {"format": "blendsync-room", "version": 2, "room": "old", "exported_at": "2026-12-01T10:00:00Z"}
    old |= {"meta": {"keep_open": True, "password": None, "created_by": "ana"}, "seq": 7}
    old |= {
        "items": [["mesh", b"chunked"], ["k", b"v"]],
        "refs": [["mesh", [blob]]],
        "blobs": [[blob, chunk]],
    }
    (tmp_path / "old").write_bytes(msgpack.packb(old, use_bin_type=True))
    async with connect(host, port, name="root") as root:
        result = await import_room(root, read_room_file(tmp_path / "old"))
        assert result == {"room": "old", "keys": 2, "done": True, "blobs_uploaded": 1}
        assert await room_map(host, port, "old") == (7, {"mesh": b"chunked", "k": b"v"})
        assert await root.get_blob(blob) == chunk
        await root.delete_room("old")  # the key held it, not the upload's pin
        assert await held(root, [blob]) == set()


def admin(port: int, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "broadcaster.cli", "admin", "--port", str(port), *args]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60)


def test_a_damaged_file_is_refused_and_no_room_is_made(servers, tmp_path):
    (host_a, port_a), (_, port_b) = servers
    path = tmp_path / "shot.blendsync"
    exported = admin(port_a, "export", "shot", str(path))
    assert exported.returncode == 1 and "no_such_room" in exported.stderr

    async def make():
        async with connect(host_a, port_a, name="ana") as ana:
            await fill(ana, "shot")

    trio.run(make)
    exported = admin(port_a, "--json", "export", "shot", str(path))
    assert exported.returncode == 0 and '"blobs": 4' in exported.stdout, exported.stderr
    good = path.read_bytes()
    document = read_room_file(path)
    chunk = max(document["blobs"], key=lambda blob: len(blob[1]))
    cases = {
        "damaged": good.replace(chunk[1][-64:], bytes(64)),  # the largest blob's last bytes
        "truncated": good[: len(good) - 100],
        "trailing": good + b"\x00",
    }
    without = dict(document, blobs=[blob for blob in document["blobs"] if blob is not chunk])
    write_room_file(tmp_path / "missing", without)
    cases["lacks"] = (tmp_path / "missing").read_bytes()
    for word, data in cases.items():
        broken = tmp_path / f"{word}.blendsync"
        broken.write_bytes(data)
        with pytest.raises(RoomFileError, match=word):
            read_room_file(broken)
        refused = admin(port_b, "import", str(broken))
        assert refused.returncode == 1 and word in refused.stderr, (word, refused.stderr)
    assert admin(port_b, "--json", "rooms").stdout.strip() == "[]"
    assert admin(port_b, "--json", "import", str(path)).returncode == 0
    assert '"name": "shot"' in admin(port_b, "--json", "rooms").stdout


async def test_the_server_refuses_keys_whose_blobs_it_lacks_and_drops_the_partial_room(servers):
    _, (host, port) = servers
    absent = bytes(range(32))
    async with connect(host, port, name="root") as root:
        for first in (True, False):  # in the only part, and in the second of two
            if not first:
                await root.admin("import", room="r", meta={}, seq=0, items=[["a", b"1"]], more=True)
            with pytest.raises(ServerError) as info:
                await root.admin(
                    "import", room="r", meta={}, seq=0, items=[["k", b"v"]], refs=[["k", [absent]]]
                )
            assert info.value.code == "no_such_blob" and absent.hex() in info.value.message
            assert await root.list_rooms() == []
        for refs in ([["other", [absent]]], [["k", [b"short"]]], [["k", [absent, absent]]], "x"):
            with pytest.raises(ServerError) as info:
                await root.admin("import", room="r", meta={}, seq=0, items=[["k", b"v"]], refs=refs)
            assert info.value.code == "bad_message"
        await root.admin("import", room="r", meta={}, seq=0, items=[["k", b"v"]])  # the name is free
        assert [room["name"] for room in await root.list_rooms()] == ["r"]


async def test_an_empty_room_and_a_version_1_file_import(servers, tmp_path):
    (host_a, port_a), (host_b, port_b) = servers
    async with connect(host_a, port_a, name="ana") as ana:
        await ana.create_room("empty", keep_open=True)
        document = await export_room(ana, "empty")
    assert (document["items"], document["refs"], document["blobs"]) == ([], [], [])
    write_room_file(tmp_path / "empty", document)
    old = {"format": "blendsync-room", "version": 1, "room": "old", "exported_at": "2026-11-22T10:00:00Z"}
    old |= {"meta": {"keep_open": True, "password": None, "created_by": "ana"}, "seq": 3}
    (tmp_path / "old").write_bytes(msgpack.packb({**old, "items": [["k", b"v"]]}, use_bin_type=True))
    async with connect(host_b, port_b, name="root") as root:
        assert (await import_room(root, read_room_file(tmp_path / "empty")))["keys"] == 0
        assert (await import_room(root, read_room_file(tmp_path / "old")))["keys"] == 1
    assert await room_map(host_b, port_b, "empty") == (0, {})
    assert await room_map(host_b, port_b, "old") == (3, {"k": b"v"})


async def test_a_blob_released_while_the_export_streams_ends_it_with_conflict(tmp_path):
    """Forced: the exporter reads up to its first frame (the snapshot is taken) and then stops reading.
    The server makes frames only as the socket takes them, so the last blob (in hash order) is still to
    be read, far behind a full socket, when its only key lets it go."""
    from test_rooms import RawClient

    from protocol import NEED_DATA, PROTOCOL_VERSION, Admin, Hello

    async with (
        running_broadcaster(tmp_path / "d") as (host, port),
        connect(host, port, name="ana") as ana,
    ):
        blobs = [await ana.put_blob(os.urandom(MAX_BLOB_BYTES)) for _ in range(40)]
        await ana.create_room("shot", keep_open=True)
        await ana.join("shot")
        await ana.batch([["set", f"mesh/{i}", b"v", [blob]] for i, blob in enumerate(blobs)])
        last = max(blobs)
        raw = RawClient(await trio.open_tcp_stream(host, port))
        with trio.fail_after(60):
            hello = Hello(protocol=PROTOCOL_VERSION, client_name="exporter", session="export-1")
            await raw.send(hello, Admin(action="export", args={"room": "shot"}, ref=1))
            await raw.wait_for("export_items")
            await ana.set(f"mesh/{blobs.index(last)}", b"no chunks now")
            assert await ana.missing_blobs([last]) == [last]
            received = []
            while not received or received[-1].TYPE not in ("error", "admin_result"):
                event = raw.conn.next_event()
                if event is NEED_DATA:
                    raw.conn.receive_data(await raw.stream.receive_some(1 << 20))
                elif event.TYPE in ("export_blob", "error", "admin_result"):
                    received.append(event)
        *sent, end = received
        assert end.TYPE == "error" and end.code == "conflict" and last.hex() in end.message
        assert [blob.hash for blob in sent] == sorted(blobs)[: len(sent)] and last not in {
            b.hash for b in sent
        }
        await raw.stream.aclose()
