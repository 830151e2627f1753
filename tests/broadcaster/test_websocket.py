"""The protocol over the HTTP port's WebSocket: the same sessions; bad input treated as on the TCP port."""

from __future__ import annotations

from contextlib import asynccontextmanager

import pytest
import trio
from wsproto.events import Message, TextMessage

from broadcaster.app import open_broadcaster
from broadcaster.client import connect
from broadcaster.config import ServerConfig
from broadcaster.websocket import WebSocketSession
from protocol import PROTOCOL_VERSION, Hello, JoinRoom
from protocol.framing import pack_body
from protocol.limits import MAX_HELLO_FRAME_BYTES
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


UPGRADE = (
    b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
)


async def test_a_bad_upgrade_gets_a_400_and_the_server_goes_on(tmp_path):
    async with serving(tmp_path) as b:
        http = b.http_addresses[0]
        h, p = http.rsplit(":", 1)
        for request in (
            b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n",  # not an upgrade at all
            b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",  # no key
            b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n",  # old version
            # A byte that is not ASCII in a header the upgrade reads (it ended the whole server).
            *(
                UPGRADE + header + b"\r\n\r\n"
                for header in (
                    b"Host: x\r\nConnection: Upgrade\r\nSec-WebSocket-Protocol: \xff",
                    b"Host: x\r\nConnection: Upgrade\r\nSec-WebSocket-Extensions: \xff",
                    b"Host: x\r\nConnection: Upgrade, \xff",
                    b"Host: \xff\r\nConnection: Upgrade",
                )
            ),
            # RFC 6455 4.2.1: one key, the base64 of 16 bytes; HTTP/1.1 or later.
            *(
                b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Version: 13\r\n" + keys + b"\r\n"
                for keys in (
                    b"Sec-WebSocket-Key: \r\n",
                    b"Sec-WebSocket-Key: not base64!\r\n",
                    b"Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAA\r\n",  # 15 bytes
                    b"Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAAAA\r\n",  # 18 bytes
                    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" * 2,
                )
            ),
            UPGRADE.replace(b"HTTP/1.1", b"HTTP/1.0") + b"Host: x\r\nConnection: Upgrade\r\n\r\n",
        ):
            stream = await trio.open_tcp_stream(h, int(p))
            await stream.send_all(request)
            received = b""
            with trio.fail_after(10):
                while chunk := await stream.receive_some(65536):
                    received += chunk
            assert received.startswith(b"HTTP/1.1 400 "), (request, received[:200])
            await stream.aclose()
        ws = await WSClient.open(http)
        assert (await hello(ws))["type"] == "welcome"


def masked(opcode_byte: int, payload: bytes, mask: bytes = b"\x01\x02\x03\x04") -> bytes:
    """One client frame (RFC 6455 5.2) of under 126 bytes, its first byte as given."""
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes((opcode_byte, 0x80 | len(payload))) + mask + body


async def test_a_ping_and_a_close_in_one_read_end_the_session_and_only_it(tmp_path):
    # The close moved the connection on before the ping was answered: answering it ended the whole server.
    async with serving(tmp_path) as b:
        http = b.http_addresses[0]
        for said_hello in (False, True):
            ws = await WSClient.open(http)
            if said_hello:
                assert (await hello(ws))["type"] == "welcome"
            await ws.send_raw(masked(0x89, b"p") + masked(0x88, (1000).to_bytes(2, "big")))
            with trio.fail_after(10), pytest.raises(WebSocketClosed):
                while True:
                    await ws.receive_body()
            assert ws.closed == 1000
            await ws.stream.aclose()
        again = await WSClient.open(http)
        assert (await hello(again))["type"] == "welcome"
        await again.aclose()


@pytest.mark.parametrize(
    ("frame", "close_code"),
    [
        (b"\x82\x01x", 1002),  # a client frame not masked
        (masked(0xC2, b"x"), 1002),  # a reserved bit set
        (masked(0x83, b"x"), 1002),  # a reserved opcode
        (masked(0x00, b"x"), 1002),  # a continuation of no message
        (b"\x89\xfe\x00\x7e" + bytes(4) + b"p" * 126, 1002),  # a ping over 125 bytes
        (masked(0x88, (5000).to_bytes(2, "big")), 1002),  # a close code no one may send
        (masked(0x88, b"\x03\xe8\xff"), 1007),  # a close reason that is not UTF-8
    ],
    ids=[
        "unmasked",
        "reserved-bit",
        "reserved-opcode",
        "lone-continuation",
        "long-ping",
        "close-5000",
        "close-utf8",
    ],
)
async def test_a_frame_that_breaks_the_websocket_protocol_is_a_fatal_bad_frame(tmp_path, frame, close_code):
    # wsproto answers these with a close it proposes, not an error: they were taken for the peer's close.
    async with serving(tmp_path) as b:
        http = b.http_addresses[0]
        ws = await WSClient.open(http)
        assert (await hello(ws))["type"] == "welcome"
        await ws.send_raw(frame)
        error, code = await closing_error(ws)
        assert error["type"] == "error" and error["code"] == "bad_frame" and error["fatal"] is True, error
        assert error["message"].startswith("bad WebSocket data: ")
        assert code == close_code
        again = await WSClient.open(http)
        assert (await hello(again))["type"] == "welcome"
        await again.aclose()


