"""Checkpoints, restores and forks of a room larger than one log entry: made in parts (history_parts.py),
and what a builder that stops part-way leaves is finished or removed by the leader's maintenance."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio
from support import ServerProcess, wait_for

from broadcaster import history, history_parts
from broadcaster import history_client as hc
from broadcaster.app import open_broadcaster
from broadcaster.checkpoints import HistoryMaintenance
from broadcaster.client import ConnectionLost, ServerError, connect
from broadcaster.config import ServerConfig, max_entry_bytes

FRAME = 64 * 1024  # a part carries at most half of it
KEYS = 160
VALUE = 8 * 1024  # 160 keys of 8 KiB: 1.3 MB, more than one log entry of this server (1.2 MB)


def _config(tmp_path: Path) -> ServerConfig:
    return ServerConfig(
        host="127.0.0.1", port=0, data_dir=tmp_path / "data", checkpoint_interval=0, max_frame_size=FRAME
    )


async def _fill(client: Any, keys: list[str]) -> dict[str, bytes]:
    values = {key: os.urandom(VALUE) for key in keys}
    names = sorted(values)
    for start in range(0, len(names), 6):  # six values a frame
        await client.batch([["set", key, values[key]] for key in names[start : start + 6]])
    return values


async def _edit(client: Any, state: dict[str, bytes]) -> dict[str, bytes]:
    """Change most keys, delete some and add some: what a restore has to take back."""
    names = sorted(state)
    for key in names[:10]:
        await client.delete(key)
    changed = await _fill(client, names[10:150] + [f"new/{n}" for n in range(5)])
    return {**{k: v for k, v in state.items() if k not in names[:10]}, **changed}


def _restore_entries(broadcaster: Any, after: int) -> list[dict[str, Any]]:
    return [entry for _, entry in broadcaster.store.log_entries("shot", after) if "r" in entry]


def _no_leftovers(broadcaster: Any) -> None:
    node = broadcaster.store.node
    assert history.partial_checkpoints(node, "shot") == []
    assert node.read_local(history.restoring_path("shot")) is None
    assert not any(meta.get("importing") for _, meta in broadcaster.store.metas())


async def test_a_room_larger_than_one_log_entry_is_checkpointed_restored_and_forked(tmp_path: Path):
    config = _config(tmp_path)
    async with open_broadcaster(config) as broadcaster:
        host, port = broadcaster.listen_addresses[0].rsplit(":", 1)
        async with (
            connect(host, int(port), name="ana") as ana,
            connect(host, int(port), name="ben") as ben,
            connect(host, int(port), name="cy") as cy,
        ):
            await ana.create_room("shot", keep_open=True)
            await ana.join("shot")
            await ben.join("shot")
            original = await _fill(ana, [f"obj/{n:03d}" for n in range(KEYS)])
            filled = ana.seq
            assert sum(len(v) for v in original.values()) > max_entry_bytes(FRAME)  # one entry cannot hold it

            made = await hc.checkpoint(ana, "big")
            assert made["keys"] == KEYS and made["seq"] == filled
            assert [c["id"] for c in await hc.checkpoints(ben)] == [made["id"]]
            node = broadcaster.store.node
            stored = history.read_checkpoint(node, "shot", made["id"])
            assert history.checkpoint_items(node, "shot", stored)[0] == original
            assert len(node.list_local((*history.checkpoints_path("shot"), history.seq_name(made["id"])))) > 1

            edited = await _edit(ben, original)
            await wait_for(lambda: dict(ana.state) == edited)
            before = broadcaster.store.last_log_seq("shot")
            seq, undo = await hc.restore(ana, checkpoint=made["id"])
            await wait_for(lambda: ben.seq == seq)
            assert dict(ana.state) == dict(ben.state) == original
            parts = _restore_entries(broadcaster, before)
            assert len(parts) > 1 and all(p["r"] == {"checkpoint": made["id"]} for p in parts)
            assert all(p["o"] == undo for p in parts)
            _no_leftovers(broadcaster)
            # Blame names the restorer for what it brought back.
            assert {row[3] for row in (await hc.blame(ben, "obj/"))[0]} == {"ana"}

            seq, _ = await hc.restore(ben, checkpoint=undo)  # the undo holds the edited state
            await wait_for(lambda: ana.seq == seq)
            assert dict(ana.state) == dict(ben.state) == edited

            seq, _ = await hc.restore(ben, seq=filled)  # a seq: its state is checkpointed first
            await wait_for(lambda: ana.seq == seq)
            assert dict(ana.state) == original
            names = [c["name"] for c in await hc.checkpoints(ana)]
            assert f"target of restore to seq {filled}" in names
            _no_leftovers(broadcaster)

            await hc.fork(ana, "copy", checkpoint=made["id"])
            await cy.join("copy")
            assert dict(cy.state) == original
            assert dict(ben.state) == original and ben.seq == seq  # the source is untouched
            _no_leftovers(broadcaster)


class Stopped(Exception):
    """The builder stops here, as if its process died: nothing after it runs."""


async def _stop_after(broadcaster: Any, monkeypatch: Any, count: int, picked: Any) -> list[dict]:
    """Make the store's ``count``-th proposal that ``picked`` chooses raise Stopped (and every one after
    it), and the builders' own clean-ups do nothing: what a dead process leaves."""
    store = broadcaster.store
    original = store.propose
    seen: list[dict] = []

    async def propose(command: dict) -> dict:
        if picked(command):
            seen.append(command)
            if len(seen) >= count:
                raise Stopped()
        return await original(command)

    async def no_clean_up(*args: Any) -> None:
        pass

    monkeypatch.setattr(store, "propose", propose)
    monkeypatch.setattr(history_parts, "drop_partial_checkpoint", no_clean_up)
    return seen


