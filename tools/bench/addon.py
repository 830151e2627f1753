"""Benchmarks of the Blender add-on against a real ``blendsync serve``.

    python tools/bench/addon.py join [--objects 100] [--grid 1000] [--move] [--profile FILE] [--json]
    python tools/bench/addon.py editmode [--objects 500] [--grid 447] [--samples 20] [--json]
    python tools/bench/addon.py drag [--steps 100] [--grid 100] [--json]
    python tools/bench/addon.py idle [--objects 500] [--grid 447] [--seconds 20] [--profile FILE] [--json]
    python tools/bench/addon.py live-drag [--objects 500] [--grid 447] [--steps 100] [--rate 60] [--json]
    python tools/bench/addon.py edits [--json]
    python tools/bench/addon.py pair [--rounds 10] [--json]
    python tools/bench/addon.py vertex [--grid 447] [--edits 5] [--json]
    python tools/bench/addon.py huge [--grid 3163] [--image-mb 200] [--json]
    python tools/bench/addon.py play [--objects 50] [--frames 250] [--no-rig] [--json]
    python tools/bench/addon.py rig-join [--json]

``join``: one Blender process builds a room (``--objects`` small meshes and
one ``--grid`` x ``--grid`` vertex grid) and publishes it through the
add-on; a second, fresh Blender process joins the room. Measured in the
joiner: from the join request to the scene applied (snapshot received and
every apply slice done), with the pump driven the way Blender's timer drives
it, and the bytes read from the socket. Baseline in the same run: the trio
client library (``broadcaster.client``) joining the same room, which
receives and decodes the same snapshot and fetches every chunk its values
name (the same bytes), but applies nothing. Both scenes'
``scene_hash()`` must be equal. Also measured: **usable**, from the join
request to the end of the first pump after which every object of the
publisher's view layer is in the joiner's view layer (so it can be selected)
with the publisher's location, rotation and scale (and the joiner's CPU in its pumps until then,
``usable_pump_cpu_seconds``); with ``--move`` the joiner
then selects ``Box.011``, makes it active and moves it, and the publisher must show the
move (from the move to the publisher's pump that shows it). **Read back**
(``join_read_back_seconds``): the joiner's pumps go on until its tracker has
read back every datablock the applier left unread (``read_unread``, its CPU
in ``join_read_back_cpu_seconds``); ``joiner_batches_sent`` counts what the
joiner sent (0: nothing echoed). ``--profile FILE``: cProfile of the
joiner's pumps, written to FILE.

``editmode``: see ``tools/bench/addon_editmode.py``.

``drag``: one Blender process in a room moves one object (with a
``--grid`` x ``--grid`` vertex mesh) in ``--steps`` steps, each followed by
``view_layer.update()`` and one pump, and counts the bytes the add-on wrote
to its socket; compared with sending every key of the object and its mesh
at each step.

``idle``: one Blender process builds ``--objects`` small meshes and one
``--grid`` x ``--grid`` vertex grid (447: 199,809 vertices), publishes them to
a room, then does nothing for ``--seconds`` while its timer runs the way
Blender runs it; measured: the main-thread time of each timer call (p50, p99,
max).

``live-drag``: the same scene, published by one Blender process and joined by
two more; the first moves the grid object in ``--steps`` steps paced at
``--rate`` steps a second (each step: set the location,
``view_layer.update()``, one pump) while the others run their timers.
Measured: the sender's wall time for the steps and its slowest pump, and, in
each receiver, how long after the sender's last step it shows the final
position (wall clock, same machine).

``edits``: one Blender process in a room makes one property edit of each
kind (``EDITS``: transform, name, visibility, collection membership, a
modifier setting, a material setting and a node socket, a light and a camera
setting, a scene setting, a vertex of a small mesh, the view when following)
and counts the bytes the add-on wrote to its socket for each, from the edit
to its ack, with the keys its batch carried.

``pair``: two Blender processes in a room change two properties of one
object at the same moment (Ana the location, Ben the scale; both edits are
made before either process reads anything), ``--rounds`` times; measured:
from the earlier of the two edits to the later of the moments each process
shows both (wall clock, same machine).
``vertex`` and ``huge``: see ``addon_heavy.py``.

``play``: one Blender process builds ``--objects`` animated empties (keyed
location and rotation channels, ``scene_builders.build_animated``, with a
keyed rig and shape key unless ``--no-rig``), publishes them and a second one joins; the first
then plays ``--frames`` frames (each: ``frame_set``, then its timer).
Measured: the batches (room writes) and their bytes (target 0), every byte
written to its socket (presence: the current frame, ten times a second at
most), and how far the room's seq moved.

``rig-join``: one Blender process builds the rig of the tests
(``scene_builders.build_rig``: armature, skinned mesh with vertex groups,
IK and Copy Rotation constraints, drivers, custom properties) and publishes
it; a fresh one joins. Measured as ``join``: from the join request to the
scene applied, and whether both scenes' hashes are equal.

``--addon-root DIR`` (every command) loads the add-on and the protocol from
another checkout (e.g. an export of an older commit), for A/B runs against
the same server. Each command prints one JSON line with ``--json``. The
Blender processes run ``tools/bench/addon_worker.py`` (``bpy`` is imported
only there).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools.bench.addon_worker import ADDON_ROOT_ENV, REPLY  # noqa: E402  (after the sys.path entry)

WORKER = Path(__file__).resolve().with_name("addon_worker.py")
MOVED = "Box.011"  # the object a joiner moves as soon as its scene is usable (join --move; not at the origin)


# ---- orchestration (no bpy) ---------------------------------------------------------------------------


class Server:
    """``blendsync serve`` on an ephemeral port with a fresh data directory."""

    def __enter__(self) -> Server:
        self.data_dir = tempfile.mkdtemp(prefix="blendsync-bench-data-")
        command = [
            sys.executable,
            "-m",
            "broadcaster.cli",
            "--log-level",
            "warning",
            "serve",
            "--port",
            "0",
            "--data-dir",
            self.data_dir,
        ]
        self.proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
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

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


class Worker:
    """A Blender process (this script, ``worker`` mode) driven by JSON lines."""

    addon_root: str | None = None  # load the add-on from this checkout instead (A/B runs)

    def __init__(self, name: str):
        self.name = name
        env = dict(os.environ)
        if Worker.addon_root:
            env[ADDON_ROOT_ENV] = Worker.addon_root
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKER), name],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.call_reply(None, timeout=60)

    def send(self, cmd: str, **fields: Any) -> None:
        """Send a command without waiting for its answer (:meth:`call_reply` with None reads it)."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"cmd": cmd, **fields}) + "\n")
        self.proc.stdin.flush()

    def call_reply(self, command: dict[str, Any] | None, timeout: float = 120) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        if command is not None:
            self.proc.stdin.write(json.dumps(command) + "\n")
            self.proc.stdin.flush()
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"worker {self.name} exited ({self.proc.poll()})")
            if line.startswith(REPLY):
                reply = json.loads(line[len(REPLY) :])
                if not reply.get("ok"):
                    raise RuntimeError(f"worker {self.name}: {reply.get('error')}\n{reply.get('trace', '')}")
                return reply
        raise TimeoutError(f"worker {self.name}: no answer to {command}")

    def __call__(self, cmd: str, **fields: Any) -> dict[str, Any]:
        return self.call_reply({"cmd": cmd, **fields}, timeout=float(fields.get("timeout", 120)) + 10)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.call_reply({"cmd": "quit"}, timeout=20)
                self.proc.wait(timeout=20)
            except (RuntimeError, TimeoutError, subprocess.TimeoutExpired, BrokenPipeError):
                self.proc.kill()
                self.proc.wait()


