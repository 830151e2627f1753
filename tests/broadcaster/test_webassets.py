"""Browser libraries on the HTTP port: served from the npm-installed folder by a fixed index, not by path."""

from __future__ import annotations

import os
from pathlib import Path

import trio

from broadcaster import http
from broadcaster.auth import add_user
from broadcaster.webassets import WebAssets, default_root

ROOT = Path(__file__).resolve().parents[2]


async def raw_get(host_port: str, target: bytes) -> tuple[int, bytes, bytes]:
    """One GET with the target sent byte for byte as given (urllib would normalise `..` and `%2e`)."""
    host, port = host_port.rsplit(":", 1)
    stream = await trio.open_tcp_stream(host, int(port))
    await stream.send_all(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    received = b""
    with trio.fail_after(10):
        while chunk := await stream.receive_some(1 << 20):
            received += chunk
    await stream.aclose()
    head, _, body = received.partition(b"\r\n\r\n")
    return int(head.split()[1]), head, body


def test_the_libraries_are_installed_from_the_lockfile():
    assert default_root() == ROOT / "web" / "node_modules" or os.environ.get("BLENDSYNC_WEB_DIR")
    assert WebAssets(default_root()).installed, "run scripts/bootstrap (npm ci in web/)"


async def test_served_by_index_without_a_token_and_nothing_else(tmp_path):
    from broadcaster.app import open_broadcaster
    from broadcaster.config import ServerConfig

    tokens = tmp_path / "tokens.toml"
    add_user(tokens, "root", "admin")
    config = ServerConfig(host="127.0.0.1", port=0, data_dir=tmp_path / "d", http_port=0, tokens_file=tokens)
    root = default_root()
    async with open_broadcaster(config) as b:
        base = b.http_addresses[0]
        for url, file in (
            (b"/vendor/three/three.module.js", "three/build/three.module.js"),
            (b"/vendor/three/three.core.js", "three/build/three.core.js"),
            (
                b"/vendor/three/addons/controls/OrbitControls.js",
                "three/examples/jsm/controls/OrbitControls.js",
            ),
            (b"/vendor/msgpack/index.mjs", "@msgpack/msgpack/dist.esm/index.mjs"),
            (b"/vendor/uplot/uPlot.esm.js", "uplot/dist/uPlot.esm.js"),
            (b"/vendor/uplot/uPlot.min.css", "uplot/dist/uPlot.min.css"),
        ):
            status, head, body = await raw_get(base, url)
            assert status == 200, url
            assert body == (root / file).read_bytes()
            assert b"content-type: text/" in head.lower()
        for url in (
            b"/vendor/",
            b"/vendor/three/",
            b"/vendor/three/../package.json",
            b"/vendor/three/%2e%2e/package.json",
            b"/vendor/three/..%2Fpackage.json",
            b"/vendor/three//three.module.js",
            b"/vendor/three/three.cjs",  # not a served type
            b"/vendor/three/addons/../../package.json",
            b"/vendor/msgpack/index.mjs.map",
            b"/vendor/three/three.module.js%00",
            b"/vendor/" + b"a" * 8000,
            b"/vendor/three/*",
        ):
            status, _, _ = await raw_get(base, url)
            assert status == 404, url
        assert (await raw_get(base, b"/status"))[0] == 401  # the admin pages still need a token


async def test_missing_libraries_are_a_clear_503(tmp_path, monkeypatch):
    from broadcaster.app import open_broadcaster
    from broadcaster.config import ServerConfig

    monkeypatch.setattr(http, "ASSETS", WebAssets(tmp_path / "nothing"))
    config = ServerConfig(host="127.0.0.1", port=0, data_dir=tmp_path / "d", http_port=0)
    async with open_broadcaster(config) as b:
        status, _, body = await raw_get(b.http_addresses[0], b"/vendor/three/three.module.js")
        assert status == 503 and b"scripts/bootstrap" in body
