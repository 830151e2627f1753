"""The add-on updates itself from the server: an older add-on, installed from its zip into a fresh Blender
process and connected to a real server, sees "update available" (the server's welcome names the add-on it
serves), installs the served zip with one operator (Blender's extension installer), and the new add-on
connects again. A zip that does not match the welcome's digest is not installed.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

if importlib.util.find_spec("bpy") is None:  # found without importing it: this process needs no Blender
    pytest.skip("bpy (Blender as a Python module) is not installed", allow_module_level=True)
from support import ServerProcess

from broadcaster.addon_download import pure_msgpack_wheel
from broadcaster.cli.addon import package
from tools.cluster import free_port

pytestmark = [pytest.mark.blender, pytest.mark.timeout(240)]

ROOT = Path(__file__).resolve().parents[2]
SERVED_VERSION = tomllib.loads((ROOT / "blender_addon" / "blender_manifest.toml").read_text())["version"]
OLD_VERSION = "0.0.1"

UPDATE_SCRIPT = r"""
import json, os, sys, tempfile, time
home = tempfile.mkdtemp(prefix="blendsync-update-")
os.environ["BLENDER_USER_RESOURCES"] = home
os.environ["XDG_CACHE_HOME"] = home
zip_path, servers, tamper = sys.argv[1], sys.argv[2], sys.argv[3] == "tamper"
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != os.path.abspath(os.getcwd())]
import bpy
name = "bl_ext.user_default.blendsync"
out = {}

def pump_until_connected(package):
    session = package.session.current()
    end = time.monotonic() + 20
    while time.monotonic() < end and not session.connected:
        package.pump()
        time.sleep(0.01)
    return session.connected

out["install"] = sorted(bpy.ops.extensions.package_install_files(
    filepath=zip_path, repo="user_default", enable_on_install=True))
old = sys.modules[name]
out["old_version"] = old.updates.own_version()
bpy.ops.blendsync.connect(servers=servers)
out["old_connected"] = pump_until_connected(old)
offer = old.updates.current_offer()
out["offer"] = offer and {"version": offer.version, "url": offer.url}
out["panel_shown"] = old.updates.BLENDSYNC_PT_update.poll(bpy.context)
if tamper:
    offer_for = old.updates.offer_for
    old.updates.offer_for = lambda *a: offer_for(*a).__class__(offer.version, offer.url, "0" * 64)
out["update"] = sorted(bpy.ops.blendsync.install_update())
# Blender's timer installs once the operator has returned; timers never fire without a UI loop.
out["installed"] = old.updates.install_pending()
new = sys.modules[name]
out["replaced"] = new is not old
out["new_version"] = new.updates.own_version()
out["new_connected"] = pump_until_connected(new) if new.session.current() else False
out["offer_after"] = bool(new.updates.current_offer())
out["messages"] = list(new.session.current().messages) if new.session.current() else []
new.session.stop()
print("@@ " + json.dumps(out))
"""


@pytest.fixture(scope="module")
def old_zip(tmp_path_factory) -> Path:
    """The add-on of this checkout, labelled an older version, with the server's pure-Python msgpack."""
    source = tmp_path_factory.mktemp("old-source")
    skip = shutil.ignore_patterns("__pycache__")
    shutil.copytree(ROOT / "blender_addon", source / "blender_addon", ignore=skip)
    shutil.copytree(ROOT / "protocol", source / "protocol", ignore=skip)
    manifest = source / "blender_addon" / "blender_manifest.toml"
    text = manifest.read_text()
    manifest.write_text(text.replace(f'version = "{SERVED_VERSION}"', f'version = "{OLD_VERSION}"', 1))
    wheel_name, wheel = pure_msgpack_wheel()
    name, body = package({wheel_name: wheel}, None, source)
    path = tmp_path_factory.mktemp("old-dist") / name
    path.write_bytes(body)
    return path


def run_update(old_zip: Path, tmp_path: Path, mode: str) -> dict:
    server = ServerProcess(tmp_path / "data", extra=["--http-port", str(free_port())])
    host, port = server.start()
    try:
        result = subprocess.run(
            [sys.executable, "-c", UPDATE_SCRIPT, str(old_zip), f"{host}:{port}", mode],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=180,
        )
    finally:
        server.kill()
    lines = [line for line in result.stdout.splitlines() if line.startswith("@@ ")]
    assert lines, result.stdout + result.stderr
    return json.loads(lines[-1][3:])


def test_an_older_addon_installs_the_served_one_and_reconnects(old_zip, tmp_path):
    out = run_update(old_zip, tmp_path, "plain")
    assert out["install"] == ["FINISHED"] and out["old_version"] == OLD_VERSION
    assert out["old_connected"]
    assert out["offer"]["version"] == SERVED_VERSION and out["offer"]["url"].endswith("/addon/blendsync.zip")
    assert out["panel_shown"]
    assert out["update"] == ["FINISHED"] and out["installed"]
    assert out["replaced"] and out["new_version"] == SERVED_VERSION
    assert out["new_connected"]
    assert not out["offer_after"]  # the same version now: nothing more to offer


def test_a_zip_that_does_not_match_the_welcome_is_not_installed(old_zip, tmp_path):
    out = run_update(old_zip, tmp_path, "tamper")
    assert out["old_connected"]
    assert not out["installed"]
    assert not out["replaced"] and out["new_version"] == OLD_VERSION
    assert any("is not the add-on the server named" in m for m in out["messages"]), out["messages"]
