"""``blendsync addon build``: the zip's layout and manifest, checked by Blender's own extension code,
then installed with "Install from Disk" (``extensions.package_install_files``) into a fresh Blender
process, enabled, and connected to a real broadcaster.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

if importlib.util.find_spec("bpy") is None:  # found without importing it: this process needs no Blender
    pytest.skip("bpy (Blender as a Python module) is not installed", allow_module_level=True)
from support import ServerProcess

from broadcaster.cli import addon as addon_build

pytestmark = [pytest.mark.blender, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[2]

INSTALL_SCRIPT = r"""
import json, os, sys, tempfile, time
home = tempfile.mkdtemp(prefix="blendsync-install-")
os.environ["BLENDER_USER_RESOURCES"] = home
os.environ["XDG_CACHE_HOME"] = home
zip_path, servers = sys.argv[1], sys.argv[2]
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != os.path.abspath(os.getcwd())]
import bpy
import addon_utils
from bl_pkg.cli import blender_ext
out = {}
manifest = blender_ext.pkg_manifest_from_archive_and_validate(zip_path, strict=True)
out["validate"] = manifest if isinstance(manifest, str) else "ok"
out["install"] = sorted(bpy.ops.extensions.package_install_files(
    filepath=zip_path, repo="user_default", enable_on_install=True))
name = "bl_ext.user_default.blendsync"
out["enabled"] = name in bpy.context.preferences.addons
package = sys.modules[name]
out["protocol_file"] = sys.modules[name + ".protocol_shim"].protocol.__file__
out["extension_dir"] = os.path.dirname(package.__file__)
site = os.path.join(bpy.utils.user_resource("EXTENSIONS"), ".local", "lib", "python3.11", "site-packages")
out["wheel_installed"] = os.path.isdir(os.path.join(site, "msgpack"))
out["connect"] = sorted(bpy.ops.blendsync.connect(servers=servers))
session = package.session.current()
end = time.monotonic() + 20
while time.monotonic() < end and not session.connected:
    package.pump()
    time.sleep(0.01)
out["connected"] = session.connected
addon_utils.disable(name, default_set=True)
out["disabled"] = name not in bpy.context.preferences.addons and package.session.current() is None
print("@@ " + json.dumps(out))
"""


@pytest.fixture(scope="module")
def wheels_dir(tmp_path_factory) -> Path:
    """msgpack wheels for the four platforms, fetched once (from the package registry)."""
    directory = tmp_path_factory.mktemp("wheels")
    addon_build.collect_wheels(directory, log=lambda _msg: None)
    return directory


@pytest.fixture(scope="module")
def built_zip(wheels_dir, tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("dist")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "broadcaster.cli",
            "addon",
            "build",
            "--output",
            str(output),
            "--wheels-dir",
            str(wheels_dir),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    manifest = tomllib.loads((ROOT / "blender_addon" / "blender_manifest.toml").read_text())
    path = output / f"blendsync-{manifest['version']}.zip"
    assert path.is_file()
    return path


def test_zip_layout_and_manifest(built_zip, wheels_dir):
    with zipfile.ZipFile(built_zip) as zf:
        names = set(zf.namelist())
        manifest = tomllib.loads(zf.read("blender_manifest.toml").decode())
        for path in (ROOT / "protocol").glob("*.py"):
            assert zf.read(f"_vendor/protocol/{path.name}") == path.read_bytes()
    assert {
        "__init__.py",
        "net.py",
        "session.py",
        "ui.py",
        "overlay.py",
        "protocol_shim.py",
        "sync/__init__.py",
        "sync/apply.py",
        "sync/kinds/__init__.py",
        "sync/kinds/objects.py",
        "_vendor/protocol/__init__.py",
    } <= names
    assert not any("__pycache__" in n or n.endswith(".pyc") or n.startswith("tests/") for n in names)
    wheels = manifest["wheels"]
    assert len(wheels) == 4 and all(w.startswith("./wheels/msgpack-") and "cp311" in w for w in wheels)
    assert {w[2:] for w in wheels} == {n for n in names if n.startswith("wheels/")}
    tags = " ".join(wheels)
    for needle in ("manylinux", "win_amd64", "macosx_11_0_arm64", "x86_64.whl"):
        assert needle in tags
    assert sorted(manifest["platforms"]) == ["linux-x64", "macos-arm64", "macos-x64", "windows-x64"]
    assert manifest["id"] == "blendsync" and manifest["blender_version_min"] >= "4.2.0"
    # The repository keeps one copy of the protocol: nothing was written into the source tree.
    assert not (ROOT / "blender_addon" / "_vendor").exists()
    assert not (ROOT / "blender_addon" / "wheels").exists()


def test_build_uses_given_wheels_and_is_reproducible(built_zip, wheels_dir, tmp_path):
    again = addon_build.build(tmp_path, wheels_dir, log=lambda _msg: None)
    assert again.read_bytes() == built_zip.read_bytes()


def test_install_from_disk_enable_and_connect(built_zip, tmp_path):
    server = ServerProcess(tmp_path / "data")
    host, port = server.start()
    try:
        result = subprocess.run(
            [sys.executable, "-c", INSTALL_SCRIPT, str(built_zip), f"{host}:{port}"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=90,
        )
    finally:
        server.kill()
    lines = [line for line in result.stdout.splitlines() if line.startswith("@@ ")]
    assert lines, result.stdout + result.stderr
    out = json.loads(lines[-1][3:])
    assert out["validate"] == "ok"
    assert out["install"] == ["FINISHED"] and out["enabled"]
    # The add-on runs on its vendored protocol, and Blender installed the linux wheel.
    assert out["protocol_file"].startswith(out["extension_dir"] + "/_vendor/protocol/")
    assert out["wheel_installed"]
    assert out["connect"] == ["FINISHED"] and out["connected"]
    assert out["disabled"]
