"""Automatic checkpoints and retention: what compaction drops, and what it never breaks."""

from __future__ import annotations

import itertools
import time
from dataclasses import replace
from pathlib import Path

import pytest
import trio
from support import ServerProcess, artists_in_a_room

from broadcaster import history
from broadcaster import history_client as hc
from broadcaster.app import open_broadcaster
from broadcaster.checkpoints import HistoryMaintenance
from broadcaster.client import ServerError, connect
from broadcaster.config import ServerConfig


async def _wait_for_automatic(client, seq: int) -> None:
    with trio.fail_after(20):
        while not any(c["auto"] and c["seq"] == seq for c in await hc.checkpoints(client)):
            await trio.sleep(0.05)


async def test_automatic_checkpoints_follow_activity_and_the_oldest_go(tmp_path: Path):
    config = tmp_path / "blendsync.toml"
    config.write_text("[server]\ncheckpoint_interval = 0.2\nauto_checkpoints_kept = 2\n")
    process = ServerProcess(tmp_path / "data", extra=["--config", str(config)])
    host, port = process.start()
    try:
        async with connect(host, port, name="ana") as ana:
            await ana.create_room("shot", keep_open=True)
            await ana.join("shot")
            named = await hc.checkpoint(ana, "empty")
            seqs = []
            for burst in range(3):
                seqs.append(await ana.set("k", str(burst).encode()))
                await _wait_for_automatic(ana, seqs[-1])
            listed = await hc.checkpoints(ana)
            # One automatic checkpoint per burst of activity (none while idle), the oldest beyond 2 gone,
            # the named one kept.
            assert [(c["name"], c["seq"], c["auto"]) for c in listed] == [
                ("empty", 0, False),
                ("automatic", seqs[1], True),
                ("automatic", seqs[2], True),
            ]
            assert listed[0]["id"] == named["id"]
            await hc.restore(ana, checkpoint=listed[1]["id"])
            assert dict(ana.state) == {"k": b"1"}
    finally:
        process.kill()


async def test_retention_never_breaks_a_checkpoint_or_a_resume(tmp_path: Path):
    config = ServerConfig(host="127.0.0.1", port=0, data_dir=tmp_path / "data", checkpoint_interval=0)
    async with open_broadcaster(config) as broadcaster:
        host, port = broadcaster.listen_addresses[0].rsplit(":", 1)
        async with connect(host, int(port), name="ana") as ana, connect(host, int(port), name="ben") as ben:
            await ana.create_room("shot", keep_open=True)
            await ana.join("shot")
            await ana.set("a", b"1")
            one = await hc.checkpoint(ana, "one")
            await hc.set_retention(ana, ops=3)
            for i in range(6):
                await ana.set("b", bytes([i]))
            assert [n for n, _ in broadcaster.store.log_entries("shot")] == [5, 6, 7]
            two = await hc.checkpoint(ana, "two")
            await ana.set("c", b"8")
            at = await ana.set("c", b"9")
            state = dict(ana.state)
            with pytest.raises(ServerError) as info:
                await hc.restore(ana, seq=3)  # the log from checkpoint one to seq 3 is gone
            assert info.value.code == "not_retained"
            # A resume from before the retained log gets a snapshot, as always.
            joined = await ben.join("shot", since=2)
            assert joined.mode == "snapshot" and dict(ben.state) == state
            await ben.leave()
            await hc.restore(ana, seq=at - 1)  # checkpoint two plus the retained seq 8
            assert dict(ana.state) == {"a": b"1", "b": b"\x05", "c": b"8"}
            # By age: everything logged more than a day before "now" goes; checkpoints stay.
            await hc.set_retention(ana, days=1, ops=0)
            last = ana.seq
            await HistoryMaintenance(config, broadcaster.history).run_once(time.time() + 2 * 86400)
            assert broadcaster.store.log_entries("shot") == []
            joined = await ben.join("shot", since=last)
            assert joined.mode == "resume"
            await hc.restore(ana, checkpoint=one["id"])
            assert dict(ana.state) == {"a": b"1"}
            await hc.restore(ana, checkpoint=two["id"])
            assert dict(ana.state) == {"a": b"1", "b": b"\x05"}
            assert await ana.set("d", b"after") == ana.seq > last + 1  # seqs go on, never reused


