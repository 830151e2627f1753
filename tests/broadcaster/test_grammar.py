"""The protocol's grammar at a real ``blendsync serve``: out-of-range input is named and has no effect on
anyone, and everything the grammar allows the store accepts."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import msgpack
import pytest
import trio
from support import ServerProcess

from broadcaster.client import connect
from protocol import PROTOCOL_VERSION, ClientJoined, ClientUpdated, encode_frame

MAX_FRAME = 1024 * 1024


@pytest.fixture(scope="module")
def serve(tmp_path_factory):
    base: Path = tmp_path_factory.mktemp("grammar")
    config = base / "server.toml"
    config.write_text(f"[server]\nmax_frame_size = {MAX_FRAME}\n")
    process = ServerProcess(base / "data", extra=["--config", str(config)])
    host, port = process.start()
    yield host, port
    assert process.proc.poll() is None, "the server died"
    process.kill()


class Raw:
    """A client writing frames by hand, to send what the protocol objects would refuse to build."""

    def __init__(self, stream: trio.SocketStream):
        self.stream = stream
        self.buffer = b""

    async def send(self, body: dict[str, Any] | bytes) -> None:
        await self.stream.send_all(body if isinstance(body, bytes) else encode_frame(body))

    async def next(
        self, skip: tuple[str, ...] = ("ping", "client_joined", "client_left", "locks_changed")
    ) -> dict:
        with trio.fail_after(10):
            while True:
                if len(self.buffer) >= 4:
                    (length,) = struct.unpack(">I", self.buffer[:4])
                    if len(self.buffer) >= 4 + length:
                        frame = msgpack.unpackb(self.buffer[4 : 4 + length])
                        self.buffer = self.buffer[4 + length :]
                        if frame["type"] not in skip:
                            return frame
                        continue
                chunk = await self.stream.receive_some(65536)
                assert chunk, "the server closed the connection"
                self.buffer += chunk

    async def request(self, body: dict[str, Any]) -> dict:
        await self.send(body)
        return await self.next()


async def raw_member(host: str, port: int, room: str) -> Raw:
    raw = Raw(await trio.open_tcp_stream(host, port))
    await raw.send({"type": "hello", "protocol": PROTOCOL_VERSION, "client_name": "raw"})
    assert (await raw.next())["type"] == "welcome"
    reply = await raw.request({"type": "join_room", "room": room, "ref": 1})
    assert reply["type"] == "joined", reply
    while reply["type"] != "snapshot_end":
        reply = await raw.next()
    return raw


async def test_op_id_2_to_the_63_is_a_bad_message_naming_op_id(serve):
    host, port = serve
    async with connect(host, port, name="owner") as owner:
        await owner.create_room("ids", keep_open=True)
        raw = await raw_member(host, port, "ids")
        try:
            for op_id in (2**63, 2**64 - 1, 0, -1, -(2**63)):
                reply = await raw.request({"type": "set", "op_id": op_id, "key": "k", "value": b"never"})
                assert reply == {
                    "type": "error",
                    "code": "bad_message",
                    "message": "set.op_id must be 1 to 9223372036854775807",
                    "ref": op_id if 0 <= op_id < 2**63 else None,  # an error echoes only a valid ref
                    "fatal": False,
                }
            reply = await raw.request({"type": "set", "op_id": True, "key": "k", "value": b"never"})
            assert reply["code"] == "bad_message" and reply["message"] == "set.op_id must be int, got bool"
            # The largest op_id goes all the way to the store and back.
            reply = await raw.request({"type": "set", "op_id": 2**63 - 1, "key": "k", "value": b"last"})
            assert reply["type"] == "ack" and reply["op_id"] == 2**63 - 1
        finally:
            await raw.stream.aclose()
        async with connect(host, port, name="reader") as reader:
            await reader.join("ids")
            assert reader.state == {"k": b"last"}


async def test_a_500_kb_presence_name_is_refused_and_never_relayed(serve):
    host, port = serve
    async with connect(host, port, name="bystander") as bystander:
        await bystander.create_room("faces", keep_open=True)
        await bystander.join("faces")
        raw = await raw_member(host, port, "faces")
        try:
            reply = await raw.request({"type": "presence", "state": {"name": "n" * 500_000, "frame": 1}})
            assert reply["type"] == "error" and reply["code"] == "bad_message" and not reply["fatal"]
            assert reply["message"].startswith("presence.state.name must be 0 to 256 bytes")
            reply = await raw.request({"type": "presence", "state": {"view_matrix": [1.0] * 15}})
            assert reply["message"] == "presence.state.view_matrix must have exactly 16 items; it has 15"
            # A valid update after the refused ones: once the bystander has it, anything relayed before
            # it has arrived too.
            await raw.send({"type": "presence", "state": {"frame": 7, "name": "raw"}})
            seen = []
            with trio.fail_after(10):
                while True:
                    event = await bystander.events.receive()
                    seen.append(event)
                    if isinstance(event, ClientUpdated) and event.state.get("frame") == 7:
                        break
        finally:
            await raw.stream.aclose()
    updates = [e.state for e in seen if isinstance(e, ClientUpdated)]
    states = updates + [e.client for e in seen if isinstance(e, ClientJoined)]
    assert all(len(str(state.get("name", ""))) <= 256 for state in states)
    assert all(state.get("frame") != 1 and "view_matrix" not in state for state in states)
    assert updates[-1] == {"frame": 7, "name": "raw"}


async def test_non_utf8_bytes_in_a_str_are_named_and_the_connection_goes_on(serve):
    host, port = serve
    async with connect(host, port, name="owner") as owner:
        await owner.create_room("bytes", keep_open=True)
        raw = await raw_member(host, port, "bytes")
        try:
            body = b"\x84\xa4type\xa3set\xa5op_id\x05\xa3key\xa3k\xff\xfe\xa5value\xc4\x01v"
            reply = await raw.request(struct.pack(">I", len(body)) + body)
            assert reply == {
                "type": "error",
                "code": "bad_message",
                "message": "set.key is not valid UTF-8",
                "ref": 5,
                "fatal": False,
            }
            reply = await raw.request({"type": "set", "op_id": 5, "key": "k", "value": b"v"})
            assert reply["type"] == "ack"
        finally:
            await raw.stream.aclose()


async def test_the_store_takes_the_longest_names_and_the_largest_value_at_once(serve):
    host, port = serve
    room = "\U0001f3ac" * 64  # 256 bytes
    key = (
        "*/**/%2F/\x01\x7f\x85 \u200d" + "\U0001f511" * 251 + "abc"
    )  # 1024 bytes, pattern and control characters
    assert len(room.encode()) == 256 and len(key.encode()) == 1024
    async with connect(host, port, name="w" * 256) as writer:
        await writer.create_room(room, keep_open=True)
        await writer.join(room)
        await writer.set("*", b"star")
        op = {"type": "set", "op_id": 2**63 - 1, "key": key, "seen": writer.seq}  # as the client sends it
        overhead = len(encode_frame({**op, "value": b""})) - 4
        value = b"\xff" * (MAX_FRAME - overhead - 3)  # bin header: 2 bytes when empty, 5 at this size
        assert len(encode_frame({**op, "value": value})) - 4 == MAX_FRAME
        _, waiter = await writer.send_ops([["set", key, value]], op_id=2**63 - 1)
        await waiter.wait()
        async with connect(host, port, name="reader") as reader:
            await reader.join(room)
            assert reader.state == {key: value, "*": b"star"}