async def _fetch_trees(client: Any, values: list[bytes]) -> tuple[int, int]:
    """Fetch every blob of the chunk trees ``values`` name, level by level as the add-on does (a node's
    children are known once it is here), ``GETS_IN_FLIGHT`` at a time; returns (blobs, bytes)."""
    import trio

    from tools.bench.storage import _addon_chunks

    chunks = _addon_chunks()
    level: dict[bytes, int] = {}  # blob -> its level (0: a data chunk)
    for value in values:
        for tree in chunks.trees_of(value):
            level[tree.root] = tree.depth
    fetched = [0, 0]
    seen: set[bytes] = set()
    limit = trio.Semaphore(GETS_IN_FLIGHT)
    nxt: dict[bytes, int] = {}  # the next level's blobs

    async def get(blob: bytes, depth: int) -> None:
        async with limit:
            data = await client.get_blob(blob)
        assert data is not None, f"blob {blob.hex()} not on the server"
        fetched[0] += 1
        fetched[1] += len(data)
        if depth > 0:
            nxt.update(dict.fromkeys(chunks.node_hashes(data), depth - 1))

    while level:
        nxt.clear()
        async with trio.open_nursery() as nursery:
            for blob, depth in level.items():
                if blob not in seen:
                    seen.add(blob)
                    nursery.start_soon(get, blob, depth)
        level = {blob: depth for blob, depth in nxt.items() if blob not in seen}
    return fetched[0], fetched[1]


