"""The add-on zip this server offers its artists: ``GET /addon/blendsync.zip`` on the HTTP port.

It is built once, at startup, from the installed sources, like ``blendsync addon build`` but with no
network: the add-on's one dependency, msgpack, goes in as

* the wheels of ``addon_wheels_dir`` when that folder holds one for each of Blender's platforms (the
  fast C extension everywhere; ``blendsync addon build --wheels-dir D`` fills such a folder), else
* one pure-Python wheel made from the msgpack this server runs on (msgpack falls back to its pure-Python
  code when the extension is absent): slower to encode big scenes, but it installs on every platform.

``welcome`` names the add-on's version, the HTTP port and the zip's SHA-256 (docs/protocol.md), so a
client that reached the server over pinned TLS can check a zip fetched over plain HTTP before installing.
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import tomllib
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from protocol import ADDON_PATH

from .cli.addon import PLATFORMS, BuildError, find_sources, package, pick_wheel

log = logging.getLogger("blendsync.addon")

ZIP_DATE = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class AddonZip:
    version: str  # the add-on's manifest version
    filename: str  # blendsync-<version>.zip
    body: bytes
    sha256: str
    wheels: str  # "platform" or "pure-python": which msgpack it carries


def addon_version(source: Path | None = None) -> str:
    addon, _ = find_sources(source)
    return tomllib.loads((addon / "blender_manifest.toml").read_text(encoding="utf-8"))["version"]


def build_addon_zip(wheels_dir: Path | None = None, source: Path | None = None) -> AddonZip:
    """Build the zip (raises BuildError when the sources are missing)."""
    platform_wheels = _platform_wheels(wheels_dir) if wheels_dir is not None else None
    if platform_wheels is not None:
        wheels, platforms, kind = platform_wheels, list(PLATFORMS), "platform"
    else:
        name, data = pure_msgpack_wheel()
        wheels, platforms, kind = {name: data}, None, "pure-python"
    filename, body = package(wheels, platforms, source)
    return AddonZip(
        version=addon_version(source),
        filename=filename,
        body=body,
        sha256=hashlib.sha256(body).hexdigest(),
        wheels=kind,
    )


def _platform_wheels(directory: Path) -> dict[str, bytes] | None:
    found = {platform: pick_wheel(directory, platform) for platform in PLATFORMS}
    if any(path is None for path in found.values()):
        missing = sorted(p for p, path in found.items() if path is None)
        log.warning(
            "no msgpack wheel for %s in %s: serving the pure-Python one", ", ".join(missing), directory
        )
        return None
    return {path.name: path.read_bytes() for path in found.values() if path is not None}


def pure_msgpack_wheel() -> tuple[str, bytes]:
    """A ``py3-none-any`` wheel of the installed msgpack's Python files (not its C extension)."""
    dist = metadata.distribution("msgpack")
    version = dist.version
    files: dict[str, bytes] = {}
    for entry in dist.files or ():
        path = entry.as_posix()
        if path.startswith("msgpack/") and path.endswith(".py") and "__pycache__" not in path:
            files[path] = Path(dist.locate_file(entry)).read_bytes()
    if "msgpack/fallback.py" not in files:
        raise BuildError("the installed msgpack has no pure-Python fallback to ship")
    info = f"msgpack-{version}.dist-info"
    files[f"{info}/METADATA"] = f"Metadata-Version: 2.1\nName: msgpack\nVersion: {version}\n".encode()
    files[f"{info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: blendsync\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{info}/RECORD,,")
    files[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for path in sorted(files):
            item = zipfile.ZipInfo(path, ZIP_DATE)
            item.compress_type = zipfile.ZIP_DEFLATED
            item.external_attr = 0o644 << 16
            zf.writestr(item, files[path])
    return f"msgpack-{version}-py3-none-any.whl", buffer.getvalue()


def download_url(host: str, port: int) -> str:
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{port}{ADDON_PATH}"


def version_advice(
    reason: str, *, client_older: bool, addon: AddonZip | None, url: str | None, server_version: str
) -> str:
    """The ``version_mismatch`` message: why, then what to do, naming the add-on and where it is."""
    if not client_older:
        return f"{reason}; ask the server's administrator to update it (blendsync {server_version})"
    if addon is not None and url is not None:
        return (
            f"{reason}; install the blendsync add-on {addon.version} from {url} (Blender: Edit > Preferences"
            " > Get Extensions > Install from Disk)"
        )
    return f"{reason}; install the blendsync add-on {server_version} (ask the server's administrator)"