def _writes_path(command: dict, *path: str) -> bool:
    return any(op.get("path", [])[1:3] == ["shot", *path][:2] for op in command["then"])


async def _maintained(broadcaster: Any, config: ServerConfig, *, later: float = 0.0) -> None:
    await HistoryMaintenance(config, broadcaster.history).run_once(time.time() + later)


@dataclass
class Shot:
    """A room larger than one log entry, checkpointed (``made``) and then edited all over by Ben."""

    broadcaster: Any
    config: ServerConfig
    ana: Any
    ben: Any
    original: dict[str, bytes]
    made: dict[str, Any]
    edited: dict[str, bytes]


@asynccontextmanager
async def edited_shot(tmp_path: Path) -> AsyncIterator[Shot]:
    config = _config(tmp_path)
    async with open_broadcaster(config) as broadcaster:
        host, port = broadcaster.listen_addresses[0].rsplit(":", 1)
        async with connect(host, int(port), name="ana") as ana, connect(host, int(port), name="ben") as ben:
            await ana.create_room("shot", keep_open=True)
            await ana.join("shot")
            await ben.join("shot")
            original = await _fill(ana, [f"obj/{n:03d}" for n in range(KEYS)])
            made = await hc.checkpoint(ana, "big")
            edited = await _edit(ben, original)
            await wait_for(lambda: dict(ana.state) == edited)
            yield Shot(broadcaster, config, ana, ben, original, made, edited)


async def _stopped_builder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, restarted: bool, run: Any
) -> None:
    """``run(broadcaster, ana, ben, state)`` starts a change in parts that stops part-way, and returns a
    check of what it left. That stays while its builder may still be at work (this process, young), and
    is dealt with at the next pass once the builder is known gone (``restarted``: the node runs another
    process now) or it is ``PARTIAL_SECONDS`` old."""
    async with edited_shot(tmp_path) as shot:
        broadcaster, config = shot.broadcaster, shot.config
        state = {"original": shot.original, "edited": shot.edited, "made": shot.made}
        with monkeypatch.context() as patch:
            check = await run(broadcaster, patch, shot.ana, shot.ben, state)
        await _maintained(broadcaster, config)
        await check(done=False)
        if restarted:
            broadcaster.history.boot = "the process started since"
        await _maintained(broadcaster, config, later=0 if restarted else history_parts.PARTIAL_SECONDS + 1)
        await check(done=True)


def _value_names(broadcaster: Any) -> set[str]:
    return {name for name, _, _ in broadcaster.store.node.list_local(history.values_path("shot"))}


