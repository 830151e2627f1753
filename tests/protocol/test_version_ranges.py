"""Protocol versions: the range a hello names, the one a server picks, and the welcome it sends for each.

The server side of the refusal (its message naming the add-on to install) is tested against a real server in
tests/broadcaster/test_versions.py.
"""

from __future__ import annotations

import pytest

from protocol import (
    PROTOCOL_MIN,
    PROTOCOL_VERSION,
    ErrorCode,
    Hello,
    RemoteProtocolError,
    Welcome,
    mismatch_reason,
    negotiate,
)
from protocol.events import WELCOME_V2_FIELDS, Sender, event_from_body

SID = "s" * 32
# The fields of a welcome in protocol 1, as its clients check them (unknown keys are refused).
WELCOME_V1_NAMES = {
    "type",
    "protocol",
    "server_version",
    "session",
    "client_id",
    "nodes",
    "max_frame_size",
    "heartbeat_interval",
    "user",
    "role",
}


def test_this_code_speaks_1_to_3():
    assert (PROTOCOL_MIN, PROTOCOL_VERSION) == (1, 3)


@pytest.mark.parametrize(
    ("client", "server", "chosen"),
    [
        ((1, 1), (1, 2), 1),  # an old client: the server speaks its version
        ((1, 2), (1, 2), 2),
        ((2, 2), (1, 2), 2),
        ((1, 5), (1, 2), 2),  # a newer client that still speaks ours
        ((3, 5), (1, 2), None),  # newer than the server
        ((0, 0), (1, 2), None),  # older than the server
        ((0, 65535), (1, 2), 2),
        ((65535, 65535), (1, 2), None),
        ((2, 2), (2, 2), 2),
        ((1, 1), (2, 2), None),
    ],
)
def test_negotiate_picks_the_newest_version_both_speak(client, server, chosen):
    assert negotiate(*client, *server) == chosen


def test_mismatch_reason_says_which_side_is_older():
    assert mismatch_reason(0, 0, 1, 2) == (
        "this client speaks protocol 0, the server 1 to 2: the client is older than the server"
    )
    assert mismatch_reason(3, 4, 1, 1) == (
        "this client speaks protocol 3 to 4, the server 1: the client is newer than the server"
    )


def decode_hello(body: dict) -> Hello:
    event = event_from_body({"type": "hello", "client_name": "a", **body}, from_role=Sender.CLIENT)
    assert isinstance(event, Hello)
    return event


@pytest.mark.parametrize(
    ("body", "versions"),
    [
        ({"protocol": 1}, (1, 1)),  # a protocol 1 hello: exactly one version
        ({"protocol": 2, "protocol_min": 1}, (1, 2)),
        ({"protocol": 2, "protocol_min": None}, (2, 2)),
        ({"protocol": 0, "protocol_min": 0}, (0, 0)),
        ({"protocol": 65535, "protocol_min": 0}, (0, 65535)),
        ({"protocol": 7, "protocol_min": 7}, (7, 7)),
    ],
)
def test_hello_names_a_range(body, versions):
    assert decode_hello(body).versions == versions


@pytest.mark.parametrize(
    ("protocol_min", "reason"),
    [
        (3, "hello.protocol_min must be at most protocol (2)"),
        (-1, "hello.protocol_min must be 0 to 65535"),
        (65536, "hello.protocol_min must be 0 to 65535"),
        (2**63, "hello.protocol_min must be 0 to 65535"),
        (True, "hello.protocol_min must be int"),
        ("1", "hello.protocol_min must be int"),
    ],
)
def test_hello_range_limits(protocol_min, reason):
    with pytest.raises(RemoteProtocolError) as info:
        decode_hello({"protocol": 2, "protocol_min": protocol_min})
    assert info.value.code is ErrorCode.BAD_MESSAGE
    assert info.value.message.startswith(reason), info.value.message


def welcome(protocol: int, **extra) -> Welcome:
    return Welcome(
        protocol=protocol,
        server_version="0.2.0",
        session=SID,
        client_id=SID,
        protocol_min=1,
        protocol_max=2,
        addon_version="0.2.0",
        addon_port=12880,
        addon_sha256="0" * 64,
        **extra,
    )


def test_a_protocol_1_welcome_holds_only_protocol_1_fields():
    # A client of protocol 1 refuses unknown fields: the server speaks its version by leaving them out.
    assert set(welcome(1).to_body()) == WELCOME_V1_NAMES
    body = welcome(2).to_body()
    assert set(body) == WELCOME_V1_NAMES | set(WELCOME_V2_FIELDS)
    assert event_from_body(body, from_role=Sender.SERVER) == welcome(2)


@pytest.mark.parametrize(
    ("name", "value", "ok"),
    [
        ("addon_port", 1, True),
        ("addon_port", 65535, True),
        ("addon_port", 0, False),
        ("addon_port", 65536, False),
        ("addon_sha256", "a" * 64, True),
        ("addon_sha256", "a" * 63, False),
        ("addon_sha256", "a" * 65, False),
        ("addon_sha256", "A" * 64, False),  # lowercase hex only
        ("addon_sha256", "g" * 64, False),
        ("addon_sha256", "\x00" + "a" * 63, False),
        ("addon_sha256", "é" * 32, False),
        ("addon_sha256", "*" * 64, False),
        ("addon_sha256", "\ud800" + "a" * 63, False),
        ("addon_version", "", True),
        ("addon_version", "v" * 64, True),
        ("addon_version", "v" * 65, False),
        ("addon_version", "0.2\n", False),
        ("protocol_min", 65535, True),
        ("protocol_max", 65536, False),
    ],
)
def test_welcome_version_fields_limits(name, value, ok):
    body = {**welcome(2).to_body(), name: value}
    if ok:
        assert getattr(event_from_body(body, from_role=Sender.SERVER), name) == value
    else:
        with pytest.raises(RemoteProtocolError) as info:
            event_from_body(body, from_role=Sender.SERVER)
        assert info.value.message.startswith(f"welcome.{name} must be"), info.value.message
