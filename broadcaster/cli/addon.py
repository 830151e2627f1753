"""``blendsync addon build``: the Blender extension zip, installable offline with "Install from Disk".

The zip holds, at its root:

* the add-on (``blender_addon/`` of the source tree: ``__init__.py``, ``sync/``...);
* ``_vendor/protocol/``: a copy of the top-level ``protocol`` package, which
  the add-on finds through ``protocol_shim.py`` (the repository keeps one copy);
* ``wheels/``: msgpack wheels for Blender's Python 3.11 on linux x86_64,
  windows amd64, macOS arm64 and macOS x86_64;
* ``blender_manifest.toml``, the repository's with ``wheels = [...]`` and
  ``platforms = [...]`` filled in.

Wheels come from ``--wheels-dir`` when it holds one for a platform; the
others are fetched with ``pip download`` (into ``--wheels-dir`` when given,
so it works as a cache).

The sources come from the checkout this module runs from, or, in an installed wheel, from the copy the
wheel carries: the add-on as ``broadcaster/_addon_source/`` (data: nothing imports it, it needs bpy) and
the installed ``protocol`` package.
"""

from __future__ import annotations

import argparse
import io
import re
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

CHECKOUT = Path(__file__).resolve().parents[2]
PACKAGED_ADDON = Path(__file__).resolve().parents[1] / "_addon_source"  # pyproject.toml maps it
ADDON_DIR = "blender_addon"
PROTOCOL_DIR = "protocol"
VENDOR = "_vendor"
PYTHON_VERSION = "3.11"  # Blender 4.2 to 5.0
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed timestamps: the same sources give the same zip

# Blender platform name -> (pip --platform tag, predicate over a wheel's platform tags)
PLATFORMS: dict[str, tuple[str, Callable[[str], bool]]] = {
    "linux-x64": ("manylinux_2_28_x86_64", lambda tag: "linux" in tag and tag.endswith("x86_64")),
    "windows-x64": ("win_amd64", lambda tag: tag == "win_amd64"),
    "macos-arm64": (
        "macosx_11_0_arm64",
        lambda tag: tag.startswith("macosx") and tag.endswith(("arm64", "universal2")),
    ),
    "macos-x64": (
        "macosx_10_13_x86_64",
        lambda tag: tag.startswith("macosx") and tag.endswith(("x86_64", "universal2")),
    ),
}

_EXCLUDED_DIRS = {"__pycache__", "tests", ".git", VENDOR, "wheels"}
_EXCLUDED_SUFFIXES = (".pyc", ".pyo", ".zip", ".blend1")


class BuildError(Exception):
    pass


def wheel_tags(filename: str) -> tuple[str, str, str, list[str]] | None:
    """``msgpack-1.2.4-cp311-cp311-win_amd64.whl`` -> ("msgpack", "cp311", "cp311", ["win_amd64"])."""
    if not filename.endswith(".whl"):
        return None
    parts = filename[:-4].split("-")
    if len(parts) not in (5, 6):
        return None
    name, python, abi, platform = parts[0], parts[-3], parts[-2], parts[-1]
    return name.lower().replace("_", "-"), python, abi, platform.split(".")


def pick_wheel(directory: Path, platform: str, package: str = "msgpack") -> Path | None:
    """The newest-named wheel of ``package`` in ``directory`` for Blender's Python on ``platform``."""
    _, matches = PLATFORMS[platform]
    found = []
    for path in directory.glob("*.whl"):
        tags = wheel_tags(path.name)
        if tags is None or tags[0] != package:
            continue
        _, python, abi, platforms = tags
        python_ok = "cp311" in python.split(".") or (abi == "abi3" and python.startswith("cp3"))
        if python_ok and any(matches(tag) for tag in platforms):
            found.append(path)
    return max(found, key=lambda p: p.name) if found else None


def download_wheel(directory: Path, platform: str, package: str = "msgpack") -> Path:
    pip_platform, _ = PLATFORMS[platform]
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        package,
        "--only-binary=:all:",
        "--platform",
        pip_platform,
        "--python-version",
        PYTHON_VERSION,
        "--implementation",
        "cp",
        "--no-deps",
        "--disable-pip-version-check",
        "-q",
        "-d",
        str(directory),
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    wheel = pick_wheel(directory, platform, package)
    if result.returncode != 0 or wheel is None:
        raise BuildError(f"pip could not download a {package} wheel for {platform}: {result.stderr.strip()}")
    return wheel


def collect_wheels(wheels_dir: Path | None, log: Callable[[str], None] = print) -> dict[str, Path]:
    """One msgpack wheel per platform, from ``wheels_dir`` or downloaded."""
    scratch = None
    if wheels_dir is None:
        scratch = tempfile.mkdtemp(prefix="blendsync-wheels-")
        wheels_dir = Path(scratch)
    wheels_dir.mkdir(parents=True, exist_ok=True)
    wheels = {}
    for platform in PLATFORMS:
        wheel = pick_wheel(wheels_dir, platform)
        if wheel is None:
            log(f"downloading msgpack for {platform}")
            wheel = download_wheel(wheels_dir, platform)
        wheels[platform] = wheel
    return wheels