@pytest.mark.parametrize("restarted", [False, True])
async def test_a_checkpoint_stopped_part_way_is_deleted_with_the_values_only_it_held(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, restarted: bool
):
    async def run(broadcaster, patch, ana, ben, state):
        before = _value_names(broadcaster)
        await _stop_after(broadcaster, patch, 4, lambda c: _writes_path(c, "history"))  # record, 2 parts
        with pytest.raises(Stopped):
            meta = broadcaster.store.meta("shot")
            await broadcaster.history.checkpoint("shot", meta, "stops", "ana", ana.client_id, auto=False)
        node = broadcaster.store.node

        async def check(done: bool) -> None:
            assert len(history.partial_checkpoints(node, "shot")) == (0 if done else 1)
            assert (_value_names(broadcaster) == before) is done  # the parts' values go with it
            assert [c["id"] for c in await hc.checkpoints(ana)] == [state["made"]["id"]]

        return check

    await _stopped_builder(tmp_path, monkeypatch, restarted, run)


@pytest.mark.parametrize("restarted", [False, True])
async def test_a_restore_stopped_part_way_is_finished_on_every_member(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, restarted: bool
):
    async def run(broadcaster, patch, ana, ben, state):
        # Its undo checkpoint is made, then two parts are logged; the third never is.
        await _stop_after(broadcaster, patch, 3, lambda c: _writes_path(c, "log"))
        with pytest.raises(Stopped):
            await hc_restore_in_process(broadcaster, ana, state["made"]["id"])
        node = broadcaster.store.node

        async def check(done: bool) -> None:
            marker = node.read_local(history.restoring_path("shot"))
            assert (marker is None) is done
            last = broadcaster.store.last_log_seq("shot")
            await wait_for(lambda: ana.seq == ben.seq == last)
            assert dict(ana.state) == dict(ben.state)
            assert (dict(ben.state) == state["original"]) is done
            if not done:  # its target and undo checkpoints stay while it is under way
                with pytest.raises(ServerError) as info:
                    await hc.delete_checkpoint(ana, state["made"]["id"])
                assert info.value.code == "conflict"
            if done:  # the undo checkpoint holds the state before the restore
                undo = [c for c in await hc.checkpoints(ana) if c["name"].startswith("before restore")]
                assert len(undo) == 1
                seq, _ = await hc.restore(ben, checkpoint=undo[0]["id"])
                await wait_for(lambda: ana.seq == seq)
                assert dict(ana.state) == state["edited"]

        return check

    await _stopped_builder(tmp_path, monkeypatch, restarted, run)


async def hc_restore_in_process(broadcaster: Any, client: Any, checkpoint: int) -> None:
    """The restore request of ``client``'s session, run in the test's task (so Stopped reaches it)."""
    session = broadcaster.sessions[client.client_id]
    meta = broadcaster.store.meta("shot")
    await broadcaster.history.restore(session, session.room, meta, checkpoint, None)


@pytest.mark.parametrize("restarted", [False, True])
async def test_a_fork_stopped_part_way_is_removed_and_its_name_is_free_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, restarted: bool
):
    async def run(broadcaster, patch, ana, ben, state):
        await _stop_after(
            broadcaster, patch, 3, lambda c: any(op.get("path", [])[1:2] == ["copy"] for op in c["then"])
        )
        with pytest.raises(Stopped):
            await hc_fork_in_process(broadcaster, ana, "copy", state["made"]["id"])
        store = broadcaster.store

        async def check(done: bool) -> None:
            assert (store.find_meta("copy") is None) is done
            assert "copy" not in [room["name"] for room in await ana.list_rooms()]  # hidden meanwhile
            if done:
                await hc.fork(ana, "copy", checkpoint=state["made"]["id"])
                await ben.leave()
                await ben.join("copy")
                assert dict(ben.state) == state["original"]

        return check

    await _stopped_builder(tmp_path, monkeypatch, restarted, run)


async def hc_fork_in_process(broadcaster: Any, client: Any, room: str, checkpoint: int) -> None:
    from protocol import Fork

    session = broadcaster.sessions[client.client_id]
    meta = broadcaster.store.meta("shot")
    request = Fork(room=room, checkpoint=checkpoint, seq=None, keep_open=True, ref=None)
    await broadcaster.history.fork(session, session.room, meta, request)


