"""Headless Chromium driven over the DevTools protocol, for tests and benchmarks of the browser viewer.

Debian's ``chromium`` with WebGL on SwiftShader (software GL): the page renders as it would on a laptop,
only slower. ``Browser.open`` starts it with a throw-away profile; ``evaluate`` runs JavaScript in the
page, ``screenshot`` returns an RGB image (``Image``) decoded from the PNG Chromium sends.
"""

from __future__ import annotations

import base64
import itertools
import json
import math
import shutil
import struct
import subprocess
import urllib.request
import zlib
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, Message, Request, TextMessage

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
    "--ignore-gpu-blocklist",
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--remote-debugging-port=0",
    "--remote-allow-origins=*",
]


@dataclass
class Image:
    width: int
    height: int
    rgb: bytes

    def pixel(self, x: int, y: int) -> tuple[int, int, int]:
        i = (y * self.width + x) * 3
        return self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]

    def find(self, predicate) -> list[tuple[int, int]]:
        """Every (x, y) whose colour satisfies ``predicate(r, g, b)``."""
        return [(x, y) for y in range(self.height) for x in range(self.width) if predicate(*self.pixel(x, y))]


# The page's fixed camera for pixel checks (``#camera=`` in its URL): from -Y towards the origin, Z up, so
# world X is screen right and Z is screen up; the page's vertical field of view is FOV degrees.
CAMERA = "0,-10,0,0,0,0"
FOV = 50.0


def project(image: Image, point: tuple[float, float, float]) -> tuple[int, int]:
    """Where CAMERA shows a world point, in screenshot pixels."""
    x, y, z = point
    depth = y + 10.0
    half = math.tan(math.radians(FOV / 2))
    aspect = image.width / image.height
    ndc_x, ndc_y = x / depth / (half * aspect), z / depth / half
    return round((ndc_x + 1) / 2 * image.width), round((1 - ndc_y) / 2 * image.height)


def red(r: int, g: int, b: int) -> bool:
    return r > 120 and r > 2 * g and r > 2 * b


def blue(r: int, g: int, b: int) -> bool:
    return b > 120 and b > 2 * r and b > 2 * g


def around(image: Image, centre: tuple[int, int], predicate, radius: int = 6) -> bool:
    """Every pixel of a small square around ``centre`` satisfies ``predicate``."""
    cx, cy = centre
    return all(
        predicate(*image.pixel(x, y))
        for x in range(cx - radius, cx + radius + 1)
        for y in range(cy - radius, cy + radius + 1)
    )


def decode_png(data: bytes) -> Image:
    """8-bit RGB or RGBA, non-interlaced PNG (what Chromium writes) to RGB."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks, header = 8, [], None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            chunks.append(body)
        pos += 12 + length
    assert header is not None
    width, height, depth, colour, _, _, interlace = header
    assert depth == 8 and colour in (2, 6) and interlace == 0, header
    channels = 3 if colour == 2 else 4
    raw = zlib.decompress(b"".join(chunks))
    stride = width * channels
    out = bytearray(height * stride)
    previous = bytearray(stride)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        if kind == 1:
            for i in range(channels, stride):
                line[i] = (line[i] + line[i - channels]) & 255
        elif kind == 2:
            for i in range(stride):
                line[i] = (line[i] + previous[i]) & 255
        elif kind == 3:
            for i in range(stride):
                left = line[i - channels] if i >= channels else 0
                line[i] = (line[i] + (left + previous[i]) // 2) & 255
        elif kind == 4:
            for i in range(stride):
                a = line[i - channels] if i >= channels else 0
                b = previous[i]
                c = previous[i - channels] if i >= channels else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        out[y * stride : (y + 1) * stride] = line
        previous = line
    if channels == 4:
        rgb = bytearray(width * height * 3)
        rgb[0::3], rgb[1::3], rgb[2::3] = out[0::4], out[1::4], out[2::4]
        return Image(width, height, bytes(rgb))
    return Image(width, height, bytes(out))


class Page:
    """One page target over its DevTools WebSocket."""

    def __init__(self, stream: trio.SocketStream, ws: WSConnection):
        self.stream = stream
        self.ws = ws
        self._ids = itertools.count(1)
        self._buffer: list[str] = []
        self._partial = ""
        self.log: list[str] = []  # the page's console messages and uncaught exceptions, for diagnosis

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        ident = next(self._ids)
        message = json.dumps({"id": ident, "method": method, "params": params})
        await self.stream.send_all(self.ws.send(Message(data=message)))
        while True:
            for text in self._take():
                reply = json.loads(text)
                if reply.get("method") in ("Runtime.consoleAPICalled", "Runtime.exceptionThrown"):
                    self.log.append(json.dumps(reply.get("params"))[:2000])
                    del self.log[:-200]
                if reply.get("id") == ident:
                    if "error" in reply:
                        raise RuntimeError(f"{method}: {reply['error']}")
                    return reply.get("result", {})
            data = await self.stream.receive_some(1 << 20)
            if not data:
                raise RuntimeError("the browser closed the DevTools connection")
            self.ws.receive_data(data)
            for event in self.ws.events():
                if isinstance(event, TextMessage):
                    self._partial += event.data
                    if event.message_finished:
                        self._buffer.append(self._partial)
                        self._partial = ""
                elif isinstance(event, CloseConnection):
                    raise RuntimeError("the browser closed the DevTools connection")

    def _take(self) -> list[str]:
        taken, self._buffer = self._buffer, []
        return taken

    async def navigate(self, url: str) -> None:
        await self.call("Page.navigate", url=url)

    async def evaluate(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout: float = 60.0, interval: float = 0.05) -> Any:
        with trio.fail_after(timeout):
            while True:
                value = await self.evaluate(expression)
                if value:
                    return value
                await trio.sleep(interval)

    async def screenshot(self) -> Image:
        result = await self.call("Page.captureScreenshot", format="png")
        return decode_png(base64.b64decode(result["data"]))

    async def screenshot_png(self) -> bytes:
        result = await self.call("Page.captureScreenshot", format="png")
        return base64.b64decode(result["data"])


@asynccontextmanager
async def open_browser(profile: Path, width: int = 800, height: int = 600):
    """A headless Chromium with one blank page; yields the Page."""
    assert CHROMIUM is not None
    profile.mkdir(parents=True, exist_ok=True)
    command = [
        CHROMIUM,
        *FLAGS,
        f"--user-data-dir={profile}",
        f"--window-size={width},{height}",
        "about:blank",
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = profile / "DevToolsActivePort"
        with trio.fail_after(60):
            while not port_file.exists() or len(port_file.read_text().splitlines()) < 2:
                await trio.sleep(0.05)
        port = int(port_file.read_text().splitlines()[0])

        def targets() -> list[dict[str, Any]]:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as response:
                return json.loads(response.read())

        with trio.fail_after(30):
            while True:
                pages = [t for t in await trio.to_thread.run_sync(targets) if t.get("type") == "page"]
                if pages:
                    break
                await trio.sleep(0.05)
        url = pages[0]["webSocketDebuggerUrl"]
        path = url.split(f":{port}", 1)[1]
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        ws = WSConnection(ConnectionType.CLIENT)
        await stream.send_all(ws.send(Request(host=f"127.0.0.1:{port}", target=path)))
        accepted = False
        while not accepted:
            ws.receive_data(await stream.receive_some(65536))
            accepted = any(isinstance(e, AcceptConnection) for e in ws.events())
        page = Page(stream, ws)
        await page.call("Page.enable")
        await page.call("Runtime.enable")
        try:
            yield page
        finally:
            await stream.aclose()
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
