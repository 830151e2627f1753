import struct

import msgpack
import pytest

from protocol import (
    CLOSED,
    NEED_DATA,
    PROTOCOL_VERSION,
    Ack,
    Applied,
    Batch,
    Connection,
    ErrorCode,
    Hello,
    JoinRoom,
    LocalProtocolError,
    Ping,
    Presence,
    RemoteProtocolError,
    Role,
    Set,
    Welcome,
    encode_frame,
)
from protocol.limits import MAX_HELLO_FRAME_BYTES


def handshake() -> tuple[Connection, Connection]:
    client, server = Connection(Role.CLIENT), Connection(Role.SERVER)
    server.receive_data(client.send(Hello(protocol=PROTOCOL_VERSION, client_name="ana")))
    assert isinstance(server.next_event(), Hello)
    client.receive_data(
        server.send(
            Welcome(protocol=PROTOCOL_VERSION, server_version="t", session="s" * 8, client_id="s" * 8)
        )
    )
    assert isinstance(client.next_event(), Welcome)
    return client, server


def feed(conn: Connection, body: dict) -> object:
    conn.receive_data(encode_frame(body))
    return conn.next_event()


def test_round_trip_of_every_operation_kind():
    client, server = handshake()
    for event in [
        Set(op_id=1, key="obj/1/transform", value=b"\x00\xff"),
        Batch(op_id=2, ops=[["set", "a", b"1"], ["delete", "b"]]),
        JoinRoom(room="shot", since=41, ref=3),
        Presence(state={"name": "ana", "frame": 12, "view_matrix": [1.0] * 16}),
    ]:
        server.receive_data(client.send(event))
        assert server.next_event() == event
    assert server.next_event() is NEED_DATA


def test_server_events_reach_the_client():
    client, server = handshake()
    applied = Applied(room="r", seq=5, client_id="x" * 8, op_id=9, ops=[["set", "k", b"v"]])
    client.receive_data(server.send(applied) + server.send(Ack(op_id=1, seq=6)))
    assert client.next_event() == applied
    assert client.next_event() == Ack(op_id=1, seq=6)


def test_nothing_before_hello():
    server = Connection(Role.SERVER)
    with pytest.raises(RemoteProtocolError) as info:
        feed(server, {"type": "list_rooms"})
    assert info.value.code is ErrorCode.PROTOCOL_STATE


@pytest.mark.parametrize(
    "body",
    [
        {"nonce": 1},  # no type
        {"type": 7},
        {"type": "teleport"},
        {"type": "hello", "protocol": "1", "client_name": "x"},  # wrongly typed
        {"type": "hello", "protocol": PROTOCOL_VERSION, "client_name": 5},
        {"type": "hello", "protocol": PROTOCOL_VERSION},  # missing client_name
        {"type": "hello", "protocol": PROTOCOL_VERSION, "client_name": "x", "extra": 1},
        {"type": "hello", "protocol": PROTOCOL_VERSION, "client_name": "x", "session": "short"},
        {"type": "set", "op_id": "1", "key": "k", "value": b"v"},
        {"type": "welcome", "protocol": 1, "server_version": "", "session": "", "client_id": ""},
    ],
)
def test_anything_malformed_before_hello_is_fatal(body):
    server = Connection(Role.SERVER)
    with pytest.raises(RemoteProtocolError) as info:
        feed(server, body)
    assert info.value.code is ErrorCode.PROTOCOL_STATE and info.value.fatal
    with pytest.raises(LocalProtocolError):  # nothing more is read from that stream
        feed(server, {"type": "hello", "protocol": PROTOCOL_VERSION, "client_name": "late"})


def test_before_hello_a_server_takes_no_frame_longer_than_a_hello_can_be():
    """A peer that has not said hello is nobody: its first frame may be at most MAX_HELLO_FRAME_BYTES, refused
    from its length prefix alone; the longest hello is well under it, and after it max_frame_size holds."""
    limit = MAX_HELLO_FRAME_BYTES
    longest = Hello(
        protocol=PROTOCOL_VERSION,
        client_name="\U0001f600" * 64,  # 256 bytes
        client_kind="k" * 64,
        client_version="v" * 64,
        session="s" * 64,
        token="\U0001f600" * 256,  # 1024 bytes
        protocol_min=0,
    )
    assert len(Connection(Role.CLIENT).send(longest)) < limit // 8
    server = Connection(Role.SERVER)
    server.receive_data(struct.pack(">I", limit + 1))  # the header only: nothing more need arrive
    with pytest.raises(RemoteProtocolError) as info:
        server.next_event()
    assert info.value.code is ErrorCode.FRAME_TOO_LARGE and info.value.fatal
    assert "before hello" in info.value.message and str(limit) in info.value.message
    # Exactly the limit is framed (then judged as a hello: this one is not).
    server = Connection(Role.SERVER)
    body = msgpack.packb({"type": "hello", "pad": b"x" * (limit - 19)})  # 19 bytes of map, keys, headers
    assert len(body) == limit
    server.receive_data(struct.pack(">I", limit) + body)
    with pytest.raises(RemoteProtocolError) as info:
        server.next_event()
    assert info.value.code is ErrorCode.PROTOCOL_STATE
    # A hello and, in the same bytes, a write as large as max_frame_size allows.
    client, server = Connection(Role.CLIENT), Connection(Role.SERVER, max_frame_size=4 * limit)
    big = Set(op_id=1, key="k", value=b"x" * (3 * limit))
    server.receive_data(client.send(longest) + client.send(big))
    assert server.next_event() == longest and server.next_event() == big
    # A client reads its first frame (the welcome, or an error) under max_frame_size alone.
    client = Connection(Role.CLIENT)
    client.receive_data(struct.pack(">I", limit + 1))
    assert client.next_event() is NEED_DATA


