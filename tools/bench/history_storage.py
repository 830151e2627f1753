"""``python -m tools.bench history-storage``: the disk a room's history costs, per small operation.

Starts ``blendsync serve`` on a fresh data dir twice: once with the default retention (``room_tail`` 10,000,
automatic checkpoints), once keeping every operation (``room_tail = 0``). Each run writes ``--ops`` single
``set`` operations of ``--size`` bytes over ``--keys`` keys of one room, ``--window`` in flight at a time,
and stops early after ``--seconds``. Then it reports the data dir's files (apparent size and blocks on
disk) while the server runs and after it stopped, in total and per operation written, and the size sampled
every ``--sample`` operations. A stopped-early run also gives an extrapolation to ``--ops`` (it says so:
``extrapolated``): the final size plus the growth per operation over the second half of the run times the
operations not written, since a bounded log stops growing where a linear scale from zero would not.
``--checkpoint-interval`` sets the server's ``checkpoint_interval`` (and keeps every automatic checkpoint):
with a short one, the automatic checkpoints a room under steady writes got, and the operations between
consecutive ones, show whether each due pass committed one.

Each sample is [operations acknowledged, data dir bytes, seconds since the first write, the server process's
CPU seconds] (Linux: read from /proc; null elsewhere), so the rate and the server's CPU per operation can be
read along the run. At the end: the node's proposals and fsyncs (``admin status``: operations per fsync),
the lmdb pages of every database and the free ones, and the room's checkpoints (how many automatic ones,
and the bytes of their records in the tree).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import trio

from broadcaster.client import connect
from tools.cluster import REPO

ROOM = "storage"

RETENTIONS = {"default": "", "keep_all": "room_tail = 0\n"}


def add_arguments(kinds: Any) -> None:
    storage = kinds.add_parser(
        "history-storage", help="data dir bytes per small operation, default retention vs all"
    )
    storage.add_argument("--ops", type=int, default=1_000_000, help="operations to write per run")
    storage.add_argument("--keys", type=int, default=1000, help="distinct keys they cycle over")
    storage.add_argument("--size", type=int, default=100, help="value bytes per operation")
    storage.add_argument("--window", type=int, default=512, help="operations in flight at once")
    storage.add_argument("--seconds", type=float, default=600.0, help="stop a run after this long")
    storage.add_argument("--sample", type=int, default=10_000, help="sample the size every N ops")
    storage.add_argument(
        "--retention", choices=[*RETENTIONS, "both"], default="both", help="which runs (default both)"
    )
    storage.add_argument(
        "--checkpoint-interval", type=float, help="the server's checkpoint_interval (all automatic ones kept)"
    )
    storage.add_argument("--json", action="store_true")


async def run(args: argparse.Namespace) -> dict[str, Any]:
    names = list(RETENTIONS) if args.retention == "both" else [args.retention]
    result: dict[str, Any] = {"ops_asked": args.ops, "keys": args.keys, "size": args.size}
    for name in names:
        with tempfile.TemporaryDirectory(prefix="bench-storage-") as root:
            settings = RETENTIONS[name]
            if args.checkpoint_interval is not None:
                settings += f"checkpoint_interval = {args.checkpoint_interval}\nauto_checkpoints_kept = 0\n"
            result[name] = await _one_run(Path(root), settings, args)
    return result


@contextmanager
def serve_process(data: Path, config: Path | None = None) -> Iterator[tuple[subprocess.Popen, str, int]]:
    """``blendsync serve`` on a free port with its data in ``data``: (process, host, port); stopped (SIGTERM,
    waited for) when the block ends."""
    command = [sys.executable, "-m", "broadcaster.cli", "--log-level", "warning", "serve", "--port", "0"]
    command += ["--data-dir", str(data), *(["--config", str(config)] if config else [])]
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        match = re.search(r"listening on (\S+):(\d+)", proc.stdout.readline())
        if not match:
            raise RuntimeError("the server did not start")
        yield proc, match.group(1), int(match.group(2))
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(timeout=120)


async def _one_run(root: Path, settings: str, args: argparse.Namespace) -> dict[str, Any]:
    config = root / "server.toml"
    config.write_text("[server]\n" + settings)
    data = root / "data"
    with serve_process(data, config) as (proc, host, port):
        written, seconds, samples, node = await _write(host, port, data, proc.pid, args)
        running = _files(data)
    stopped = _files(data)
    usage = _lmdb_usage(data / "replication")
    total = sum(size for size, _ in stopped.values())
    outcome: dict[str, Any] = {
        "ops": written,
        "seconds": round(seconds, 1),
        "ops_per_s": round(written / seconds, 1),
        "node": node,
        "checkpoints": _checkpoints(data / "replication"),
        "files_running": running,
        "files_stopped": stopped,
        "bytes": total,
        "disk_bytes": sum(blocks for _, blocks in stopped.values()),
        "bytes_per_op": round(total / written, 1),
        "lmdb": usage,
    }
    outcome["samples"] = samples
    half = [s for s in samples if s[0] >= written // 2]
    if len(half) >= 2 and half[-1][0] > half[0][0]:
        slope = (half[-1][1] - half[0][1]) / (half[-1][0] - half[0][0])
        outcome["growth_per_op_second_half"] = round(slope, 1)
        if written < args.ops:
            outcome["extrapolated"] = round(total + slope * (args.ops - written))
    return outcome


async def _write(
    host: str, port: int, data: Path, server_pid: int, args: argparse.Namespace
) -> tuple[int, float, list[list[Any]], dict[str, Any]]:
    """Write until ``--ops`` are acknowledged or ``--seconds`` have passed: (acknowledged, seconds,
    samples every ``--sample`` operations, the node's write counters at the end)."""
    pad = os.urandom(max(0, args.size - 8))  # every value differs (checkpoints store each once)
    acked = 0
    samples: list[list[Any]] = []
    start = time.perf_counter()
    deadline = trio.current_time() + args.seconds
    async with connect(host, port, name="bench-storage", kind="bench") as client:
        await client.create_room(ROOM, keep_open=True)
        await client.join(ROOM)
        window = trio.Semaphore(args.window)
        # Acks come in the order the writes went out: one task waits for them in turn (a task per write
        # cost this process more CPU than the acks themselves, CPU the server shares on a small machine).
        unacked: deque[Any] = deque()
        more = trio.Event()
        sent_all = False

        async def wait_acks() -> None:
            nonlocal acked, more
            while unacked or not sent_all:
                if not unacked:
                    await more.wait()
                    more = trio.Event()
                    continue
                await unacked.popleft().wait()
                acked += 1
                window.release()
                if acked % args.sample == 0:
                    size = sum(size for size, _ in _files(data).values())
                    elapsed = round(time.perf_counter() - start, 2)
                    samples.append([acked, size, elapsed, _cpu_seconds(server_pid)])

        async with trio.open_nursery() as nursery:
            nursery.start_soon(wait_acks)
            for i in range(args.ops):
                if trio.current_time() > deadline:
                    break
                await window.acquire()
                value = (i.to_bytes(8, "little") + pad)[: args.size]
                _, waiter = await client.send_ops([["set", f"k/{i % args.keys}", value]])
                unacked.append(waiter)
                more.set()
            sent_all = True
            more.set()
        seconds = time.perf_counter() - start
        status = await client.admin("status")
    node = {name: status.get(name) for name in ("proposals", "fsyncs", "fsync_seconds")}
    if status.get("fsyncs"):
        node["fsync_seconds"] = round(status["fsync_seconds"], 1)
        node["proposals_per_fsync"] = round(status["proposals"] / status["fsyncs"], 1)
    return acked, seconds, samples, node


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process so far (Linux), else None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return round((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), 2)


def _files(data: Path) -> dict[str, tuple[int, int]]:
    """Every file under the data dir: (apparent bytes, bytes of blocks on disk)."""
    found = {}
    for path in sorted(data.rglob("*")):
        if path.is_file():
            stat = path.stat()
            found[str(path.relative_to(data))] = (stat.st_size, stat.st_blocks * 512)
    return found


def _lmdb_usage(path: Path) -> dict[str, Any]:
    """Pages in use by each of the store's databases (log: Raft entries not yet compacted; tree: the
    replicated tree, room logs and checkpoints included; the blob tables) and in the whole map: the pages
    up to the last one used that no database holds are free (lmdb reuses them before it grows the file;
    its list of them is counted with them)."""
    import lmdb

    env = lmdb.open(str(path), max_dbs=16, readonly=True, lock=False, subdir=True)
    try:
        psize = env.stat()["psize"]
        main = env.stat()
        live = 2 + main["branch_pages"] + main["leaf_pages"] + main["overflow_pages"]  # 2: the meta pages
        usage: dict[str, Any] = {"used_bytes": (env.info()["last_pgno"] + 1) * psize}
        with env.begin() as txn:
            names = [bytes(key) for key in txn.cursor().iternext(keys=True, values=False)]
            for name in names:
                stat = txn.stat(env.open_db(name, txn=txn, create=False))
                pages = stat["branch_pages"] + stat["leaf_pages"] + stat["overflow_pages"]
                live += pages
                usage[name.decode()] = {"entries": stat["entries"], "bytes": pages * psize}
        usage["live_bytes"] = live * psize
        usage["free_bytes"] = usage["used_bytes"] - usage["live_bytes"]
        return usage
    finally:
        env.close()


def _checkpoints(path: Path) -> dict[str, Any]:
    """The room's checkpoints in the stored tree: how many (automatic ones apart) and the bytes of their
    node records (checkpoints/ and the values/ they hold), against those of every tree node; and the
    operations between consecutive automatic ones (min, median, max)."""
    import msgpack

    from replication.lmdb_store import Storage

    prefix = ("rooms", ROOM)
    found: dict[str, Any] = {"automatic": 0, "named": 0, "record_bytes": 0, "tree_record_bytes": 0}
    seqs = []
    store = Storage.open_readonly(path)
    try:
        for tree_path, record in store.tree_records():
            size = len(record)
            found["tree_record_bytes"] += size
            if tree_path[:2] != prefix or len(tree_path) != 4:
                continue
            if tree_path[2] == "checkpoints":
                payload = msgpack.unpackb(record, raw=False)[5]
                found["automatic" if payload.get("auto") else "named"] += 1
                if payload.get("auto"):
                    seqs.append(payload["seq"])
                found["record_bytes"] += size
            elif tree_path[2] == "values":
                found["record_bytes"] += size
    finally:
        store.close()
    gaps = sorted(b - a for a, b in zip(sorted(seqs), sorted(seqs)[1:], strict=False))
    if gaps:
        found["ops_between_automatic"] = [gaps[0], gaps[len(gaps) // 2], gaps[-1]]
    return found