async def test_a_write_between_two_parts_of_a_restore_is_caught_up_with(tmp_path: Path):
    """Ben writes a key the restore already put back and a key it has not reached yet, between its first
    and second part: the parts after it are built again from the room as it is, so the restore still ends
    at its target on every member (it orders after the write)."""
    async with edited_shot(tmp_path) as shot:
        broadcaster, ana, ben = shot.broadcaster, shot.ana, shot.ben
        original, made = shot.original, shot.made
        store = broadcaster.store
        propose = store.propose
        parts: list[dict] = []
        refused: list[bool] = []

        async def between(command: dict) -> dict:
            if _writes_path(command, "log") and any(
                "r" in op.get("payload", {}) for op in command["then"] if op["op"] == "append"
            ):
                parts.append(command)
                if len(parts) == 2:  # after the first part committed, before the second is proposed
                    await ben.batch([["set", "obj/000", b"ben's"], ["set", "obj/159", b"ben's too"]])
                result = await propose(command)
                refused.append(not result["succeeded"])
                return result
            return await propose(command)

        store.propose = between
        seq, _ = await hc.restore(ana, checkpoint=made["id"])
        store.propose = propose
        await wait_for(lambda: ben.seq == seq)
        assert refused[:2] == [False, True]  # the second part met the write and was built again
        assert dict(ana.state) == dict(ben.state) == original
        _no_leftovers(broadcaster)


async def test_a_server_killed_during_a_restore_in_parts_finishes_it_when_it_starts_again(tmp_path: Path):
    """kill -9 of a real ``blendsync serve`` while a restore in parts is being logged (frozen first, as
    soon as a member has applied its first part): started again, the room is half restored, and the
    server's history pass finishes it; the undo checkpoint still takes it back."""
    settings = tmp_path / "serve.toml"
    settings.write_text(f"[server]\nmax_frame_size = {FRAME}\ncheckpoint_interval = 8.0\n")
    process = ServerProcess(tmp_path / "data", extra=["--config", str(settings)])
    host, port = process.start()
    try:
        async with connect(host, port, name="ana") as ana, connect(host, port, name="ben") as ben:
            await ana.create_room("shot", keep_open=True)
            await ana.join("shot")
            await ben.join("shot")
            names = [f"obj/{n:03d}" for n in range(480)]
            original = await _fill(ana, names)
            made = await hc.checkpoint(ana, "big")
            edited = {**original, **await _fill(ben, names)}  # every value changes: ~240 parts to undo
            await wait_for(lambda: dict(ana.state) == edited)

            async def restore() -> None:
                with pytest.raises(ConnectionLost):  # the server dies under it
                    await hc.restore(ana, checkpoint=made["id"])

            async with trio.open_nursery() as nursery:
                nursery.start_soon(restore)
                await wait_for(lambda: ben.state.get(names[0]) == original[names[0]], interval=0.001)
                assert process.proc is not None
                os.kill(process.proc.pid, signal.SIGSTOP)  # nothing more commits
                process.kill()
        host, port = process.start()
        async with connect(host, port, name="ana") as ana, connect(host, port, name="ben") as ben:
            await ana.join("shot")
            assert dict(ana.state) not in (original, edited)  # half restored: the pass has not run yet
            await ben.join("shot")
            await wait_for(lambda: dict(ben.state) == original, timeout=30)
            undo = [c for c in await hc.checkpoints(ben) if c["name"].startswith("before restore")]
            seq, _ = await hc.restore(ben, checkpoint=undo[0]["id"])
            await wait_for(lambda: ana.seq == seq)
            assert dict(ana.state) == edited
    finally:
        process.kill()


