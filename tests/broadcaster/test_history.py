"""A room's history against a real ``blendsync serve``: blame, checkpoints, restore, fork, retention."""

from __future__ import annotations

import json
import time

import pytest
import trio
from support import ServerProcess, blendsync_cli, wait_for

from broadcaster import history_client as hc
from broadcaster.app import open_broadcaster
from broadcaster.auth import add_user
from broadcaster.client import ServerError, connect
from broadcaster.config import ServerConfig
from broadcaster.roomstore import authors_path
from protocol import Applied


async def _room(client, name="shot"):
    await client.create_room(name, keep_open=True)
    await client.join(name)


async def test_blame_names_the_last_author_of_each_key(server_process):
    host, port = server_process.start()
    before = int(time.time())
    async with (
        connect(host, port, name="ana") as ana,
        connect(host, port, name="ben") as ben,
        connect(host, port, name="cy") as cy,
    ):
        await _room(ana)
        await ben.join("shot")
        await cy.join("shot")
        await ana.set("obj/1/transform", b"a")
        await ben.set("obj/1/geometry", b"b")
        await cy.set("obj/2/transform", b"c")
        last = await cy.batch([["set", "obj/1/transform", b"c2"], ["set", "obj/1/*", b"star"]])
        await ana.delete("obj/1/geometry")  # a deleted key is not listed: its record went with it
        rows, truncated = await hc.blame(ben, "obj/1/")
        assert not truncated
        assert [(r[0], r[2], r[3]) for r in rows] == [
            ("obj/1/*", cy.client_id, "cy"),
            ("obj/1/transform", cy.client_id, "cy"),
        ]
        assert rows[1][1] == last and all(r[4] >= before for r in rows)
        again = await ben.set("obj/1/geometry", b"b2")
        assert [r[:4] for r in (await hc.blame(ben, "obj/1/g"))[0]] == [
            ["obj/1/geometry", again, ben.client_id, "ben"]
        ]
        # The prefix is data: "*" matches only itself.
        assert [r[0] for r in (await hc.blame(ben, "obj/1/*"))[0]] == ["obj/1/*"]
        assert (await hc.blame(ben, "obj/1/", since=int(time.time()) + 3600))[0] == []
        rows, truncated = await hc.blame(ben, "", limit=1)
        assert truncated and [r[0] for r in rows] == ["obj/1/*"]
    done = await trio.to_thread.run_sync(
        lambda: blendsync_cli("admin", "--port", str(port), "--json", "history", "shot", "--key", "obj/2/")
    )
    assert done.returncode == 0, done.stderr
    assert [(r[0], r[3]) for r in json.loads(done.stdout)["keys"]] == [("obj/2/transform", "cy")]


async def test_blame_names_the_author_of_a_change_the_log_no_longer_retains(server_process):
    host, port = server_process.start()
    async with connect(host, port, name="ana") as ana, connect(host, port, name="ben") as ben:
        await _room(ana)
        await ben.join("shot")
        await hc.set_retention(ana, ops=3)
        first = await ana.batch([["set", "old/a", b"1"], ["set", "old/b", b"1"], ["set", "old/ü/ß", b"1"]])
        made = await hc.checkpoint(ana, "start")
        star = await ben.batch(
            [["set", "/", b"s"], ["set", "/x", b"s"], ["set", "x*", b"s"], ["set", "xy", b"s"]]
        )
        await ben.set("old/b", b"2")
        for i in range(10):  # trims every entry above from the log
            await ben.set("busy", bytes([i]))
        with pytest.raises(ServerError) as info:
            await hc.restore(ana, seq=star)
        assert info.value.code == "not_retained"
        rows, truncated = await hc.blame(ben, "old/")
        assert not truncated and [r[:4] for r in rows] == [
            ["old/a", first, ana.client_id, "ana"],
            ["old/b", first + 2, ben.client_id, "ben"],
            ["old/ü/ß", first, ana.client_id, "ana"],
        ]
        assert [r[0] for r in (await hc.blame(ben, "old/ü"))[0]] == ["old/ü/ß"]
        assert [r[0] for r in (await hc.blame(ben, "x*"))[0]] == ["x*"]  # literal, not a pattern
        assert [(r[0], r[1]) for r in (await hc.blame(ben, "/"))[0]] == [("/", star), ("/x", star)]
        assert [r[0] for r in (await hc.blame(ben, ""))[0]] == [
            "/",
            "/x",
            "busy",
            "old/a",
            "old/b",
            "old/ü/ß",
            "x*",
            "xy",
        ]
        assert (await hc.blame(ben, "nothing/"))[0] == []
        assert [r[0] for r in (await hc.blame(ben, "", limit=2))[0]] == ["/", "/x"]
        # A restore is the restorer's change of the keys it changes; the others keep their authors.
        seq, _ = await hc.restore(ben, checkpoint=made["id"])
        await ana.delete("old/a")
        rows, _ = await hc.blame(ana, "")
        assert [r[:4] for r in rows] == [
            ["old/b", seq, ben.client_id, "ben"],
            ["old/ü/ß", first, ana.client_id, "ana"],
        ]
        # A fork's keys are its maker's, at the new room's seq 0.
        await hc.fork(ana, "shot-fork", checkpoint=made["id"])
        await ana.leave()
        await ana.join("shot-fork")
        assert [r[:4] for r in (await hc.blame(ana, ""))[0]] == [
            [key, 0, ana.client_id, "ana"] for key in ("old/a", "old/b", "old/ü/ß")
        ]


