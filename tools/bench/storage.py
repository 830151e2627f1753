"""``python -m tools.bench storage``: what a real ``blendsync serve`` writes to storage per edit of a large
value, against another checkout's server in the same run (``--server-root``, e.g. a ``git archive main``).

The value is a chunked one, as the add-on sends a mesh (docs/protocol.md section 3a). ``--format tree`` (the
add-on's format): ``--chunks`` x ``--chunk-bytes`` random bytes cut by the add-on's own code
(``blender_addon/sync/chunks.py``) into 32 KiB chunks under 1 KiB list nodes, one key whose value names the
root (its ``refs``); an edit changes 8 bytes of one chunk (of ``--span`` adjacent chunks: a stroke across
a region) and puts the new chunks and the new list node of each level (children first), then sets the
key. ``--format flat`` (the first format): ``--chunks`` blobs of ``--chunk-bytes`` and a value listing
all their hashes; an edit puts the changed chunks and sets the new list. An
edit's requests go out as the add-on sends them (its blobs, children first, then the batch, each without
waiting for the one before: they share the server's commits); ``--awaited`` waits for each answer before
the next request (a commit each). Per edit, the server's ``write_bytes`` (``/proc/<pid>/io``: what reached the
disk, lmdb's pages and fsyncs included) and the logical bytes its storage put (keys + values, counted by
``counting_server.py``), against the changed chunks and against every blob the edit put (the chunks and
their new list nodes). Edits are ``--gap`` seconds apart (an artist's pace). The totals run to the
server's clean stop (SIGTERM) after the last edit, which persists whatever it had not yet: a server that
persists its tree less often is charged for all it writes (``write_bytes``, which goes with the process, is
read just before the stop).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import trio

from broadcaster.client import connect

ROOT = Path(__file__).resolve().parents[2]
COUNTING = Path(__file__).resolve().with_name("counting_server.py")


def _addon_chunks() -> Any:
    """The add-on's chunking module, loaded alone (its package imports bpy)."""
    spec = importlib.util.spec_from_file_location("addon_chunks", ROOT / "blender_addon/sync/chunks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def add_arguments(kinds: Any) -> None:
    bench = kinds.add_parser("storage", help="server write_bytes per edit of a chunked value, A/B")
    bench.add_argument(
        "--chunks", type=int, default=200, help="chunks of the value (200: a 200k-vertex mesh)"
    )
    bench.add_argument("--chunk-bytes", type=int, default=65536)
    bench.add_argument("--format", choices=("tree", "flat"), default="tree")
    bench.add_argument("--edits", type=int, default=20)
    bench.add_argument("--span", type=int, default=1, help="adjacent chunks each edit changes")
    bench.add_argument("--gap", type=float, default=1.5, help="seconds between edits")
    bench.add_argument("--awaited", action="store_true", help="wait for each request's answer")
    bench.add_argument("--server-root", help="also measure the server of this checkout (the A side)")
    bench.add_argument("--json", action="store_true")


class CountingServer:
    """``blendsync serve`` of the checkout ``root`` with a fresh data directory on disk."""

    def __init__(self, root: Path):
        self.root = root

    def __enter__(self) -> CountingServer:
        self.data_dir = tempfile.mkdtemp(prefix="blendsync-bench-store-", dir="/var/tmp")
        fd, self.counter = tempfile.mkstemp(prefix="blendsync-bench-count-", dir="/dev/shm")
        os.close(fd)
        self._start()
        return self

    def restart(self) -> None:
        """A clean stop and a start on the same data: its counts start again from zero."""
        self.stop()
        self._start()

    def _start(self) -> None:
        self._disk = 0  # counting_server.py writes its zero totals before the server listens
        env = {**os.environ, "PYTHONPATH": str(self.root)}
        command = [sys.executable, str(COUNTING), self.counter, "--log-level", "warning", "serve"]
        command += ["--port", "0", "--data-dir", self.data_dir]
        self.proc = subprocess.Popen(command, cwd=self.root, stdout=subprocess.PIPE, text=True, env=env)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        match = re.search(r"listening on (\S+):(\d+)", line)
        if not match:
            self.__exit__()
            raise RuntimeError(f"server did not start: {line!r}")
        self.host, self.port = match.group(1), int(match.group(2))

    def stop(self) -> None:
        """Stop the server as an operator does (SIGTERM): it persists its tree on the way out."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)
        os.unlink(self.counter)

    def device_written(self) -> int | None:
        """Bytes written to the block device holding the data directory (every process's: a quiet machine's
        figure), or None where the kernel does not say. ``write_bytes`` counts what the process dirtied in
        the page cache, whole large folios at a time on recent kernels: it can be many times what reaches
        the device."""
        st = os.stat(self.data_dir)
        try:
            with open(f"/sys/dev/block/{os.major(st.st_dev)}:{os.minor(st.st_dev)}/stat") as stat:
                return int(stat.read().split()[6]) * 512  # sectors written
        except (OSError, IndexError, ValueError):
            return None

    def written(self) -> tuple[int, int]:
        """(write_bytes of the process, logical bytes its storage put) so far."""
        disk, counted = self.counted()
        return disk, counted["total"]

    def counted(self) -> tuple[int, dict[str, Any]]:
        """write_bytes of the process, and ``{"total": logical bytes put, "by": {sub-database or tree path
        shape: bytes}}`` so far (one reading of the counter: the total and its parts agree)."""
        if self.proc.poll() is None:  # a stopped process's counter went with it: its last reading stays
            with open(f"/proc/{self.proc.pid}/io") as io:
                self._disk = next(int(line.split()[1]) for line in io if line.startswith("write_bytes:"))
        disk = self._disk
        with open(self.counter) as counter:
            return disk, json.loads(counter.read() or '{"total": 0, "by": {}}')


def edited_chunks(edit: int, span: int, count: int) -> list[int]:
    """The chunks edit number ``edit`` changes: ``span`` adjacent ones from a spread-out start, the same in
    both formats."""
    return [(edit * 7919 + k) % count for k in range(span)]


class FlatValue:
    """The first format: ``chunks`` blobs and a value listing every hash (all of them its refs)."""

    def __init__(self, args: argparse.Namespace):
        self.chunks = [os.urandom(args.chunk_bytes) for _ in range(args.chunks)]
        self.hashes = [hashlib.sha256(chunk).digest() for chunk in self.chunks]
        self.span = args.span
        self.changed = args.chunk_bytes * args.span
        self.uploads: list[tuple[bytes, bytes, list[bytes] | None]] = [(c, h, None) for c, h in self._pairs()]

    def _pairs(self) -> list[tuple[bytes, bytes]]:
        return list(zip(self.chunks, self.hashes, strict=True))

    def edit(self, i: int) -> None:
        self.uploads = []
        for which in edited_chunks(i, self.span, len(self.chunks)):
            chunk = bytearray(self.chunks[which])
            chunk[:8] = i.to_bytes(8, "big")
            self.chunks[which] = bytes(chunk)
            self.hashes[which] = hashlib.sha256(self.chunks[which]).digest()
            self.uploads.append((self.chunks[which], self.hashes[which], None))

    def op(self) -> list[Any]:
        return ["set", "mesh", b"".join(self.hashes), list(self.hashes)]

    def check(self) -> tuple[bytes, bytes]:
        return self.hashes[-1], self.chunks[-1]


class TreeValue:
    """The add-on's format: one chunk tree (32 KiB chunks, 1 KiB list nodes), the value naming its root."""

    def __init__(self, args: argparse.Namespace):
        self.mod = _addon_chunks()
        self.store = self.mod.ChunkCache()
        self.data = bytearray(os.urandom(args.chunks * args.chunk_bytes))
        self.span = args.span
        self.changed = self.mod.CHUNK_BYTES * args.span
        self.held: set[bytes] = set()
        self._encode()

    def _encode(self) -> None:
        import msgpack

        self.value = msgpack.packb({"vertices": self.mod.split(bytes(self.data), self.store)})
        blobs = self.mod.uploads(self.value, self.held.__contains__, self.store)
        self.uploads = [(self.store.get(blob), blob, children) for blob, children in blobs]
        self.held.update(blob for blob, _ in blobs)

    def edit(self, i: int) -> None:
        chunks = len(self.data) // self.mod.CHUNK_BYTES
        for which in edited_chunks(i, self.span, chunks):
            at = which * self.mod.CHUNK_BYTES
            self.data[at : at + 8] = i.to_bytes(8, "big")
        self._encode()

    def op(self) -> list[Any]:
        return ["set", "mesh", self.value, self.mod.refs_of(self.value)]

    def check(self) -> tuple[bytes, bytes]:
        first = bytes(self.data[: self.mod.CHUNK_BYTES])
        return hashlib.sha256(first).digest(), first


async def _publish(client: Any, value: Any, awaited: bool) -> None:
    if awaited:  # each blob durable before the next is sent: a commit each
        for data, blob, children in value.uploads:
            assert await client.put_blob(data, children) == blob
        await client.batch([value.op()])
        return
    # As the add-on sends an edit: its blobs, children first, then the batch, without waiting
    sent = [await client.send_blob(data, children) for data, _, children in value.uploads]
    _, written = await client.send_ops([value.op()])
    for (blob, waiter), (_, wanted, _) in zip(sent, value.uploads, strict=True):
        await waiter.wait()
        assert blob == wanted
    await written.wait()


async def measure(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    room = f"bench-storage-{secrets.token_hex(4)}"
    value = TreeValue(args) if args.format == "tree" else FlatValue(args)
    blobs_per_edit, blob_bytes = [], 0
    with CountingServer(root) as server:
        async with connect(server.host, server.port, name="bench") as client:
            await client.create_room(room)
            await client.join(room)
            await _publish(client, value, args.awaited)
        # Restarted, so that everything the publish wrote is persisted (whenever this server would have
        # persisted it) and only the edits are counted; the counts start again with the new process.
        server.restart()
        async with connect(server.host, server.port, name="bench") as client:
            await client.join(room)
            edits = []
            start_disk, start_counted = server.counted()
            start, start_by = (start_disk, start_counted["total"]), start_counted["by"]
            start_device = server.device_written()
            for i in range(args.edits):
                before = server.written()
                value.edit(i)
                blobs_per_edit.append(len(value.uploads))
                blob_bytes += sum(len(data) for data, _, _ in value.uploads)
                await _publish(client, value, args.awaited)
                await trio.sleep(args.gap)
                after = server.written()
                edits.append({"write_bytes": after[0] - before[0], "logical_bytes": after[1] - before[1]})
            blob, data = value.check()
            assert await client.get_blob(blob) == data
        server.counted()  # write_bytes, read while the process still has it
        server.stop()
        end_device = server.device_written()
        end_disk, end_counted = server.counted()
        end, end_by = (end_disk, end_counted["total"]), end_counted["by"]
    disk = [e["write_bytes"] for e in edits]
    logical = [e["logical_bytes"] for e in edits]
    changed = value.changed
    return {
        "server_root": str(root),
        "format": args.format,
        "changed_chunk_bytes": changed,
        "blobs_put_per_edit": statistics.median(blobs_per_edit),
        "blob_bytes_put_per_edit": blob_bytes // args.edits,  # the changed chunks and their new list nodes
        "edits": args.edits,
        "write_bytes_per_edit_median": int(statistics.median(disk)),
        "write_bytes_per_edit_mean": (end[0] - start[0]) // args.edits,
        "write_bytes_per_edit_max": max(disk),
        "device_bytes_per_edit_mean": None
        if start_device is None or end_device is None
        else (end_device - start_device) // args.edits,
        "logical_bytes_per_edit_median": int(statistics.median(logical)),
        "logical_bytes_per_edit_mean": (end[1] - start[1]) // args.edits,
        "logical_per_changed_chunk": round((end[1] - start[1]) / args.edits / changed, 3),
        "logical_per_blob_bytes_put": round((end[1] - start[1]) / blob_bytes, 3),
        "disk_per_changed_chunk": round((end[0] - start[0]) / args.edits / changed, 2),
        "commits_per_edit": round(
            (end_counted.get("commits", 0) - start_counted.get("commits", 0)) / args.edits, 2
        ),
        "logical_bytes_per_edit_by": {  # where the logical bytes went: sub-database, tree path shape
            where: (total - start_by.get(where, 0)) // args.edits
            for where, total in end_by.items()
            if total > start_by.get(where, 0)
        },
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {"bench": "storage", "chunks": args.chunks, "chunk_bytes": args.chunk_bytes}
    result["this"] = await measure(ROOT, args)
    if args.server_root:
        result["other"] = await measure(Path(args.server_root).resolve(), args)
    return result
