import struct

import msgpack
import pytest

from protocol import ErrorCode, RemoteProtocolError, encode_frame
from protocol.framing import FrameReader


def test_frame_is_length_prefix_then_msgpack_map():
    frame = encode_frame({"type": "ping", "nonce": 7})
    body = msgpack.packb({"type": "ping", "nonce": 7})
    assert frame == struct.pack(">I", len(body)) + body


def test_reader_reassembles_byte_by_byte():
    frames = [encode_frame({"type": "ping", "nonce": n}) for n in range(5)]
    reader = FrameReader()
    out = []
    for byte in b"".join(frames):
        reader.feed(bytes([byte]))
        while (payload := reader.next_payload()) is not None:
            out.append(msgpack.unpackb(payload))
    assert [m["nonce"] for m in out] == list(range(5))


def test_oversized_length_is_refused_before_the_body_arrives():
    reader = FrameReader(max_frame_size=1000)
    reader.feed(struct.pack(">I", 1001))  # only the header: nothing of the body is buffered
    with pytest.raises(RemoteProtocolError) as info:
        reader.next_payload()
    assert info.value.code is ErrorCode.FRAME_TOO_LARGE
    assert info.value.fatal
    assert reader.buffered == 0


def test_frame_at_the_limit_is_accepted():
    reader = FrameReader(max_frame_size=10)
    reader.feed(struct.pack(">I", 10) + b"x" * 10)
    assert reader.next_payload() == b"x" * 10


def test_large_frame_in_many_chunks_is_linear():
    payload = b"y" * (8 * 1024 * 1024)
    data = struct.pack(">I", len(payload)) + payload
    reader = FrameReader()
    for i in range(0, len(data), 65536):
        reader.feed(data[i : i + 65536])
        result = reader.next_payload()
    assert result == payload
