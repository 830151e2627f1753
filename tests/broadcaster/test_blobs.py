"""Content-addressed blobs end to end: stored once per server, held by room keys, collected when unheld.

Real servers (in-process over real sockets and lmdb, or `blendsync serve` processes), the trio client library.
"""

from __future__ import annotations

import hashlib
import itertools

import pytest
import trio
from support import ServerProcess, ana_and_ben_in_a_room, running_broadcaster

from broadcaster.client import ServerError, connect
from protocol import Applied, BlobGet, BlobPut, BlobQuery
from protocol.limits import MAX_BLOB_BYTES, MAX_VALUE_REFS


def h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


async def stored(client, blobs) -> set[bytes]:
    """Which of ``blobs`` the server holds."""
    blobs = list(blobs)
    return set(blobs) - set(await client.missing_blobs(blobs))


async def test_a_value_references_blobs_and_they_go_with_their_last_holder(server):
    async with ana_and_ben_in_a_room(server) as (ana, ben):
        one, two = await ana.put_blob(b"one" * 1000), await ana.put_blob(b"two")
        assert await ana.missing_blobs([one, two, h(b"never")]) == [h(b"never")]
        seq = await ana.batch([["set", "mesh/geometry", b"value-1", [one, two]]])
        event = await ben.receive()
        while not isinstance(event, Applied):
            event = await ben.receive()
        assert event.seq == seq and event.ops == [["set", "mesh/geometry", b"value-1", [one, two]]]
        assert await ben.get_blob(one) == b"one" * 1000
        # The next version shares `two`: only `one` loses its last holder and is collected at once.
        three = await ana.put_blob(b"three")
        await ana.batch([["set", "mesh/geometry", b"value-2", [two, three]]])
        assert await stored(ben, [one, two, three]) == {two, three}
        assert await ben.get_blob(one) is None
        # A set without refs drops the key's holds too; so does a delete.
        await ana.batch([["set", "mesh/geometry", b"small"], ["set", "other", b"v", [three]]])
        assert await stored(ben, [two, three]) == {three}
        await ana.delete("other")
        assert await stored(ben, [three]) == set()


async def test_one_copy_shared_by_two_rooms_survives_the_deletion_of_either(server):
    async with connect(*server, name="ana") as ana, connect(*server, name="ben") as ben:
        for room in ("r1", "r2"):
            await ana.create_room(room, keep_open=True)
        await ana.join("r1")
        await ben.join("r2")
        shared = await ana.put_blob(b"texture" * 10000)
        assert await ben.put_blob(b"texture" * 10000) == shared
        await ana.batch([["set", "image/1/file", b"v", [shared]]])
        await ben.batch([["set", "image/9/file", b"v", [shared]]])
        await ana.leave()
        await ana.delete_room("r1")
        assert await stored(ben, [shared]) == {shared}
        await ben.leave()
        await ben.delete_room("r2")
        assert await stored(ben, [shared]) == set()


async def test_concurrent_writers_in_two_rooms_never_lose_a_held_blob(tmp_path):
    """Two writers pipeline interleaved writes that move keys in two rooms between the same shared blobs,
    so a drop of a blob's last holder in one room and a new hold in the other are in flight together (in
    one Raft batch). A write whose blob went first is refused (no_such_blob) and changes nothing; a blob
    any live key references is always there; once the writers are gone (their uploads' pins released after
    pin_grace) the server holds exactly the blobs the live keys reference."""
    async with running_broadcaster(tmp_path / "d", pin_grace=0.2) as address:
        async with connect(*address, name="ana") as ana, connect(*address, name="ben") as ben:
            for room in ("r1", "r2"):
                await ana.create_room(room, keep_open=True)
            await ana.join("r1")
            await ben.join("r2")
            blobs = [await ana.put_blob(bytes([i]) * 100) for i in range(6)]
            for i in range(6):
                await ben.put_blob(bytes([i]) * 100)
            sent = []
            patterns = {"r1": itertools.cycle([[0, 1], [1, 2], [], [2, 3, 4], [5], [0]]), "r2": None}
            patterns["r2"] = itertools.cycle([[5], [0, 4], [3], [], [1, 2], [0]])
            for i in range(36):
                for client, room in ((ana, "r1"), (ben, "r2")):
                    key = f"k{i % 4}"
                    refs = [blobs[j] for j in next(patterns[room])]
                    op = ["set", key, b"v", refs] if (i + len(room)) % 7 else ["delete", key]
                    sent.append((room, op, (await client.send_ops([op]))[1]))
            final: dict[tuple[str, str], list[bytes]] = {}
            for room, op, waiter in sent:  # each room has one writer: its ops commit in the order sent
                try:
                    await waiter.wait()
                except ServerError as exc:
                    assert exc.code == "no_such_blob"
                    continue
                final[(room, op[1])] = op[3] if op[0] == "set" else []
            held = {blob for refs in final.values() for blob in refs}
            assert held and held != set(blobs)  # the test means something: some held, some not
            assert await stored(ana, blobs) >= held
            for blob in held:
                assert await ana.get_blob(blob) == bytes([blobs.index(blob)]) * 100
        async with connect(*address, name="cleo") as cleo:
            with trio.fail_after(20):
                while (now := await stored(cleo, blobs)) != held:
                    assert now >= held
                    await trio.sleep(0.05)


