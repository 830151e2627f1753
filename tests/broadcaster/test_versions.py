"""Versions negotiate against a real server: a client of protocol 1 still gets a welcome it can read, a
client older than the server's range is told which add-on to install and where (this server's HTTP port),
and the add-on zip the server builds at startup is the one its welcome names.
"""

from __future__ import annotations

import hashlib
import io
import json
import tomllib
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest
import trio

from broadcaster import __version__
from broadcaster.app import open_broadcaster
from broadcaster.auth import add_user
from broadcaster.client import connect
from broadcaster.config import ServerConfig
from protocol import ADDON_PATH, PROTOCOL_MIN, PROTOCOL_VERSION, encode_frame
from protocol.framing import FrameReader, unpack_body

MANIFEST = tomllib.loads(
    (Path(__file__).resolve().parents[2] / "blender_addon" / "blender_manifest.toml").read_text()
)
ADDON_VERSION = MANIFEST["version"]
WELCOME_V1_NAMES = {
    "type",
    "protocol",
    "server_version",
    "session",
    "client_id",
    "nodes",
    "max_frame_size",
    "heartbeat_interval",
    "user",
    "role",
}


async def hello_raw(host: str, port: int, body: dict) -> dict:
    """Send one hello as raw msgpack and return the first reply's raw body (its keys as sent)."""
    stream = await trio.open_tcp_stream(host, port)
    try:
        await stream.send_all(encode_frame({"type": "hello", "client_name": "raw", **body}))
        reader = FrameReader(1 << 20)
        with trio.fail_after(20):
            while True:
                payload = reader.next_payload()
                if payload is not None:
                    return unpack_body(payload)
                reader.feed(await stream.receive_some(65536))
    finally:
        await stream.aclose()


async def fetch(url: str) -> tuple[int, bytes]:
    def get() -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(url, timeout=20) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    return await trio.to_thread.run_sync(get)


def serving(tmp_path, **settings) -> ServerConfig:
    config = ServerConfig(host="127.0.0.1", port=0, data_dir=tmp_path / "d", http_port=0)
    config.update(settings)
    return config


def address(b) -> tuple[str, int]:
    host, port = b.listen_addresses[0].rsplit(":", 1)
    return host, int(port)


async def test_welcome_names_the_range_and_the_served_addon_which_downloads_without_a_token(tmp_path):
    tokens = tmp_path / "tokens.toml"
    token = add_user(tokens, "ana", "user")
    admin = add_user(tokens, "root", "admin")
    async with open_broadcaster(serving(tmp_path, tokens_file=tokens)) as b:
        host, port = address(b)
        async with connect(host, port, name="ana", token=token) as ana:
            welcome = ana.welcome
        assert (welcome.protocol, welcome.protocol_min, welcome.protocol_max) == (3, PROTOCOL_MIN, 3)
        assert welcome.server_version == __version__
        assert welcome.addon_version == ADDON_VERSION
        assert welcome.addon_port == b.http_port
        status, body = await fetch(f"http://{host}:{welcome.addon_port}{ADDON_PATH}")  # no token
        assert status == 200
        assert hashlib.sha256(body).hexdigest() == welcome.addon_sha256
        with zipfile.ZipFile(io.BytesIO(body)) as zf:
            names = set(zf.namelist())
            manifest = tomllib.loads(zf.read("blender_manifest.toml").decode())
            wheel_name = next(n for n in names if n.startswith("wheels/"))
            wheel = zipfile.ZipFile(io.BytesIO(zf.read(wheel_name)))
        assert {"__init__.py", "net.py", "_vendor/protocol/versions.py"} <= names
        # Built without network: one pure-Python msgpack wheel, for every platform (no platforms list).
        assert manifest["version"] == ADDON_VERSION and "platforms" not in manifest
        # One add-on for Blender 4.2 LTS through 5.x.
        assert (manifest["blender_version_min"], manifest["blender_version_max"]) == ("4.2.0", "6.0.0")
        assert manifest["wheels"] == [f"./{wheel_name}"] and wheel_name.endswith("-py3-none-any.whl")
        assert "msgpack/fallback.py" in wheel.namelist()
        assert not any(n.endswith(".so") or n.endswith(".pyd") for n in wheel.namelist())
        # Everything else on the port still needs an admin token; the status page links the zip.
        status, _ = await fetch(f"http://{b.http_addresses[0]}/status")
        assert status == 401
        status, body = await fetch(f"http://{b.http_addresses[0]}/status?token={admin}")
        assert json.loads(body)["addon"] == {
            "version": ADDON_VERSION,
            "path": ADDON_PATH,
            "sha256": welcome.addon_sha256,
        }
        status, page = await fetch(f"http://{b.http_addresses[0]}/?token={admin}")
        assert b'href="/addon/blendsync.zip"' in page


async def test_a_protocol_1_client_gets_a_protocol_1_welcome(tmp_path):
    async with open_broadcaster(serving(tmp_path)) as b:
        body = await hello_raw(*address(b), {"protocol": 1})
    assert body["type"] == "welcome" and body["protocol"] == 1
    assert set(body) == WELCOME_V1_NAMES  # a protocol 1 client refuses any field it does not know


@pytest.mark.parametrize("hello", [{"protocol": 0}, {"protocol": 0, "protocol_min": 0}])
async def test_a_client_older_than_the_range_is_told_which_addon_to_install_and_where(tmp_path, hello):
    tokens = tmp_path / "tokens.toml"
    add_user(tokens, "ana", "user")
    async with open_broadcaster(serving(tmp_path, tokens_file=tokens)) as b:
        host, port = address(b)
        body = await hello_raw(host, port, hello)  # no token: the advice comes first
        url = f"http://{host}:{b.http_port}{ADDON_PATH}"
        assert body == {
            "type": "error",
            "code": "version_mismatch",
            "fatal": True,
            "ref": None,
            "message": f"this client speaks protocol 0, the server 1 to {PROTOCOL_VERSION}: the client is"
            f" older than the server; install the blendsync add-on {ADDON_VERSION} from {url} (Blender:"
            " Edit > Preferences > Get Extensions > Install from Disk)",
        }
        status, zip_body = await fetch(url)
        assert status == 200 and zip_body == b.addon.body


async def test_a_client_newer_than_the_range_is_told_to_update_the_server(tmp_path):
    async with open_broadcaster(serving(tmp_path)) as b:
        body = await hello_raw(*address(b), {"protocol": 9, "protocol_min": 4})
    assert body["code"] == "version_mismatch" and body["fatal"]
    assert body["message"] == (
        f"this client speaks protocol 4 to 9, the server 1 to {PROTOCOL_VERSION}: the client is newer than"
        f" the server; ask the server's administrator to update it (blendsync {__version__})"
    )


async def test_without_an_http_port_the_welcome_offers_no_addon(tmp_path):
    config = ServerConfig(host="127.0.0.1", port=0, data_dir=tmp_path / "d")
    async with open_broadcaster(config) as b:
        host, port = address(b)
        async with connect(host, port, name="ana") as ana:
            welcome = ana.welcome
        body = await hello_raw(host, port, {"protocol": 0})
    assert welcome.protocol == 3 and welcome.addon_version is None and welcome.addon_port is None
    assert welcome.addon_sha256 is None
    assert body["message"].endswith(
        f"install the blendsync add-on {__version__} (ask the server's administrator)"
    )