async def test_keys_without_a_record_are_blamed_from_the_retained_log(tmp_path):
    """A room written before keys had author records: those keys come from the log, the others not."""
    config = ServerConfig(host="127.0.0.1", port=0, data_dir=tmp_path / "data", room_tail=4)
    async with open_broadcaster(config) as server:
        host, port = server.listen_addresses[0].rsplit(":", 1)
        async with connect(host, int(port), name="ana") as ana, connect(host, int(port), name="ben") as ben:
            await _room(ana)
            await ben.join("shot")
            await ana.set("gone", b"1")
            kept = await ana.set("kept", b"1")
            legacy = await ben.batch([["set", "legacy/a", b"1"], ["set", "legacy/b", b"1"]])
            for i in range(3):  # the log keeps the last 4 entries: from ``legacy`` on
                await ben.set(f"fill/{i}", b"1")
            unrecorded = [["rooms", "shot", "authors", key] for key in ("gone", "legacy/a", "legacy/b")]
            assert list(authors_path("shot")) == unrecorded[0][:3]
            done = await server.store.propose({"then": [{"op": "delete", "path": p} for p in unrecorded]})
            assert done["ok"]
            rows, _ = await hc.blame(ana, "")
            assert [r[:4] for r in rows] == [
                *[[f"fill/{i}", legacy + 1 + i, ben.client_id, "ben"] for i in range(3)],
                ["kept", kept, ana.client_id, "ana"],
                ["legacy/a", legacy, ben.client_id, "ben"],
                ["legacy/b", legacy, ben.client_id, "ben"],
            ]  # "gone" has no record and its change left the log: not listed
            assert all(r["deleted"] for r in done["results"])  # (the records were there)
            assert [r[0] for r in (await hc.blame(ana, "legacy/b"))[0]] == ["legacy/b"]
            assert (await hc.blame(ana, "legacy/", since=int(time.time()) + 3600))[0] == []


async def test_checkpoint_edits_restore_converges_every_client_and_can_be_undone(server_process):
    host, port = server_process.start()
    async with connect(host, port, name="ana") as ana, connect(host, port, name="ben") as ben:
        await _room(ana)
        await ben.join("shot")
        await ana.batch([["set", "a", b"1"], ["set", "b", b"2"], ["set", "same", b"s"]])
        made = await hc.checkpoint(ana, "before lighting")
        assert (made["name"], made["by"], made["auto"], made["keys"]) == ("before lighting", "ana", False, 3)
        wanted = dict(ana.state)
        await ben.batch(
            [["set", "a", b"changed"], ["delete", "b"], ["set", "new", b"n"], ["set", "same", b"s"]]
        )
        edited = {"a": b"changed", "same": b"s", "new": b"n"}
        await wait_for(lambda: dict(ana.state) == edited)
        seq, undo = await hc.restore(ben, checkpoint=made["id"])
        await wait_for(lambda: ana.seq == seq and ben.seq == seq)
        assert dict(ana.state) == dict(ben.state) == wanted
        listed = await hc.checkpoints(ana)
        assert [(c["id"], c["auto"]) for c in listed] == [(made["id"], False), (undo, True)]
        assert listed[1]["by"] == "ben" and listed[1]["seq"] == seq - 1
        # The restore is an operation like any other: its author in blame, and undone by the checkpoint.
        assert {r[0]: r[3] for r in (await hc.blame(ana))[0]}["b"] == "ben"
        seq2, _ = await hc.restore(ana, checkpoint=undo)
        await wait_for(lambda: ben.seq == seq2)
        assert dict(ana.state) == dict(ben.state) == edited
        # Restoring what the room already holds changes nothing.
        assert await hc.restore(ana, checkpoint=undo) == (seq2, None)
        async with connect(host, port, name="cy") as cy:  # a later joiner gets the restored state
            await cy.join("shot")
            assert dict(cy.state) == edited


async def test_restore_to_a_retained_seq(server_process):
    host, port = server_process.start()
    async with connect(host, port, name="ana") as ana:
        await _room(ana)
        await ana.set("k", b"1")
        at = await ana.set("j", b"2")
        await ana.set("k", b"3")
        await ana.delete("j")
        await hc.restore(ana, seq=at)
        assert dict(ana.state) == {"k": b"1", "j": b"2"}
        await hc.restore(ana, seq=0)
        assert dict(ana.state) == {}
        with pytest.raises(ServerError) as info:
            await hc.restore(ana, seq=10**6)
        assert info.value.code == "not_retained"


