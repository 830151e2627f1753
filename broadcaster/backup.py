"""Online backups of the whole store (every room, history, tokens stay in their file): taken by the server
while it serves, streamed to ``blendsync admin backup DIR``, checked and restored by ``blendsync restore``.

A backup directory (docs/operations.md, "Backups"):
    data.mdb       lmdb's consistent, compacted copy of the node's store (replication.STORE_FILE)
    backup.json    {"format": "blendsync-backup", "version": 1, "created_at": ISO 8601 UTC,
                    "server_version", "node_id", "applied", "term", "bytes", "sha256", "state_hash"}
The manifest is written last: a directory without one is an unfinished backup.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from protocol import Admin, AdminResult, BackupData
from replication import STORE_FILE, BackupError, Node, check_store

from .rooms import encode_frame

FORMAT = "blendsync-backup"
VERSION = 1
MANIFEST = "backup.json"
CHUNK_BYTES = 1024 * 1024


class Backups:
    """The server's side: a copy of the store in a scratch directory under the data directory, streamed
    to the admin who asked and removed once sent (or at the next start, after a crash)."""

    def __init__(self, data_dir: Path, node: Node, server_version: str):
        self.scratch = data_dir / "backups"
        self.node = node
        self.server_version = server_version
        shutil.rmtree(self.scratch, ignore_errors=True)  # left by a crash during a backup

    async def frames(self, ref: int | None) -> Iterator[bytes]:
        """Take the copy (the server goes on serving meanwhile), then its frames: ``backup_data`` chunks
        and the ``admin_result`` with the manifest."""
        directory = self.scratch / secrets.token_hex(8)
        try:
            point = await self.node.backup(directory)
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "created_at": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "server_version": self.server_version,
            "node_id": self.node.node_id,
            "applied": point.index,
            "term": point.term,
        }
        return _stream(directory, manifest, ref)


def _stream(directory: Path, manifest: dict[str, Any], ref: int | None) -> Iterator[bytes]:
    digest = hashlib.sha256()
    size = 0
    try:
        with open(directory / STORE_FILE, "rb") as f:
            while chunk := f.read(CHUNK_BYTES):
                digest.update(chunk)
                size += len(chunk)
                yield encode_frame(BackupData(data=chunk, ref=ref))
        result = {**manifest, "bytes": size, "sha256": digest.hexdigest()}
        yield encode_frame(AdminResult(action="backup", result=result, ref=ref))
    finally:
        shutil.rmtree(directory, ignore_errors=True)


# ---- the admin's side ------------------------------------------------------------------------------------


async def download(client: Any, directory: Path) -> dict[str, Any]:
    """Ask the server connected as ``client`` for a backup and write it to ``directory`` (new or empty),
    checked: the bytes against the server's SHA-256, the store by replaying it."""
    directory.mkdir(parents=True, exist_ok=True)
    if any(directory.iterdir()):
        raise BackupError(f"{directory} is not empty")
    partial = directory / (STORE_FILE + ".partial")
    ref, request = client.session.request(lambda ref: Admin(action="backup", args={}, ref=ref))
    with open(partial, "wb") as f:
        client.sinks[ref] = f.write
        try:
            reply: AdminResult = await client._request(ref, request)
        finally:
            client.sinks.pop(ref, None)
        f.flush()
        os.fsync(f.fileno())
    os.replace(partial, directory / STORE_FILE)
    manifest = check(directory, reply.result)  # adds the state_hash the replay reaches
    _write_json(directory / MANIFEST, manifest)
    return {**manifest, "directory": str(directory)}


def read_manifest(directory: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BackupError(
            f"{directory} has no {MANIFEST}: not a backup, or one that did not finish"
        ) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BackupError(f"{directory / MANIFEST} is not a backup manifest: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"{directory / MANIFEST} is not a {FORMAT} manifest")
    if manifest.get("version") != VERSION:
        raise BackupError(f"{directory} is backup version {manifest.get('version')!r}; this reads {VERSION}")
    return manifest


def check(directory: Path, manifest: dict[str, Any] | None = None) -> dict[str, Any]:
    """Verify a backup: its file's size and SHA-256 as recorded, and a replay of the store reaching the
    recorded index (and state, once recorded). Returns the manifest with the state's hash; raises
    BackupError saying what is wrong."""
    manifest = manifest if manifest is not None else read_manifest(directory)
    digest = hashlib.sha256()
    size = 0
    try:
        with open(directory / STORE_FILE, "rb") as f:
            while chunk := f.read(CHUNK_BYTES):
                digest.update(chunk)
                size += len(chunk)
    except FileNotFoundError:
        raise BackupError(f"{directory} has no {STORE_FILE}") from None
    if (size, digest.hexdigest()) != (manifest.get("bytes"), manifest.get("sha256")):
        raise BackupError(
            f"{directory / STORE_FILE} is not the file the server sent (size or SHA-256 differ)"
        )
    summary = check_store(directory)
    if summary.applied != manifest.get("applied"):
        raise BackupError(
            f"{directory}: the store replays to index {summary.applied}, not {manifest.get('applied')}"
        )
    if manifest.get("state_hash", summary.state_hash) != summary.state_hash:
        raise BackupError(f"{directory}: the store replays to another state than when it was taken")
    return {**manifest, "state_hash": summary.state_hash}


def _write_json(path: Path, document: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(document, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
