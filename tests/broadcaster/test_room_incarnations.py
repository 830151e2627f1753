"""A room deleted and created again under its name while a command built from the first one waits to commit,
with the interleaving forced: the command is refused, never applied to the new room, whose history version,
checkpoint ids and log seqs start again and would match its conditions otherwise."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from support import wait_for

from broadcaster import history
from broadcaster import history_client as hc
from broadcaster.app import open_broadcaster
from broadcaster.checkpoints import HistoryMaintenance
from broadcaster.client import ServerError, connect
from broadcaster.config import ServerConfig
from broadcaster.roomstore import log_path, meta_path


@asynccontextmanager
async def _room(tmp_path: Path, *, keep_open: bool = True, **settings: Any) -> AsyncIterator[Any]:
    """A broadcaster with room "shot" made and joined by ana; cy, connected, is in no room."""
    config = ServerConfig(
        host="127.0.0.1", port=0, data_dir=tmp_path / "data", checkpoint_interval=0, **settings
    )
    async with open_broadcaster(config) as broadcaster:
        host, port = broadcaster.listen_addresses[0].rsplit(":", 1)
        async with connect(host, int(port), name="ana") as ana, connect(host, int(port), name="cy") as cy:
            await ana.create_room("shot", keep_open=keep_open)
            await ana.join("shot")
            yield broadcaster, config, ana, cy


class Forced:
    """Runs ``between()`` after the first command ``picks`` chooses was built and before it is proposed.
    ``picked`` holds every command it chose, ``outcome`` the first one's result; ``propose`` is unhooked."""

    def __init__(self, broadcaster: Any, picks: Callable[[dict], bool], between: Callable[[], Awaitable]):
        store = broadcaster.store
        self.propose = store.propose
        self.picked: list[dict] = []
        self.outcome: dict | None = None

        async def propose(command: dict) -> dict:
            first = picks(command) and not self.picked
            if picks(command):
                self.picked.append(command)
            if first:
                await between()
            result = await self.propose(command)
            if first:
                self.outcome = result
            return result

        store.propose = propose


async def _replace(cy: Any, *, write: bool = True) -> None:
    """The admin deletes "shot" (ana in it or not) and cy creates it again, joins and (``write``) sets k."""
    await cy.admin("delete_room", room="shot")
    await cy.create_room("shot", keep_open=True)
    await cy.join("shot")
    if write:
        await cy.set("k", b"new room")


def _appends_to(command: dict, part: str) -> bool:
    return any(op["op"] == "append" and op["path"][2:3] == [part] for op in command["then"])


def _is_checkpoint(command: dict) -> bool:
    return _appends_to(command, "checkpoints") and not _appends_to(command, "log")


def _is_restore(command: dict) -> bool:
    return _appends_to(command, "checkpoints") and _appends_to(command, "log")


def _deletes(command: dict, part: str) -> bool:
    return any(op["op"] == "delete" and op["path"][2:3] == [part] for op in command["then"])


def _is_room_deletion(command: dict) -> bool:
    return any(op["op"] == "delete" and len(op["path"]) == 2 for op in command.get("then", []))


def _is_retention(command: dict) -> bool:
    then = command["then"]
    return len(then) == 1 and then[0]["op"] == "cas" and then[0]["path"][2:] == ["history"]


def _is_fork(command: dict) -> bool:
    return any(
        op["op"] == "put" and isinstance(op.get("payload"), dict) and op["payload"].get("seeded")
        for op in command["then"][:1]
    )


def _room_state(broadcaster: Any) -> dict[str, bytes]:
    return dict(broadcaster.store.items("shot"))


# ---- named checkpoints, restore, fork, deletion and retention requests ------------------------------------


