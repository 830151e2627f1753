"""Every receive limit is a deadline: a peer trickling bytes is cut as surely as a silent one."""

from __future__ import annotations

import struct

import msgpack
import pytest
import trio
from support import running_broadcaster

from broadcaster.client import connect
from broadcaster.config import ConfigError, ServerConfig
from broadcaster.deadlines import ReceiveDeadlines
from protocol import PROTOCOL_VERSION, encode_frame

HELLO = encode_frame({"type": "hello", "protocol": PROTOCOL_VERSION, "client_name": "trickle"})
MARGIN = 2.0  # seconds of slack for a loaded machine; the old idle timers never fired at all


async def read_frames(stream: trio.SocketStream, buffer: bytearray, until_closed: bool) -> list[dict]:
    """Frames from the stream: all of them up to the close, or the ones in the next chunk."""
    frames = []
    while True:
        try:
            chunk = await stream.receive_some(65536)
        except trio.BrokenResourceError:
            chunk = b""
        buffer += chunk
        while len(buffer) >= 4:
            (length,) = struct.unpack(">I", buffer[:4])
            if len(buffer) < 4 + length:
                break
            frames.append(msgpack.unpackb(bytes(buffer[4 : 4 + length])))
            del buffer[: 4 + length]
        if not chunk or (frames and not until_closed):
            return frames


async def trickle(stream: trio.SocketStream, data: bytes, interval: float) -> None:
    """One byte every ``interval`` seconds, until the data or the connection ends."""
    for i in range(len(data)):
        try:
            await stream.send_all(data[i : i + 1])
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return
        await trio.sleep(interval)


async def cut_after(stream: trio.SocketStream, data: bytes, interval: float, buffer: bytearray):
    """Trickle ``data`` while reading; return the frames up to the close and the seconds it took."""
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trickle, stream, data, interval)
        frames = await read_frames(stream, buffer, until_closed=True)
        nursery.cancel_scope.cancel()
    return frames, trio.current_time() - start


async def test_a_hello_trickled_byte_by_byte_is_cut_at_the_handshake_deadline(tmp_path):
    timeout = 1.0
    async with running_broadcaster(tmp_path / "d", handshake_timeout=timeout) as (host, port):
        stream = await trio.open_tcp_stream(host, port)
        # A valid hello, but one byte per timeout/4: every byte arrives well within any idle timer.
        with trio.fail_after(timeout + 10):
            frames, elapsed = await cut_after(stream, HELLO, timeout / 4, bytearray())
        assert len(HELLO) * timeout / 4 > timeout + MARGIN  # the hello alone would take this long
        [error] = frames
        assert error["type"] == "error" and error["code"] == "timeout" and error["fatal"] is True
        assert "handshake_timeout" in error["message"]
        assert elapsed <= timeout + MARGIN
        async with connect(host, port, name="prompt") as prompt:  # a prompt hello is fine
            assert await prompt.list_rooms() == []


async def test_a_frame_trickled_after_hello_is_cut_at_its_deadline(tmp_path):
    idle, rate = 1.0, 1000
    async with running_broadcaster(
        tmp_path / "d", heartbeat_timeout=idle, heartbeat_interval=60.0, min_frame_bytes_per_second=rate
    ) as (host, port):
        stream = await trio.open_tcp_stream(host, port)
        await stream.send_all(HELLO)
        buffer = bytearray()
        [welcome] = await read_frames(stream, buffer, until_closed=False)
        assert welcome["type"] == "welcome"
        frame = encode_frame({"type": "ping", "nonce": 1, "pad": b"x" * 1000})  # bad, but never complete
        allowance = idle + (len(frame) - 4) / rate
        with trio.fail_after(allowance + 10):
            frames, elapsed = await cut_after(stream, frame, idle / 4, buffer)
        [error] = frames
        assert error["type"] == "error" and error["code"] == "timeout" and error["fatal"] is True
        assert f"frame of {len(frame) - 4} bytes" in error["message"]
        assert elapsed <= allowance + MARGIN


async def test_a_large_frame_at_the_minimum_rate_gets_through(tmp_path):
    idle, rate = 1.0, 1000
    async with running_broadcaster(
        tmp_path / "d", heartbeat_timeout=idle, min_frame_bytes_per_second=rate
    ) as (host, port):
        async with connect(host, port, name="writer") as writer:
            await writer.create_room("r", keep_open=True)
        stream = await trio.open_tcp_stream(host, port)
        value = b"v" * 3000
        frame = encode_frame({"type": "set", "op_id": 1, "key": "k", "value": value})
        join = encode_frame({"type": "join_room", "room": "r", "ref": 1})
        await stream.send_all(HELLO + join)
        # 3 KiB in 300-byte steps at 1500 B/s: twice heartbeat_timeout in all, but above the minimum rate.
        for i in range(0, len(frame), 300):
            await stream.send_all(frame[i : i + 300])
            await trio.sleep(0.2)
        buffer = bytearray()
        with trio.fail_after(10):
            while True:
                frames = await read_frames(stream, buffer, until_closed=False)
                assert all(f["type"] != "error" for f in frames), frames
                if any(f["type"] == "ack" and f["op_id"] == 1 for f in frames):
                    break
        await stream.aclose()
        async with connect(host, port, name="reader") as reader:
            await reader.join("r")
            assert reader.state == {"k": value}


def test_waiting_the_server_does_not_do_is_not_charged_to_the_frame():
    config = ServerConfig(heartbeat_timeout=10.0, min_frame_bytes_per_second=100)
    deadlines = ReceiveDeadlines(config, accepted_at=0.0)
    deadlines.received(frames_completed=True, frame_in_progress=True)  # a frame started
    deadlines.waited(6.0)
    # Its header says 500 bytes: 10 + 5 s in all, 6 s used; a pause of the server's own (backpressure)
    # between receives is not passed to waited() and costs nothing.
    deadline, reason = deadlines.next(1000.0, hello_done=True, frame_size=500)
    assert deadline == 1009.0 and "frame of 500 bytes" in reason
    # A completed frame with the next one already started restarts the clock.
    deadlines.received(frames_completed=True, frame_in_progress=True)
    assert deadlines.next(1000.0, hello_done=True, frame_size=None)[0] == 1010.0
    # No frame in progress: only the idle limit.
    deadlines.received(frames_completed=True, frame_in_progress=False)
    deadline, reason = deadlines.next(1000.0, hello_done=True, frame_size=None)
    assert deadline == 1010.0 and "heartbeat_timeout" in reason
    # Before hello, the handshake deadline counts from the accept, whatever has arrived.
    assert deadlines.next(1000.0, hello_done=False, frame_size=None)[0] == config.handshake_timeout


@pytest.mark.parametrize("name", ["handshake_timeout", "heartbeat_timeout", "min_frame_bytes_per_second"])
def test_receive_limits_must_be_positive(name):
    config = ServerConfig()
    config.update({name: 0})
    with pytest.raises(ConfigError, match=name):
        config.check()
