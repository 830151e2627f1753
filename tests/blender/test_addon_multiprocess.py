"""Several artists, each a real Blender process with the add-on, through a real ``blendsync serve``.

The artists are ``tests/blender/artist.py`` subprocesses driven over
stdin/stdout; this process does not touch bpy. Every scenario ends with the
same canonical scene hash in every artist.
"""

from __future__ import annotations

import importlib.util
import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

if importlib.util.find_spec("bpy") is None:  # found without importing it: this process needs no Blender
    pytest.skip("bpy (Blender as a Python module) is not installed", allow_module_level=True)
from support import ServerProcess

pytestmark = [pytest.mark.blender, pytest.mark.timeout(120)]

ARTIST = Path(__file__).with_name("artist.py")
ROOT = Path(__file__).resolve().parents[2]

CUBE = """
import bpy
me = bpy.data.meshes.new("CubeMesh")
me.from_pydata([(x, y, z) for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], [],
               [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)])
ob = bpy.data.objects.new("Cube", me)
bpy.context.scene.collection.objects.link(ob)
"""


def add_empty(name: str, location=(0.0, 0.0, 0.0)) -> str:
    return (
        f"ob = bpy.data.objects.new({name!r}, None)\n"
        f"bpy.context.scene.collection.objects.link(ob)\n"
        f"ob.location = {tuple(location)!r}\n"
    )


def move(name: str, location) -> str:
    return f"bpy.data.objects[{name!r}].location = {tuple(location)!r}\n"


class Artist:
    """A Blender subprocess running artist.py; commands are JSON lines."""

    def __init__(self, name: str, log_dir: Path):
        self.name = name
        self.stderr = open(log_dir / f"{name}.stderr", "w")  # noqa: SIM115 - closed in close()
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, str(ARTIST), name],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
            cwd=ROOT,
            env=env,
        )
        self.replies: queue.Queue = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("@@ "):
                self.replies.put(json.loads(line[3:]))
        self.replies.put(None)

    def send(self, cmd: str, **fields) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"cmd": cmd, **fields}) + "\n")
        self.proc.stdin.flush()

    def recv(self, timeout: float = 60.0) -> dict:
        try:
            reply = self.replies.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"{self.name}: no reply within {timeout} s") from None
        if reply is None:
            raise AssertionError(f"{self.name} exited with {self.proc.wait(5)}")
        if not reply.get("ok"):
            raise AssertionError(f"{self.name}: {reply.get('error')}\n{reply.get('trace', '')}")
        return reply

    def call(self, cmd: str, **fields) -> dict:
        self.send(cmd, **fields)
        return self.recv(timeout=float(fields.get("timeout", 20.0)) + 30.0)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.send("quit")
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.stderr.close()


@pytest.fixture
def artists(tmp_path):
    started: list[Artist] = []

    def spawn(*names: str) -> list[Artist]:
        # Start the processes together so that their Blender start-ups overlap, then wait for each.
        new = [Artist(name, tmp_path) for name in names]
        started.extend(new)
        for artist in new:
            assert artist.recv(timeout=60).get("ready")
        return new

    try:
        yield spawn
    finally:
        for artist in started:
            try:
                artist.close()
            except Exception:
                artist.proc.kill()


@pytest.fixture
def server(tmp_path):
    process = ServerProcess(tmp_path / "data")
    host, port = process.start()
    try:
        yield process, f"{host}:{port}"
    finally:
        process.kill()


def everyone(artists: list[Artist], cmd: str, **fields) -> list[dict]:
    for artist in artists:
        artist.send(cmd, **fields)
    return [artist.recv(timeout=float(fields.get("timeout", 20.0)) + 30.0) for artist in artists]


def converge(artists: list[Artist], rounds: int = 8) -> list[dict]:
    """Pump every artist until all are idle at the same seq with the same scene hash."""
    states: list[dict] = []
    for _ in range(rounds):
        everyone(artists, "pump_until_idle", quiet=0.25, timeout=15)
        states = everyone(artists, "state")
        if (
            len({s["seq"] for s in states}) == 1
            and all(s["unacked"] == 0 and s["connected"] for s in states)
            and len({s["hash"] for s in states}) == 1
        ):
            return states
    detail = "\n".join(f"{a.name}: {json.dumps(s)}" for a, s in zip(artists, states, strict=True))
    raise AssertionError(f"artists did not converge:\n{detail}")


def builders(module: str) -> str:
    """The lines that make a builder module of tests/blender importable in an artist's edit or eval
    (artist.py runs from the repository root)."""
    return f"import sys\nsys.path.insert(0, 'tests/blender')\nimport {module}\n"


def observed_everywhere(artists_: list[Artist], module: str) -> object:
    """``module.observed()`` on every artist, equal everywhere."""
    values = [artist.call("eval", expr=f"__import__({module!r}).observed()")["value"] for artist in artists_]
    assert all(v == values[0] for v in values), values
    return values[0]


