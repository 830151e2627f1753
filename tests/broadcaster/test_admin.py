"""Admin operations (kick, delete any room, break a lock, export/import) and key locks."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import trio
from support import REPO, ServerProcess, running_broadcaster, wait_for

from broadcaster.auth import add_user
from broadcaster.client import ServerError, connect
from broadcaster.roomfile import FORMAT, VERSION, read_room_file, write_room_file
from broadcaster.roomtransfer import export_room, import_room
from protocol import PROTOCOL_VERSION, LocksChanged, RoomDeleted, encode_frame


async def next_of(client, kind, timeout=5.0):
    with trio.fail_after(timeout):
        while True:
            event = await client.receive()
            if isinstance(event, kind):
                return event


# ---- locks -------------------------------------------------------------------------------------------


async def test_locked_keys_refuse_others_writes_until_unlocked(server):
    host, port = server
    async with connect(host, port, name="ana") as ana, connect(host, port, name="ben") as ben:
        await ana.create_room("r", keep_open=True)
        await ana.join("r")
        await ben.join("r")
        assert await ana.lock(["obj/1", "obj/2"]) == ["obj/1", "obj/2"]
        changed = await next_of(ben, LocksChanged)
        assert changed.locked == {"obj/1": ana.client_id, "obj/2": ana.client_id}
        for attempt in (ben.set("obj/1", b"b"), ben.batch([["set", "free", b"b"], ["delete", "obj/2"]])):
            with pytest.raises(ServerError) as info:
                await attempt
            assert info.value.code == "locked" and not info.value.fatal
        with pytest.raises(ServerError) as info:
            await ben.lock(["obj/2", "obj/3"])  # all or nothing
        assert info.value.code == "locked"
        assert await ana.set("obj/1", b"a") >= 1  # the owner writes
        await ben.set("free", b"b")
        assert await ana.unlock(["obj/1"]) == ["obj/1"]
        await ben.set("obj/1", b"b")
        # A late joiner learns the locks still held, after its snapshot.
        async with connect(host, port, name="cleo") as cleo:
            await cleo.join("r")
            changed = await next_of(cleo, LocksChanged)
            assert changed.locked == {"obj/2": ana.client_id}
            assert ben.state == cleo.state == ana.state


async def test_locks_go_with_the_session_that_held_them(server):
    host, port = server
    async with connect(host, port, name="ben") as ben:
        await ben.create_room("r", keep_open=True)
        await ben.join("r")
        async with connect(host, port, name="ana") as ana:
            await ana.join("r")
            await ana.lock(["k"])
            await ana.leave()  # leaving releases
        await wait_for(lambda: not ben.locks)
        await ben.set("k", b"1")
        # A connection that drops (no leave) releases too.
        stream = await trio.open_tcp_stream(host, port)
        await stream.send_all(
            encode_frame({"type": "hello", "protocol": PROTOCOL_VERSION, "client_name": "dropper"})
            + encode_frame({"type": "join_room", "room": "r", "ref": 1})
            + encode_frame({"type": "lock", "keys": ["k"], "ref": 2})
        )
        await wait_for(lambda: "k" in ben.locks)
        await stream.aclose()
        await wait_for(lambda: not ben.locks)
        await ben.set("k", b"2")


async def test_locks_of_sessions_from_before_a_restart_are_released(tmp_path):
    async with running_broadcaster(tmp_path / "d") as (host, port), connect(host, port) as ana:
        await ana.create_room("r", keep_open=True)
        await ana.join("r")
        await ana.lock(["k"])
    async with running_broadcaster(tmp_path / "d") as (host, port), connect(host, port) as ben:
        await ben.join("r")
        await ben.set("k", b"mine now")


# ---- admin ---------------------------------------------------------------------------------------------


async def test_admin_lists_kicks_deletes_and_breaks_locks(server):
    host, port = server
    async with (
        connect(host, port, name="root") as root,
        connect(host, port, name="ana") as ana,
        connect(host, port, name="ben") as ben,
    ):
        await ana.create_room("r", keep_open=True)
        await ana.join("r")
        await ben.join("r")
        await ana.lock(["k"])
        rooms = await root.admin("rooms")
        assert rooms[0]["name"] == "r" and sorted(rooms[0]["clients"]) == ["ana", "ben"]
        assert rooms[0]["locks"] == 1
        clients = {c["name"]: c for c in await root.admin("clients")}
        assert clients["ana"]["room"] == "r" and clients["root"]["room"] is None

        assert await root.admin("break_lock", room="r", keys=["k", "nope"]) == {
            "room": "r",
            "released": ["k"],
        }
        await wait_for(lambda: not ben.locks)
        await ben.set("k", b"b")

        kicked = await root.admin("kick", client_id=ben.client_id, reason="time for lunch")
        assert kicked["name"] == "ben"
        with pytest.raises(ServerError) as info:
            await ben.set("k", b"again")
        assert info.value.code == "kicked" and info.value.fatal and "lunch" in info.value.message
        with pytest.raises(ServerError) as info:
            await root.admin("kick", client_id="no-such-client")
        assert info.value.code == "no_such_client"

        # delete_room refuses a room in use; the admin action deletes it anyway and tells its members.
        with pytest.raises(ServerError):
            await root.delete_room("r")
        assert await root.admin("delete_room", room="r") == {"room": "r", "clients": 1}
        assert (await next_of(ana, RoomDeleted)).room == "r"
        assert await root.list_rooms() == []


# ---- export / import -------------------------------------------------------------------------------------


async def room_state(host, port, room, password=None):
    async with connect(host, port, name="checker") as checker:
        joined = await checker.join(room, password=password)
        return joined.seq, dict(checker.state)


async def test_export_then_import_into_a_fresh_server_gives_the_same_room(tmp_path):
    values = {f"obj/{i}/mesh": os.urandom(i * 37 % 5000) for i in range(300)}
    async with running_broadcaster(tmp_path / "a") as (host, port), connect(host, port) as ana:
        await ana.create_room("shot-010", keep_open=True, password="s3cret")
        await ana.join("shot-010", password="s3cret")
        items = list(values.items())
        for start in range(0, len(items), 50):
            await ana.batch([["set", k, v] for k, v in items[start : start + 50]])
        await ana.delete("obj/0/mesh")
        del values["obj/0/mesh"]
        document = await export_room(ana, "shot-010")
        before = await room_state(host, port, "shot-010", "s3cret")
    path = tmp_path / "shot-010.blendsync"
    write_room_file(path, document)
    loaded = read_room_file(path)
    assert (loaded["format"], loaded["version"], loaded["seq"]) == (FORMAT, VERSION, 7)
    assert dict(map(tuple, loaded["items"])) == values

    async with running_broadcaster(tmp_path / "b") as (host, port), connect(host, port) as root:
        # Small parts, so the import runs as several transactions.
        result = await import_room(root, loaded, chunk_bytes=64 * 1024)
        assert result == {"room": "shot-010", "keys": len(values), "done": True, "blobs_uploaded": 0}
        after = await room_state(host, port, "shot-010", "s3cret")
        assert after == before  # same seq, same keys and values
        rooms = {r["name"]: r for r in await root.list_rooms()}
        assert rooms["shot-010"]["keep_open"] and rooms["shot-010"]["locked"]
        with pytest.raises(ServerError) as info:
            await room_state(host, port, "shot-010", "wrong")
        assert info.value.code == "wrong_password"
        # The seq goes on from the exported one.
        async with connect(host, port) as writer:
            await writer.join("shot-010", password="s3cret")
            assert await writer.set("new", b"1") == 8
        with pytest.raises(ServerError) as info:
            await import_room(root, loaded)
        assert info.value.code == "room_exists"
        await import_room(root, loaded, name="shot-010-copy")
        assert (await room_state(host, port, "shot-010-copy", "s3cret"))[1] == before[1]


async def test_an_import_in_parts_is_invisible_until_done_and_dropped_if_abandoned(server):
    host, port = server
    async with connect(host, port, name="root") as root, connect(host, port, name="peek") as peek:
        await root.admin(
            "import", room="big", meta={"keep_open": True}, seq=0, items=[["a", b"1"]], more=True
        )
        assert await peek.list_rooms() == []
        with pytest.raises(ServerError) as info:
            await peek.join("big")
        assert info.value.code == "no_such_room"
        await root.admin("import", room="big", items=[["b", b"2"]], more=False)
        assert [r["name"] for r in await peek.list_rooms()] == ["big"]
        assert (await room_state(host, port, "big"))[1] == {"a": b"1", "b": b"2"}
        async with connect(host, port, name="quitter") as quitter:
            await quitter.admin("import", room="half", meta={}, seq=0, items=[["a", b"1"]], more=True)
        await trio.sleep(0.1)
        await root.admin("import", room="half", meta={}, seq=0, items=[["z", b"1"]])
        assert (await room_state(host, port, "half"))[1] == {"z": b"1"}


def test_admin_cli_against_a_running_server(tmp_path):
    tokens = tmp_path / "tokens.toml"
    admin_token = add_user(tokens, "root", "admin")
    user_token = add_user(tokens, "ana")
    source = ServerProcess(tmp_path / "a", extra=["--tokens-file", str(tokens)])
    target = ServerProcess(tmp_path / "b", extra=["--tokens-file", str(tokens)])
    try:
        host, port = source.start()
        _, port_b = target.start()

        async def fill():
            async with connect(host, port, token=user_token) as ana:
                await ana.create_room("scene", keep_open=True)
                await ana.join("scene")
                await ana.batch([["set", "k1", b"v1"], ["set", "k2", b"v2"]])

        trio.run(fill)

        def admin(*args, token=admin_token, port=port):
            env = {**os.environ, "BLENDSYNC_TOKEN": token}
            command = [sys.executable, "-m", "broadcaster.cli", "admin", "--port", str(port), *args]
            return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)

        listing = admin("rooms")
        assert listing.returncode == 0 and "scene\t0\t2\t4\t1" in listing.stdout
        refused = admin("rooms", token=user_token)
        assert refused.returncode == 1 and "forbidden" in refused.stderr
        file = tmp_path / "scene.blendsync"
        assert admin("export", "scene", str(file)).returncode == 0
        done = admin("import", str(file), "--as", "scene-restored", port=port_b)
        assert done.returncode == 0, done.stderr
        assert '"name": "scene-restored"' in admin("--json", "rooms", port=port_b).stdout
        rooms = admin("rooms", port=port_b)
        assert "scene-restored\t0\t2\t4\t1" in rooms.stdout
        assert admin("delete-room", "scene").returncode == 0
        assert "scene" not in admin("rooms").stdout
    finally:
        source.kill()
        target.kill()
