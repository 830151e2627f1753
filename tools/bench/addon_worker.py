"""The Blender side of ``tools/bench/addon.py``: one Blender process (``bpy`` with the add-on enabled)
driven by JSON lines on stdin, answering each with one ``@@ {...}`` line on stdout.

    python tools/bench/addon_worker.py NAME

It loads the add-on from this checkout, or from ``$BLENDSYNC_BENCH_ADDON_ROOT``
when set (A/B runs against an older commit's export).
"""

from __future__ import annotations

import collections
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

REPLY = "@@ "
ADDON_ROOT_ENV = "BLENDSYNC_BENCH_ADDON_ROOT"


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def worker_main(name: str) -> int:
    addon_root = os.environ.get(ADDON_ROOT_ENV)
    if addon_root:
        sys.path.insert(0, addon_root)
    home = tempfile.mkdtemp(prefix="blendsync-bench-")
    os.environ["BLENDER_USER_RESOURCES"] = home
    os.environ["XDG_CACHE_HOME"] = home
    import bpy  # noqa: I001  (addon_utils is importable only once bpy is)

    import addon_utils

    out = sys.stdout

    def reply(**fields: Any) -> None:
        out.write(REPLY + json.dumps(fields, default=repr) + "\n")
        out.flush()

    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)

    def fail(exc: BaseException) -> None:
        raise exc

    addon = addon_utils.enable("blender_addon", default_set=True, handle_error=fail)
    if addon is None:
        raise SystemExit("could not enable the add-on")
    from blender_addon import session as session_mod
    from blender_addon import sync
    from blender_addon.protocol_shim import protocol

    def current():
        session = session_mod.current()
        if session is None:
            raise RuntimeError("not connected")
        return session

    pump_profile: list[Any] = []  # a cProfile.Profile of the timer calls while one is asked for

    def timer_tick() -> float:
        """What Blender's event loop does: flush the depsgraph, run the add-on's timer, wait its interval."""
        bpy.context.view_layer.update()
        if not pump_profile:
            return session_mod._timer() or 0.05
        pump_profile[0].enable()
        try:
            return session_mod._timer() or 0.05
        finally:
            pump_profile[0].disable()

    def run_until(predicate, timeout: float) -> int:
        end = time.monotonic() + timeout
        pumps = 0
        while time.monotonic() < end:
            interval = timer_tick()
            pumps += 1
            if predicate():
                return pumps
            time.sleep(interval)
        raise TimeoutError("timed out")

    def settled(session) -> bool:
        return (
            session.connected
            and session.room is not None
            and session._join is None
            and not session.busy
            and not session.unacked
        )

    def build(objects: int, grid: int, grids: int = 1) -> dict[str, Any]:
        scene = bpy.context.scene
        coll = bpy.data.collections.new("Props")
        scene.collection.children.link(coll)
        mat = bpy.data.materials.new("Paint")
        base = bpy.data.meshes.new("Box")
        s = 0.2
        verts = [(x * s, y * s, z * s) for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)]
        faces = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
        base.from_pydata(verts, [], faces)
        base.materials.append(mat)
        for i in range(objects):
            me = base.copy()
            me.name = f"Box.{i:03d}"
            ob = bpy.data.objects.new(f"Box.{i:03d}", me)
            ob.location = (i % 10, i // 10, 0.0)
            ob.rotation_euler = (0.0, 0.0, i * 0.1)
            coll.objects.link(ob)
        bpy.data.meshes.remove(base)
        vertices = 0
        for i in range(grids if grid else 0):
            bpy.ops.mesh.primitive_grid_add(
                x_subdivisions=grid - 1,
                y_subdivisions=grid - 1,
                size=10,
                calc_uvs=False,
                location=(12.0 * i, -12.0, 0.0),
            )
            ob = bpy.context.active_object
            ob.name = ob.data.name = "Terrain" if i == 0 else f"Terrain.{i:03d}"
            vertices += len(ob.data.vertices)
        bpy.context.view_layer.update()
        values = sync.serialise_scene()
        return {
            "objects": len(bpy.data.objects),
            "vertices": vertices,
            "keys": len(values),
            "key_bytes": sum(len(k) + len(v) for k, v in values.items()),
        }

    def publish(room: str, timeout: float) -> dict[str, Any]:
        session = current()
        sent0 = session.net.bytes_sent
        start = time.perf_counter()
        session.create_room(room, keep_open=True, send_scene=True)
        # Joined first; the next pump's scan sends the whole scene as the room's first batch.
        run_until(lambda: session.room == room and settled(session) and session.tracker.values, timeout)
        return {
            "seconds": round(time.perf_counter() - start, 3),
            "bytes_sent": session.net.bytes_sent - sent0,
        }

    def placement(ob: Any) -> list[float]:
        return [*ob.location, *ob.rotation_euler, *ob.scale]

    def usable(expect: dict[str, list[float]]) -> bool:
        """Every object of ``expect`` is in the view layer (selectable) with its expected location, rotation
        and scale."""
        objects = bpy.context.view_layer.objects
        if len(objects) < len(expect):
            return False
        for name, wanted in expect.items():
            ob = objects.get(name)
            if ob is None or any(abs(a - b) > 1e-5 for a, b in zip(placement(ob), wanted, strict=True)):
                return False
        return True

    def move_now(name: str, location: list[float]) -> None:
        """What an artist does first: select the object, make it active, move it."""
        ob = bpy.context.view_layer.objects[name]
        ob.select_set(True)
        bpy.context.view_layer.objects.active = ob
        ob.location = location

    def join(
        room: str,
        timeout: float,
        expect: dict[str, list[float]] | None = None,
        move: dict[str, Any] | None = None,
        profile: str | None = None,
    ) -> dict[str, Any]:
        """Join and pump until everything is applied; with ``expect`` (object name -> placement), also when
        the scene was first usable (:func:`usable`), and with ``move`` ({object, location}) the object is
        selected and moved at that moment (the move must reach the room: the caller watches for it).
        With ``profile``, cProfile of the pumps is written there."""
        session = current()
        received0 = session.net.bytes_received
        # name -> wall seconds, name_cpu -> this thread's CPU, name_calls (the step and the read-back's calls)
        spent: dict[str, float] = collections.defaultdict(float)

        def timed(name: str, call: Callable[..., Any]) -> Callable[..., Any]:
            def timed_call(*args: Any, **kwargs: Any) -> Any:
                t0, c0 = time.perf_counter(), time.thread_time()
                try:
                    return call(*args, **kwargs)
                finally:
                    spent[name] += time.perf_counter() - t0
                    spent[f"{name}_cpu"] += time.thread_time() - c0
                    spent[f"{name}_calls"] += 1

            return timed_call

        session.applier.step = timed("apply", session.applier.step)
        read_unread = getattr(session.tracker, "read_unread", None)  # trees before it read back as they went
        if read_unread is not None:
            session.tracker.read_unread = timed("read", read_unread)
        profiler = None
        if profile:
            import cProfile

            profiler = cProfile.Profile()
        start = time.perf_counter()
        session.join_room(room)
        snapshot_done = usable_at = moved_at = usable_cpu = move_sent = None
        batches_at_move = 0
        pumps = 0
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            t0, c0 = time.perf_counter(), time.thread_time()
            if profiler is not None:
                profiler.enable()
            interval = timer_tick()
            if profiler is not None:
                profiler.disable()
            spent["pump"] += time.perf_counter() - t0
            spent["pump_cpu"] += time.thread_time() - c0
            pumps += 1
            if moved_at is not None and move_sent is None and session.stats["batches"] > batches_at_move:
                move_sent = time.time()  # the move's batch left while the join fills in
            if snapshot_done is None and session.room == room and session._join is None:
                snapshot_done = time.perf_counter()
            if expect is not None and usable_at is None and usable(expect):
                usable_at = time.perf_counter()
                usable_cpu = spent["pump_cpu"]  # the joiner's CPU in its pumps until then
                if move is not None:
                    move_now(move["object"], move["location"])
                    moved_at = time.time()
                    batches_at_move = session.stats["batches"]
            if snapshot_done is not None and not session.busy:
                break
            time.sleep(interval)
        else:
            raise TimeoutError("join timed out")
        done = time.perf_counter()
        done_cpu = spent["pump_cpu"]
        # What the applier left unread, the pumps read back after (trees before it read back as they went).
        while getattr(session.tracker, "unread", 0) and time.monotonic() < end:
            c0 = time.thread_time()
            interval = timer_tick()
            spent["pump_cpu"] += time.thread_time() - c0
            time.sleep(interval)
        read_back = time.perf_counter()
        del session.applier.step
        if read_unread is not None:
            del session.tracker.read_unread
        if profiler is not None:
            profiler.dump_stats(profile)
        return {
            "usable_seconds": None if usable_at is None else round(usable_at - start, 3),
            "usable_pump_cpu_seconds": None if usable_cpu is None else round(usable_cpu, 3),
            "moved_at": moved_at,
            "move_sent_while_joining": None if move_sent is None else round(move_sent - moved_at, 3),
            "seconds": round(done - start, 3),
            "snapshot_end_seconds": round(snapshot_done - start, 3),
            "after_snapshot_seconds": round(done - snapshot_done, 3),
            "apply_step_seconds": round(spent["apply"], 3),
            "apply_step_cpu_seconds": round(spent["apply_cpu"], 3),
            "pump_cpu_seconds": round(done_cpu, 3),
            "read_back_seconds": round(read_back - start, 3),  # applied, and read back for the tracker
            "read_back_pump_cpu_seconds": round(spent["pump_cpu"], 3),
            "read_back_cpu_seconds": round(spent["read_cpu"], 3),  # in ChangeTracker.read_unread
            "read_back_calls": int(spent["read_calls"]),
            "pump_seconds": round(spent["pump"], 3),
            "pumps": pumps,
            "bytes_received": session.net.bytes_received - received0,
        }

    def build_scene(builder: str, **kwargs: Any) -> dict[str, Any]:
        """One of the test suite's scene builders (tests/blender/scene_builders.py), e.g. the rig."""
        sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "blender"))
        import scene_builders

        getattr(scene_builders, builder)(**kwargs)
        scene_builders.evaluate_scenes()
        values = sync.serialise_scene()
        return {
            "objects": len(bpy.data.objects),
            "keys": len(values),
            "key_bytes": sum(len(k) + len(v) for k, v in values.items()),
        }

    def play(frames: int) -> dict[str, Any]:
        """Play the timeline the way Blender does (a frame change, then its timer), counting what the
        session sends: batches (room writes) and their bytes, and every byte on the socket."""
        session = current()
        run_until(lambda: settled(session), 30)
        written = {"batches": 0, "bytes": 0}
        write = session.client_session.write

        def counting_write(ops):
            result = write(ops)
            written["batches"] += 1
            written["bytes"] += len(protocol.encode_frame(result[1].to_body()))
            return result

        session.client_session.write = counting_write
        sent0, seq0 = session.net.bytes_sent, session.last_seq
        scene = bpy.context.scene
        start = time.perf_counter()
        for frame in range(1, frames + 1):
            scene.frame_set(frame)
            timer_tick()
        seconds = time.perf_counter() - start
        run_until(lambda: settled(session), 30)
        time.sleep(0.2)  # let the network thread finish writing
        del session.client_session.write
        return {
            "frames": frames,
            "batches": written["batches"],
            "batch_bytes": written["bytes"],
            "socket_bytes_sent": session.net.bytes_sent - sent0,
            "seq_advance": session.last_seq - seq0,
            "seconds": round(seconds, 3),
        }

    def drag(steps: int) -> dict[str, Any]:
        session = current()
        ob = bpy.data.objects["Terrain"]
        view_layer = bpy.context.view_layer
        run_until(lambda: settled(session), 30)
        whole = {**sync.serialise_datablock(ob), **sync.serialise_datablock(ob.data)}
        frame = protocol.encode_frame(
            protocol.Batch(op_id=1, ops=[["set", k, v] for k, v in whole.items()]).to_body()
        )
        transform_key = sync.make_key("obj", sync.get_uuid(ob), "location")
        sent0, batches0 = session.net.bytes_sent, session.stats["batches"]
        start = time.perf_counter()
        for i in range(steps):
            ob.location = ((i + 1) * 0.05, (i + 1) * 0.02, 0.0)
            view_layer.update()
            session_mod.pump()
        run_until(lambda: settled(session), 30)
        seconds = time.perf_counter() - start
        time.sleep(0.2)  # let the network thread finish writing
        return {
            "vertices": len(ob.data.vertices),
            "batches": session.stats["batches"] - batches0,
            "bytes_sent": session.net.bytes_sent - sent0,
            "transform_key_bytes": len(transform_key) + len(session.tracker.values[transform_key]),
            "whole_keys": len(whole),
            "whole_bytes_per_step": len(frame),
            "seconds": round(seconds, 3),
        }

    def pack_image(megabytes: int) -> dict[str, Any]:
        """A packed image file of ``megabytes`` MB of incompressible bytes (a large texture's file)."""
        data = os.urandom(megabytes * 1_000_000)
        img = bpy.data.images.new("Texture", 1, 1)
        img.pack(data=data, data_len=len(data))
        img.source = "FILE"
        return {"image_bytes": len(data)}

    def memory(reset: bool) -> dict[str, Any]:
        """This process's resident memory now and its peak since the last reset (Linux); with ``reset``
        the heap's free memory is first given back (building a grid leaves ~0.7 KB per vertex of it, which
        later allocations reuse unseen) and the peak starts again from now, so a phase's own peak shows."""
        if reset:
            import ctypes

            ctypes.CDLL("libc.so.6").malloc_trim(0)
        with open("/proc/self/status") as status:
            lines = [line.split() for line in status if line.startswith("Vm")]
        fields = {words[0].rstrip(":"): int(words[1]) * 1024 for words in lines}
        if reset:
            with open("/proc/self/clear_refs", "w") as clear:
                clear.write("5")
        return {"rss": fields["VmRSS"], "peak": fields["VmHWM"]}

    def move_vertex(index: int) -> dict[str, Any]:
        """Move one vertex of the grid and wait for the ack: what went out for that one edit."""
        session = current()
        run_until(lambda: settled(session), 60)
        me = bpy.data.objects["Terrain"].data
        transfer = getattr(session, "chunks", None)  # None: an add-on from before chunked values (A/B runs)
        puts = (lambda: transfer.stats["put"]) if transfer is not None else (lambda: 0)
        sent0, puts0 = session.net.bytes_sent, puts()
        start = time.perf_counter()
        me.vertices[index % len(me.vertices)].co.z += 0.5
        me.update()
        bpy.context.view_layer.update()
        session_mod.pump()
        run_until(lambda: settled(session), 60)
        seconds = time.perf_counter() - start
        time.sleep(0.1)  # let the network thread finish writing
        geometry = session.tracker.values[sync.make_key("mesh", sync.get_uuid(me), "geometry")]
        return {
            "vertices": len(me.vertices),
            "bytes_sent": session.net.bytes_sent - sent0,
            "chunks_put": puts() - puts0,
            "geometry_value_bytes": len(geometry),
            "seconds": round(seconds, 3),
        }

    def idle(seconds: float, profile: str | None = None) -> dict[str, Any]:
        """Nobody works: the timer runs for ``seconds``; the main-thread time of each call is measured
        (with ``profile``, a cProfile of the calls is written there)."""
        import cProfile

        session = current()
        run_until(lambda: settled(session), 60)
        profiler = cProfile.Profile() if profile else None
        calls: list[float] = []
        cpu: list[float] = []  # this thread's CPU time: what other processes on the machine do not inflate
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            bpy.context.view_layer.update()
            if profiler is not None:
                profiler.enable()
            t0, c0 = time.perf_counter(), time.thread_time()
            interval = session_mod._timer() or 0.05
            calls.append(time.perf_counter() - t0)
            cpu.append(time.thread_time() - c0)
            if profiler is not None:
                profiler.disable()
            time.sleep(interval)
        if profiler is not None and profile:
            profiler.dump_stats(profile)
        ms = [c * 1000 for c in calls]
        cpu_ms = [c * 1000 for c in cpu]
        return {
            "seconds": seconds,
            "timer_calls": len(ms),
            "timer_p50_ms": round(_percentile(ms, 0.50), 3),
            "timer_p99_ms": round(_percentile(ms, 0.99), 3),
            "timer_max_ms": round(max(ms), 3),
            "timer_cpu_p50_ms": round(_percentile(cpu_ms, 0.50), 3),
            "timer_cpu_p99_ms": round(_percentile(cpu_ms, 0.99), 3),
            "timer_cpu_max_ms": round(max(cpu_ms), 3),
            "calls_over_2ms": sum(1 for m in ms if m > 2.0),
        }

    def settle(seconds: float) -> dict[str, Any]:
        """Run the timer for a while (the scans after joining are done)."""
        session = current()
        end = time.monotonic() + seconds
        while time.monotonic() < end or not settled(session):
            time.sleep(timer_tick())
        return {}

    def paced_drag(object_name: str, steps: int, rate: float) -> dict[str, Any]:
        """Move an object ``steps`` times, ``rate`` steps a second: location, depsgraph update, one pump;
        the timer runs in the gaps, as Blender's event loop would."""
        session = current()
        ob = bpy.data.objects[object_name]
        view_layer = bpy.context.view_layer
        step_times: list[float] = []
        start = time.perf_counter()
        for i in range(steps):
            due = start + i / rate
            while True:
                now = time.perf_counter()
                if now >= due:
                    break
                time.sleep(min(due - now, 0.005))
            t0 = time.perf_counter()
            ob.location = ((i + 1) * 0.05, (i + 1) * 0.02, 0.0)
            view_layer.update()
            session_mod.pump()
            step_times.append(time.perf_counter() - t0)
        seconds = time.perf_counter() - start
        last_step_at = time.time()
        run_until(lambda: settled(session), 30)
        ms = [t * 1000 for t in step_times]
        return {
            "seconds": round(seconds, 3),
            "last_step_at": last_step_at,
            "step_p50_ms": round(_percentile(ms, 0.5), 3),
            "step_max_ms": round(max(ms), 3),
        }

    def watch(object_name: str, location: list[float], timeout: float) -> dict[str, Any]:
        """Run the timer until the object shows ``location``; when (wall clock) it did."""
        pumps: list[float] = []
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            bpy.context.view_layer.update()
            t0 = time.perf_counter()
            interval = session_mod._timer() or 0.05
            pumps.append(time.perf_counter() - t0)
            ob = bpy.data.objects.get(object_name)
            if ob is not None and all(abs(a - b) < 1e-5 for a, b in zip(ob.location, location, strict=True)):
                return {"seen_at": time.time(), "pump_max_ms": round(max(pumps) * 1000, 3)}
            time.sleep(interval)
        session = current()
        ob = bpy.data.objects.get(object_name)
        raise TimeoutError(
            f"{object_name} never reached {location}: {list(ob.location) if ob else None},"
            f" seq {session.last_seq}, {session.stats}, {session.messages[-3:]},"
            f" errors {session.applier.errors[-3:]}"
        )

    def edit(script: str, settle: bool) -> dict[str, Any]:
        """Run an edit script, flush and pump once (the edit goes out); with ``settle``, pump until it is
        acknowledged and report the bytes written and the keys sent."""
        session = current()
        if settle:
            run_until(lambda: settled(session), 30)
            time.sleep(0.2)  # presence and the network thread quiet before counting
            timer_tick()
        sent0, last_op = session.net.bytes_sent, session.client_session.last_op_id
        edit_at = time.time()
        exec(compile(script, "<edit>", "exec"), {"bpy": bpy})
        timer_tick()
        keys = sorted(
            op[1].split("/", 2)[-1] for i, ops in session.unacked.items() if i > last_op for op in ops
        )
        if not settle:
            return {"edit_at": edit_at}
        run_until(lambda: settled(session), 30)
        time.sleep(0.2)  # let the network thread finish writing
        return {"bytes_sent": session.net.bytes_sent - sent0, "keys": keys, "edit_at": edit_at}

    def watch_expr(expr: str, expected: Any, timeout: float) -> dict[str, Any]:
        """Run the timer until ``expr`` evaluates to ``expected``; when (wall clock) it did."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            interval = timer_tick()
            if eval(expr, {"bpy": bpy}) == expected:
                return {"seen_at": time.time()}
            time.sleep(interval)
        raise TimeoutError(f"{expr} never became {expected!r}")

    from tools.bench import addon_worker_edit

    helpers = addon_worker_edit.Helpers(bpy, current, timer_tick, run_until, settled, pump_profile)
    reply(ok=True, ready=True, pid=os.getpid())
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        command = json.loads(line)
        cmd = command.pop("cmd")
        if cmd == "quit":
            reply(ok=True)
            break
        try:
            if cmd == "build":
                result = build(int(command["objects"]), int(command["grid"]), int(command.get("grids", 1)))
            elif cmd == "connect":
                session = session_mod.start(command["servers"], name=name)
                run_until(lambda session=session: session.connected, 20)
                result = {}
            elif cmd == "publish":
                result = publish(command["room"], float(command.get("timeout", 60)))
            elif cmd == "join":
                result = join(
                    command["room"],
                    float(command.get("timeout", 60)),
                    command.get("expect"),
                    command.get("move"),
                    command.get("profile"),
                )
            elif cmd == "placements":
                result = {"placements": {ob.name: placement(ob) for ob in bpy.context.view_layer.objects}}
            elif cmd == "build_scene":
                result = build_scene(command.pop("builder"), **command)
            elif cmd == "play":
                result = play(int(command["frames"]))
            elif cmd == "drag":
                result = drag(int(command["steps"]))
            elif cmd == "idle":
                result = idle(float(command["seconds"]), command.get("profile"))
            elif cmd == "pack_image":
                result = pack_image(int(command["megabytes"]))
            elif cmd == "move_vertex":
                result = move_vertex(int(command["index"]))
            elif cmd == "settle":
                result = settle(float(command["seconds"]))
            elif cmd == "paced_drag":
                result = paced_drag(command["object"], int(command["steps"]), float(command["rate"]))
            elif cmd == "watch":
                result = watch(command["object"], command["location"], float(command["timeout"]))
            elif cmd == "edit":
                result = edit(command["script"], bool(command.get("settle", True)))
            elif cmd == "watch_expr":
                result = watch_expr(command["expr"], command["expected"], float(command.get("timeout", 30)))
            elif cmd in addon_worker_edit.COMMANDS:
                result = addon_worker_edit.COMMANDS[cmd](helpers, **command)
            elif cmd == "memory":
                result = memory(bool(command.get("reset", False)))
            elif cmd == "state":
                session = current()
                timer_tick()  # the depsgraph evaluated once more: animation, drivers and constraints written
                result = {
                    "hash": sync.scene_hash(),
                    "seq": session.last_seq,
                    "errors": session.applier.errors[-5:],
                    "messages": session.messages[-5:],
                    "batches": session.stats["batches"],  # sent: a joiner that only joined sends none
                }
            else:
                raise ValueError(f"unknown command {cmd!r}")
        except Exception as exc:
            import traceback

            reply(ok=False, error=f"{type(exc).__name__}: {exc}", trace=traceback.format_exc())
        else:
            reply(ok=True, **result)
    session_mod.stop()
    addon_utils.disable("blender_addon", default_set=True)
    return 0


if __name__ == "__main__":
    sys.exit(worker_main(sys.argv[1] if len(sys.argv) > 1 else "worker"))
