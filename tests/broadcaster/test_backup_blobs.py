"""A backup carries the bytes of every blob its state names: checked, restored and served again."""

from __future__ import annotations

import os
from pathlib import Path

import lmdb
import pytest
import trio
from support import ServerProcess, blendsync_cli

from broadcaster.client import connect
from replication import BackupError, check_store


async def _cli(*args: str):
    return await trio.to_thread.run_sync(lambda: blendsync_cli(*args))


async def test_a_backup_restores_the_blobs_its_keys_reference(tmp_path: Path):
    source = ServerProcess(tmp_path / "source")
    host, port = source.start()
    contents = [os.urandom(65_536 + i) for i in range(3)]
    try:
        async with connect(host, port, name="writer") as writer:
            await writer.create_room("shot", keep_open=True)
            await writer.join("shot")
            blobs = [await writer.put_blob(content) for content in contents]
            await writer.batch([["set", "mesh", b"".join(blobs), blobs]])
            done = await _cli("admin", "--port", str(port), "--json", "backup", str(tmp_path / "b"))
            assert done.returncode == 0, done.stderr
    finally:
        source.kill()
    checked = await _cli("restore", str(tmp_path / "b"), "--check")
    assert checked.returncode == 0, checked.stderr
    restored = await _cli("restore", str(tmp_path / "b"), "--data-dir", str(tmp_path / "fresh"))
    assert restored.returncode == 0, restored.stderr
    target = ServerProcess(tmp_path / "fresh")
    host, port = target.start()
    try:
        async with connect(host, port, name="reader") as reader:
            await reader.join("shot")
            assert reader.state["mesh"] == b"".join(blobs)
            for blob, content in zip(blobs, contents, strict=True):
                assert await reader.get_blob(blob) == content
            assert await reader.missing_blobs(blobs) == []
    finally:
        target.kill()

    # A store that lost a blob's bytes is refused (the manifest's SHA-256 would refuse this copy first).
    env = lmdb.open(str(tmp_path / "b"), max_dbs=8, subdir=True)
    try:
        with env.begin(write=True, db=env.open_db(b"blobs", create=False)) as txn:
            assert txn.delete(blobs[1])
    finally:
        env.close()
    with pytest.raises(BackupError, match="named but not stored"):
        check_store(tmp_path / "b")
