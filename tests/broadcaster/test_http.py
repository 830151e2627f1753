"""The HTTP admin port: Prometheus metrics, /status, token checks, and the status page in real Chromium."""

from __future__ import annotations

import json
import re
import shutil
import urllib.error
import urllib.request

import pytest
import trio
from support import wait_for

from broadcaster.auth import add_user
from broadcaster.client import connect
from broadcaster.http import metrics_text

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


async def get(url: str, token: str | None = None) -> tuple[int, str, str]:
    def fetch() -> tuple[int, str, str]:
        request = urllib.request.Request(url)
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.headers["content-type"], response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers["content-type"], exc.read().decode()

    return await trio.to_thread.run_sync(fetch)


def http_url(host_port: str, path: str) -> str:
    return f"http://{host_port}{path}"


async def test_metrics_and_status(tmp_path):
    from broadcaster.app import open_broadcaster
    from broadcaster.config import ServerConfig

    config = ServerConfig(host="127.0.0.1", port=0, data_dir=tmp_path / "d", http_port=0)
    async with open_broadcaster(config) as b:
        host, port = b.listen_addresses[0].rsplit(":", 1)
        base = b.http_addresses[0]
        async with connect(host, int(port), name="ana") as ana, connect(host, int(port), name="ben") as ben:
            await ana.create_room("r1", keep_open=True)
            await ana.create_room("r2", keep_open=True)
            await ana.join("r1")
            await ben.join("r1")
            for i in range(20):
                await ana.set(f"k{i}", b"x" * 100)
            blob = await ana.put_blob(b"b" * 300)
            await ben.put_blob(b"b" * 300)  # the same blob: stored once
            assert await ben.get_blob(blob) == b"b" * 300
            status, kind, text = await get(http_url(base, "/metrics"))
            assert status == 200 and kind.startswith("text/plain; version=0.0.4")
            metrics = dict(
                line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#")
            )
            assert metrics["blendsync_rooms"] == "2"
            assert metrics["blendsync_clients"] == "2" and metrics["blendsync_connections"] == "2"
            assert metrics["blendsync_operations_total"] == "20"
            assert metrics["blendsync_room_keys"] == "20" and metrics["blendsync_room_bytes"] == "2000"
            assert int(metrics["blendsync_received_bytes_total"]) > 2000
            assert metrics["blendsync_blobs"] == "1" and metrics["blendsync_blob_bytes"] == "300"
            assert metrics["blendsync_blob_received_bytes_total"] == "600"
            assert metrics["blendsync_blob_sent_bytes_total"] == "300"
            assert int(metrics["blendsync_fsync_seconds_count"]) >= 1
            assert (
                metrics['blendsync_fsync_seconds_bucket{le="+Inf"}']
                == metrics["blendsync_fsync_seconds_count"]
            )
            assert metrics['blendsync_node_role{role="leader"}'] == "1"
            assert "blendsync_node_term" in metrics and "blendsync_node_commit" in metrics
            assert metrics["blendsync_node_apply_failures_total"] == "0"  # a counter
            assert "blendsync_send_queue_bytes_max" in metrics
            # Every sample line parses as the text format says.
            for line in text.splitlines():
                assert line.startswith("#") or re.fullmatch(r"[a-z_]+(\{[^}]*\})? [-+0-9.eInfNa]+", line), (
                    line
                )

            status, kind, text = await get(http_url(base, "/status"))
            document = json.loads(text)
            assert status == 200 and kind == "application/json"
            assert document["room_count"] == 2 and document["client_count"] == 2
            assert {r["name"]: r["users"] for r in document["rooms"]} == {"r1": 2, "r2": 0}
            assert document["cluster"][0]["role"] == "leader" and document["cluster"][0]["self"]
            assert document["node"]["role"] == "leader"
            assert (await get(http_url(base, "/healthz")))[0] == 200
            assert (await get(http_url(base, "/nope")))[0] == 404
        await wait_for(lambda: "blendsync_clients 0\n" in metrics_text(b))


