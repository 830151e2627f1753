"""The protocol over the HTTP port's WebSocket: the same sessions; bad input treated as on the TCP port."""

from __future__ import annotations

from contextlib import asynccontextmanager

import pytest
import trio
from wsproto.events import Message, TextMessage

from broadcaster.app import open_broadcaster
from broadcaster.client import connect
from broadcaster.config import ServerConfig
from protocol import PROTOCOL_VERSION, Hello, JoinRoom
from protocol.framing import pack_body
from tools.wsclient import WebSocketClosed, WSClient

MARGIN = 2.0  # seconds of slack for a loaded machine


@asynccontextmanager
async def serving(tmp_path, **settings):
    config = ServerConfig(host="127.0.0.1", port=0, data_dir=tmp_path / "d", http_port=0, **settings)
    async with open_broadcaster(config) as b:
        yield b


async def hello(ws: WSClient, token: str | None = None) -> dict:
    await ws.send(Hello(protocol=PROTOCOL_VERSION, client_name="browser", client_kind="web", token=token))
    return await ws.receive_body()


async def closing_error(ws: WSClient) -> tuple[dict, int | None]:
    """The fatal error frame the server sends, and the WebSocket close code after it."""
    with trio.fail_after(30):
        error = await ws.receive_body()
        with pytest.raises(WebSocketClosed):
            while True:
                await ws.receive_body()
    return error, ws.closed


async def test_a_websocket_client_joins_reads_and_writes_like_a_tcp_one(tmp_path):
    async with serving(tmp_path) as b:
        http = b.http_addresses[0]
        host, port = b.listen_addresses[0].rsplit(":", 1)
        async with connect(host, int(port), name="ana") as ana:
            await ana.create_room("r", keep_open=True)
            await ana.join("r")
            await ana.set("obj/1/name", b"Cube")
            ws = await WSClient.open(http)
            welcome = await hello(ws)
            assert welcome["type"] == "welcome"
            await ws.send(JoinRoom(room="r", ref=1))
            events = await ws.receive_until("snapshot_end")
            joined = events[0]
            assert joined.TYPE == "joined" and joined.role == "owner"  # no auth: everyone is an admin
            items = [item for e in events if e.TYPE == "snapshot" for item in e.items]
            assert items == [["obj/1/name", b"Cube"]]
            await ana.set("obj/1/name", b"Sphere")
            [applied] = [e for e in await ws.receive_until("applied") if e.TYPE == "applied"]
            assert applied.ops == [["set", "obj/1/name", b"Sphere"]]
            await ws.send_body({"type": "set", "op_id": 1, "key": "k", "value": b"v"})
            ack = await ws.receive_body()
            assert ack == {"type": "ack", "op_id": 1, "seq": 3}
            await ws.aclose()


async def test_a_connection_dropped_without_a_close_frame_ends_only_its_session(tmp_path):
    # A browser on a network that goes away closes TCP without the WebSocket close handshake.
    async with serving(tmp_path) as b:
        http = b.http_addresses[0]
        ws = await WSClient.open(http)
        assert (await hello(ws))["type"] == "welcome"
        await ws.stream.aclose()  # no close frame
        with trio.fail_after(10):
            while b.connections:
                await trio.sleep(0.05)  # the session ends; the server goes on
        again = await WSClient.open(http)
        assert (await hello(again))["type"] == "welcome"
        await again.aclose()


async def test_a_bad_upgrade_gets_a_400_and_the_server_goes_on(tmp_path):
    async with serving(tmp_path) as b:
        http = b.http_addresses[0]
        h, p = http.rsplit(":", 1)
        for request in (
            b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n",  # not an upgrade at all
            b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",  # no key
            b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n",  # old version
        ):
            stream = await trio.open_tcp_stream(h, int(p))
            await stream.send_all(request)
            received = b""
            with trio.fail_after(10):
                while chunk := await stream.receive_some(65536):
                    received += chunk
            assert received.startswith(b"HTTP/1.1 400 "), received[:200]
            await stream.aclose()
        ws = await WSClient.open(http)
        assert (await hello(ws))["type"] == "welcome"


async def test_a_text_message_is_a_fatal_bad_frame(tmp_path):
    async with serving(tmp_path) as b:
        http = b.http_addresses[0]
        ws = await WSClient.open(http)
        await hello(ws)
        await ws.send_raw(ws.ws.send(TextMessage(data='{"type": "ping", "nonce": 1}')))
        error, code = await closing_error(ws)
        assert error["type"] == "error" and error["code"] == "bad_frame" and error["fatal"] is True
        assert code == 1003


