"""Whatever bytes arrive, the protocol object answers with an event or a ProtocolError, nothing else."""

import struct

import msgpack
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import (
    EVENT_TYPES,
    NEED_DATA,
    PROTOCOL_VERSION,
    Connection,
    Event,
    Hello,
    ProtocolError,
    Role,
    encode_frame,
)

msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=20)
    | st.binary(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
field_names = st.sampled_from(
    [
        "type",
        "op_id",
        "key",
        "value",
        "ops",
        "room",
        "ref",
        "since",
        "state",
        "nonce",
        "password",
        "subscribe",
        "hash",
        "hashes",
        "data",
    ]
)
bodies = st.dictionaries(field_names, msgpack_values, max_size=6) | st.fixed_dictionaries(
    {"type": st.sampled_from(sorted(EVENT_TYPES))},
    optional={
        "op_id": msgpack_values,
        "key": msgpack_values,
        "value": msgpack_values,
        "ops": msgpack_values,
        "room": msgpack_values,
        "state": msgpack_values,
        "hash": msgpack_values | st.binary(min_size=31, max_size=33),
        "hashes": msgpack_values | st.lists(st.binary(min_size=31, max_size=33), max_size=3),
        "data": msgpack_values,
    },
)


def ready_server() -> Connection:
    server = Connection(Role.SERVER)
    server.receive_data(encode_frame(Hello(protocol=PROTOCOL_VERSION, client_name="f").to_body()))
    server.next_event()
    return server


def drain(conn: Connection) -> None:
    for _ in range(1000):
        try:
            event = conn.next_event()
        except ProtocolError as exc:
            if exc.fatal:
                return
            continue
        if event is NEED_DATA or not isinstance(event, Event):
            return


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes(data):
    server = ready_server()
    server.receive_data(data)
    drain(server)


@settings(max_examples=400, deadline=None)
@given(bodies)
def test_random_message_shapes(body):
    server = ready_server()
    try:
        payload = msgpack.packb(body, use_bin_type=True)
    except (OverflowError, ValueError):
        return
    server.receive_data(struct.pack(">I", len(payload)) + payload)
    try:
        event = server.next_event()
    except ProtocolError:
        return
    # Anything accepted is a well-typed event that re-encodes to an equal one.
    assert isinstance(event, Event)
    client_view = Connection(Role.SERVER)
    client_view.receive_data(encode_frame(Hello(protocol=PROTOCOL_VERSION, client_name="f").to_body()))
    client_view.next_event()
    client_view.receive_data(encode_frame(event.to_body()))
    assert client_view.next_event() == event