async def test_bad_blob_input_gets_a_clear_error_and_the_connection_goes_on(server):
    async with connect(*server, name="ana") as ana:
        await ana.create_room("r", keep_open=True)
        await ana.join("r")

        async def request(make) -> ServerError:
            with pytest.raises(ServerError) as info:
                await ana._request(*ana.session.request(make))
            return info.value

        wrong = await request(lambda ref: BlobPut(hash=h(b"other"), data=b"data", ref=ref))
        assert (wrong.code, wrong.message) == ("bad_message", "blob_put.hash is not the sha256 of data")
        big = b"\0" * (MAX_BLOB_BYTES + 1)
        oversized = await request(lambda ref: BlobPut(hash=h(big), data=big, ref=ref))
        assert (
            oversized.code == "bad_message"
            and "blob_put.data must be 1 to 1048576 bytes" in oversized.message
        )
        short = await request(lambda ref: BlobQuery(hashes=[b"\0" * 31], ref=ref))
        assert short.message == "blob_query.hashes[0] must be exactly 32 bytes; it is 31"
        too_many = await request(lambda ref: BlobGet(hashes=[h(b"")] * 65, ref=ref))
        assert too_many.message == "blob_get.hashes must have 1 to 64 items; it has 65"
        with pytest.raises(ServerError) as info:
            await ana.batch([["set", "k", b"v", [h(b"nobody uploaded this")]]])
        assert info.value.code == "no_such_blob"
        assert h(b"nobody uploaded this").hex() in info.value.message
        refs = [i.to_bytes(32, "big") for i in range(MAX_VALUE_REFS + 1)]
        with pytest.raises(ServerError) as info:
            await ana.batch([["set", "k", b"v", refs]])
        assert info.value.code == "bad_message" and "refs must have 0 to 16384 items" in info.value.message
        # Nothing of that had an effect, and the session goes on.
        assert await ana.get_blob(h(b"nobody uploaded this")) is None
        blob = await ana.put_blob(b"fine")
        assert await ana.batch([["set", "k", b"v", [blob]]]) == 1


async def test_quotas_per_server_and_per_room(tmp_path):
    async with running_broadcaster(tmp_path / "d", max_blob_bytes=3000, max_room_blob_bytes=1500) as address:
        async with connect(*address, name="ana") as ana:
            await ana.create_room("r", keep_open=True)
            await ana.join("r")
            a, b = await ana.put_blob(b"a" * 1000), await ana.put_blob(b"b" * 1000)
            await ana.batch([["set", "k1", b"v", [a]]])
            with pytest.raises(ServerError) as info:
                await ana.batch([["set", "k2", b"v", [b]]])
            assert info.value.code == "limit_exceeded" and "max_room_blob_bytes (1500)" in info.value.message
            await ana.batch([["set", "k1", b"v", [b]]])  # replacing a blob passes: the room stays at 1000
            # `a` went with its last holder; b (held by k1), c and d (held by pins) fill the 3000 bytes.
            await ana.put_blob(b"c" * 1000)
            await ana.put_blob(b"d" * 1000)
            with pytest.raises(ServerError) as info:
                await ana.put_blob(b"e")
            assert info.value.code == "limit_exceeded" and "max_blob_bytes (3000)" in info.value.message
            assert await ana.put_blob(b"b" * 1000) == b  # already stored: no new bytes


@pytest.fixture
def grace_server(tmp_path):
    config = tmp_path / "server.toml"
    config.write_text("[server]\npin_grace = 0.5\n")
    process = ServerProcess(tmp_path / "data", extra=["--config", str(config)])
    try:
        yield process
    finally:
        process.kill()


async def test_an_interrupted_upload_resumes_where_it_stopped(grace_server):
    """A large value's chunks go up one by one; the connection drops half way. The same session comes back,
    asks which chunks are missing and sends only those (its uploads were held for it meanwhile). A session
    that never comes back has its unreferenced uploads collected after pin_grace."""
    address = grace_server.start()
    chunks = [bytes([i]) * 50_000 for i in range(6)]
    hashes = [h(c) for c in chunks]
    async with connect(*address, name="ana", session="upload-session-1") as ana:
        await ana.create_room("r", keep_open=True)
        for chunk in chunks[:3]:
            await ana.put_blob(chunk)
    # The connection is gone (closed without leaving): its uploads stay held while it may come back.
    async with connect(*address, name="ana", session="upload-session-1") as ana:
        missing = await ana.missing_blobs(hashes)
        assert missing == hashes[3:]
        await trio.sleep(0.6)  # past pin_grace, but this session is back: its uploads are still held
        for chunk in chunks[3:]:
            await ana.put_blob(chunk)
        await ana.join("r")
        await ana.batch([["set", "mesh/1/geometry", b"value", hashes]])
        assert await stored(ana, hashes) == set(hashes)
    async with connect(*address, name="cleo", session="upload-session-2") as cleo:
        gone = await cleo.put_blob(b"never referenced")
    async with connect(*address, name="dan") as dan:
        with trio.fail_after(20):
            while await dan.missing_blobs([gone]) != [gone]:
                await trio.sleep(0.1)
        assert await stored(dan, hashes) == set(hashes)  # held by the key, not by the gone session


async def test_blobs_and_holds_survive_a_restart(grace_server):
    address = grace_server.start()
    async with connect(*address, name="ana", session="restart-session") as ana:
        await ana.create_room("r", keep_open=True)
        await ana.join("r")
        held = await ana.put_blob(b"held by a key")
        await ana.batch([["set", "k", b"v", [held]]])
        pinned = await ana.put_blob(b"pinned only")
    grace_server.kill()
    address = grace_server.start()
    async with connect(*address, name="ana", session="restart-session") as ana:
        # The session is back within the grace: its pin from before the restart still holds.
        assert await stored(ana, [held, pinned]) == {held, pinned}
        await ana.join("r")
        await ana.batch([["set", "k2", b"v", [pinned]]])
        await ana.delete("k")
        assert await stored(ana, [held, pinned]) == {pinned}
