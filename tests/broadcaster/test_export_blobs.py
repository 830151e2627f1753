"""Export and import carry the blobs a room's values reference, against real ``blendsync serve`` processes:
the imported room is whole on a server that never held them (its keys hold them), a rerun sends only what
the server lacks, and a damaged file or a missing blob is refused with no room created."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import msgpack
import pytest
import trio
from support import REPO, ServerProcess, running_broadcaster

from broadcaster.client import ServerError, connect
from broadcaster.roomfile import RoomFileError, read_room_file, write_room_file
from broadcaster.roomtransfer import export_room, import_room, upload_blobs
from protocol.limits import MAX_BLOB_BYTES

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
        return joined.seq, dict(checker.state)


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
    assert loaded["version"] == 2 and dict(map(tuple, loaded["blobs"])) == blobs  # not the released one
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
