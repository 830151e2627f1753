"""The status page's health charts and sortable room table: the history behind them (/history), and the
page itself in headless Chromium, checked on a screenshot's pixels (each chart's line in its colour) and
on the DOM the page builds (the room table's order).
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import urllib.request
import zlib
from pathlib import Path

import pytest
import trio

from broadcaster.app import open_broadcaster
from broadcaster.client import connect
from broadcaster.config import ServerConfig
from broadcaster.health_history import HealthHistory
from broadcaster.metrics import RECENT_SAMPLES, Metrics, Recent
from broadcaster.status_page import CHART_COLOURS

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def test_recent_p99_is_of_the_last_second_and_bounded():
    recent = Recent()
    assert recent.take_p99() is None
    for value in range(1, 101):
        recent.add(float(value))
    assert recent.take_p99() == 99.0
    assert recent.take_p99() is None  # taken: the next second starts empty
    recent.add(5.0)
    assert recent.take_p99() == 5.0
    for value in range(3 * RECENT_SAMPLES):
        recent.add(float(value))
    assert len(recent.values) == RECENT_SAMPLES and recent.seen == 3 * RECENT_SAMPLES


def test_history_keeps_its_window_and_gives_columns():
    history = HealthHistory(window=3)
    metrics = Metrics()
    node = {"id": 1, "commit": 10, "applied": 8, "lag": {"2": 4, "3": 0}}
    for second in range(5):
        metrics.operations += 10 * second
        metrics.observe_write(0.002 * (second + 1))
        history.sample(1000.0 + second, metrics, clients=second, node=node)
    document = history.document(node_id=1)
    assert document["time"] == [1002.0, 1003.0, 1004.0]
    assert document["ops_per_second"] == [20.0, 30.0, 40.0]
    assert document["clients"] == [2, 3, 4]
    assert document["write_p99_ms"] == [6.0, 8.0, 10.0]
    assert document["fsync_p99_ms"] == [None, None, None]  # nothing was fsync'd: a gap, not a zero
    assert document["lag"] == {"apply": [2, 2, 2], "node 2": [4, 4, 4], "node 3": [0, 0, 0]}
    assert document["window_seconds"] == 3 and document["node"] == 1


async def fetch_json(url: str) -> dict:
    def get() -> dict:
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.loads(response.read())

    return await trio.to_thread.run_sync(get)


def read_png(path: Path) -> tuple[int, int, list[bytes]]:
    """Width, height and the RGB(A) rows of an 8-bit, non-interlaced PNG (what Chromium writes)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        chunk = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    assert header is not None
    width, height, depth, colour, _, _, interlace = header
    assert depth == 8 and colour in (2, 6) and interlace == 0, header
    channels = 4 if colour == 6 else 3
    raw = zlib.decompress(idat)
    stride = width * channels
    rows, previous = [], bytearray(stride)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for x in range(stride):
            left = line[x - channels] if x >= channels else 0
            up = previous[x]
            if kind == 1:
                line[x] = (line[x] + left) & 0xFF
            elif kind == 2:
                line[x] = (line[x] + up) & 0xFF
            elif kind == 3:
                line[x] = (line[x] + (left + up) // 2) & 0xFF
            elif kind == 4:
                corner = previous[x - channels] if x >= channels else 0
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[x] = (line[x] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 0xFF
        rows.append(bytes(line))
        previous = line
    return width, height, [bytes(row) for row in rows]


def count_colours(path: Path, colours: dict[str, str], tolerance: int = 40) -> dict[str, int]:
    """For each ``#rrggbb``, the pixels within ``tolerance`` of it (per channel)."""
    targets = {name: bytes.fromhex(colour[1:]) for name, colour in colours.items()}
    width, _, rows = read_png(path)
    channels = len(rows[0]) // width
    found = dict.fromkeys(colours, 0)
    for row in rows:
        for x in range(0, len(row), channels):
            r, g, b = row[x], row[x + 1], row[x + 2]
            if r == g == b:
                continue  # white, black and the greys of text and grid: no chart line
            for name, (tr, tg, tb) in targets.items():
                if abs(r - tr) <= tolerance and abs(g - tg) <= tolerance and abs(b - tb) <= tolerance:
                    found[name] += 1
    return found


async def chromium(tmp_path: Path, page: str, *args: str) -> bytes:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--hide-scrollbars",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=4000",
        *args,
        page,
    ]
    with trio.fail_after(90):
        done = await trio.run_process(command, capture_stdout=True, capture_stderr=True, check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    return done.stdout


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")
async def test_charts_draw_the_history_and_the_room_table_sorts(tmp_path):
    config = ServerConfig(host="127.0.0.1", port=0, data_dir=tmp_path / "d", http_port=0)
    async with open_broadcaster(config) as b:
        host, port = b.listen_addresses[0].rsplit(":", 1)
        base = f"http://{b.http_addresses[0]}"
        async with connect(host, int(port), name="ana") as ana, connect(host, int(port), name="ben") as ben:
            await ana.create_room("big", keep_open=True)
            await ana.create_room("small", keep_open=True)
            await ana.join("big")
            await ben.join("big")
            # Writes while the server samples its history (once a second): several samples with data.
            start = len(b.health.samples)
            count = 0
            while len(b.health.samples) < start + 4:
                await ana.set(f"k{count % 20}", b"x" * 64)
                count += 1
            history = await fetch_json(f"{base}/history")
            assert len(history["time"]) == len(history["ops_per_second"]) == len(history["clients"])
            assert max(history["ops_per_second"]) > 0 and max(history["clients"]) == 2
            assert any(v is not None for v in history["write_p99_ms"])
            assert any(v is not None for v in history["fsync_p99_ms"])
            assert "apply" in history["lag"]

            shot = tmp_path / "status.png"
            await chromium(tmp_path, f"{base}/", "--window-size=1000,1000", f"--screenshot={shot}")
            # Each chart's line is drawn in its own colour: the pixels are there, not only the elements.
            colours = {name: CHART_COLOURS[name] for name in ("ops", "clients", "write", "fsync")}
            found = count_colours(shot, {**colours, "lag": CHART_COLOURS["lag"][0]})
            assert all(n > 150 for n in found.values()), found

            by_name = (await chromium(tmp_path, f"{base}/", "--dump-dom")).decode()
            by_keys = (await chromium(tmp_path, f"{base}/?sort=keys", "--dump-dom")).decode()
    rows = re.compile(r'<tbody id="rooms"><tr><td>([^<]*)</td>.*?<tr><td>([^<]*)</td>')
    assert rows.search(by_name).groups() == ("big", "small")
    assert rows.search(by_keys).groups() == ("small", "big")  # small has no keys, big 20
    assert 'data-key="keys" aria-sort="ascending"' in by_keys
    assert 'data-key="name" aria-sort="ascending"' in by_name