GETS_IN_FLIGHT = 64  # the add-on's MAX_GET hashes in flight


async def _client_join(host: str, port: int, room: str) -> dict[str, Any]:
    """Baseline: join with the client library (receive and decode the snapshot, fetch every chunk its
    values name, apply nothing): the same bytes the add-on receives."""
    from broadcaster.client import connect

    async with connect(host, port, name="baseline", kind="bench") as client:
        received = [0]
        feed = client.conn.receive_data

        def counting_feed(data: bytes) -> None:
            received[0] += len(data)
            feed(data)

        client.conn.receive_data = counting_feed
        start = time.perf_counter()
        await client.join(room)
        blobs, blob_bytes = await _fetch_trees(client, list(client.state.values()))
        seconds = time.perf_counter() - start
        keys = len(client.state)
        await client.leave()
    return {
        "seconds": round(seconds, 4),
        "bytes_received": received[0],
        "keys": keys,
        "blobs": blobs,
        "blob_bytes": blob_bytes,
    }


def client_join(host: str, port: int, room: str) -> dict[str, Any]:
    import trio

    return trio.run(_client_join, host, port, room)


def bench_join(args: argparse.Namespace) -> dict[str, Any]:
    room = f"bench-join-{secrets.token_hex(4)}"
    total = time.perf_counter()
    with Server() as server:
        publisher = Worker("publisher")
        joiner = None
        try:
            built = publisher("build", objects=args.objects, grid=args.grid, grids=args.grids)
            publisher("connect", servers=server.address)
            published = publisher("publish", room=room, timeout=args.timeout)
            expect = publisher("placements")["placements"]
            baseline_before = client_join(server.host, server.port, room)
            joiner = Worker("joiner")
            joiner("connect", servers=server.address)
            move = {"object": MOVED, "location": [-3.0, -4.0, 0.5]} if args.move else None
            profile = str(Path(args.profile).resolve()) if args.profile else None
            if move is not None:  # the publisher runs its timer during the join, as Blender would
                publisher.send("watch", object=MOVED, location=move["location"], timeout=args.timeout + 30)
            joined = joiner(
                "join", room=room, timeout=args.timeout, expect=expect, move=move, profile=profile
            )
            moved = None
            if move is not None:  # the move made as soon as the scene was usable reaches the room
                joiner.send("settle", seconds=1.0)  # its timer runs meanwhile, as Blender's would
                try:
                    seen = publisher.call_reply(None, timeout=40)
                    moved = round(seen["seen_at"] - joined["moved_at"], 3)
                except RuntimeError as exc:  # reported, not raised: the other figures still count
                    moved = f"never: {str(exc).splitlines()[0]}"
                joiner.call_reply(None, timeout=40)
            pub_state, join_state = publisher("state"), joiner("state")
            baseline_after = client_join(server.host, server.port, room)
        finally:
            for worker in (joiner, publisher):
                if worker is not None:
                    worker.close()
    base_seconds = (baseline_before["seconds"] + baseline_after["seconds"]) / 2
    return {
        "bench": "addon-join",
        "objects": built["objects"],
        "vertices": built["vertices"],
        "keys": built["keys"],
        "key_bytes": built["key_bytes"],
        "publish_seconds": published["seconds"],
        "publish_bytes_sent": published["bytes_sent"],
        "join_seconds": joined["seconds"],
        "usable_seconds": joined["usable_seconds"],
        "usable_pump_cpu_seconds": joined["usable_pump_cpu_seconds"],
        "move_seen_by_publisher_seconds": moved,
        "move_sent_while_joining_seconds": joined["move_sent_while_joining"],
        "join_snapshot_end_seconds": joined["snapshot_end_seconds"],
        "join_after_snapshot_seconds": joined["after_snapshot_seconds"],
        "join_apply_step_seconds": joined["apply_step_seconds"],
        "join_apply_step_cpu_seconds": joined["apply_step_cpu_seconds"],
        "join_pump_seconds": joined["pump_seconds"],
        "join_pump_cpu_seconds": joined["pump_cpu_seconds"],
        "join_pumps": joined["pumps"],
        "join_read_back_seconds": joined["read_back_seconds"],
        "join_read_back_pump_cpu_seconds": joined["read_back_pump_cpu_seconds"],
        "join_read_back_cpu_seconds": joined["read_back_cpu_seconds"],
        "join_read_back_calls": joined["read_back_calls"],
        "join_bytes_received": joined["bytes_received"],
        "baseline_client_join": [baseline_before, baseline_after],
        "ratio_join": round(joined["seconds"] / max(base_seconds, 1e-9), 2),
        "room_keys": baseline_after["keys"],
        "hash_equal": pub_state["hash"] == join_state["hash"],
        "hash": join_state["hash"][:16],
        "apply_errors": join_state["errors"],
        "joiner_batches_sent": join_state["batches"],
        "messages": {"publisher": pub_state["messages"], "joiner": join_state["messages"]},
        "wall_seconds": round(time.perf_counter() - total, 1),
    }


