"""Online backups against real ``blendsync serve`` processes: taken while a client writes, checked, restored
into a fresh data directory and served again; a server killed during a backup loses nothing."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import trio
from support import ServerProcess, blendsync_cli

from broadcaster import backup
from broadcaster.client import ConnectionLost, connect
from replication import BackupError


async def _cli(*args: str):
    return await trio.to_thread.run_sync(lambda: blendsync_cli(*args))


async def test_a_backup_under_writes_restores_every_acknowledged_op(tmp_path: Path):
    source = ServerProcess(tmp_path / "source")
    host, port = source.start()
    seqs: dict[str, int] = {}  # key -> the seq its (only) write got
    try:
        async with connect(host, port, name="writer") as writer:
            await writer.create_room("shot", keep_open=True)
            await writer.join("shot")
            for i in range(20):  # some bulk, so the copy has pages to walk (random: the log deflates)
                seqs[f"bulk{i}"] = await writer.batch(
                    [["set", f"bulk{i}/{j}", os.urandom(1000)] for j in range(50)]
                )
            backup_done = trio.Event()
            acked_before: dict[str, int] = {}

            async def write_until_done() -> None:
                i = 0
                while not backup_done.is_set():
                    seqs[f"k{i}"] = await writer.set(f"k{i}", str(i).encode())
                    i += 1

            async with trio.open_nursery() as nursery:
                nursery.start_soon(write_until_done)
                while len(seqs) < 40:
                    await trio.sleep(0.01)
                acked_before.update(seqs)
                done = await _cli("admin", "--port", str(port), "--json", "backup", str(tmp_path / "b"))
                backup_done.set()
            assert done.returncode == 0, done.stderr
            after = await writer.set("after", b"x")
    finally:
        source.kill()
    manifest = json.loads(done.stdout)
    assert manifest["format"] == "blendsync-backup" and manifest["bytes"] > 1_000_000
    checked = await _cli("restore", str(tmp_path / "b"), "--check")
    assert checked.returncode == 0, checked.stderr
    restored = await _cli("restore", str(tmp_path / "b"), "--data-dir", str(tmp_path / "fresh"))
    assert restored.returncode == 0, restored.stderr
    again = await _cli("restore", str(tmp_path / "b"), "--data-dir", str(tmp_path / "fresh"))
    assert again.returncode == 1 and "fresh directory" in again.stderr
    target = ServerProcess(tmp_path / "fresh")
    host, port = target.start()
    try:
        async with connect(host, port, name="reader") as reader:
            joined = await reader.join("shot")
            state = dict(reader.state)
            # Exactly the source at the backup's seq: every op up to it, none after; every op acknowledged
            # before the backup was asked for is in it.
            wanted = {k: s for k, s in seqs.items() if s <= joined.seq}
            assert {k.split("/")[0] for k in state} == set(wanted)
            assert set(acked_before) <= set(wanted) and joined.seq < after
            assert all(state[k] == str(k[1:]).encode() for k in wanted if k.startswith("k"))
            assert await reader.set("new", b"1") == joined.seq + 1  # it serves, and its seqs go on
    finally:
        target.kill()


def _corrupt(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


async def test_a_check_refuses_damaged_or_unfinished_backups(tmp_path: Path):
    source = ServerProcess(tmp_path / "source")
    host, port = source.start()
    try:
        async with connect(host, port, name="admin") as admin:
            await admin.create_room("r", keep_open=True)
            manifest = await backup.download(admin, tmp_path / "b")
            with pytest.raises(BackupError, match="not empty"):
                await backup.download(admin, tmp_path / "b")
    finally:
        source.kill()
    assert backup.check(tmp_path / "b")["sha256"] == manifest["sha256"]
    _corrupt(tmp_path / "b" / "data.mdb")
    with pytest.raises(BackupError, match="SHA-256"):
        backup.check(tmp_path / "b")
    (tmp_path / "b" / "backup.json").unlink()
    done = await _cli("restore", str(tmp_path / "b"), "--check")
    assert done.returncode == 1 and "did not finish" in done.stderr
    done = await _cli("restore", str(tmp_path / "nothing"), "--check")
    assert done.returncode == 1


class _KillAtTheFirstChunk(dict):
    """Where a backup's chunks go: the first one kills the server (it dies while it streams)."""

    def __init__(self, server: ServerProcess):
        super().__init__()
        self.server = server

    def __setitem__(self, ref, sink) -> None:
        def first(chunk: bytes) -> None:
            self.server.kill(signal.SIGKILL)
            sink(chunk)

        super().__setitem__(ref, first)


async def test_kill_9_during_a_backup_loses_nothing_and_leaves_no_backup(tmp_path: Path):
    server = ServerProcess(tmp_path / "data")
    try:
        await _kill_during_a_backup(server, tmp_path)
    finally:
        server.kill()


async def _kill_during_a_backup(server: ServerProcess, tmp_path: Path) -> None:
    host, port = server.start()
    async with connect(host, port, name="writer") as writer:
        await writer.create_room("shot", keep_open=True)
        await writer.join("shot")
        # 16 MB, random (the log deflates): more than socket buffers hold, so the kill comes mid-stream.
        for i in range(80):
            await writer.batch([["set", f"k{i}/{j}", os.urandom(2000)] for j in range(100)])
        state = dict(writer.state)
    async with connect(host, port, name="admin") as admin:
        admin.sinks = _KillAtTheFirstChunk(server)
        with pytest.raises(ConnectionLost):
            await backup.download(admin, tmp_path / "b")
    with pytest.raises(BackupError, match="did not finish"):
        backup.check(tmp_path / "b")
    assert list((tmp_path / "data" / "backups").iterdir())  # the scratch copy the crash left
    host, port = server.start()
    assert not (tmp_path / "data" / "backups").exists()  # removed at the start
    async with connect(host, port, name="reader") as reader:
        await reader.join("shot")
        assert dict(reader.state) == state
