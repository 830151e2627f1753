"""Blame of an imported room against a real in-process broadcaster: every imported key has its author
record (the importing admin, at the import's seq and time), written in the same transaction as the key,
so blame names every key from the records alone and never reads the (empty) log."""

from __future__ import annotations

import time

import pytest
from support import artists_in_a_room

from broadcaster import history
from broadcaster import history_client as hc
from broadcaster.app import open_broadcaster
from broadcaster.client import ServerError, connect
from broadcaster.config import ServerConfig
from broadcaster.roomfile import (
    VERSION,
    RoomFileError,
    check_document,
    make_document,
    read_room_file,
    write_room_file,
)
from broadcaster.roomstore import authors_path, keys_path
from broadcaster.roomtransfer import export_room, import_room


def counts(node, room: str) -> tuple[int, int]:
    """(live keys, author records) of the room in this node's copy."""
    keys, authors = node.read_local(keys_path(room)), node.read_local(authors_path(room))
    return (keys[0].child_count if keys else 0), (authors[0].child_count if authors else 0)


def refuse_log(*args, **kwargs):
    raise AssertionError("blame fell back to scanning the log")


@pytest.fixture
def no_log_fallback(monkeypatch):
    """Blame must not look keys up in the log: the records are complete."""
    monkeypatch.setattr(history, "_blame_from_log", refuse_log)


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


async def test_an_export_import_round_trip_keeps_every_keys_author(tmp_path, monkeypatch):
    """The file carries who last changed each key, as blame names it (a key without a record from the
    source's retained log), and the imported room's records name the same authors, seqs and times."""
    source = ServerConfig(host="127.0.0.1", port=0, data_dir=tmp_path / "a")
    target = ServerConfig(host="127.0.0.1", port=0, data_dir=tmp_path / "b")
    async with open_broadcaster(source) as server, open_broadcaster(target) as other:
        host, port = server.listen_addresses[0].rsplit(":", 1)
        address = (host, int(port))
        async with artists_in_a_room(address, ("ana", "ben", "cy"), "shot") as (ana, ben, cy):
            await ana.batch([["set", f"obj/{i}/transform", b"a"] for i in range(5)])
            await ben.set("obj/1/transform", b"b")
            await cy.batch([["set", "obj/2/geometry", b"c"], ["set", "legacy", b"c"]])
            await ana.delete("obj/4/transform")
            # A key written before records existed: blame finds it in the log, and so does the export.
            done = await server.store.propose(
                {"then": [{"op": "delete", "path": [*authors_path("shot"), "legacy"]}]}
            )
            assert done["results"][0]["deleted"]
            expected, _ = await hc.blame(ana, "")
            assert {r[3] for r in expected} == {"ana", "ben", "cy"} and len(expected) == 6
            document = await export_room(ana, "shot")
        assert document["version"] == VERSION == 4
        assert document["authors"] == expected
        write_room_file(tmp_path / "shot.blendsync", document)
        loaded = read_room_file(tmp_path / "shot.blendsync")
        assert loaded["authors"] == expected

        monkeypatch.setattr(history, "_blame_from_log", refuse_log)
        host, port = other.listen_addresses[0].rsplit(":", 1)
        async with connect(host, int(port), name="root") as root:
            await import_room(root, loaded, name="copy", chunk_bytes=200)  # several parts
            assert counts(other.store.node, "copy") == (6, 6)
            await root.join("copy")
            assert (await hc.blame(root, ""))[0] == expected
            assert (await export_room(root, "copy"))["authors"] == expected  # and again from the copy
            # The room goes on from the exported seq: the next write is its author's, after them all.
            seq = await root.set("legacy", b"new")
            assert seq == document["seq"] + 1
            assert (await hc.blame(root, "legacy"))[0][0][:4] == ["legacy", seq, root.client_id, "root"]


async def test_authors_the_import_refuses(tmp_path):
    config = ServerConfig(host="127.0.0.1", port=0, data_dir=tmp_path / "data")
    async with open_broadcaster(config) as server:
        host, port = server.listen_addresses[0].rsplit(":", 1)
        async with connect(host, int(port), name="root") as root:
            row = ["a", 3, "s" * 16, "ana", 1]
            for authors in (
                [["b", 3, "s" * 16, "ana", 1]],  # not a key of the part
                [row, row],  # twice
                [["a", 6, "s" * 16, "ana", 1]],  # after the imported state
                [["a", 3, "short", "ana", 1]],  # not a session id
                [["a", -1, "s" * 16, "ana", 1]],
            ):
                with pytest.raises(ServerError) as info:
                    await root.admin("import", room="r", seq=5, items=[["a", b"1"]], authors=authors)
                assert info.value.code == "bad_message", authors
            assert server.store.find_meta("r") is None
            await root.admin("import", room="r", seq=5, items=[["a", b"1"]], authors=[row])
            await root.join("r")
            assert (await hc.blame(root, ""))[0] == [row]


def test_a_file_whose_authors_do_not_fit_its_items_is_refused():
    items = [["a", b"1"]]
    good = make_document("r", {}, 5, items, authors=[["a", 5, "s" * 16, "ana", 1]])
    check_document(good)
    for authors in (
        [["b", 1, "s" * 16, "ana", 1]],
        [["a", 6, "s" * 16, "ana", 1]],
        [["a", 1, "s" * 16, "ana"]],
    ):
        with pytest.raises(RoomFileError):
            check_document({**good, "authors": authors})
    check_document({**good, "version": 3, "authors": "ignored"})  # a version 3 file has none