def bench_drag(args: argparse.Namespace) -> dict[str, Any]:
    room = f"bench-drag-{secrets.token_hex(4)}"
    total = time.perf_counter()
    with Server() as server:
        artist = Worker("dragger")
        try:
            artist("build", objects=0, grid=args.grid)
            artist("connect", servers=server.address)
            artist("publish", room=room, timeout=60)
            result = artist("drag", steps=args.steps)
        finally:
            artist.close()
    whole = result["whole_bytes_per_step"] * args.steps
    return {
        "bench": "addon-drag",
        "steps": args.steps,
        "vertices": result["vertices"],
        "batches": result["batches"],
        "bytes_sent": result["bytes_sent"],
        "bytes_per_step": round(result["bytes_sent"] / args.steps, 1),
        "transform_key_bytes": result["transform_key_bytes"],
        "whole_keys": result["whole_keys"],
        "whole_bytes_per_step": result["whole_bytes_per_step"],
        "whole_bytes": whole,
        "ratio_whole_to_sent": round(whole / max(result["bytes_sent"], 1), 1),
        "seconds": result["seconds"],
        "wall_seconds": round(time.perf_counter() - total, 1),
    }


# name -> (setup script, not measured; the measured edit). The setup runs in the room before the edit.
EDITS: dict[str, tuple[str, str]] = {
    "location": ("", 'bpy.data.objects["Box.000"].location.x = 3.0'),
    "rotation": ("", 'bpy.data.objects["Box.000"].rotation_euler.z = 1.0'),
    "scale": ("", 'bpy.data.objects["Box.000"].scale = (2.0, 2.0, 2.0)'),
    "object name": ("", 'bpy.data.objects["Box.000"].name = "Crate"'),
    "object visibility": ("", 'bpy.data.objects["Crate"].hide_render = True'),
    "collection link": (
        'bpy.context.scene.collection.children.link(bpy.data.collections.new("Set"))',
        'bpy.data.collections["Set"].objects.link(bpy.data.objects["Crate"])',
    ),
    "modifier setting": (
        'bpy.data.objects["Crate"].modifiers.new("Smooth", "SUBSURF")',
        'bpy.data.objects["Crate"].modifiers["Smooth"].levels = 2',
    ),
    "material setting": ("", 'bpy.data.materials["Paint"].roughness = 0.25'),
    "material node socket": (
        "",
        'bpy.data.materials["Paint"].node_tree.nodes["Principled BSDF"].inputs["Roughness"]'
        ".default_value = 0.1",
    ),
    "light setting": (
        'lamp = bpy.data.objects.new("Lamp", bpy.data.lights.new("Lamp", "POINT"))\n'
        "bpy.context.scene.collection.objects.link(lamp)",
        'bpy.data.lights["Lamp"].energy = 500.0',
    ),
    "camera setting": (
        'bpy.context.scene.collection.objects.link(bpy.data.objects.new("Cam", bpy.data.cameras.new("Cam")))',
        'bpy.data.cameras["Cam"].lens = 85.0',
    ),
    "scene setting": ("", "bpy.context.scene.frame_end = 120"),
    "mesh vertex (8-vertex box)": ("", 'bpy.data.objects["Crate"].data.vertices[0].co.x = -0.5'),
    "current frame (following)": (
        "__import__('blender_addon.session').session.current().follow_view(True)",
        "bpy.context.scene.frame_current = 12",
    ),
}