def _files(root: Path) -> list[Path]:
    out = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part in _EXCLUDED_DIRS for part in rel.parts[:-1]) or rel.parts[0] in _EXCLUDED_DIRS:
            continue
        if path.is_file() and not path.name.endswith(_EXCLUDED_SUFFIXES):
            out.append(path)
    return out


def toml_list(values: list[str]) -> str:
    if not values:
        return "[]"
    return "[\n" + "".join(f'  "{v}",\n' for v in values) + "]"


def manifest_with(text: str, *, wheels: list[str], platforms: list[str] | None) -> str:
    """The manifest text with its top-level ``wheels`` (and ``platforms``, unless None) lists replaced."""
    lists = [("wheels", wheels)] + ([("platforms", platforms)] if platforms is not None else [])
    for name, values in lists:
        pattern = re.compile(rf"^{name}\s*=\s*\[.*?\]", re.MULTILINE | re.DOTALL)
        line = f"{name} = {toml_list(values)}"
        if pattern.search(text):
            text = pattern.sub(lambda _m, line=line: line, text, count=1)
        else:
            # Before the first table, so that it stays a top-level key.
            table = re.search(r"^\[", text, re.MULTILINE)
            at = table.start() if table else len(text)
            text = text[:at] + line + "\n\n" + text[at:]
    return text


def find_sources(source: Path | None = None) -> tuple[Path, Path]:
    """The add-on's and the protocol's directories: under ``source``, else the checkout, else the wheel's."""
    if source is None and (CHECKOUT / ADDON_DIR / "blender_manifest.toml").is_file():
        source = CHECKOUT
    if source is not None:
        addon, protocol = source / ADDON_DIR, source / PROTOCOL_DIR
        what = f"{source} is not a blendsync source tree (needs {ADDON_DIR}/ and {PROTOCOL_DIR}/)"
    else:
        import protocol as protocol_package  # the installed one, beside this package

        addon, protocol = PACKAGED_ADDON, Path(protocol_package.__file__).resolve().parent
        what = f"this installation carries no add-on sources ({PACKAGED_ADDON} is missing)"
    if not (addon / "blender_manifest.toml").is_file() or not (protocol / "__init__.py").is_file():
        raise BuildError(what)
    return addon, protocol


def package(
    wheels: dict[str, bytes], platforms: list[str] | None, source: Path | None = None
) -> tuple[str, bytes]:
    """The extension zip's file name and bytes, with these wheels (file name -> bytes) for ``platforms``
    (None: every platform, for wheels that are pure Python)."""
    addon, protocol = find_sources(source)
    manifest_text = (addon / "blender_manifest.toml").read_text(encoding="utf-8")
    manifest = tomllib.loads(manifest_text)
    manifest_text = manifest_with(
        manifest_text, wheels=sorted(f"./wheels/{name}" for name in wheels), platforms=platforms
    )
    tomllib.loads(manifest_text)  # still valid TOML

    def write(zf: zipfile.ZipFile, name: str, data: bytes) -> None:
        info = zipfile.ZipInfo(name, ZIP_DATE)
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = 0o644 << 16
        zf.writestr(info, data)

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        write(zf, "blender_manifest.toml", manifest_text.encode("utf-8"))
        for path in _files(addon):
            rel = path.relative_to(addon).as_posix()
            if rel != "blender_manifest.toml":
                write(zf, rel, path.read_bytes())
        for path in _files(protocol):
            write(zf, f"{VENDOR}/{PROTOCOL_DIR}/{path.relative_to(protocol).as_posix()}", path.read_bytes())
        write(zf, f"{VENDOR}/__init__.py", b'"""Third-party code shipped inside the add-on."""\n')
        for name in sorted(wheels):
            write(zf, f"wheels/{name}", wheels[name])
    return f"{manifest['id']}-{manifest['version']}.zip", buffer.getvalue()


def build(
    output: Path,
    wheels_dir: Path | None = None,
    source: Path | None = None,
    log: Callable[[str], None] = print,
) -> Path:
    find_sources(source)  # a missing source tree fails before any download
    wheels = collect_wheels(wheels_dir, log)
    name, data = package({w.name: w.read_bytes() for w in set(wheels.values())}, list(PLATFORMS), source)
    output.mkdir(parents=True, exist_ok=True)
    target = output / name
    partial = target.with_suffix(".zip.part")
    partial.write_bytes(data)
    partial.replace(target)
    log(f"wrote {target}")
    return target


def add_commands(commands: Any) -> None:
    addon = commands.add_parser("addon", help="the Blender add-on")
    addon_commands = addon.add_subparsers(dest="addon_command", required=True)
    parser = addon_commands.add_parser("build", help="write the installable extension zip")
    parser.add_argument("--output", default="dist", help="directory for the zip (default ./dist)")
    parser.add_argument("--wheels-dir", help="msgpack wheels to use; missing ones are downloaded into it")
    parser.add_argument("--source", help="a blendsync source tree (default: this checkout or installation)")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    try:
        build(
            Path(args.output),
            Path(args.wheels_dir) if args.wheels_dir else None,
            Path(args.source) if args.source else None,
        )
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