def test_second_hello_is_refused():
    _, server = handshake()
    with pytest.raises(RemoteProtocolError) as info:
        feed(server, {"type": "hello", "protocol": PROTOCOL_VERSION, "client_name": "again"})
    assert info.value.code is ErrorCode.PROTOCOL_STATE


def test_a_welcome_for_a_version_this_client_does_not_speak_is_a_clear_fatal_error():
    # Which version the server picks is its call (tests/protocol/test_version_ranges.py); a client still
    # refuses a welcome outside its own range rather than misread what follows.
    client = Connection(Role.CLIENT)
    client.send(Hello(protocol=PROTOCOL_VERSION, client_name="ana"))
    body = {"type": "welcome", "server_version": "t", "session": "s" * 8, "client_id": "s" * 8}
    client.receive_data(encode_frame({**body, "protocol": PROTOCOL_VERSION + 1}))
    with pytest.raises(RemoteProtocolError) as info:
        client.next_event()
    assert info.value.code is ErrorCode.VERSION_MISMATCH and info.value.fatal
    chose = PROTOCOL_VERSION + 1
    assert (
        info.value.message == f"the server chose protocol {chose}; this client speaks 1 to {PROTOCOL_VERSION}"
    )


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"nonce": 1}, ErrorCode.BAD_MESSAGE),  # no type
        ({"type": "teleport"}, ErrorCode.UNKNOWN_TYPE),
        ({"type": "set", "op_id": "1", "key": "k", "value": b"v"}, ErrorCode.BAD_MESSAGE),
        ({"type": "set", "op_id": 1, "key": "k", "value": "not bytes"}, ErrorCode.BAD_MESSAGE),
        ({"type": "set", "op_id": True, "key": "k", "value": b"v"}, ErrorCode.BAD_MESSAGE),  # bool is not int
        ({"type": "set", "op_id": 1, "key": "", "value": b"v"}, ErrorCode.BAD_MESSAGE),
        ({"type": "set", "op_id": 1, "key": "k" * 1025, "value": b"v"}, ErrorCode.BAD_MESSAGE),
        ({"type": "set", "op_id": 1, "key": "k"}, ErrorCode.BAD_MESSAGE),  # missing value
        ({"type": "set", "op_id": 1, "key": "k", "value": b"", "extra": 1}, ErrorCode.BAD_MESSAGE),
        ({"type": "batch", "op_id": 1, "ops": []}, ErrorCode.BAD_MESSAGE),
        ({"type": "batch", "op_id": 1, "ops": [["set", "k"]]}, ErrorCode.BAD_MESSAGE),
        ({"type": "batch", "op_id": 1, "ops": [["rename", "k", b""]]}, ErrorCode.BAD_MESSAGE),
        ({"type": "presence", "state": {"frame": "12"}}, ErrorCode.BAD_MESSAGE),
        ({"type": "presence", "state": {"password": "x"}}, ErrorCode.BAD_MESSAGE),
        ({"type": "join_room", "room": ""}, ErrorCode.BAD_MESSAGE),
        (
            {"type": "welcome", "protocol": 1, "server_version": "", "session": "", "client_id": ""},
            ErrorCode.PROTOCOL_STATE,
        ),  # a server-only message from a client
    ],
)
def test_bad_messages_are_refused_without_breaking_the_stream(body, code):
    _, server = handshake()
    body.setdefault("ref", 77) if body.get("type") in ("join_room",) else None
    with pytest.raises(RemoteProtocolError) as info:
        feed(server, body)
    assert info.value.code is code
    assert not info.value.fatal
    # The stream goes on: the next well-formed frame is read normally.
    assert feed(server, {"type": "ping", "nonce": 3}) == Ping(nonce=3)


def test_error_names_the_offending_request():
    _, server = handshake()
    with pytest.raises(RemoteProtocolError) as info:
        feed(server, {"type": "set", "op_id": 41, "key": "", "value": b""})
    assert info.value.ref == 41


def test_garbage_body_is_fatal():
    _, server = handshake()
    server.receive_data(struct.pack(">I", 3) + b"\xc1\xc1\xc1")  # 0xc1 is never valid msgpack
    with pytest.raises(RemoteProtocolError) as info:
        server.next_event()
    assert info.value.code is ErrorCode.BAD_FRAME and info.value.fatal
    with pytest.raises(LocalProtocolError):
        server.next_event()


def test_non_map_body_is_fatal():
    _, server = handshake()
    body = msgpack.packb([1, 2, 3])
    server.receive_data(struct.pack(">I", len(body)) + body)
    with pytest.raises(RemoteProtocolError) as info:
        server.next_event()
    assert info.value.code is ErrorCode.BAD_FRAME


def test_truncated_frame_at_end_of_stream():
    _, server = handshake()
    frame = encode_frame({"type": "ping", "nonce": 1})
    server.receive_data(frame[:-2])
    assert server.next_event() is NEED_DATA
    server.receive_data(b"")
    with pytest.raises(RemoteProtocolError) as info:
        server.next_event()
    assert info.value.code is ErrorCode.BAD_FRAME and info.value.fatal


def test_clean_end_of_stream():
    _, server = handshake()
    server.receive_data(b"")
    assert server.next_event() is CLOSED


def test_our_own_misuse_is_a_local_error():
    client = Connection(Role.CLIENT)
    with pytest.raises(LocalProtocolError):
        client.send(Set(op_id=1, key="k", value=b""))  # before hello
    with pytest.raises(LocalProtocolError):
        client.send(Ack(op_id=1, seq=1))  # a server message
