"""Room history and blobs against a real ``blendsync serve``: a checkpoint keeps the blobs its values
reference, restore and fork bring them back held by the live keys, and a state whose blob is gone is
refused whole."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
from support import ServerProcess, wait_for

from broadcaster import history_client as hc
from broadcaster.client import ServerError, connect
from protocol import Applied

ONE, TWO, THREE = b"one" * 30_000, b"two" * 30_000, b"three" * 30_000  # chunks of a mesh's geometry


async def stored(client, blobs) -> set[bytes]:
    blobs = list(blobs)
    return set(blobs) - set(await client.missing_blobs(blobs))


async def _room(client, name="shot"):
    await client.create_room(name, keep_open=True)
    await client.join(name)


async def _applied(client) -> Applied:
    with trio.fail_after(10):
        event = await client.receive()
        while not isinstance(event, Applied):
            event = await client.receive()
    return event


async def test_a_checkpoint_keeps_its_blobs_and_restore_and_fork_hold_them_again(server_process):
    host, port = server_process.start()
    async with connect(host, port, name="ana") as ana, connect(host, port, name="ben") as ben:
        await _room(ana)
        await ben.join("shot")
        one, two = await ana.put_blob(ONE), await ana.put_blob(TWO)
        await ana.batch([["set", "mesh/geometry", b"value-1", [one, two]]])
        await _applied(ben)
        made = await hc.checkpoint(ana, "before sculpting")
        three = await ana.put_blob(THREE)
        await ana.batch([["set", "mesh/geometry", b"value-2", [two, three]]])
        await _applied(ben)
        # The live key let go of `one`; the checkpoint still holds it.
        assert await stored(ben, [one, two, three]) == {one, two, three}

        seq, undo = await hc.restore(ben, checkpoint=made["id"])
        event = await _applied(ben)
        assert (event.seq, event.ops) == (seq, [["set", "mesh/geometry", b"value-1", [one, two]]])
        await wait_for(lambda: ana.seq == seq)
        assert dict(ana.state) == dict(ben.state) == {"mesh/geometry": b"value-1"}
        assert await ana.get_blob(one) == ONE

        # The restored key holds its blobs like any write: deleting the checkpoint keeps them, and the
        # undo checkpoint keeps what the restore replaced.
        await hc.delete_checkpoint(ana, made["id"])
        assert await stored(ben, [one, two, three]) == {one, two, three}
        await hc.delete_checkpoint(ana, undo)
        assert await stored(ben, [one, two, three]) == {one, two}

        # A fork from a checkpoint: its keys hold the checkpoint's blobs after the checkpoint and the
        # original's key let go of them.
        again = await hc.checkpoint(ana, "restored")
        await ana.batch([["set", "mesh/geometry", b"small"]])
        assert await hc.fork(ana, "shot-try", checkpoint=again["id"], keep_open=True) == again["seq"]
        await hc.delete_checkpoint(ana, again["id"])
        assert await stored(ben, [one, two]) == {one, two}
        await ben.leave()
        await ben.join("shot-try")
        assert dict(ben.state) == {"mesh/geometry": b"value-1"}
        assert await ben.get_blob(two) == TWO
        await ben.batch([["set", "mesh/geometry", b"value-3", [one]]])
        assert await stored(ana, [one, two]) == {one}
        # The forked room's deletion lets go of the rest: nothing holds any of them any more.
        await ben.leave()
        await ben.delete_room("shot-try")
        assert await stored(ana, [one, two, three]) == set()


async def test_deleting_a_room_releases_its_checkpoints_blobs(server_process):
    host, port = server_process.start()
    async with connect(host, port, name="ana") as ana:
        await _room(ana)
        one = await ana.put_blob(ONE)
        await ana.batch([["set", "image/1/file", b"v", [one]]])
        await hc.checkpoint(ana, "one")
        await ana.batch([["set", "image/1/file", b"packed elsewhere"]])
        assert await stored(ana, [one]) == {one}
        await ana.leave()
        await ana.delete_room("shot")
        assert await stored(ana, [one]) == set()


async def test_a_state_whose_blob_is_gone_is_refused_and_nothing_changes(server_process):
    """The retained log does not hold blobs: restoring or forking to a seq whose value names a blob no
    longer stored is refused before anything is written; a seq whose blobs are still held restores."""
    host, port = server_process.start()
    async with connect(host, port, name="ana") as ana:
        await _room(ana)
        one, two = await ana.put_blob(ONE), await ana.put_blob(TWO)
        at_one = await ana.batch([["set", "mesh/geometry", b"value-1", [one]], ["set", "k", b"1"]])
        at_two = await ana.batch([["set", "mesh/geometry", b"value-2", [two]]])
        last = await ana.batch([["set", "mesh/geometry", b"value-3", [two]], ["set", "k", b"2"]])
        assert await stored(ana, [one, two]) == {two}
        for call in (lambda: hc.restore(ana, seq=at_one), lambda: hc.fork(ana, "shot-old", seq=at_one)):
            with pytest.raises(ServerError) as info:
                await call()
            assert info.value.code == "no_such_blob" and one.hex() in info.value.message
        assert ana.seq == last and dict(ana.state) == {"mesh/geometry": b"value-3", "k": b"2"}
        assert await hc.checkpoints(ana) == []  # not even the restore's undo checkpoint was taken
        rooms = [r["name"] for r in await ana.list_rooms()]
        assert "shot-old" not in rooms
        # Still held by the live key: this seq restores, and the key keeps holding `two` afterwards.
        seq, undo = await hc.restore(ana, seq=at_two)
        assert dict(ana.state) == {"mesh/geometry": b"value-2", "k": b"1"}
        await hc.delete_checkpoint(ana, undo)
        assert await stored(ana, [two]) == {two}
        assert seq == last + 1


async def _wait_for_automatic(client, seq: int) -> None:
    with trio.fail_after(20):
        while not any(c["auto"] and c["seq"] == seq for c in await hc.checkpoints(client)):
            await trio.sleep(0.05)


async def test_pruning_old_automatic_checkpoints_releases_their_blobs(tmp_path: Path):
    config = tmp_path / "blendsync.toml"
    config.write_text("[server]\ncheckpoint_interval = 0.2\nauto_checkpoints_kept = 2\n")
    process = ServerProcess(tmp_path / "data", extra=["--config", str(config)])
    host, port = process.start()
    try:
        async with connect(host, port, name="ana") as ana:
            await _room(ana)
            blobs = [await ana.put_blob(data) for data in (ONE, TWO, THREE)]
            seqs = []
            for blob in blobs[:2]:
                seqs.append(await ana.batch([["set", "mesh/geometry", blob.hex().encode(), [blob]]]))
                await _wait_for_automatic(ana, seqs[-1])
            # Two automatic checkpoints kept: the first still holds `one`, which no live key does.
            assert await stored(ana, blobs) == set(blobs)
            seqs.append(await ana.batch([["set", "mesh/geometry", b"v", [blobs[2]]]]))
            await _wait_for_automatic(ana, seqs[-1])
            # The third pruned the first, and its blob went with it.
            autos = [c["seq"] for c in await hc.checkpoints(ana) if c["auto"]]
            assert autos == seqs[1:]
            assert await stored(ana, blobs) == set(blobs[1:])
    finally:
        process.kill()