async def test_a_checkpoint_built_in_a_room_replaced_before_it_commits_is_refused(tmp_path: Path):
    async with _room(tmp_path) as (broadcaster, _, ana, cy):
        await ana.set("k", b"old room")
        forced = Forced(broadcaster, _is_checkpoint, lambda: _replace(cy))
        with pytest.raises(ServerError) as info:
            await hc.checkpoint(ana, "one")
        assert info.value.code == "no_such_room"
        assert len(forced.picked) == 1  # refused, then not rebuilt from the new room
        assert await hc.checkpoints(cy) == []
        assert (await forced.propose(forced.picked[0]))["succeeded"] is False
        # The new room's own checkpoints and restores work as ever.
        made = await hc.checkpoint(cy, "theirs")
        assert (made["seq"], made["keys"]) == (1, 1)
        await cy.set("k", b"later")
        await hc.restore(cy, checkpoint=made["id"])
        assert dict(cy.state) == _room_state(broadcaster) == {"k": b"new room"}


async def test_a_restore_built_in_a_room_replaced_before_it_commits_is_refused(tmp_path: Path):
    async def between() -> None:
        await _replace(cy)
        await hc.checkpoint(cy, "theirs")  # the new room's history version is the old one's again

    async with _room(tmp_path) as (broadcaster, _, ana, cy):
        await ana.set("k", b"1")
        one = await hc.checkpoint(ana, "one")
        await ana.set("k", b"2")
        forced = Forced(broadcaster, _is_restore, between)
        with pytest.raises(ServerError) as info:
            await hc.restore(ana, checkpoint=one["id"])
        assert info.value.code == "no_such_room"
        assert len(forced.picked) == 1
        assert dict(cy.state) == _room_state(broadcaster) == {"k": b"new room"}
        assert [c["name"] for c in await hc.checkpoints(cy)] == ["theirs"]
        assert (await forced.propose(forced.picked[0]))["succeeded"] is False
        await cy.set("k", b"later")
        await hc.restore(cy, checkpoint=1)
        assert dict(cy.state) == {"k": b"new room"}


async def test_a_fork_of_a_room_replaced_before_it_commits_is_refused(tmp_path: Path):
    async with _room(tmp_path) as (broadcaster, _, ana, cy):
        at = await ana.set("k", b"old room")
        forced = Forced(broadcaster, _is_fork, lambda: _replace(cy))
        with pytest.raises(ServerError) as info:
            await hc.fork(ana, "shot-copy", seq=at)
        assert info.value.code == "no_such_room"
        assert "shot-copy" not in [r["name"] for r in await cy.list_rooms()]
        assert (await forced.propose(forced.picked[0]))["succeeded"] is False
        # A fork of the new room works.
        assert await hc.fork(cy, "shot-copy", seq=1) == 1
        assert dict(broadcaster.store.items("shot-copy")) == {"k": b"new room"}


async def test_a_checkpoint_deletion_built_in_a_room_replaced_before_it_commits_is_refused(tmp_path: Path):
    async def between() -> None:
        await _replace(cy)
        await hc.checkpoint(cy, "theirs")  # id 1 again, at the same history version

    async with _room(tmp_path) as (broadcaster, _, ana, cy):
        one = await hc.checkpoint(ana, "one")
        forced = Forced(broadcaster, lambda c: _deletes(c, "checkpoints"), between)
        with pytest.raises(ServerError) as info:
            await hc.delete_checkpoint(ana, one["id"])
        assert info.value.code == "no_such_room"
        assert [(c["id"], c["name"]) for c in await hc.checkpoints(cy)] == [(1, "theirs")]
        assert (await forced.propose(forced.picked[0]))["succeeded"] is False
        await hc.delete_checkpoint(cy, 1)
        assert await hc.checkpoints(cy) == []


async def test_a_retention_change_built_in_a_room_replaced_before_it_commits_is_refused(tmp_path: Path):
    async with _room(tmp_path) as (broadcaster, _, ana, cy):
        forced = Forced(broadcaster, _is_retention, lambda: _replace(cy))
        with pytest.raises(ServerError) as info:
            await hc.set_retention(ana, ops=3)
        assert info.value.code == "no_such_room"
        assert history.history_version(broadcaster.store.node, "shot") == (0, {})
        assert (await forced.propose(forced.picked[0]))["succeeded"] is False
        await hc.set_retention(cy, ops=5)
        assert history.history_version(broadcaster.store.node, "shot")[1] == {"days": None, "ops": 5}


