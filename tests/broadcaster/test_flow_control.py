"""Slow consumers are cut with a reason and resume; silent peers are dropped by the heartbeat."""

from __future__ import annotations

import struct

import msgpack
import trio
from support import running_broadcaster, wait_for

from broadcaster.client import connect
from protocol import PROTOCOL_VERSION, encode_frame


async def test_slow_consumer_is_cut_and_resumes_from_its_seq(tmp_path):
    # The slow client reads its stream only after every write is through; on a loaded machine that can be
    # seconds after the cut, so the server must keep the cut connection open until its last frame is read.
    async with running_broadcaster(tmp_path / "d", send_queue_bytes=256 * 1024, close_grace=60.0) as (
        host,
        port,
    ):
        async with connect(host, port, name="writer") as writer, connect(host, port, name="fast") as fast:
            await writer.create_room("r", keep_open=True)
            await writer.join("r")
            await fast.join("r")
            # A client that joins and then never reads.
            stream = await trio.open_tcp_stream(host, port)
            await stream.send_all(
                encode_frame(
                    {
                        "type": "hello",
                        "protocol": PROTOCOL_VERSION,
                        "client_name": "slow",
                        "session": "slow-session-1",
                    }
                )
                + encode_frame({"type": "join_room", "room": "r", "ref": 1})
            )
            await trio.sleep(0.2)
            value = b"z" * 16384
            for i in range(400):  # 6.4 MiB: past the slow client's 256 KiB queue and its socket buffers
                _, waiter = await writer.send_ops([["set", f"k{i % 64}", value]])
                if i % 8 == 0:
                    await waiter.wait()  # paced, so that a client that does read keeps up
            try:
                await wait_for(lambda: writer.seq == 400 and fast.seq == 400)
            except trio.TooSlowError:
                raise AssertionError((writer.seq, fast.seq)) from None
            # The slow client's connection was closed, with a slow_consumer error at the end of the stream.
            data = b""
            with trio.fail_after(10):
                while chunk := await stream.receive_some(1 << 20):
                    data += chunk
            frames = []
            while len(data) >= 4:
                (length,) = struct.unpack(">I", data[:4])
                if len(data) < 4 + length:
                    break
                frames.append(msgpack.unpackb(data[4 : 4 + length]))
                data = data[4 + length :]
            last_seq = max([f["seq"] for f in frames if f["type"] == "applied"] + [0])
            assert frames[-1]["type"] == "error" and frames[-1]["code"] == "slow_consumer"
            assert last_seq < 400
            await stream.aclose()
            # It comes back with its session and resumes where it was.
            async with connect(host, port, name="slow", session="slow-session-1") as slow:
                joined = await slow.join("r", since=last_seq)
                assert joined.mode == "resume"
                await wait_for(lambda: slow.seq == 400)
            # The fast client was never disturbed.
            assert fast.state == writer.state


async def test_silent_client_is_dropped_by_the_heartbeat(tmp_path):
    async with running_broadcaster(tmp_path / "d", heartbeat_interval=0.1, heartbeat_timeout=0.5) as (
        host,
        port,
    ):
        stream = await trio.open_tcp_stream(host, port)
        await stream.send_all(
            encode_frame({"type": "hello", "protocol": PROTOCOL_VERSION, "client_name": "mute"})
        )
        received = b""
        with trio.fail_after(5):
            while chunk := await stream.receive_some(65536):
                received += chunk
        assert b"timeout" in received  # the closing error frame names the reason
        assert b"ping" in received  # it was pinged first
        # A client that answers pings (the client library does) stays connected.
        async with connect(host, port, name="talkative") as client:
            await trio.sleep(1.0)
            assert await client.list_rooms() == []