def start_room(server_address: str, creator: Artist, others: list[Artist], room: str = "shot") -> None:
    for artist in [creator, *others]:
        artist.send("connect", servers=server_address)
    for artist in [creator, *others]:
        artist.recv()
    creator.call("create_room", room=room, keep_open=True, send_scene=True)
    creator.call("pump_until_idle", quiet=0.1)
    for artist in others:
        artist.call("join", room=room)


def test_two_artists_edit_apart_then_the_same_cube(server, artists):
    _, address = server
    ana, ben = artists("ana", "ben")
    ana.call("edit", script=CUBE)
    start_room(address, ana, [ben])
    assert "Cube" in ben.call("state")["objects"]

    # Different objects at the same time.
    ana.send("edit", script=add_empty("AnaThing", (1, 0, 0)))
    ben.send("edit", script=add_empty("BenThing", (0, 1, 0)))
    ana.recv(), ben.recv()
    states = converge([ana, ben])
    assert {"AnaThing", "BenThing", "Cube"} <= set(states[0]["objects"])

    # The same cube's transform from both, many times, interleaved.
    for i in range(10):
        ana.send("edit", script=move("Cube", (i, 0, 0)))
        ben.send("edit", script=move("Cube", (0, i, 5)))
        ana.recv(), ben.recv()
    converge([ana, ben])
    locations = [a.call("eval", expr="tuple(bpy.data.objects['Cube'].location)")["value"] for a in (ana, ben)]
    assert locations[0] == locations[1]
    assert locations[0] in ([9.0, 0.0, 0.0], [0.0, 9.0, 5.0])

    # Rename, delete and vertex edits travel too.
    ben.call(
        "edit",
        script="bpy.data.objects['AnaThing'].name = 'Renamed'\n"
        "bpy.data.objects.remove(bpy.data.objects['BenThing'])\n"
        "bpy.data.meshes['CubeMesh'].vertices[0].co.z = -3.0\n",
    )
    states = converge([ana, ben])
    assert "Renamed" in states[0]["objects"] and "BenThing" not in states[0]["objects"]
    assert ana.call("eval", expr="bpy.data.meshes['CubeMesh'].vertices[0].co.z")["value"] == -3.0


def test_late_joiner_and_resume_after_a_dropped_socket(server, artists):
    _, address = server
    ana, ben, cleo = artists("ana", "ben", "cleo")
    ana.call("edit", script=CUBE)
    start_room(address, ana, [ben])
    for i in range(5):
        ana.send("edit", script=add_empty(f"A{i}", (i, 0, 0)))
        ben.send("edit", script=move("Cube", (0, 0, i)))
        ana.recv(), ben.recv()
    converge([ana, ben])

    # A third artist joins late and gets everything from the snapshot.
    cleo.call("connect", servers=address)
    cleo.call("join", room="shot")
    converge([ana, ben, cleo])

    # Ben's socket dies; he and the others keep editing; he resumes from his last seq.
    ben.call("drop")
    ben.call("edit", script=move("A1", (10, 10, 10)) + add_empty("WhileAway", (3, 3, 3)))
    ana.call("edit", script=move("A2", (-5, -5, -5)))
    cleo.call("edit", script=move("Cube", (7, 7, 7)))
    states = converge([ana, ben, cleo])
    assert "WhileAway" in states[0]["objects"]
    ben_state = ben.call("state")
    assert ben_state["stats"]["reconnects"] >= 1
    assert any("resumed room" in m for m in ben_state["messages"]), ben_state["messages"]

    # Cleo's Blender dies outright; work goes on; she comes back as a new process and catches up.
    cleo.proc.kill()
    cleo.proc.wait(timeout=10)
    ana.call("edit", script=move("Cube", (1, 2, 3)) + add_empty("AfterCrash"))
    (cleo_again,) = artists("cleo-again")
    cleo_again.call("connect", servers=address)
    cleo_again.call("join", room="shot")
    states = converge([ana, ben, cleo_again])
    assert "AfterCrash" in states[0]["objects"]


def test_server_restart_mid_session(server, artists):
    process, address = server
    ana, ben = artists("ana", "ben")
    ana.call("edit", script=CUBE)
    start_room(address, ana, [ben])
    ana.call("edit", script=add_empty("Before", (1, 2, 3)))
    converge([ana, ben])

    process.stop()
    # Both edit while the server is down: the batches wait, unacknowledged.
    ana.call("edit", script=move("Cube", (4, 4, 4)) + add_empty("AnaOffline"))
    ben.call("edit", script=move("Before", (9, 9, 9)) + add_empty("BenOffline"))
    time.sleep(0.3)
    assert ana.call("state")["unacked"] >= 1
    process.start()  # same port, same data directory
    states = converge([ana, ben])
    assert {"AnaOffline", "BenOffline", "Before", "Cube"} <= set(states[0]["objects"])
    location = ben.call("eval", expr="tuple(bpy.data.objects['Cube'].location)")["value"]
    assert location == [4.0, 4.0, 4.0]
    assert all(s["stats"]["reconnects"] >= 1 for s in states)