# ---- the room's deletion ----------------------------------------------------------------------------------


async def test_a_room_deletion_decided_before_the_room_was_replaced_leaves_the_new_room(tmp_path: Path):
    """ana may delete her room; by the time her delete commits, "shot" is cy's: it stays."""
    async with _room(tmp_path) as (broadcaster, _, ana, cy):
        await ana.leave()
        forced = Forced(broadcaster, _is_room_deletion, lambda: _replace(cy))
        with pytest.raises(ServerError) as info:
            await ana.delete_room("shot")
        assert info.value.code == "no_such_room"
        assert broadcaster.store.find_meta("shot")["created_by"] == "cy"
        assert _room_state(broadcaster) == dict(cy.state) == {"k": b"new room"}
        assert (await forced.propose(forced.picked[0]))["succeeded"] is False


async def test_the_last_member_leaving_does_not_delete_a_room_created_again_under_its_name(tmp_path: Path):
    async with _room(tmp_path, keep_open=False) as (broadcaster, _, ana, cy):
        forced = Forced(broadcaster, _is_room_deletion, lambda: _replace(cy))
        await ana.leave()  # the room is not kept open: the server deletes it once she is out
        await wait_for(lambda: forced.outcome is not None)
        assert forced.outcome["succeeded"] is False
        assert broadcaster.store.find_meta("shot")["created_by"] == "cy"
        assert _room_state(broadcaster) == dict(cy.state) == {"k": b"new room"}


# ---- locks ----------------------------------------------------------------------------------------------


def _is_lock(command: dict) -> bool:
    then = command.get("then", [])
    return bool(then) and all(op["op"] == "put" and op["path"][2:3] == ["locks"] for op in then)


async def test_a_lock_asked_for_in_a_room_replaced_before_it_commits_is_refused(tmp_path: Path):
    """Held in the new room by a session that is not in it, the lock would never be released."""
    async with _room(tmp_path) as (broadcaster, _, ana, cy):
        forced = Forced(broadcaster, _is_lock, lambda: _replace(cy, write=False))
        with pytest.raises(ServerError) as info:
            await ana.lock(["k"])
        assert info.value.code == "no_such_room"
        assert broadcaster.store.locks("shot") == []
        assert await cy.set("k", b"mine") == 1
        assert (await forced.propose(forced.picked[0]))["succeeded"] is False
        assert await cy.lock(["k"]) == ["k"]


# ---- the leader's passes: automatic checkpoints, their deletion, compaction -------------------------------


async def test_an_automatic_checkpoint_of_a_replaced_room_is_refused_and_the_next_pass_reads_the_new_one(
    tmp_path: Path,
):
    async with _room(tmp_path) as (broadcaster, config, ana, cy):
        await ana.set("k", b"old room")
        forced = Forced(broadcaster, _is_checkpoint, lambda: _replace(cy))
        maintenance = HistoryMaintenance(replace(config, checkpoint_interval=1.0), broadcaster.history)
        await maintenance.run_once(time.time() + 2)
        assert len(forced.picked) == 1 and forced.outcome["succeeded"] is False
        assert await hc.checkpoints(cy) == []
        await maintenance.run_once(time.time() + 2)
        made = await hc.checkpoints(cy)
        assert [(c["name"], c["seq"], c["auto"]) for c in made] == [("automatic", 1, True)]
        payload = history.read_checkpoint(broadcaster.store.node, "shot", made[0]["id"])
        assert history.checkpoint_items(broadcaster.store.node, "shot", payload)[0] == {"k": b"new room"}