async def test_a_key_locked_between_two_parts_leaves_the_restore_to_the_server_until_the_lock_goes(
    tmp_path: Path,
):
    """Ben locks a key the restore has still to change while its second part is on its way: the restore
    answers ``locked``, and the server's history pass finishes it, not before the lock is released."""
    async with edited_shot(tmp_path) as shot:
        broadcaster, ana, ben = shot.broadcaster, shot.ana, shot.ben
        original, made, edited = shot.original, shot.made, shot.edited
        store = broadcaster.store
        propose = store.propose
        parts: list[dict] = []

        async def between(command: dict) -> dict:
            if _writes_path(command, "log") and "restoring" in str(command["then"]):
                parts.append(command)
                if len(parts) == 2:
                    await ben.lock(["obj/149"])  # the last key the edit changed: a late part's
            return await propose(command)

        store.propose = between
        with pytest.raises(ServerError) as info:
            await hc.restore(ana, checkpoint=made["id"])
        store.propose = propose
        assert info.value.code == "locked"
        marker = store.node.read_local(history.restoring_path("shot"))
        assert marker is not None and marker[1]["builder"] is None  # handed to the server
        await _maintained(broadcaster, shot.config)
        assert store.node.read_local(history.restoring_path("shot")) is not None  # the lock holds it
        assert ben.state["obj/149"] == edited["obj/149"]
        await ben.unlock(["obj/149"])
        await _maintained(broadcaster, shot.config)
        await wait_for(lambda: ana.seq == ben.seq == store.last_log_seq("shot"))
        assert dict(ana.state) == dict(ben.state) == original
        _no_leftovers(broadcaster)


@pytest.mark.parametrize("restarted", [False, True])
async def test_an_import_left_part_way_by_a_server_that_stopped_is_removed(tmp_path: Path, restarted: bool):
    """An import in parts is hidden until its last part and removed when its connection ends; a server
    killed in between ends no connection. Its hidden room names the process and the time of its last part:
    the history pass leaves it while that process may still be importing, and removes it once the node
    runs another process (``restarted``) or the last part is ``PARTIAL_SECONDS`` old, so the name is
    free again."""
    config = _config(tmp_path)
    async with open_broadcaster(config) as broadcaster:
        host, port = broadcaster.listen_addresses[0].rsplit(":", 1)
        async with connect(host, int(port), name="root") as root:
            await root.admin("import", room="half", meta={}, seq=0, items=[["a", b"1"]], more=True)
            store = broadcaster.store
            await _maintained(broadcaster, config)
            assert store.find_meta("half") is not None  # its importer is at work
            if restarted:
                broadcaster.history.boot = "the process started since"
            await _maintained(
                broadcaster, config, later=0 if restarted else history_parts.PARTIAL_SECONDS + 1
            )
            assert store.find_meta("half") is None
            with pytest.raises(ServerError) as info:  # the import it was is over
                await root.admin("import", room="half", items=[["b", b"2"]], more=False)
            assert info.value.code == "bad_message"
            await root.admin("import", room="half", meta={}, seq=0, items=[["z", b"1"]])
            assert store.key_count("half") == 1


async def test_keys_at_the_largest_value_a_frame_carries_each_go_in_a_part_of_their_own(tmp_path: Path):
    """Each value costs a part more than its budget alone (half a frame): every key is a part, and the
    checkpoint, the restore (whose parts reach every member in frames of their own) and the fork still
    bring the room back whole."""
    config = _config(tmp_path)
    async with open_broadcaster(config) as broadcaster:
        host, port = broadcaster.listen_addresses[0].rsplit(":", 1)
        async with connect(host, int(port), name="ana") as ana, connect(host, int(port), name="ben") as ben:
            await ana.create_room("shot", keep_open=True)
            await ana.join("shot")
            await ben.join("shot")
            largest = FRAME - 1024  # a set of one value of this size fits one frame
            original = {f"big/{n:02d}": os.urandom(largest) for n in range(24)}
            for key, value in original.items():
                await ana.set(key, value)
            assert sum(map(len, original.values())) > max_entry_bytes(FRAME)
            made = await hc.checkpoint(ana, "big")
            for key in original:
                await ben.set(key, os.urandom(largest))
            before = broadcaster.store.last_log_seq("shot")
            seq, _ = await hc.restore(ana, checkpoint=made["id"])
            await wait_for(lambda: ben.seq == seq)
            assert dict(ana.state) == dict(ben.state) == original
            assert len(_restore_entries(broadcaster, before)) == len(original)  # one key a part
            await hc.fork(ana, "copy", checkpoint=made["id"])
            await ben.leave()
            await ben.join("copy")
            assert dict(ben.state) == original
            _no_leftovers(broadcaster)
