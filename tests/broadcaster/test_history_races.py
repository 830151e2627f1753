"""Restore and checkpoints racing writes, with the interleaving forced: a write commits between the moment
the server builds a history transaction from its copy and the moment that transaction is proposed."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import running_broadcaster, wait_for

from broadcaster import history
from broadcaster import history_client as hc
from broadcaster.app import open_broadcaster
from broadcaster.client import ServerError, connect
from broadcaster.config import ServerConfig


def _is_checkpoint(command) -> bool:
    return any(op["path"][2:3] == ["checkpoints"] for op in command["then"] if op["op"] == "append")


def _is_restore(command) -> bool:
    return any("r" in op["payload"] for op in command["then"] if op["op"] == "append" and "payload" in op)


async def _with_a_write_first(tmp_path: Path, intercepted, check, between=None):
    """Run ``check(ana, ben, stale, propose, broadcaster)`` with a write committing after the first command
    ``intercepted`` picks was built and before it is proposed (``between(ben)``: that write; default a set
    of ``k``). ``stale`` collects every command it picked (its rebuilds too); ``propose`` is unhooked."""
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
                if intercepted(command):
                    stale.append(command)
                    if len(stale) == 1:  # commits before the command is proposed
                        await (between(ben) if between else ben.set("k", b"written in between"))
                return await original(command)

            store.propose = propose
            await check(ana, ben, stale, original, broadcaster)


async def test_a_restore_built_before_a_write_is_rebuilt_and_everyone_converges(tmp_path: Path):
    async def check(ana, ben, stale, propose, _):
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


def _checkpoint_keys(broadcaster, number: int) -> dict[str, str]:
    return history.read_checkpoint(broadcaster.store.node, "shot", number)["keys"]


async def test_a_checkpoint_built_before_a_write_commits_the_state_it_was_built_from(tmp_path: Path):
    """The write lands between the checkpoint's build (at seq 1) and its commit: the checkpoint is not
    voided by it. It commits at the first attempt, naming seq 1 and the map at seq 1, exactly."""

    def between(ben):
        return ben.batch([["set", "k", b"written in between"], ["delete", "j"], ["set", "new", b"x"]])

    async def check(ana, ben, stale, propose, broadcaster):
        await ana.batch([["set", "k", b"1"], ["set", "j", b"1"]])
        made = await hc.checkpoint(ana, "one")
        assert len(stale) == 1 and ben.seq == 2  # one attempt; the write committed before it
        assert (made["seq"], made["keys"]) == (1, 2)
        assert [(c["id"], c["seq"], c["keys"]) for c in await hc.checkpoints(ana)] == [(made["id"], 1, 2)]
        name = history.value_name(b"1")
        assert _checkpoint_keys(broadcaster, made["id"]) == {"k": name, "j": name}
        # The same command proposed again is refused: the history guard moved with the first.
        assert (await propose(stale[0]))["succeeded"] is False
        await ana.set("k", b"later")
        await hc.restore(ana, checkpoint=made["id"])
        await wait_for(lambda: ben.seq == ana.seq)
        assert dict(ana.state) == dict(ben.state) == {"k": b"1", "j": b"1"}

    await _with_a_write_first(tmp_path, _is_checkpoint, check, between)


async def test_a_checkpoint_whose_blob_a_write_lets_go_before_it_commits_is_refused_and_rebuilt(
    tmp_path: Path,
):
    """The checkpoint is built while a key holds a blob nothing else holds; a write releasing it commits
    before the checkpoint is proposed. That command is refused whole (its value's blob condition), and the
    rebuilt one holds the write: never a checkpoint naming a missing blob."""

    def between(ben):
        return ben.set("mesh/geometry", b"no chunks")  # releases the blob's last holder

    async def check(ana, ben, stale, propose, broadcaster):
        blob = await ana.put_blob(b"chunk" * 1000)
        await ana.batch([["set", "mesh/geometry", b"v", [blob]], ["set", "j", b"1"]])
        made = await hc.checkpoint(ana, "one")
        assert len(stale) == 2  # the first build was refused, the second committed
        assert made["seq"] == ben.seq == 2
        assert await ana.missing_blobs([blob]) == [blob]
        keys = _checkpoint_keys(broadcaster, made["id"])
        assert keys == {"mesh/geometry": history.value_name(b"no chunks"), "j": history.value_name(b"1")}
        values = broadcaster.store.node.list_local(history.values_path("shot"))
        assert sorted(name for name, _, _ in values) == sorted(set(keys.values()))
        await hc.restore(ana, checkpoint=made["id"])
        assert dict(ana.state) == {"mesh/geometry": b"no chunks", "j": b"1"}

    await _with_a_write_first(tmp_path, _is_checkpoint, check, between)


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