def bench_edits(args: argparse.Namespace) -> dict[str, Any]:
    room = f"bench-edits-{secrets.token_hex(4)}"
    total = time.perf_counter()
    edits: dict[str, Any] = {}
    with Server() as server:
        artist = Worker("editor")
        try:
            artist("build", objects=1, grid=0)
            artist("connect", servers=server.address)
            artist("publish", room=room, timeout=60)
            for name, (setup, script) in EDITS.items():
                if setup:
                    artist("edit", script=setup)
                result = artist("edit", script=script)
                edits[name] = {"bytes": result["bytes_sent"], "keys": result["keys"]}
        finally:
            artist.close()
    return {"bench": "addon-edits", "edits": edits, "wall_seconds": round(time.perf_counter() - total, 1)}


PAIR_EXPR = (
    'tuple(round(v, 4) for v in (*bpy.data.objects["Box.000"].location, *bpy.data.objects["Box.000"].scale))'
)


def bench_pair(args: argparse.Namespace) -> dict[str, Any]:
    room = f"bench-pair-{secrets.token_hex(4)}"
    total = time.perf_counter()
    seconds: list[float] = []
    with Server() as server:
        ana, ben = Worker("ana"), Worker("ben")
        try:
            ana("build", objects=1, grid=0)
            for worker in (ana, ben):
                worker("connect", servers=server.address)
            ana("publish", room=room, timeout=60)
            ben("join", room=room, timeout=60)
            for i in range(1, args.rounds + 1):
                x, s = float(i), 1.0 + i / 10
                ana.send("edit", script=f'bpy.data.objects["Box.000"].location.x = {x}', settle=False)
                ben.send("edit", script=f'bpy.data.objects["Box.000"].scale = ({s}, {s}, {s})', settle=False)
                edited = [worker.call_reply(None) for worker in (ana, ben)]
                expected = [round(v, 4) for v in (x, 0.0, 0.0, s, s, s)]
                for worker in (ana, ben):
                    worker.send("watch_expr", expr=f"list({PAIR_EXPR})", expected=expected, timeout=30)
                seen = [worker.call_reply(None) for worker in (ana, ben)]
                start = min(e["edit_at"] for e in edited)
                seconds.append(round(max(s["seen_at"] for s in seen) - start, 4))
        finally:
            ana.close()
            ben.close()
    ordered = sorted(seconds)
    return {
        "bench": "addon-pair",
        "rounds": args.rounds,
        "converged_seconds": seconds,
        "p50_seconds": ordered[len(ordered) // 2],
        "max_seconds": ordered[-1],
        "wall_seconds": round(time.perf_counter() - total, 1),
    }


def bench_play(args: argparse.Namespace) -> dict[str, Any]:
    room = f"bench-play-{secrets.token_hex(4)}"
    total = time.perf_counter()
    with Server() as server:
        player = Worker("player")
        watcher = None
        try:
            built = player(
                "build_scene",
                builder="build_animated",
                count=args.objects,
                frames=args.frames,
                rig=not args.no_rig,
            )
            player("connect", servers=server.address)
            player("publish", room=room, timeout=60)
            watcher = Worker("watcher")
            watcher("connect", servers=server.address)
            watcher("join", room=room, timeout=60)
            played = player("play", frames=args.frames, timeout=300)
        finally:
            for worker in (watcher, player):
                if worker is not None:
                    worker.close()
    return {
        "bench": "addon-play",
        "animated_objects": args.objects,
        "objects": built["objects"],
        **{k: v for k, v in played.items() if k != "ok"},
        "wall_seconds": round(time.perf_counter() - total, 1),
    }


def bench_rig_join(args: argparse.Namespace) -> dict[str, Any]:
    room = f"bench-rig-{secrets.token_hex(4)}"
    total = time.perf_counter()
    with Server() as server:
        publisher = Worker("publisher")
        joiner = None
        try:
            built = publisher("build_scene", builder="build_rig")
            publisher("connect", servers=server.address)
            publisher("publish", room=room, timeout=60)
            pub_state = publisher("state")
            joiner = Worker("joiner")
            joiner("connect", servers=server.address)
            joined = joiner("join", room=room, timeout=60)
            join_state = joiner("state")
        finally:
            for worker in (joiner, publisher):
                if worker is not None:
                    worker.close()
    return {
        "bench": "addon-rig-join",
        **{k: v for k, v in built.items() if k != "ok"},
        "join_seconds": joined["seconds"],
        "join_snapshot_end_seconds": joined["snapshot_end_seconds"],
        "join_after_snapshot_seconds": joined["after_snapshot_seconds"],
        "join_apply_step_seconds": joined["apply_step_seconds"],
        "join_bytes_received": joined["bytes_received"],
        "hash_equal": pub_state["hash"] == join_state["hash"],
        "apply_errors": join_state["errors"],
        "wall_seconds": round(time.perf_counter() - total, 1),
    }


def bench_idle(args: argparse.Namespace) -> dict[str, Any]:
    room = f"bench-idle-{secrets.token_hex(4)}"
    total = time.perf_counter()
    with Server() as server:
        artist = Worker("idler")
        try:
            built = artist("build", objects=args.objects, grid=args.grid)
            artist("connect", servers=server.address)
            artist("publish", room=room, timeout=120)
            profile = str(Path(args.profile).resolve()) if args.profile else None
            result = artist("idle", seconds=args.seconds, profile=profile, timeout=args.seconds + 60)
        finally:
            artist.close()
    return {
        "bench": "addon-idle",
        "addon_root": Worker.addon_root or str(ROOT),
        "objects": built["objects"],
        "vertices": built["vertices"],
        **{k: v for k, v in result.items() if k != "ok"},
        "wall_seconds": round(time.perf_counter() - total, 1),
    }


def bench_live_drag(args: argparse.Namespace) -> dict[str, Any]:
    room = f"bench-live-drag-{secrets.token_hex(4)}"
    total = time.perf_counter()
    workers: list[Worker] = []
    with Server() as server:
        try:
            sender = Worker("sender")
            workers.append(sender)
            built = sender("build", objects=args.objects, grid=args.grid)
            sender("connect", servers=server.address)
            sender("publish", room=room, timeout=120)
            receivers = []
            for i in range(args.receivers):
                receiver = Worker(f"receiver{i}")
                workers.append(receiver)
                receiver("connect", servers=server.address)
                receiver("join", room=room, timeout=120)
                receivers.append(receiver)
            for worker in workers:  # every process done with its scans after publishing or joining
                worker.send("settle", seconds=args.settle)
            for worker in workers:
                worker.call_reply(None, timeout=args.settle + 120)
            final = [args.steps * 0.05, args.steps * 0.02, 0.0]
            for receiver in receivers:
                receiver.send("watch", object="Terrain", location=final, timeout=args.steps / args.rate + 60)
            drag = sender("paced_drag", object="Terrain", steps=args.steps, rate=args.rate)
            seen = [receiver.call_reply(None, timeout=args.steps / args.rate + 90) for receiver in receivers]
        finally:
            for worker in reversed(workers):
                worker.close()
    lags = [round(s["seen_at"] - drag["last_step_at"], 4) for s in seen]
    return {
        "bench": "addon-live-drag",
        "addon_root": Worker.addon_root or str(ROOT),
        "objects": built["objects"],
        "vertices": built["vertices"],
        "steps": args.steps,
        "rate": args.rate,
        "sender_seconds": drag["seconds"],
        "ideal_seconds": round((args.steps - 1) / args.rate, 3),
        "sender_step_p50_ms": drag["step_p50_ms"],
        "sender_step_max_ms": drag["step_max_ms"],
        "receiver_lag_seconds": lags,
        "last_receiver_lag_seconds": max(lags),
        "receiver_pump_max_ms": [s["pump_max_ms"] for s in seen],
        "wall_seconds": round(time.perf_counter() - total, 1),
    }


# ---- command line ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python tools/bench/addon.py", description=__doc__.split("\n\n")[0])
    kinds = parser.add_subparsers(dest="bench", required=True)
    join = kinds.add_parser("join", help="a fresh Blender joins a room with many objects and a large mesh")
    join.add_argument("--objects", type=int, default=100, help="small mesh objects besides the grid")
    join.add_argument("--grid", type=int, default=1000, help="grid of N x N vertices (0: none)")
    join.add_argument("--grids", type=int, default=1, help="how many such grids (separate meshes)")
    join.add_argument("--timeout", type=float, default=90.0)
    join.add_argument("--move", action="store_true", help=f"move {MOVED} as soon as the scene is usable")
    join.add_argument("--profile", default=None, help="write cProfile stats of the joiner's pumps here")
    join.add_argument("--json", action="store_true")
    drag = kinds.add_parser("drag", help="bytes sent while dragging one object")
    drag.add_argument("--steps", type=int, default=100)
    drag.add_argument("--grid", type=int, default=100, help="the dragged object's mesh: N x N vertices")
    drag.add_argument("--json", action="store_true")
    idle = kinds.add_parser("idle", help="main-thread time of the timer while nobody works, in a heavy scene")
    idle.add_argument("--objects", type=int, default=500, help="small mesh objects besides the grid")
    idle.add_argument("--grid", type=int, default=447, help="grid of N x N vertices (447: 199,809)")
    idle.add_argument("--seconds", type=float, default=20.0)
    idle.add_argument("--profile", help="write a cProfile of the timer calls to this file")
    idle.add_argument("--json", action="store_true")
    live = kinds.add_parser("live-drag", help="a paced drag in a heavy scene, seen by two receivers")
    live.add_argument("--objects", type=int, default=500, help="small mesh objects besides the grid")
    live.add_argument("--grid", type=int, default=447, help="grid of N x N vertices (447: 199,809)")
    live.add_argument("--steps", type=int, default=100)
    live.add_argument("--rate", type=float, default=60.0, help="steps a second")
    live.add_argument("--receivers", type=int, default=2)
    live.add_argument("--settle", type=float, default=3.0, help="seconds of timer before the drag")
    live.add_argument("--json", action="store_true")
    edits = kinds.add_parser("edits", help="bytes on the wire for one property edit of each kind")
    edits.add_argument("--json", action="store_true")
    pair = kinds.add_parser("pair", help="convergence time of two edits of one object at the same moment")
    pair.add_argument("--rounds", type=int, default=10)
    pair.add_argument("--json", action="store_true")
    vertex = kinds.add_parser("vertex", help="bytes sent and written when one vertex of a large mesh moves")
    vertex.add_argument("--grid", type=int, default=447, help="grid of N x N vertices (447: 199,809)")
    vertex.add_argument("--edits", type=int, default=5)
    vertex.add_argument("--json", action="store_true")
    huge = kinds.add_parser("huge", help="publish and late join of a huge mesh and a large packed texture")
    huge.add_argument("--grid", type=int, default=3163, help="grid of N x N vertices (3163: 10,004,569)")
    huge.add_argument("--image-mb", type=int, default=200, help="the packed image file, in MB")
    huge.add_argument("--timeout", type=float, default=1200.0, help="seconds for the publish, and the join")
    huge.add_argument("--json", action="store_true")
    play = kinds.add_parser("play", help="bytes sent while playing the timeline of an animated scene")
    play.add_argument("--objects", type=int, default=50, help="animated objects")
    play.add_argument("--frames", type=int, default=250)
    play.add_argument("--no-rig", action="store_true", help="animated empties only (no keyed rig, shape key)")
    play.add_argument("--json", action="store_true")
    rig = kinds.add_parser("rig-join", help="a fresh Blender joins a room holding a rigged character")
    rig.add_argument("--json", action="store_true")
    from tools.bench.addon_editmode import add_parser as add_editmode
    from tools.bench.addon_editmode import bench_editmode
    from tools.bench.addon_heavy import bench_huge, bench_vertex

    editmode = add_editmode(kinds)
    for sub in (join, drag, idle, live, edits, pair, vertex, huge, play, rig, editmode):
        sub.add_argument("--addon-root", default=None, help="load the add-on and protocol from this checkout")
    args = parser.parse_args(argv)
    Worker.addon_root = str(Path(args.addon_root).resolve()) if args.addon_root else None
    benches = {
        "join": bench_join,
        "drag": bench_drag,
        "idle": bench_idle,
        "live-drag": bench_live_drag,
        "edits": bench_edits,
        "pair": bench_pair,
        "vertex": lambda args: bench_vertex(args, Server, Worker),
        "huge": lambda args: bench_huge(args, Server, Worker),
        "play": bench_play,
        "rig-join": bench_rig_join,
        "editmode": lambda args: bench_editmode(args, Server, Worker),
    }
    result = benches[args.bench](args)
    if args.json:
        print(json.dumps(result, sort_keys=True))
    else:
        for key, value in result.items():
            print(f"{key:>24}: {value}")
    return 0 if result.get("hash_equal", True) else 1


if __name__ == "__main__":
    sys.exit(main())
