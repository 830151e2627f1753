"""Replay builds a room's map once per replay, not once per page: the replay module against a real store
(an in-process broadcaster on lmdb, written to by a real client), counting how often the map at a seq is
reconstructed from its checkpoint and log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from broadcaster import history, replay
from broadcaster.app import open_broadcaster
from broadcaster.client import connect
from broadcaster.config import ServerConfig

PAGE = 1024  # bytes per page: the maps below come in dozens of pages


@pytest.fixture
def rebuilds(monkeypatch) -> list[int]:
    """The seqs ``history.state_at`` rebuilt a map at (it still does the work)."""
    seen: list[int] = []
    real = history.state_at

    def counting(node: Any, room: str, seq: int, *rest: Any) -> Any:
        seen.append(seq)
        return real(node, room, seq, *rest)

    monkeypatch.setattr(history, "state_at", counting)
    return seen


def read_all(node: Any, meta: dict[str, Any], room: str, seq: int, cache: replay.ReplayCache) -> tuple:
    """Every page of the map at ``seq``, as a member's client asks for them: (map, pages)."""
    items: dict[str, bytes] = {}
    after, pages = None, 0
    while True:
        page = replay.replay_page(node, room, meta.get("seq_base", 0), meta, seq, after, PAGE, None, cache)
        pages += 1
        items.update((key, value) for key, value in page.items)
        if not page.more:
            return items, pages
        after = page.items[-1][0]


async def _write_room(client: Any, room: str, tag: bytes) -> dict[int, dict[str, bytes]]:
    """A room whose map at each of its seqs is recorded: 3 batches of 200 keys of ~100 B."""
    await client.create_room(room, keep_open=True)
    await client.join(room)
    seen = {}
    for batch in range(3):
        keys = range(batch * 50, 200 + batch * 50)
        ops = [["set", f"obj/{i:03}", tag + bytes([batch]) * 100] for i in keys]
        seq = await client.batch(ops)
        seen[seq] = dict(client.state)
    return seen


async def test_a_replay_builds_the_map_once_for_all_its_pages(tmp_path: Path, rebuilds: list[int]) -> None:
    config = ServerConfig(host="127.0.0.1", port=0, data_dir=tmp_path / "data")
    async with open_broadcaster(config) as server:
        host, port = server.listen_addresses[0].rsplit(":", 1)
        async with connect(host, int(port), name="ana") as ana:
            seen = await _write_room(ana, "shot", b"a")
        node, meta = server.store.node, server.store.meta("shot")
        cache = replay.ReplayCache()
        for seq, wanted in seen.items():
            before = len(rebuilds)
            items, pages = read_all(node, meta, "shot", seq, cache)
            assert items == wanted and pages > 10
            assert rebuilds[before:] == [seq]  # one build for all the pages
        # A new replay re-checks the seq and rebuilds once; a page whose map went is rebuilt, the same.
        first = min(seen)
        items, _ = read_all(node, meta, "shot", first, cache)
        assert items == seen[first] and rebuilds[-1] == first
        small = replay.ReplayCache(max_maps=1)
        page = replay.replay_page(node, "shot", 0, meta, first, None, PAGE, None, small)
        read_all(node, meta, "shot", max(seen), small)  # evicts the map at ``first``
        before = len(rebuilds)
        rest = replay.replay_page(node, "shot", 0, meta, first, page.items[-1][0], PAGE, None, small)
        assert rebuilds[before:] == [first]
        assert rest.items[0][0] > page.items[-1][0] and dict(rest.items).items() <= seen[first].items()


async def test_a_room_made_again_under_its_name_is_not_served_the_old_map(tmp_path: Path) -> None:
    config = ServerConfig(host="127.0.0.1", port=0, data_dir=tmp_path / "data")
    async with open_broadcaster(config) as server:
        host, port = server.listen_addresses[0].rsplit(":", 1)
        node, cache = server.store.node, replay.ReplayCache()
        async with connect(host, int(port), name="ana") as ana:
            old = await _write_room(ana, "shot", b"old")
            seq = max(old)
            meta = server.store.meta("shot")
            page = replay.replay_page(node, "shot", 0, meta, seq, None, PAGE, None, cache)
            await ana.leave()
            await ana.delete_room("shot")
            new = await _write_room(ana, "shot", b"new")
        assert max(new) == seq
        meta = server.store.meta("shot")
        # The next page of the replay started before: the same key range, the new room's values.
        rest = replay.replay_page(node, "shot", 0, meta, seq, page.items[-1][0], PAGE, None, cache)
        assert rest.items and all(new[seq][key] == value for key, value in rest.items)
        assert all(value.startswith(b"new") for _, value in rest.items)