async def test_a_busy_room_is_checkpointed_once_an_interval_not_at_every_pass(tmp_path: Path):
    """The log's cap trims the first operation after a checkpoint within seconds in a busy room: that it
    is gone does not make the room's activity an interval old."""
    config = ServerConfig(
        host="127.0.0.1", port=0, data_dir=tmp_path / "data", checkpoint_interval=600, room_tail=5
    )
    async with open_broadcaster(config) as broadcaster:
        host, port = broadcaster.listen_addresses[0].rsplit(":", 1)
        async with connect(host, int(port), name="ana") as ana:
            await ana.create_room("shot", keep_open=True)
            await ana.join("shot")
            maintenance = HistoryMaintenance(config, broadcaster.history)

            async def automatic_at(now: float) -> list[int]:
                await maintenance.run_once(now)
                return [c["seq"] for c in await hc.checkpoints(ana) if c["auto"]]

            for i in range(3):
                await ana.set("k", bytes([i]))
            assert await automatic_at(time.time()) == []  # seconds of activity
            assert await automatic_at(time.time() + 601) == [3]
            for i in range(10):  # the cap (5) trims the first operation after the checkpoint
                await ana.set("k", bytes([i]))
            assert len(broadcaster.store.log_entries("shot")) == 5
            assert await automatic_at(time.time() + 60) == [3]  # a pass a minute later: not yet
            assert await automatic_at(time.time() + 601) == [3, 13]
            assert await automatic_at(time.time() + 602) == [3, 13]  # no activity since


def _map_at(entries: list[tuple[int, dict]], seq: int) -> dict[str, bytes]:
    """A room that started empty and kept its whole log: its map at ``seq``."""
    state: dict[str, bytes] = {}
    for number, entry in entries:
        if number > seq:
            break
        for op in entry["ops"]:
            if op[0] == "set":
                state[op[1]] = op[2]
            else:
                state.pop(op[1], None)
    return state


async def test_in_a_room_written_without_pause_every_due_pass_commits_its_checkpoint(tmp_path: Path):
    """A writer sends operations back to back while the leader's passes run, and every checkpoint the
    server proposes has a write committed between its build and its commit (forced, at every attempt):
    each due pass still commits one checkpoint, at its first attempt, of the map at the seq it names."""
    config = ServerConfig(
        host="127.0.0.1", port=0, data_dir=tmp_path / "data", checkpoint_interval=0, room_tail=0
    )
    passes = 20
    async with open_broadcaster(config) as broadcaster:
        host, port = broadcaster.listen_addresses[0].rsplit(":", 1)
        address = (host, int(port))
        async with artists_in_a_room(address, ("ana", "ben", "cy"), "shot") as (ana, ben, cy):
            store = broadcaster.store
            original = store.propose
            attempts: list[int] = []

            async def propose(command):
                if any(op["path"][2:3] == ["checkpoints"] for op in command["then"] if op["op"] == "append"):
                    attempts.append(await ben.set("between", str(len(attempts)).encode()))
                return await original(command)

            store.propose = propose
            auto = replace(config, checkpoint_interval=1.0, auto_checkpoints_kept=0)
            maintenance = HistoryMaintenance(auto, broadcaster.history)
            with trio.fail_after(60):
                async with trio.open_nursery() as nursery:

                    async def writer() -> None:
                        for i in itertools.count():
                            await cy.set(f"k{i % 7}", str(i).encode())

                    nursery.start_soon(writer)
                    await cy.set("first", b"x")
                    for done in range(1, passes + 1):
                        await maintenance.run_once(time.time() + 2)  # due: the last write is 2 s old
                        assert len(attempts) == done  # committed at the first attempt
                    nursery.cancel_scope.cancel()
            made = [c for c in await hc.checkpoints(ana) if c["auto"]]
            assert len(made) == passes
            # Each names the seq its pass read: after the previous pass's forced write, before its own.
            for checkpoint, before, forced in zip(made, [0, *attempts], attempts, strict=False):
                assert before <= checkpoint["seq"] < forced
            entries = store.log_entries("shot")
            for checkpoint in made:
                payload = history.read_checkpoint(store.node, "shot", checkpoint["id"])
                items, _ = history.checkpoint_items(store.node, "shot", payload)
                assert items == _map_at(entries, checkpoint["seq"])