async def test_with_auth_every_page_needs_an_admin_token(tmp_path):
    tokens = tmp_path / "tokens.toml"
    admin, user = add_user(tokens, "root", "admin"), add_user(tokens, "ana")
    from broadcaster.app import open_broadcaster
    from broadcaster.config import ServerConfig

    config = ServerConfig(host="127.0.0.1", port=0, data_dir=tmp_path / "d", http_port=0, tokens_file=tokens)
    async with open_broadcaster(config) as b:
        base = b.http_addresses[0]
        for path in ("/", "/status", "/history", "/metrics"):
            assert (await get(http_url(base, path)))[0] == 401
            assert (await get(http_url(base, path), token=user))[0] == 401
            assert (await get(http_url(base, path), token=admin))[0] == 200
        assert (await get(http_url(base, f"/status?token={admin}")))[0] == 200
        assert (await get(http_url(base, "/healthz")))[0] == 200


async def test_bad_http_gets_an_answer_or_a_close_and_the_server_goes_on(tmp_path):
    from broadcaster.app import open_broadcaster
    from broadcaster.config import ServerConfig

    config = ServerConfig(host="127.0.0.1", port=0, data_dir=tmp_path / "d", http_port=0)
    async with open_broadcaster(config) as b:
        host, port = b.http_addresses[0].rsplit(":", 1)
        for data, answer in (
            (b"\x00\xff garbage\r\n\r\n", b"HTTP/1.1 400 "),
            (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-Long: " + b"a" * 100_000 + b"\r\n\r\n", b"HTTP/1.1 431 "),
            (b"POST /status HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc", b"HTTP/1.1 405 "),
            (b"HEAD /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", b"HTTP/1.1 200 "),
        ):
            stream = await trio.open_tcp_stream(host, int(port))
            try:
                await stream.send_all(data)
            except trio.BrokenResourceError:
                pass  # the server gave up on an oversized request before reading it all
            received = b""
            with trio.fail_after(5):
                try:
                    while chunk := await stream.receive_some(65536):
                        received += chunk
                        if b"\r\n\r\n" in received and not data.startswith(b"POST"):
                            break
                        if received.startswith(b"HTTP/1.1 405"):
                            break
                except trio.BrokenResourceError:
                    pass
            await stream.aclose()
            assert received.startswith(answer), received[:200]  # answered, not reset
        status, _, text = await get(http_url(b.http_addresses[0], "/status"))
        assert status == 200 and json.loads(text)["room_count"] == 0


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")
async def test_status_page_shows_live_room_count_in_chromium(tmp_path):
    from broadcaster.app import open_broadcaster
    from broadcaster.config import ServerConfig

    tokens = tmp_path / "tokens.toml"
    admin = add_user(tokens, "root", "admin")
    config = ServerConfig(host="127.0.0.1", port=0, data_dir=tmp_path / "d", http_port=0, tokens_file=tokens)
    async with open_broadcaster(config) as b:
        host, port = b.listen_addresses[0].rsplit(":", 1)
        page = http_url(b.http_addresses[0], f"/?token={admin}")

        async def dump_dom(profile: str) -> str:
            command = [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                f"--user-data-dir={tmp_path / profile}",
                "--virtual-time-budget=5000",
                "--dump-dom",
                page,
            ]
            with trio.fail_after(90):
                done = await trio.run_process(command, capture_stdout=True, capture_stderr=True, check=False)
            assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
            return done.stdout.decode()

        async with connect(host, int(port), token=admin, name="ana") as ana:
            for name in ("shot-010", "shot-020", "shot-030"):
                await ana.create_room(name, keep_open=True)
            await ana.join("shot-020")
            dom = await dump_dom("profile-1")
            # The numbers come from the page's script reading /status (the served HTML has none).
            assert re.search(r'id="room-count">3<', dom), dom[-3000:]
            assert "shot-020" in dom and re.search(r'id="client-count">1<', dom)
            assert "leader" in dom  # the cluster table
            await ana.create_room("shot-040", keep_open=True)
            dom = await dump_dom("profile-2")
            assert re.search(r'id="room-count">4<', dom), dom[-3000:]
