"""One artist: a Blender process with the add-on enabled, driven by a test over stdin/stdout.

Run as ``python artist.py NAME`` (a plain subprocess: multiprocessing's spawn
cannot re-import bpy). Each stdin line is a JSON command, each answer one
JSON line on stdout prefixed with ``@@ `` (Blender may print other things):

    {"cmd": "connect", "servers": "127.0.0.1:1234", "token": null, "lock_selection": false}
        -> {"ok": true, "client_id": ...}
    {"cmd": "create_room", "room": "r", "keep_open": true, "send_scene": true}
    {"cmd": "join", "room": "r", "password": null}
    {"cmd": "edit", "script": "<python using bpy, addon>"}  (then view_layer.update() and one pump)
    {"cmd": "eval", "expr": "<python expression>"}       -> {"value": ...}
    {"cmd": "pump_until_idle", "quiet": 0.3, "timeout": 20}
    {"cmd": "pump_until", "expr": "<python predicate>", "timeout": 20} -> {"met": bool}
    {"cmd": "play", "start": 1, "end": 100, "at": {"50": "<python>"}}  -> {"batches", "bytes_sent"}
    {"cmd": "state"}                                       -> {"hash", "seq", "unacked", "pending", ...}
    {"cmd": "drop"}                                        (close the socket: the add-on reconnects)
    {"cmd": "leave"} / {"cmd": "quit"}

Timers do not run when Blender is a Python module, so this script calls the
add-on's ``pump()`` itself, and ``view_layer.update()`` stands in for the
event loop's depsgraph flush.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

_HOME = tempfile.mkdtemp(prefix="blendsync-artist-")
os.environ["BLENDER_USER_RESOURCES"] = _HOME
os.environ["XDG_CACHE_HOME"] = _HOME

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import bpy  # noqa: E402

BLENDER = bpy.app.version  # addon_utils is importable only once bpy is

import addon_utils  # noqa: E402

NAME = sys.argv[1] if len(sys.argv) > 1 else "artist"
_out = sys.stdout


def reply(**fields) -> None:
    _out.write("@@ " + json.dumps(fields, default=repr) + "\n")
    _out.flush()


def tick() -> None:
    bpy.context.view_layer.update()
    addon.pump()


def pump_until(predicate, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        tick()
        if predicate():
            return True
        time.sleep(0.005)
    return False


def current():
    session = addon.session.current()
    if session is None:
        raise RuntimeError("not connected")
    return session


def settled(session) -> bool:
    return session.connected and session.idle and (session.room is None or session._join is None)


def pump_until_idle(quiet: float, timeout: float) -> bool:
    """Pump until nothing has been queued either way for ``quiet`` seconds."""
    session = current()
    end = time.monotonic() + timeout
    calm_since = None
    while time.monotonic() < end:
        before = (session.last_seq, session.revision, len(session.unacked))
        tick()
        if settled(session) and before == (session.last_seq, session.revision, len(session.unacked)):
            calm_since = calm_since or time.monotonic()
            if time.monotonic() - calm_since >= quiet:
                return True
        else:
            calm_since = None
        time.sleep(0.005)
    return False


def handle(command: dict) -> dict:
    cmd = command["cmd"]
    timeout = float(command.get("timeout", 20.0))
    if cmd == "connect":
        session = addon.session.start(
            command["servers"],
            name=command.get("name", NAME),
            color=command.get("color", (0.9, 0.3, 0.1)),
            token=command.get("token"),
            lock_selection=command.get("lock_selection", False),
        )
        if not pump_until(lambda: session.connected, timeout):
            raise RuntimeError(f"could not connect: {session.status}")
        return {"client_id": session.client_id}
    if cmd == "create_room":
        session = current()
        session.create_room(
            command["room"],
            keep_open=command.get("keep_open", False),
            password=command.get("password"),
            send_scene=command.get("send_scene", False),
        )
        if not pump_until(lambda: session.room == command["room"] and settled(session), timeout):
            raise RuntimeError(f"could not create/join: {session.messages[-3:]}")
        return {"seq": session.last_seq}
    if cmd == "join":
        session = current()
        session.join_room(command["room"], password=command.get("password"))
        if not pump_until(lambda: session.room == command["room"] and settled(session), timeout):
            raise RuntimeError(f"could not join: {session.messages[-3:]}")
        return {"seq": session.last_seq}
    if cmd == "edit":
        exec(compile(command["script"], "<edit>", "exec"), {"bpy": bpy, "__name__": "edit", "addon": addon})
        tick()
        return {}
    if cmd == "eval":
        return {"value": eval(command["expr"], {"bpy": bpy, "session": addon.session.current()})}
    if cmd == "pump":
        for _ in range(int(command.get("times", 1))):
            tick()
        return {}
    if cmd == "play":
        # Playback as the timeline does it: a frame change, the depsgraph flush and the sync loop, per
        # frame; a script of ``at`` runs at its frame (an edit during playback). Counts what the
        # session sent while playing: batches (room writes) and every byte on the socket.
        session = current()
        batches, sent = session.stats["batches"], session.net.bytes_sent
        scripts = {int(frame): script for frame, script in command.get("at", {}).items()}
        for frame in range(int(command["start"]), int(command["end"]) + 1):
            bpy.context.scene.frame_set(frame)
            if frame in scripts:
                exec(compile(scripts[frame], "<play>", "exec"), {"bpy": bpy, "__name__": "play"})
            tick()
        return {"batches": session.stats["batches"] - batches, "bytes_sent": session.net.bytes_sent - sent}
    if cmd == "pump_until":
        names = {"bpy": bpy, "session": addon.session.current()}
        return {"met": pump_until(lambda: bool(eval(command["expr"], dict(names))), timeout)}
    if cmd == "pump_until_idle":
        ok = pump_until_idle(float(command.get("quiet", 0.3)), timeout)
        return {"idle": ok}
    if cmd == "state":
        session = current()
        return {
            "hash": addon.sync.scene_hash(),
            "seq": session.last_seq,
            "unacked": len(session.unacked),
            "pending": len(session.pending),
            "room": session.room,
            "connected": session.connected,
            "stats": session.stats,
            "display": session.display.stats,
            "errors": session.applier.errors[-5:],
            "messages": session.messages[-5:],
            "objects": sorted(ob.name for ob in bpy.data.objects),
        }
    if cmd == "drop":
        current().drop_connection()
        return {}
    if cmd == "leave":
        session = current()
        session.leave_room()
        pump_until(lambda: session.room is None, timeout)
        return {}
    if cmd == "save":
        bpy.ops.wm.save_as_mainfile(filepath=command["path"], copy=True)
        return {}
    raise ValueError(f"unknown command {cmd!r}")


def main() -> int:
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        command = json.loads(line)
        if command.get("cmd") == "quit":
            reply(ok=True)
            break
        try:
            result = handle(command)
        except Exception as exc:
            reply(ok=False, error=f"{type(exc).__name__}: {exc}", trace=traceback.format_exc())
        else:
            reply(ok=True, **result)
    addon_utils.disable("blender_addon", default_set=True)
    return 0


bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
addon = addon_utils.enable(
    "blender_addon", default_set=True, handle_error=lambda exc: (_ for _ in ()).throw(exc)
)
if addon is None:
    raise SystemExit("could not enable the add-on")
import blender_addon.sync  # noqa: E402,F401  (addon.sync: the scene hash)

reply(ok=True, ready=True, pid=os.getpid())
sys.exit(main())
