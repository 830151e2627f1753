"""Blame of an imported room against a real in-process broadcaster: every imported key has its author
record (the importing admin, at the import's seq and time), written in the same transaction as the key,
so blame names every key from the records alone and never reads the (empty) log."""

from __future__ import annotations

import time

import pytest

from broadcaster import history
from broadcaster import history_client as hc
from broadcaster.app import open_broadcaster
from broadcaster.client import connect
from broadcaster.config import ServerConfig
from broadcaster.roomfile import make_document
from broadcaster.roomstore import authors_path, keys_path
from broadcaster.roomtransfer import import_room


def counts(node, room: str) -> tuple[int, int]:
    """(live keys, author records) of the room in this node's copy."""
    keys, authors = node.read_local(keys_path(room)), node.read_local(authors_path(room))
    return (keys[0].child_count if keys else 0), (authors[0].child_count if authors else 0)


@pytest.fixture
def no_log_fallback(monkeypatch):
    """Blame must not look keys up in the log: the records are complete."""

    def refuse(*args, **kwargs):
        raise AssertionError("blame fell back to scanning the log")

    monkeypatch.setattr(history, "_blame_from_log", refuse)


async def test_every_key_of_an_imported_room_is_blamed_on_the_importing_admin(tmp_path, no_log_fallback):
    config = ServerConfig(host="127.0.0.1", port=0, data_dir=tmp_path / "data")
    items = [[f"obj/{i:03d}/mesh", bytes([i]) * 40] for i in range(60)]
    document = make_document("shot", {"keep_open": True, "password": None, "created_by": "ana"}, 41, items)
    async with open_broadcaster(config) as server:
        host, port = server.listen_addresses[0].rsplit(":", 1)
        node = server.store.node
        async with connect(host, int(port), name="root") as root:
            before = int(time.time())
            result = await import_room(root, document, chunk_bytes=600)  # several parts
            after = int(time.time())
            assert result["keys"] == 60
            assert counts(node, "shot") == (60, 60)
            records = {key: payload for key, _, payload in node.list_local(authors_path("shot"))}
            assert sorted(records) == [key for key, _ in items]
            times = {payload[3] for payload in records.values()}
            assert len(times) == 1 and before <= times.pop() <= after  # one time: the import's
            assert {tuple(payload[:3]) for payload in records.values()} == {(0, root.client_id, "root")}
            await root.join("shot")
            rows, truncated = await hc.blame(root, "")
            assert not truncated
            assert [r[:4] for r in rows] == [[key, 41, root.client_id, "root"] for key, _ in items]
            # A later write takes its key over; the others keep the import's record.
            seq = await root.set("obj/000/mesh", b"new")
            assert seq == 42 and counts(node, "shot") == (60, 60)
            assert (await hc.blame(root, "obj/000/"))[0][0][1] == 42


async def test_each_part_of_an_unfinished_import_records_its_keys_authors(tmp_path):
    """A part commits its keys and their records together: an import cut short between parts (removed
    when its session ends) never leaves a key without a record."""
    config = ServerConfig(host="127.0.0.1", port=0, data_dir=tmp_path / "data")
    async with open_broadcaster(config) as server:
        host, port = server.listen_addresses[0].rsplit(":", 1)
        node = server.store.node
        async with connect(host, int(port), name="root") as root:
            await root.admin(
                "import", room="big", meta={}, seq=5, items=[["a", b"1"], ["b", b"2"]], more=True
            )
            assert counts(node, "big") == (2, 2)
            await root.admin("import", room="big", items=[["c", b"3"]], more=False)
            assert counts(node, "big") == (3, 3)
            first = {key: payload for key, _, payload in node.list_local(authors_path("big"))}
            assert first["a"] == first["c"]  # the same author, seq and time in every part
