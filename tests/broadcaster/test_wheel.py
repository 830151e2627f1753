"""The wheel as a user installs it: ``blendsync addon build`` works outside a checkout, and the wheel
holds every package of the source tree but not the developer tools.

The wheel is built from a copy of the sources (the checkout stays clean) and installed without its
dependencies into a fresh venv that borrows them from this interpreter's site-packages.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

ROOT = Path(__file__).resolve().parents[2]
INSTALLED = ("protocol", "replication", "broadcaster", "blender_addon")
ADDON_IN_WHEEL = "broadcaster/_addon_source"
PLATFORM_TAGS = ("manylinux_2_28_x86_64", "win_amd64", "macosx_11_0_arm64", "macosx_10_13_x86_64")


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, capture_output=True, text=True, timeout=180, **kwargs)
    assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
    return result


def source_files(folder: str) -> dict[str, bytes]:
    """The files of one top-level source folder that ship, by path relative to the folder."""
    root = ROOT / folder
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in root.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".pyc", ".zip")
    }


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    copy = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, copy / name)
    for folder in INSTALLED:
        shutil.copytree(ROOT / folder, copy / folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copytree(ROOT / "tests", copy / "tests", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (copy / "tools").mkdir()
    (copy / "tools" / "__init__.py").write_text("")
    out = tmp_path_factory.mktemp("wheel")
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(copy)])
    (path,) = out.glob("blendsync-*.whl")
    return path


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("venv")
    run([sys.executable, "-m", "venv", "--without-pip", str(root)])
    python = root / "bin" / "python"
    site = Path(
        run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    )
    # Dependencies from here; a path line in a .pth does not run that folder's own .pth files, so an
    # editable install of this checkout stays invisible to the venv.
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            str(wheel),
        ]
    )
    return root


def test_the_wheel_holds_every_product_file_and_no_tools(wheel):
    with zipfile.ZipFile(wheel) as zf:
        names = {n for n in zf.namelist() if ".dist-info/" not in n}
    expected = {f"{folder}/{rel}" for folder in INSTALLED[:3] for rel in source_files(folder)}
    expected |= {f"{ADDON_IN_WHEEL}/{rel}" for rel in source_files("blender_addon")}
    assert names == expected


def test_addon_build_from_the_installed_wheel(venv, tmp_path):
    wheels = tmp_path / "wheels"  # stand-ins named like msgpack wheels: the build copies them as they are
    wheels.mkdir()
    for tag in PLATFORM_TAGS:
        (wheels / f"msgpack-1.1.0-cp311-cp311-{tag}.whl").write_bytes(tag.encode())
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    python = venv / "bin" / "python"
    where = run([str(python), "-c", "import broadcaster; print(broadcaster.__file__)"], cwd=outside, env=env)
    assert Path(where.stdout.strip()).is_relative_to(venv)  # the installed copy, not this checkout
    lookup = "import importlib.util as u; print([u.find_spec(n) is None for n in ('blender_addon', 'tools')])"
    assert run([str(python), "-c", lookup], cwd=outside, env=env).stdout.strip() == "[True, True]"

    command = [str(venv / "bin" / "blendsync"), "addon", "build", "--output", str(tmp_path / "dist")]
    run([*command, "--wheels-dir", str(wheels)], cwd=outside, env=env)

    manifest = tomllib.loads((ROOT / "blender_addon" / "blender_manifest.toml").read_text())
    zip_path = tmp_path / "dist" / f"{manifest['id']}-{manifest['version']}.zip"
    with zipfile.ZipFile(zip_path) as zf:
        contents = {name: zf.read(name) for name in zf.namelist()}
    addon = source_files("blender_addon")
    for rel, data in addon.items():
        if rel != "blender_manifest.toml":
            assert contents[rel] == data, rel
    for rel, data in source_files("protocol").items():
        assert contents[f"_vendor/protocol/{rel}"] == data, rel
    built = tomllib.loads(contents["blender_manifest.toml"].decode())
    assert sorted(built["wheels"]) == sorted(f"./wheels/{p.name}" for p in wheels.iterdir())
    assert {n for n in contents if n.startswith("wheels/")} == {f"wheels/{p.name}" for p in wheels.iterdir()}
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in contents)


def test_an_installed_server_builds_the_addon_it_serves_without_network(venv, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    script = (
        "import hashlib; from broadcaster.addon_download import build_addon_zip; z = build_addon_zip(); "
        "print(z.filename, z.wheels, hashlib.sha256(z.body).hexdigest() == z.sha256)"
    )
    done = run([str(venv / "bin" / "python"), "-c", script], cwd=tmp_path, env=env)
    manifest = tomllib.loads((ROOT / "blender_addon" / "blender_manifest.toml").read_text())
    assert done.stdout.split() == [f"blendsync-{manifest['version']}.zip", "pure-python", "True"]
