"""Restore and checkpoints racing writes, with the interleaving forced: a write commits between the moment
the server builds a history transaction from its copy and the moment that transaction is proposed."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import running_broadcaster, wait_for

from broadcaster import history_client as hc
from broadcaster.app import open_broadcaster
from broadcaster.client import ServerError, connect
from broadcaster.config import ServerConfig


def _is_checkpoint(command) -> bool:
    return any(op["path"][2:3] == ["checkpoints"] for op in command["then"] if op["op"] == "append")


def _is_restore(command) -> bool:
    return any("r" in op["payload"] for op in command["then"] if op["op"] == "append" and "payload" in op)


async def _with_a_write_first(tmp_path: Path, intercepted, check):
    config = ServerConfig(host="127.0.0.1", port=0, data_dir=tmp_path / "data", checkpoint_interval=0)
    async with open_broadcaster(config) as broadcaster:
        host, port = broadcaster.listen_addresses[0].rsplit(":", 1)
        async with (
            connect(host, int(port), name="ana") as ana,
            connect(host, int(port), name="ben") as ben,
        ):
            await ana.create_room("shot", keep_open=True)
            await ana.join("shot")
            await ben.join("shot")
            store = broadcaster.store
            original = store.propose
            stale: list[dict] = []

            async def propose(command):
                if intercepted(command) and not stale:
                    stale.append(command)
                    await ben.set("k", b"written in between")  # commits before the command is proposed
                return await original(command)

            store.propose = propose
            await check(ana, ben, stale, original)


async def test_a_restore_built_before_a_write_is_rebuilt_and_everyone_converges(tmp_path: Path):
    async def check(ana, ben, stale, propose):
        await ana.batch([["set", "k", b"1"], ["set", "j", b"1"]])
        made = await hc.checkpoint(ana, "one")
        await ana.batch([["set", "k", b"2"], ["set", "extra", b"x"]])
        seq, undo = await hc.restore(ana, checkpoint=made["id"])
        # The restore built before the write was refused and rebuilt after it: the write is undone too,
        # and the undo checkpoint holds it.
        assert (await propose(stale[0]))["succeeded"] is False
        await wait_for(lambda: ben.seq == seq)
        assert dict(ana.state) == dict(ben.state) == {"k": b"1", "j": b"1"}
        undo_state = {"k": b"written in between", "j": b"1", "extra": b"x"}
        await hc.restore(ben, checkpoint=undo)
        await wait_for(lambda: ana.seq == ben.seq)
        assert dict(ana.state) == dict(ben.state) == undo_state

    await _with_a_write_first(tmp_path, _is_restore, check)


async def test_a_checkpoint_built_before_a_write_holds_the_write(tmp_path: Path):
    async def check(ana, ben, stale, propose):
        await ana.set("k", b"1")
        made = await hc.checkpoint(ana, "one")
        assert made["seq"] == ben.seq == 2 and made["keys"] == 1
        assert (await propose(stale[0]))["succeeded"] is False
        await ana.set("k", b"later")
        await hc.restore(ana, checkpoint=made["id"])
        assert dict(ana.state) == {"k": b"written in between"}

    await _with_a_write_first(tmp_path, _is_checkpoint, check)


async def test_a_write_sent_after_a_restore_is_ordered_after_it(tmp_path: Path):
    async with running_broadcaster(tmp_path / "d") as (host, port), connect(host, port, name="a") as a:
        await a.create_room("r", keep_open=True)
        await a.join("r")
        await a.set("k", b"1")
        made = await hc.checkpoint(a, "one")
        await a.set("k", b"2")
        async with connect(host, port, name="b") as b:
            await b.join("r")
            _, waiter = await b.send_ops([["set", "k", b"mine"]])  # pipelined with the restore below
            restored, _ = await hc.restore(a, checkpoint=made["id"])
            mine = await waiter.wait()
            await wait_for(lambda: a.seq == b.seq == max(mine, restored))
            # Whichever the server ordered last wins, on both clients alike.
            assert dict(a.state) == dict(b.state) == {"k": b"mine" if mine > restored else b"1"}


def _is_fork(command) -> bool:
    return any(op["op"] == "put" and op["payload"].get("seeded") for op in command["then"][:1])


async def test_a_fork_whose_blob_goes_before_it_commits_is_refused_whole(tmp_path: Path):
    """The fork is built while the key still holds the blob; a write releasing it commits before the fork
    is proposed: the fork's own condition refuses it (no room), and the reason is the blob."""
    config = ServerConfig(host="127.0.0.1", port=0, data_dir=tmp_path / "data", checkpoint_interval=0)
    async with open_broadcaster(config) as broadcaster:
        host, port = broadcaster.listen_addresses[0].rsplit(":", 1)
        async with connect(host, int(port), name="ana") as ana, connect(host, int(port), name="ben") as ben:
            await ana.create_room("shot", keep_open=True)
            await ana.join("shot")
            await ben.join("shot")
            blob = await ana.put_blob(b"chunk" * 1000)
            at = await ana.batch([["set", "mesh/geometry", b"v", [blob]]])
            store = broadcaster.store
            original = store.propose

            async def propose(command):
                if _is_fork(command):
                    await ben.set("mesh/geometry", b"no chunks")  # releases the blob's last holder
                return await original(command)

            store.propose = propose
            with pytest.raises(ServerError) as info:
                await hc.fork(ana, "shot-try", seq=at)
            assert info.value.code == "no_such_blob" and blob.hex() in info.value.message
            assert "shot-try" not in [r["name"] for r in await ana.list_rooms()]
            assert await ana.missing_blobs([blob]) == [blob]
