"""Bad input gets an error frame with a code; the server stays up and nobody else notices."""

from __future__ import annotations

import os
import socket
import struct

import msgpack
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import ServerProcess, running_broadcaster, wait_for

from broadcaster.client import ServerError, connect
from protocol import PROTOCOL_VERSION, encode_frame
from protocol.limits import MAX_HELLO_FRAME_BYTES

HELLO = encode_frame({"type": "hello", "protocol": PROTOCOL_VERSION, "client_name": "raw"})


class RawPeer:
    """A client speaking bytes by hand, to send what no well-behaved client would."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.buffer = b""
        self.closed = False  # the server closed the connection

    async def __aenter__(self):
        self.stream = await trio.open_tcp_stream(self.host, self.port)
        return self

    async def __aexit__(self, *exc):
        await self.stream.aclose()

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def frames(self, timeout: float = 5.0) -> list[dict]:
        """Read until the server closes (or the timeout); return the decoded frames."""
        out = []
        with trio.move_on_after(timeout):
            while True:
                try:
                    chunk = await self.stream.receive_some(65536)
                except trio.BrokenResourceError:
                    chunk = b""
                if not chunk:
                    self.closed = True
                    break
                self.buffer += chunk
                while len(self.buffer) >= 4:
                    (length,) = struct.unpack(">I", self.buffer[:4])
                    if len(self.buffer) < 4 + length:
                        break
                    out.append(msgpack.unpackb(self.buffer[4 : 4 + length]))
                    self.buffer = self.buffer[4 + length :]
        return out

    async def next_frame(self, timeout: float = 5.0) -> dict:
        with trio.fail_after(timeout):
            while True:
                if len(self.buffer) >= 4:
                    (length,) = struct.unpack(">I", self.buffer[:4])
                    if len(self.buffer) >= 4 + length:
                        frame = msgpack.unpackb(self.buffer[4 : 4 + length])
                        self.buffer = self.buffer[4 + length :]
                        return frame
                chunk = await self.stream.receive_some(65536)
                if not chunk:
                    raise EOFError("closed")
                self.buffer += chunk


def errors(frames: list[dict]) -> list[dict]:
    return [f for f in frames if f.get("type") == "error"]


@pytest.fixture
async def room_with_bystander(server):
    """A room with a client writing in it, to check that bad input elsewhere does not disturb it."""
    host, port = server
    async with connect(host, port, name="bystander") as bystander, connect(host, port, name="peer") as peer:
        await bystander.create_room("busy", keep_open=True)
        await bystander.join("busy")
        await peer.join("busy")
        yield host, port, bystander, peer
        # Afterwards the bystander still works and its peer still hears it.
        seq = await bystander.set("after", b"still here")
        await wait_for(lambda: peer.seq >= seq)
        assert peer.state["after"] == b"still here"


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"\xde\xad\xbe\xef" * 8, "frame_too_large"),  # random bytes read as a huge length
        (struct.pack(">I", 2**31), "frame_too_large"),
        (struct.pack(">I", 5) + b"\xc1\xc1\xc1\xc1\xc1", "bad_frame"),  # not msgpack
        (
            encode_frame({"type": "hello", "protocol": PROTOCOL_VERSION + 9, "client_name": "x"}),
            "version_mismatch",
        ),
        (encode_frame({"type": "list_rooms"}), "protocol_state"),  # before hello
        # Anything that cannot be decoded before hello: there is no session to go on with.
        (encode_frame({"type": "teleport"}), "protocol_state"),
        (encode_frame({"no": "type"}), "protocol_state"),
        (encode_frame({"type": "hello", "protocol": "1", "client_name": "x"}), "protocol_state"),
        (
            encode_frame({"type": "hello", "protocol": PROTOCOL_VERSION, "client_name": b"\xff"}),
            "protocol_state",
        ),
        (encode_frame({"type": "hello", "protocol": PROTOCOL_VERSION}), "protocol_state"),
    ],
)
async def test_fatal_input_gets_an_error_then_close(room_with_bystander, data, code):
    host, port, *_ = room_with_bystander
    async with RawPeer(host, port) as raw:
        await raw.send(data)
        frames = await raw.frames()
    assert errors(frames)[-1]["code"] == code
    assert errors(frames)[-1]["fatal"] is True
    assert raw.closed


async def test_a_first_frame_longer_than_a_hello_is_refused_from_its_length_alone(room_with_bystander):
    """Before hello the peer is nobody: a first frame over MAX_HELLO_FRAME_BYTES is refused as soon as its
    4-byte length is in, not held until it arrives (up to max_frame_size) or the handshake deadline."""
    host, port, *_ = room_with_bystander
    for declared in (MAX_HELLO_FRAME_BYTES + 1, 64 * 1024 * 1024):
        async with RawPeer(host, port) as raw:
            await raw.send(struct.pack(">I", declared) + b"\x81")
            with trio.fail_after(2):  # the handshake deadline is 10 s
                error = await raw.next_frame()
            assert error["code"] == "frame_too_large" and error["fatal"] is True
            assert "before hello" in error["message"]
            assert await raw.frames() == [] and raw.closed
    # After the hello, pipelined in the same bytes, a frame past that size is read as any other.
    async with RawPeer(host, port) as raw:
        padded = encode_frame({"type": "ping", "nonce": 1, "pad": b"x" * (4 * MAX_HELLO_FRAME_BYTES)})
        await raw.send(HELLO + padded)
        assert (await raw.next_frame())["type"] == "welcome"
        error = await raw.next_frame()  # judged as a ping (it has a field too many), not by its size
        assert error["code"] == "bad_message" and error["fatal"] is False


async def test_truncated_frame_then_close(room_with_bystander):
    host, port, *_ = room_with_bystander
    async with RawPeer(host, port) as raw:
        await raw.send(HELLO + encode_frame({"type": "ping", "nonce": 1})[:-3])
        assert (await raw.next_frame())["type"] == "welcome"
        await raw.stream.send_eof()
        frames = await raw.frames()
    assert errors(frames)[-1]["code"] == "bad_frame"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"type": "teleport", "ref": 5}, "unknown_type"),
        ({"type": "set", "op_id": 5, "key": 12, "value": b"v"}, "bad_message"),
        ({"type": "batch", "op_id": 5, "ops": [["set", "k", "str not bytes"]]}, "bad_message"),
        ({"type": "set", "op_id": 5, "key": "k", "value": b"v"}, "not_in_room"),  # before join
        ({"type": "join_room", "room": "nope", "ref": 5}, "no_such_room"),
        ({"type": "delete_room", "room": "busy", "ref": 5}, "room_in_use"),
        ({"type": "leave_room", "ref": 5}, "not_in_room"),
        (
            {
                "type": "welcome",
                "protocol": 1,
                "server_version": "",
                "session": "",
                "client_id": "",
                "ref": 5,
            },
            "protocol_state",
        ),
    ],
)
async def test_bad_request_gets_an_error_and_the_connection_goes_on(room_with_bystander, body, code):
    host, port, *_ = room_with_bystander
    async with RawPeer(host, port) as raw:
        await raw.send(HELLO)
        assert (await raw.next_frame())["type"] == "welcome"
        await raw.send(encode_frame(body))
        reply = await raw.next_frame()
        while reply["type"] == "ping":
            reply = await raw.next_frame()
        assert reply["type"] == "error" and reply["code"] == code and reply["ref"] == 5
        assert reply["fatal"] is False
        await raw.send(encode_frame({"type": "ping", "nonce": 9}))
        assert await raw.next_frame() == {"type": "pong", "nonce": 9}


async def test_wrong_password_and_no_half_written_batch(room_with_bystander):
    host, port, _, _ = room_with_bystander
    async with connect(host, port, name="x") as x:
        await x.create_room("locked", keep_open=True, password="pw")
        with pytest.raises(ServerError) as info:
            await x.join("locked", password="wrong")
        assert info.value.code == "wrong_password"
        await x.join("locked", password="pw")
        # A batch with one bad operation is refused whole.
        with pytest.raises(ServerError):
            await x.batch([["set", "good", b"1"], ["set", "", b"2"]])
        assert x.state == {}
        async with connect(host, port, name="y") as y:
            await y.join("locked", password="pw")
            assert y.state == {}


async def test_oversized_frame_limit_is_configurable(tmp_path):
    async with running_broadcaster(tmp_path / "d", max_frame_size=4096) as (host, port):
        async with connect(host, port, name="a") as a:
            await a.create_room("r", keep_open=True)
            await a.join("r")
            await a.set("small", b"x" * 1000)
            with pytest.raises((ServerError, Exception)):
                await a.set("big", b"x" * 8000)
        async with connect(host, port, name="b") as b:
            await b.join("r")
            assert set(b.state) == {"small"}


@pytest.fixture(scope="module")
def fuzz_target(tmp_path_factory):
    process = ServerProcess(tmp_path_factory.mktemp("fuzz") / "data")
    host, port = process.start()
    yield process, host, port
    process.kill()


# Longer runs: BLENDSYNC_FUZZ_EXAMPLES=100000 pytest tests/broadcaster/test_bad_input.py -k fuzz
FUZZ_EXAMPLES = int(os.environ.get("BLENDSYNC_FUZZ_EXAMPLES", "150"))

frame_bodies = st.dictionaries(
    st.sampled_from(
        ["type", "op_id", "key", "value", "room", "ref", "ops", "state", "since", "keys", "action", "args"]
    ),
    st.none()
    | st.integers(-5, 2**40)
    | st.text(max_size=8)
    | st.binary(max_size=8)
    | st.lists(
        st.lists(st.sampled_from(["set", "delete", "k"]) | st.binary(max_size=4), max_size=3), max_size=3
    )
    | st.sampled_from(
        [
            "set",
            "batch",
            "join_room",
            "create_room",
            "presence",
            "hello",
            "ping",
            "r",
            "lock",
            "unlock",
            "admin",
        ]
    )
    | st.sampled_from(["rooms", "clients", "kick", "delete_room", "break_lock", "export", "import"])
    | st.dictionaries(
        st.sampled_from(["room", "keys", "items", "more", "client_id", "meta", "seq"]),
        st.none() | st.text(max_size=4) | st.booleans() | st.integers(-1, 9) | st.lists(st.text(max_size=3)),
        max_size=4,
    ),
    max_size=5,
)


@settings(
    max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(chunks=st.lists(st.binary(max_size=64) | frame_bodies, max_size=8))
def test_fuzz_server_frame_handling(fuzz_target, chunks):
    """Random frames and bytes after a valid hello, over a real socket, to a real server process."""
    process, host, port = fuzz_target
    payload = HELLO + b"".join(c if isinstance(c, bytes) else encode_frame(c) for c in chunks)
    with socket.create_connection((host, port), timeout=2) as sock:
        sock.sendall(payload)
        sock.settimeout(0.05)
        try:
            while sock.recv(65536):
                pass
        except (TimeoutError, ConnectionResetError):
            pass
    assert process.proc.poll() is None, "the server died"


async def test_server_is_healthy_after_fuzzing(fuzz_target):
    process, host, port = fuzz_target
    async with connect(host, port, name="after") as after:
        await after.create_room("healthy", keep_open=True)
        await after.join("healthy")
        assert await after.set("k", b"v") >= 1
    assert process.proc.poll() is None