async def test_a_deletion_of_old_automatic_checkpoints_in_a_replaced_room_is_refused(tmp_path: Path):
    async def between() -> None:
        await _replace(cy)
        for name in ("first", "second"):  # ids 1 and 2 again, at the same history version
            await hc.checkpoint(cy, name)

    async with _room(tmp_path) as (broadcaster, config, ana, cy):
        auto = replace(config, checkpoint_interval=1.0, auto_checkpoints_kept=1)
        maintenance = HistoryMaintenance(auto, broadcaster.history)
        await ana.set("k", b"1")
        await maintenance.run_once(time.time() + 2)
        await ana.set("k", b"2")
        forced = Forced(broadcaster, lambda c: _deletes(c, "checkpoints"), between)
        await maintenance.run_once(time.time() + 2)  # a second automatic one: the first is to go
        assert len(forced.picked) == 1 and forced.outcome["succeeded"] is False
        assert [c["name"] for c in await hc.checkpoints(cy)] == ["first", "second"]


async def test_compaction_read_from_a_replaced_room_drops_nothing_of_the_new_one(tmp_path: Path):
    async with _room(tmp_path, history_days=1) as (broadcaster, config, ana, cy):
        await ana.set("k", b"old room")
        forced = Forced(broadcaster, lambda c: _deletes(c, "log"), lambda: _replace(cy))
        await HistoryMaintenance(config, broadcaster.history).run_once(time.time() + 2 * 86400)
        assert len(forced.picked) == 1 and forced.outcome["succeeded"] is False
        entries = broadcaster.store.log_entries("shot")
        assert [(n, e["ops"]) for n, e in entries] == [(1, [["set", "k", b"new room"]])]
        # The next pass drops the new room's entry once it is past the age limit.
        await HistoryMaintenance(config, broadcaster.history).run_once(time.time() + 2 * 86400)
        assert broadcaster.store.log_entries("shot") == []


# ---- rooms created before incarnations --------------------------------------------------------------------


async def test_a_room_whose_meta_has_no_incarnation_keeps_its_history_and_is_told_apart(tmp_path: Path):
    """A room created before metas held an incarnation: its history works, and a checkpoint built from it
    is refused once a room created again under its name (with an incarnation) took its place."""
    async with _room(tmp_path) as (broadcaster, _, ana, cy):
        await ana.leave()
        await cy.admin("delete_room", room="shot")
        legacy = {"keep_open": True, "password": None, "created_by": "ana"}
        put = {"op": "put", "path": list(meta_path("shot")), "payload": legacy}
        assert (await broadcaster.store.propose({"then": [put]}))["succeeded"]
        await ana.join("shot")
        await ana.set("k", b"1")
        one = await hc.checkpoint(ana, "one")
        await ana.set("k", b"2")
        await hc.restore(ana, checkpoint=one["id"])
        assert dict(ana.state) == {"k": b"1"}
        assert await hc.fork(ana, "shot-copy", checkpoint=one["id"]) == 1
        await hc.set_retention(ana, ops=10)
        await hc.delete_checkpoint(ana, one["id"])
        assert broadcaster.store.find_meta("shot") == legacy
        forced = Forced(broadcaster, _is_checkpoint, lambda: _replace(cy))
        with pytest.raises(ServerError) as info:
            await hc.checkpoint(ana, "two")
        assert info.value.code == "no_such_room"
        assert await hc.checkpoints(cy) == []
        assert broadcaster.store.node.read_local(log_path("shot"))[0].next_seq == 2
        assert len(forced.picked) == 1


async def test_a_write_built_for_a_room_replaced_before_it_commits_is_refused(tmp_path: Path):
    # In a cluster, a node that has not yet applied a room's deletion can build a write for it that
    # commits after the room was made again under its name; here the command ana's write was built as is
    # proposed again once the room was replaced: it requires the meta that room was made with.
    async with _room(tmp_path) as (broadcaster, _config, ana, cy):
        store = broadcaster.store
        built: list[dict] = []
        submit = store.submit

        def capture(command: dict, **kwargs: Any) -> Any:
            built.append(command)
            return submit(command, **kwargs)

        store.submit = capture
        await ana.set("k", b"old room")
        store.submit = submit
        [command] = built
        await _replace(cy)
        result = await store.propose(command)
        assert result["ok"] and not result["succeeded"], result
        assert _room_state(broadcaster) == {"k": b"new room"}
        await cy.set("k2", b"still written")  # the new room's own writes pass
        assert _room_state(broadcaster) == {"k": b"new room", "k2": b"still written"}
