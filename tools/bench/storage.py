"""``python -m tools.bench storage``: what a real ``blendsync serve`` writes to storage per edit of a large
value, against another checkout's server in the same run (``--server-root``, e.g. a ``git archive main``).

The value is a chunked one, as the add-on sends a mesh (docs/protocol.md section 3a): ``--chunks`` blobs of
``--chunk-bytes`` random bytes and one key whose value lists their hashes (with the same ``refs``). An edit
changes one chunk: one ``blob_put`` of the new chunk and one ``batch`` that sets the key to the new list,
each waiting for its answer. Per edit, the server's ``write_bytes`` (``/proc/<pid>/io``: what reached the
disk, lmdb's pages and fsyncs included) and the logical bytes its storage put (keys + values, counted by
``counting_server.py``). Edits are ``--gap`` seconds apart (the add-on's pace: the node persists its tree
after 1 s without writes), and the run ends with a settle of ``--gap`` seconds counted in the totals.
"""

from __future__ import annotations

import argparse
import hashlib
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


def add_arguments(kinds: Any) -> None:
    bench = kinds.add_parser("storage", help="server write_bytes per edit of a chunked value, A/B")
    bench.add_argument(
        "--chunks", type=int, default=200, help="chunks of the value (200: a 200k-vertex mesh)"
    )
    bench.add_argument("--chunk-bytes", type=int, default=65536)
    bench.add_argument("--edits", type=int, default=20)
    bench.add_argument("--gap", type=float, default=1.5, help="seconds between edits")
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
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.data_dir, ignore_errors=True)
        os.unlink(self.counter)

    def written(self) -> tuple[int, int]:
        """(write_bytes of the process, logical bytes its storage put) so far."""
        with open(f"/proc/{self.proc.pid}/io") as io:
            disk = next(int(line.split()[1]) for line in io if line.startswith("write_bytes:"))
        with open(self.counter) as counter:
            logical = int(counter.read() or 0)
        return disk, logical


def _value(hashes: list[bytes]) -> bytes:
    return b"".join(hashes)


async def measure(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    room = f"bench-storage-{secrets.token_hex(4)}"
    with CountingServer(root) as server:
        async with connect(server.host, server.port, name="bench") as client:
            await client.create_room(room)
            await client.join(room)
            chunks = [os.urandom(args.chunk_bytes) for _ in range(args.chunks)]
            hashes = [await client.put_blob(chunk) for chunk in chunks]
            await client.batch([["set", "mesh", _value(hashes), hashes]])
            await trio.sleep(args.gap)
            edits = []
            start = server.written()
            for i in range(args.edits):
                before = server.written()
                which = (i * 7919) % args.chunks
                chunk = bytearray(chunks[which])
                chunk[:8] = i.to_bytes(8, "big")
                chunks[which] = bytes(chunk)
                hashes[which] = await client.put_blob(chunks[which])
                await client.batch([["set", "mesh", _value(hashes), hashes]])
                await trio.sleep(args.gap)
                after = server.written()
                edits.append({"write_bytes": after[0] - before[0], "logical_bytes": after[1] - before[1]})
            end = server.written()
            assert hashlib.sha256(chunks[0]).digest() == hashes[0]
            assert await client.get_blob(hashes[-1]) == chunks[-1]
    disk = [e["write_bytes"] for e in edits]
    logical = [e["logical_bytes"] for e in edits]
    changed = args.chunk_bytes
    return {
        "server_root": str(root),
        "edits": args.edits,
        "write_bytes_per_edit_median": int(statistics.median(disk)),
        "write_bytes_per_edit_mean": (end[0] - start[0]) // args.edits,
        "write_bytes_per_edit_max": max(disk),
        "logical_bytes_per_edit_median": int(statistics.median(logical)),
        "logical_bytes_per_edit_mean": (end[1] - start[1]) // args.edits,
        "logical_per_changed_chunk": round((end[1] - start[1]) / args.edits / changed, 2),
        "disk_per_changed_chunk": round((end[0] - start[0]) / args.edits / changed, 2),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {"bench": "storage", "chunks": args.chunks, "chunk_bytes": args.chunk_bytes}
    result["this"] = await measure(ROOT, args)
    if args.server_root:
        result["other"] = await measure(Path(args.server_root).resolve(), args)
    return result