async def test_a_server_bug_met_by_one_session_ends_that_session_only(tmp_path, monkeypatch, caplog):
    # Whatever a session's own code raises, its client is cut and logged; the server and the others go on.
    async with serving(tmp_path) as b:
        http = b.http_addresses[0]
        host, port = b.listen_addresses[0].rsplit(":", 1)
        async with connect(host, int(port), name="ana") as ana:
            ws = await WSClient.open(http)
            assert (await hello(ws))["type"] == "welcome"

            def broken(self, data):
                raise RuntimeError("a bug")

            monkeypatch.setattr(WebSocketSession, "receive_transport", broken)
            await ws.send_raw(masked(0x89, b"p"))
            with trio.fail_after(10), pytest.raises(WebSocketClosed):
                while True:
                    await ws.receive_body()
            monkeypatch.undo()
            assert "RuntimeError: a bug" in caplog.text
            await ana.create_room("r")  # the TCP port goes on
            again = await WSClient.open(http)
            assert (await hello(again))["type"] == "welcome"
            await again.aclose()


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


async def test_a_first_message_longer_than_a_hello_is_cut_and_one_after_the_hello_is_not(tmp_path):
    """As on the TCP port, a peer that has not said hello may send MAX_HELLO_FRAME_BYTES; the server stops
    reading its first message there. A message pipelined behind the hello is held to max_frame_size only."""
    async with serving(tmp_path) as b:
        http = b.http_addresses[0]
        ws = await WSClient.open(http)
        body = pack_body({"type": "hello", "protocol": PROTOCOL_VERSION, "client_name": "x" * 20_000})
        assert MAX_HELLO_FRAME_BYTES < len(body) < 2 * MAX_HELLO_FRAME_BYTES
        await ws.send_raw(ws.ws.send(Message(data=body)))
        error, code = await closing_error(ws)
        assert error["code"] == "frame_too_large" and "before hello" in error["message"] and code == 1009
        ws = await WSClient.open(http)
        hello_body = pack_body({"type": "hello", "protocol": PROTOCOL_VERSION, "client_name": "web"})
        padded = pack_body({"type": "ping", "nonce": 1, "pad": b"x" * (4 * MAX_HELLO_FRAME_BYTES)})
        await ws.send_raw(ws.ws.send(Message(data=hello_body)) + ws.ws.send(Message(data=padded)))
        assert (await ws.receive_body())["type"] == "welcome"
        error = await ws.receive_body()  # judged as a ping (it has a field too many), not by its size
        assert error["code"] == "bad_message" and error["fatal"] is False


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


async def test_pages_opened_together_all_get_in_past_the_ports_places(tmp_path):
    # After a restart every open page reconnects at once: more than the port serves at once (64, 16 from
    # one address) each wait their turn for the milliseconds of an upgrade; none is turned away.
    async with serving(tmp_path) as b:
        http = b.http_addresses[0]
        host, port = http.rsplit(":", 1)
        welcomed = []

        async def page(stream: trio.SocketStream) -> None:
            ws = await WSClient.upgrade(stream, http)
            welcomed.append((await hello(ws))["type"])
            await ws.aclose()

        with trio.fail_after(60):
            connected = [await trio.open_tcp_stream(host, int(port)) for _ in range(100)]  # all accepted
            async with trio.open_nursery() as nursery:
                for stream in connected:
                    nursery.start_soon(page, stream)
        assert welcomed == ["welcome"] * 100


async def test_connections_that_send_nothing_hold_the_port_only_until_their_deadline(tmp_path):
    # 64 sockets that never send a byte took every place for 30 s, turning every page away meanwhile.
    timeout = 2.0
    async with serving(tmp_path, handshake_timeout=timeout) as b:
        http = b.http_addresses[0]
        host, port = http.rsplit(":", 1)
        idle = [await trio.open_tcp_stream(host, int(port)) for _ in range(64)]
        await trio.sleep(timeout / 2)
        started = trio.current_time()
        with trio.fail_after(timeout + MARGIN):
            ws = await WSClient.open(http)  # waits its turn: in by the idle ones' deadline
            assert (await hello(ws))["type"] == "welcome"
        assert trio.current_time() - started >= timeout / 4  # it did wait: the idle ones held the places
        await ws.aclose()
        for stream in idle:  # each was closed at its deadline
            with trio.fail_after(MARGIN):
                assert await stream.receive_some(1) == b""
            await stream.aclose()


async def test_past_max_clients_waiting_a_connection_is_closed_at_once(tmp_path):
    async with serving(tmp_path, handshake_timeout=30.0, max_clients=4) as b:
        http = b.http_addresses[0]
        host, port = http.rsplit(":", 1)
        held = [await trio.open_tcp_stream(host, int(port)) for _ in range(16 + 4)]  # served, then waiting
        await trio.sleep(0.5)
        extra = await trio.open_tcp_stream(host, int(port))
        with trio.fail_after(MARGIN):
            assert await extra.receive_some(1) == b""
        for stream in (*held, extra):
            await stream.aclose()