async def test_fork_leaves_the_original_untouched(server_process):
    host, port = server_process.start()
    async with connect(host, port, name="ana") as ana, connect(host, port, name="ben") as ben:
        await _room(ana)
        await ana.set("k", b"1")
        made = await hc.checkpoint(ana, "one")
        at = await ana.set("k", b"2")
        await ana.set("x", b"x")
        original = dict(ana.state)
        assert await hc.fork(ana, "shot-try", checkpoint=made["id"], keep_open=True) == made["seq"]
        assert await hc.fork(ana, "shot-seq", seq=at, keep_open=True) == at
        with pytest.raises(ServerError) as info:
            await hc.fork(ana, "shot-seq")
        assert info.value.code == "room_exists"
        await ben.join("shot-try")
        assert dict(ben.state) == {"k": b"1"}
        await ben.set("k", b"fork")
        await ben.leave()
        await ben.join("shot-seq")
        assert dict(ben.state) == {"k": b"2"}
        await ben.leave()
        await ben.join("shot")
        assert dict(ben.state) == original == dict(ana.state)


async def test_history_requests_refuse_bad_input(server_process):
    host, port = server_process.start()
    async with connect(host, port, name="ana") as ana:
        with pytest.raises(ServerError) as info:
            await hc.checkpoints(ana)
        assert info.value.code == "not_in_room"
        await _room(ana)
        for call, code in [
            (lambda: hc.restore(ana), "bad_message"),
            (lambda: hc.restore(ana, checkpoint=1, seq=1), "bad_message"),
            (lambda: hc.restore(ana, checkpoint=99), "no_such_checkpoint"),
            (lambda: hc.delete_checkpoint(ana, 2**63 - 1), "no_such_checkpoint"),
            (lambda: hc.fork(ana, "other", checkpoint=5), "no_such_checkpoint"),
            (lambda: hc.checkpoint(ana, ""), "bad_message"),
            (lambda: hc.checkpoint(ana, "a\x00b"), "bad_message"),
            (lambda: hc.blame(ana, "k\x00"), "bad_message"),
            (lambda: hc.blame(ana, limit=0), "bad_message"),
            (lambda: hc.blame(ana, limit=10_001), "bad_message"),
        ]:
            with pytest.raises(ServerError) as info:
                await call()
            assert info.value.code == code
        made = await hc.checkpoint(ana, "x" * 256)
        await hc.delete_checkpoint(ana, made["id"])
        assert await hc.checkpoints(ana) == []
        assert await ana.set("k", b"v") == 1  # the connection went on


async def test_only_the_creator_or_an_admin_sets_retention_and_every_member_restores(tmp_path):
    path = tmp_path / "tokens.toml"
    issued = {
        name: add_user(path, name, role)
        for name, role in [("root", "admin"), ("ana", "user"), ("ben", "user")]
    }
    process = ServerProcess(tmp_path / "data", extra=["--tokens-file", str(path)])
    host, port = process.start()
    try:
        async with (
            connect(host, port, name="x", token=issued["ana"]) as ana,
            connect(host, port, name="x", token=issued["ben"]) as ben,
            connect(host, port, name="x", token=issued["root"]) as root,
        ):
            await _room(ana)
            await ben.join("shot")
            await root.join("shot")
            await ana.set("k", b"1")
            made = await hc.checkpoint(ben, "ben's")
            assert made["by"] == "ben"
            with pytest.raises(ServerError) as info:
                await hc.set_retention(ben, ops=5)
            assert info.value.code == "forbidden"
            await hc.set_retention(ana, ops=5)
            await hc.set_retention(root, days=2)
            await ben.set("k", b"2")
            assert [r[3] for r in (await hc.blame(ana, "k"))[0]] == [
                "ben"
            ]  # the user's name, not the client's
            await hc.restore(ben, checkpoint=made["id"])
            await wait_for(lambda: dict(ana.state) == {"k": b"1"})
    finally:
        process.kill()


async def test_a_restore_resumed_by_its_own_author_arrives_as_applied(server_process):
    host, port = server_process.start()
    session = "ana-session-0001"
    async with connect(host, port, name="ana", session=session) as ana:
        await _room(ana)
        await ana.set("k", b"1")
        made = await hc.checkpoint(ana, "one")
        since = await ana.set("k", b"2")
        restored, _ = await hc.restore(ana, checkpoint=made["id"])
    # The same session resumes from before its restore: its own writes come back as acks, the restore as
    # the operation it is (its author has to apply it like everyone).
    async with connect(host, port, name="ana", session=session) as again:
        await again.join("shot", since=since)
        with trio.fail_after(10):
            event = await again.receive()
            while not isinstance(event, Applied):
                event = await again.receive()
        assert (event.seq, event.client_id, event.ops) == (restored, session, [["set", "k", b"1"]])
