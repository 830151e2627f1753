"""Updating the add-on from the server it is connected to: "update available" in the sidebar, one click.

A server with an HTTP port offers the add-on built for it, and its ``welcome`` names that add-on's version,
the port and the zip's SHA-256 (docs/protocol.md, "Versions"). When that version is not this add-on's, the
connection panel shows it; the button downloads the zip from the host the add-on is connected to, checks it
against the digest (the welcome came over the connection, pinned TLS with an invite, the zip over plain
HTTP), installs it with Blender's extension installer (``extensions.package_install_files``, which replaces
this add-on and enables the new one) and connects the new add-on to the same servers with the same name,
colour and token.
"""

from __future__ import annotations

import functools
import hashlib
import sys
import tempfile
import tomllib
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bpy

from . import session as session_module
from .protocol_shim import protocol

PACKAGE = __package__ or "blender_addon"
MAX_ZIP_BYTES = 256 * 1024 * 1024
DOWNLOAD_TIMEOUT = 60.0


class UpdateError(Exception):
    pass


@dataclass(frozen=True)
class Offer:
    version: str  # the add-on version the server serves
    url: str
    sha256: str


@functools.cache
def own_version() -> str:
    """This add-on's version, from its extension manifest ("" when it cannot be read); read once."""
    try:
        manifest = tomllib.loads(Path(__file__).with_name("blender_manifest.toml").read_text("utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return ""
    return str(manifest.get("version", ""))


def offer_for(welcome: Any, host: str, own: str) -> Offer | None:
    """What the server offers, when it is another version than ``own``."""
    version = getattr(welcome, "addon_version", None)
    port = getattr(welcome, "addon_port", None)
    digest = getattr(welcome, "addon_sha256", None)
    if not version or port is None or digest is None or version == own:
        return None
    shown = f"[{host}]" if ":" in host else host
    return Offer(version=version, url=f"http://{shown}:{port}{protocol.ADDON_PATH}", sha256=digest)


def current_offer() -> Offer | None:
    session = session_module.current()
    if session is None or session.welcome is None:
        return None
    address = getattr(session.net, "connected_address", None)
    if address is None:
        return None
    return offer_for(session.welcome, address[0], own_version())


def download(offer: Offer, directory: Path) -> Path:
    """The offered zip, checked against its digest, saved as ``blendsync-VERSION.zip`` in ``directory``."""
    try:
        with urllib.request.urlopen(offer.url, timeout=DOWNLOAD_TIMEOUT) as response:
            body = response.read(MAX_ZIP_BYTES + 1)
    except OSError as exc:
        raise UpdateError(f"could not download {offer.url}: {exc}") from None
    if len(body) > MAX_ZIP_BYTES:
        raise UpdateError(f"{offer.url} is larger than {MAX_ZIP_BYTES} bytes")
    digest = hashlib.sha256(body).hexdigest()
    if digest != offer.sha256:
        raise UpdateError(
            f"the download from {offer.url} is not the add-on the server named (sha256 {digest[:12]}..., "
            f"expected {offer.sha256[:12]}...): not installed"
        )
    path = directory / f"blendsync-{offer.version}.zip"
    path.write_bytes(body)
    return path


def extension_repo() -> str | None:
    """The extension repository this add-on is installed in (None when it runs from a source folder)."""
    parts = PACKAGE.split(".")
    return parts[1] if len(parts) == 3 and parts[0] == "bl_ext" else None


def reconnect_settings(session: Any) -> dict[str, Any]:
    """What the updated add-on needs to connect the way this one is connected."""
    hello = session.net.hello
    settings = {"name": session.name, "color": tuple(session.color), "token": hello.token}
    pin = getattr(session.net, "pin", None)
    if pin:
        settings["pin"] = pin
    return {"addresses": list(session.addresses), **settings}


def install(offer: Offer) -> str:
    """Download, check, install and reconnect; returns the package name of the new add-on."""
    repo = extension_repo()
    if repo is None:
        raise UpdateError(f"this add-on runs from a source folder: install {offer.url} by hand")
    session = session_module.current()
    settings = reconnect_settings(session) if session is not None else None
    directory = Path(tempfile.mkdtemp(prefix="blendsync-update-"))
    path = download(offer, directory)
    session_module.stop()  # the old add-on's connection ends before its code is replaced
    result = bpy.ops.extensions.package_install_files(filepath=str(path), repo=repo, enable_on_install=True)
    if "FINISHED" not in result:
        raise UpdateError(f"Blender could not install {path.name} ({', '.join(sorted(result))})")
    new = sys.modules.get(PACKAGE)
    if settings is not None and new is not None and hasattr(new, "session"):
        new.session.start(**settings)  # the new add-on's own session module, not this one's
    return PACKAGE


def _install_logged(offer: Offer) -> bool:
    """Install, saying why not in the session's messages (the sidebar); whether it worked."""
    try:
        install(offer)
    except UpdateError as exc:
        session = session_module.current()
        if session is not None:
            session.log(str(exc))
        return False
    return True


_pending: Offer | None = None  # the offer the operator accepted, installed once it has returned


def install_pending() -> bool:
    """Install the accepted offer (Blender's timer calls this after the operator returned; a script without
    a UI loop, where timers never fire, calls it itself); whether it worked."""
    global _pending
    offer, _pending = _pending, None
    return offer is not None and _install_logged(offer)


class BLENDSYNC_OT_install_update(bpy.types.Operator):
    """Download the add-on the server offers, install it in place of this one, and connect again"""

    bl_idname = "blendsync.install_update"
    bl_label = "Install Update"

    def execute(self, context):
        global _pending
        offer = current_offer()
        if offer is None:
            self.report({"WARNING"}, "The server offers no other version of the add-on")
            return {"CANCELLED"}
        # Installing unregisters this very operator (and every class of the add-on): never from inside it.
        _pending = offer
        bpy.app.timers.register(lambda: install_pending() and None, first_interval=0.0)
        self.report({"INFO"}, f"Installing blendsync {offer.version}")
        return {"FINISHED"}


class BLENDSYNC_PT_update(bpy.types.Panel):
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "blendsync"
    bl_label = "Update available"
    bl_parent_id = "BLENDSYNC_PT_connection"

    @classmethod
    def poll(cls, context):
        return current_offer() is not None

    def draw(self, context):
        offer = current_offer()
        if offer is None:
            return
        layout = self.layout
        layout.label(text=f"The server offers blendsync {offer.version}", icon="IMPORT")
        layout.label(text=f"(this add-on is {own_version() or 'unknown'})")
        layout.operator(BLENDSYNC_OT_install_update.bl_idname, icon="FILE_REFRESH")


CLASSES = (BLENDSYNC_OT_install_update, BLENDSYNC_PT_update)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister() -> None:
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