async def test_a_message_over_max_frame_size_is_cut_before_it_is_buffered(tmp_path):
    limit = 64 * 1024
    async with serving(tmp_path, max_frame_size=limit) as b:
        http = b.http_addresses[0]
        ws = await WSClient.open(http)
        await hello(ws)
        body = pack_body({"type": "set", "op_id": 1, "key": "k", "value": b"x" * limit})
        # Sent in fragments: the server cannot know the length up front, and stops at the limit.
        data = ws.ws.send(Message(data=body[: limit // 2], message_finished=False))
        data += ws.ws.send(Message(data=body[limit // 2 :], message_finished=True))
        try:
            await ws.send_raw(data)
        except trio.BrokenResourceError:
            pass
        error, code = await closing_error(ws)
        assert error["code"] == "frame_too_large" and error["fatal"] is True and code == 1009
        ws = await WSClient.open(http)
        assert (await hello(ws))["type"] == "welcome"  # the server goes on


async def trickle(ws: WSClient, data: bytes, interval: float) -> None:
    for i in range(len(data)):
        try:
            await ws.send_raw(data[i : i + 1])
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return
        await trio.sleep(interval)


async def cut_after(ws: WSClient, data: bytes, interval: float) -> tuple[dict, float]:
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trickle, ws, data, interval)
        error, _ = await closing_error(ws)
        nursery.cancel_scope.cancel()
    return error, trio.current_time() - start


async def test_a_hello_trickled_over_the_websocket_is_cut_at_the_handshake_deadline(tmp_path):
    timeout = 1.0
    async with serving(tmp_path, handshake_timeout=timeout) as b:
        http = b.http_addresses[0]
        ws = await WSClient.open(http)
        hello_bytes = ws.ws.send(
            Message(data=pack_body({"type": "hello", "protocol": PROTOCOL_VERSION, "client_name": "t"}))
        )
        assert len(hello_bytes) * timeout / 4 > timeout + MARGIN
        error, elapsed = await cut_after(ws, hello_bytes, timeout / 4)
        assert error["code"] == "timeout" and "handshake_timeout" in error["message"]
        assert elapsed <= timeout + MARGIN


async def test_a_message_trickled_after_hello_is_cut_at_its_deadline(tmp_path):
    idle, rate = 1.0, 1000
    async with serving(
        tmp_path, heartbeat_timeout=idle, heartbeat_interval=60.0, min_frame_bytes_per_second=rate
    ) as b:
        http = b.http_addresses[0]
        ws = await WSClient.open(http)
        await hello(ws)
        data = ws.ws.send(Message(data=pack_body({"type": "ping", "nonce": 1, "pad": b"x" * 1000})))
        # Its allowance grows with what has arrived: a byte per idle/4 adds 1/rate s per byte.
        error, elapsed = await cut_after(ws, data, idle / 4)
        assert error["code"] == "timeout" and "not complete within" in error["message"]
        assert elapsed <= idle + 1 + MARGIN


async def test_a_viewer_that_stops_reading_gets_every_message_in_order_when_it_reads_again(tmp_path):
    # Messages go straight to a viewer's socket while nothing is queued; once its socket is full they
    # queue behind the part the socket did not take. Nothing may be lost, doubled or reordered.
    async with serving(tmp_path) as b:
        http = b.http_addresses[0]
        host, port = b.listen_addresses[0].rsplit(":", 1)
        async with connect(host, int(port), name="ana") as ana:
            await ana.create_room("r", keep_open=True)
            await ana.join("r")
            ws = await WSClient.open(http)
            await hello(ws)
            await ws.send(JoinRoom(room="r", ref=1))
            await ws.receive_until("snapshot_end")
            value = bytes(range(256)) * 256  # 64 KiB each: 16 MiB in all, far past the socket buffers

            async def write() -> None:
                for i in range(256):
                    await ana.send_ops([["set", f"k{i % 7}", value[i:] + value[:i]]])

            seqs = []
            async with trio.open_nursery() as nursery:
                nursery.start_soon(write)
                with trio.fail_after(120):
                    while len(seqs) < 256:
                        # A slow reader: its socket fills and drains again and again meanwhile.
                        await trio.sleep(0.002 if len(seqs) % 8 else 0.05)
                        event = await ws.receive()
                        if event.TYPE == "applied":
                            i = event.seq - 1
                            assert event.ops == [["set", f"k{i % 7}", value[i:] + value[:i]]]
                            seqs.append(event.seq)
            assert seqs == list(range(1, 257))
            await ws.aclose()
