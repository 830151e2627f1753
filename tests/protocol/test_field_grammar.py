"""The grammar of names and the range of every integer, enforced when a message is decoded.

The expectations here are written out from docs/protocol.md ("Limits and grammar"), not read back from
protocol/limits.py, so a change to either one without the other fails.
"""

from __future__ import annotations

import hashlib
import math
import re
import typing
from typing import Annotated, Any, get_args, get_origin

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import (
    EVENT_TYPES,
    NEED_DATA,
    PROTOCOL_VERSION,
    Connection,
    ErrorCode,
    RemoteProtocolError,
    Role,
    encode_frame,
    fit_name,
)
from protocol.events import Sender, event_from_body
from protocol.limits import (
    ADMIN_ARGS,
    MAX_BATCH_REFS,
    MAX_BLOB_BYTES,
    MAX_BLOB_CHILDREN,
    MAX_BLOB_GET,
    MAX_BLOB_QUERY,
    MAX_PUSHED_BLOBS,
    MAX_PUSHED_BYTES,
    MAX_VALUE_REFS,
    PRESENCE_FIELDS,
    TEXTS,
    IntRange,
    Text,
)

I63 = 2**63 - 1
SID = "s" * 32
HASH = hashlib.sha256(b"x").digest()

# One valid body of every message type (decoding each is the first test).
VALID: dict[str, dict[str, Any]] = {
    "ping": {"nonce": 1},
    "pong": {"nonce": 1},
    # protocol at its highest, so that any protocol_min in range is at or below it
    "hello": {"protocol": 65535, "client_name": "ana", "session": SID, "token": "t"},
    "list_rooms": {"ref": 1},
    "create_room": {"room": "shot", "password": "pw", "ref": 1},
    "join_room": {"room": "shot", "password": "pw", "since": 0, "ref": 1},
    "leave_room": {"ref": 1},
    "delete_room": {"room": "shot", "ref": 1},
    "set": {"op_id": 1, "key": "k", "value": b"", "seen": 0},
    "delete": {"op_id": 1, "key": "k", "seen": 0},
    "batch": {"op_id": 1, "ops": [["set", "k", b""], ["delete", "j"]], "seen": 0},
    "event": {"op_id": 1, "value": b""},
    "presence": {"state": {"name": "ana", "frame": 1}},
    "lock": {"keys": ["k"], "prefixes": ["obj/1/"], "ref": 1},
    "unlock": {"keys": [], "prefixes": [], "ref": 1},
    "admin": {"action": "rooms", "ref": 1},
    "blob_query": {"hashes": [HASH], "ref": 1},
    "blob_put": {"hash": HASH, "data": b"x", "ref": 1},
    "blob_get": {"hashes": [HASH], "ref": 1},
    "blob_status": {"missing": [HASH], "ref": 1},
    "blob_stored": {"hash": HASH, "ref": 1},
    "blob_data": {"hash": HASH, "data": b"x", "ref": 1},
    "welcome": {
        "protocol": 1,
        "server_version": "1.0",
        "session": SID,
        "client_id": SID,
        "nodes": ["127.0.0.1:12800", "[::1]:12800"],
        "max_frame_size": 1024,
        "heartbeat_interval": 5.0,
        "user": "ana",
        "role": "admin",
    },
    "room_list": {"rooms": [], "ref": 1},
    "rooms_changed": {"updated": [], "deleted": ["old"]},
    "room_created": {"room": "shot", "ref": 1},
    "joined": {"room": "shot", "seq": 0, "mode": "snapshot", "key_count": 0, "ref": 1},
    "snapshot": {"room": "shot", "items": [["k", b"v"]]},
    "snapshot_end": {"room": "shot", "seq": 0},
    "ack": {"op_id": 1, "seq": 1},
    "applied": {"room": "shot", "seq": 1, "client_id": SID, "op_id": 1, "ops": [["delete", "k"]], "seen": 0},
    "room_event": {"room": "shot", "client_id": SID, "value": b"", "seq": 0},
    "left": {"room": "shot", "ref": 1},
    "room_deleted": {"room": "shot", "ref": 1},
    "client_joined": {"room": "shot", "client": {}},
    "client_left": {"room": "shot", "client_id": SID},
    "client_updated": {"room": "shot", "client_id": SID, "state": {"frame": 1}},
    "error": {"code": "bad_message", "message": "m", "ref": 1},
    "lock_granted": {"room": "shot", "keys": ["k"], "ref": 1, "prefixes": ["p/"]},
    "unlocked": {"room": "shot", "keys": ["k"], "ref": 1, "prefixes": ["p/"]},
    "locks_changed": {
        "room": "shot",
        "locked": {"k": SID},
        "unlocked": ["j"],
        "prefixes": {"p/": SID},
        "unlocked_prefixes": ["q/"],
    },
    "admin_result": {"action": "rooms", "result": None, "ref": 1},
    "export_items": {
        "room": "shot",
        "items": [["k", b"v"]],
        "refs": [["k", [HASH]]],
        "ref": 1,
        "authors": [["k", 1, SID, "ana", 0]],
    },
    "export_blob": {"hash": hashlib.sha256(b"x").digest(), "data": b"x", "ref": 1},
    "history": {"prefix": "obj/1/", "since": 0, "limit": 10, "ref": 1},
    "checkpoint": {"name": "before lighting", "ref": 1},
    "list_checkpoints": {"ref": 1},
    "delete_checkpoint": {"checkpoint": 1, "ref": 1},
    "restore": {"checkpoint": 1, "ref": 1},
    "fork": {"room": "shot-try", "keep_open": True, "ref": 1},
    "set_retention": {"days": 30, "ops": 100, "ref": 1},
    "history_result": {"room": "shot", "keys": [["k", 1, SID, "ana", 0]], "truncated": False, "ref": 1},
    "checkpoint_made": {"room": "shot", "checkpoint": {"id": 1}, "ref": 1},
    "checkpoint_list": {"room": "shot", "checkpoints": [], "ref": 1},
    "checkpoint_deleted": {"room": "shot", "checkpoint": 1, "ref": 1},
    "restored": {"room": "shot", "seq": 2, "undo": 1, "ref": 1},
    "forked": {"room": "shot-try", "source": "shot", "seq": 0, "ref": 1},
    "retention": {"room": "shot", "days": 0, "ops": 0, "ref": 1},
    "replay": {"seq": 3, "after": "obj/1/name", "ref": 1},
    "replay_state": {
        "room": "shot",
        "seq": 3,
        "first": 0,
        "last": 9,
        "key_count": 1,
        "items": [["k", b"v"]],
        "more": False,
        "ref": 1,
    },
    "backup_data": {"data": b"\x00" * 8, "ref": 1},
}

# Every integer on the wire and its range, as docs/protocol.md states them: (message, field) -> (low, high).
INT_FIELDS: dict[tuple[str, str], tuple[int, int]] = {
    ("ping", "nonce"): (0, I63),
    ("pong", "nonce"): (0, I63),
    ("hello", "protocol"): (0, 65535),
    ("hello", "protocol_min"): (0, 65535),
    ("welcome", "protocol"): (0, 65535),
    ("welcome", "protocol_min"): (0, 65535),
    ("welcome", "protocol_max"): (0, 65535),
    ("welcome", "addon_port"): (1, 65535),
    ("welcome", "max_frame_size"): (0, 2**32 - 1),
    ("join_room", "since"): (0, I63),
    ("joined", "seq"): (0, I63),
    ("joined", "key_count"): (0, I63),
    ("snapshot_end", "seq"): (0, I63),
    ("ack", "seq"): (0, I63),
    ("applied", "seq"): (0, I63),
    ("room_event", "seq"): (0, I63),
    ("history", "since"): (0, I63),
    ("history", "limit"): (1, 10_000),
    **{(t, "checkpoint"): (1, I63) for t in ("delete_checkpoint", "restore", "fork", "checkpoint_deleted")},
    ("restored", "undo"): (1, I63),
    **{(t, "seq"): (0, I63) for t in ("restore", "fork", "restored", "forked", "replay", "replay_state")},
    **{("replay_state", f): (0, I63) for f in ("first", "last", "key_count")},
    **{(t, "days"): (0, 36_500) for t in ("set_retention", "retention")},
    **{(t, "ops"): (0, I63) for t in ("set_retention", "retention")},
    **{(t, "op_id"): (1, I63) for t in ("set", "delete", "batch", "event", "ack", "applied")},
    **{(t, "seen"): (0, I63) for t in ("set", "delete", "batch", "applied")},
    **{(t, "ref"): (0, I63) for t in VALID if "ref" in EVENT_TYPES[t]._names},
}
PRESENCE_INTS = {"frame": (-(2**31), 2**31 - 1)}
ADMIN_INTS = {
    ("import", "seq"): (0, I63),
    ("add_member", "node_id"): (1, I63),
    ("remove_member", "node_id"): (1, I63),
    ("history", "since"): (0, I63),
    ("history", "limit"): (1, 10_000),
}

# Every name on the wire: (message, field) -> (min bytes, max bytes, rule). Rules: "key" forbids NUL only;
# "room" forbids control characters and leading/trailing whitespace; "text" forbids control characters;
# "session" is printable ASCII without spaces; "secret" allows any valid UTF-8; "hex" is lowercase hex digits.
TEXT_FIELDS: dict[tuple[str, str], tuple[int, int, str]] = {
    ("set", "key"): (1, 1024, "key"),
    ("delete", "key"): (1, 1024, "key"),
    ("create_room", "room"): (1, 256, "room"),
    ("join_room", "room"): (1, 256, "room"),
    ("delete_room", "room"): (1, 256, "room"),
    ("hello", "client_name"): (0, 256, "text"),
    ("hello", "client_kind"): (0, 64, "text"),
    ("hello", "client_version"): (0, 64, "text"),
    ("hello", "session"): (8, 64, "session"),
    ("hello", "token"): (0, 1024, "secret"),
    ("create_room", "password"): (1, 1024, "secret"),
    ("join_room", "password"): (1, 1024, "secret"),
    ("welcome", "session"): (8, 64, "session"),
    ("welcome", "client_id"): (8, 64, "session"),
    ("welcome", "server_version"): (0, 64, "text"),
    ("welcome", "nodes"): (1, 256, "text"),
    ("welcome", "user"): (1, 256, "room"),
    ("welcome", "role"): (0, 64, "text"),
    ("welcome", "addon_version"): (0, 64, "text"),
    ("welcome", "addon_sha256"): (64, 64, "hex"),
    ("applied", "client_id"): (8, 64, "session"),
    ("room_event", "client_id"): (8, 64, "session"),
    ("client_left", "client_id"): (8, 64, "session"),
    ("client_updated", "client_id"): (8, 64, "session"),
    ("joined", "mode"): (0, 64, "text"),
    ("error", "code"): (0, 64, "text"),
    ("admin_result", "action"): (0, 64, "text"),
    ("history", "prefix"): (0, 1024, "key"),
    ("replay", "after"): (1, 1024, "key"),
    ("checkpoint", "name"): (1, 256, "text"),
    ("forked", "source"): (1, 256, "room"),
    **{(t, "prefixes"): (1, 1024, "prefix") for t in ("lock", "unlock", "lock_granted", "unlocked")},
    ("locks_changed", "unlocked_prefixes"): (1, 1024, "prefix"),
    **{
        (t, "room"): (1, 256, "room")
        for t in VALID
        if t not in ("create_room", "join_room", "delete_room", "admin") and "room" in VALID[t]
    },
}
# Strings with no grammar of their own: the server's error text, and admin.action (one of a fixed set).
UNBOUNDED_STR = {("error", "message"), ("admin", "action")}
PRESENCE_TEXT = {"name": (0, 256, "text"), "mode": (0, 64, "text"), "scene": (0, 256, "text")}
ADMIN_TEXT = {
    ("kick", "client_id"): (8, 64, "session"),
    ("kick", "reason"): (0, 1024, "text"),
    ("add_member", "raft"): (1, 256, "text"),
    ("history", "prefix"): (0, 1024, "key"),
    **{
        (a, "room"): (1, 256, "room")
        for a in ("delete_room", "break_lock", "export", "import", "history", "checkpoints")
    },
}

CONTROLS = ["\x00", "\x01", "\t", "\n", "\x1f", "\x7f", "\x80", "\x85", "\x9f"]
PATTERNS = ["*", "**", "/", "%", "a/*/b", "**/x", "%2F", "?", "[a]"]


def decode(type_name: str, body: dict[str, Any]) -> Any:
    cls = EVENT_TYPES[type_name]
    role = Sender.CLIENT if cls.SENDER & Sender.CLIENT else Sender.SERVER
    return event_from_body({"type": type_name, **body}, from_role=role)


def refused(type_name: str, body: dict[str, Any]) -> RemoteProtocolError:
    with pytest.raises(RemoteProtocolError) as info:
        decode(type_name, body)
    assert info.value.code is ErrorCode.BAD_MESSAGE and not info.value.fatal
    return info.value


# Fields that exclude each other: setting one drops the other from the valid example.
EXCLUSIVE = {("restore", "seq"): "checkpoint", ("restore", "checkpoint"): "seq"}


def with_field(type_name: str, name: str, value: Any) -> dict[str, Any]:
    body = {**VALID[type_name], name: value}
    body.pop(EXCLUSIVE.get((type_name, name), ""), None)
    return body


def test_every_message_type_has_a_valid_example():
    assert set(VALID) == set(EVENT_TYPES)
    for type_name, body in VALID.items():
        event = decode(type_name, body)
        assert decode(type_name, event.to_body() | {"type": type_name}) == event


# ---- integers ---------------------------------------------------------------------------------------------


def _declared_ints(tp: Any) -> bool:
    """Whether every int inside a declared type carries a range."""
    if tp is int:
        return False
    if get_origin(tp) is Annotated:
        base, *markers = get_args(tp)
        if base is int:
            return any(isinstance(m, IntRange) for m in markers)
        return _declared_ints(base)
    return all(_declared_ints(arg) for arg in get_args(tp))


def _int_range(tp: Any) -> IntRange | None:
    """The range of a field declared ``Annotated[int, IntRange(...)]`` (optionally ``| None``)."""
    options = [a for a in get_args(tp) if a is not type(None)] if get_origin(tp) is not Annotated else [tp]
    if len(options) == 1 and get_origin(options[0]) is Annotated:
        base, *markers = get_args(options[0])
        if base is int:
            return next(m for m in markers if isinstance(m, IntRange))
    return None


def test_every_int_field_has_a_range_and_the_documented_one():
    found = {}
    for type_name, cls in EVENT_TYPES.items():
        for name, tp, _ in cls._fields:
            assert _declared_ints(tp), f"{type_name}.{name} is an int without a range"
            if (declared := _int_range(tp)) is not None:
                found[type_name, name] = (declared.low, declared.high)
    assert found == INT_FIELDS
    for tp in [*PRESENCE_FIELDS.values(), *(t for args in ADMIN_ARGS.values() for t in args.values())]:
        assert _declared_ints(tp)
    assert {k: _int_range(PRESENCE_FIELDS[k]) for k in PRESENCE_INTS} == {
        k: IntRange(*v) for k, v in PRESENCE_INTS.items()
    }
    assert {k: _int_range(ADMIN_ARGS[k[0]][k[1]]) for k in ADMIN_INTS} == {
        k: IntRange(*v) for k, v in ADMIN_INTS.items()
    }


def _int_cases(low: int, high: int) -> list[tuple[Any, bool]]:
    cases = [(low, True), (high, True), (low - 1, False), (high + 1, False)]
    cases += [(v, low <= v <= high) for v in (0, 1, -1, 2**63 - 1, 2**63, 2**64, 2**64 - 1, -(2**63), 2**31)]
    cases += [(True, False), (False, False), (1.0, False), ("1", False)]
    return cases


@pytest.mark.parametrize(("type_name", "name"), sorted(INT_FIELDS))
def test_int_field_range(type_name, name):
    low, high = INT_FIELDS[type_name, name]
    for value, ok in _int_cases(low, high):
        body = with_field(type_name, name, value)
        if ok:
            assert getattr(decode(type_name, body), name) == value
        else:
            exc = refused(type_name, body)
            assert exc.message.startswith(f"{type_name}.{name} must be"), exc.message
            if type(value) is int:
                assert exc.message == f"{type_name}.{name} must be {low} to {high}"


def test_op_id_out_of_range_is_named_and_not_echoed():
    exc = refused("set", {"op_id": 2**63, "key": "k", "value": b""})
    assert exc.message == "set.op_id must be 1 to 9223372036854775807"
    assert exc.ref is None  # an error's ref must itself be a valid ref
    exc = refused("set", {"op_id": 7, "key": "", "value": b""})
    assert exc.ref == 7
    exc = refused("list_rooms", {"ref": -1})
    assert exc.ref is None


@pytest.mark.parametrize("presence_field", sorted(PRESENCE_INTS))
def test_presence_int_range(presence_field):
    low, high = PRESENCE_INTS[presence_field]
    for value, ok in _int_cases(low, high):
        body = {"state": {presence_field: value}}
        if ok:
            assert decode("presence", body).state == {presence_field: value}
        else:
            assert refused("presence", body).message.startswith(f"presence.state.{presence_field} must be")


@pytest.mark.parametrize(("action", "arg"), sorted(ADMIN_INTS))
def test_admin_int_args(action, arg):
    low, high = ADMIN_INTS[action, arg]
    for value, ok in _int_cases(low, high):
        body = {"action": action, "args": {arg: value}}
        if ok:
            decode("admin", body)
        else:
            assert refused("admin", body).message.startswith(f"admin.args.{arg} must be")


# ---- names ------------------------------------------------------------------------------------------------


def _declared_strs(tp: Any) -> bool:
    if tp is str:
        return False
    if get_origin(tp) is dict:  # a map's keys are field names, checked by the map's own rules
        return _declared_strs(get_args(tp)[1])
    if get_origin(tp) is Annotated:
        base, *markers = get_args(tp)
        if base is str:
            return any(isinstance(m, Text) for m in markers)
        return _declared_strs(base)
    return all(_declared_strs(arg) for arg in get_args(tp))


def test_every_str_field_has_a_grammar():
    for type_name, cls in EVENT_TYPES.items():
        hints = typing.get_type_hints(cls, include_extras=True)
        for name, _, _ in cls._fields:
            if (type_name, name) in UNBOUNDED_STR:
                continue
            assert _declared_strs(hints[name]), f"{type_name}.{name} is a str without a grammar"


def _oracle(value: str, low: int, high: int, rule: str) -> bool:
    """The documented grammar, written independently of protocol/limits.py."""
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        return False
    if not low <= size <= high:
        return False
    control = any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in value)
    if rule == "key":
        return "\x00" not in value
    if rule == "prefix":
        return "\x00" not in value and value.endswith("/")
    if rule == "text":
        return not control
    if rule == "room":
        return not control and not (value and (value[0].isspace() or value[-1].isspace()))
    if rule == "session":
        return all("!" <= c <= "~" for c in value)
    if rule == "hex":
        return all(c in "0123456789abcdef" for c in value)
    assert rule == "secret"
    return True


def _edge_values(low: int, high: int) -> list[str]:
    values = ["", "a" * low, "a" * high, "a" * (high + 1), "é" * (high // 2), "é" * (high // 2) + "é"]
    values += ["\U0001f600" * (high // 4), "\U0001f600" * (high // 4) + "a"]  # 4-byte characters at the limit
    values += ["x" * (high - 1) + "é"]  # one past the limit in bytes, not in characters
    pad = "a" * max(low, 1)
    values += [pad + c for c in CONTROLS] + [c + pad for c in CONTROLS] + [pad + p + pad for p in PATTERNS]
    values += [
        pad + "\ud800",
        "\udfff" + pad,
        pad + " " + pad,
        " " + pad,
        pad + " ",
        pad + "\u00a0",
        "\u3000" + pad,
    ]
    values += [pad + "\u200d" + pad, pad + "\u2028", pad + "\ufeff" + pad, pad + "\U0010ffff"]
    values += [v + "/" for v in values] + ["/", "a" * (high - 1) + "/", "a" * high + "/", "\x00/"]
    return values


def _text_cases() -> list[tuple[str, tuple[str, str], tuple[int, int, str]]]:
    cases = [("field", k, v) for k, v in TEXT_FIELDS.items()]
    cases += [("presence", ("presence", k), v) for k, v in PRESENCE_TEXT.items()]
    cases += [("admin", k, v) for k, v in ADMIN_TEXT.items()]
    return cases


def _decode_text(where: str, place: tuple[str, str], value: str) -> tuple[bool, str]:
    if where == "field":
        type_name, name = place
        body, prefix = with_field(type_name, name, value), f"{type_name}.{name}"
        if type(VALID[type_name].get(name)) is list:
            body, prefix = with_field(type_name, name, [value]), f"{prefix}[0]"
    elif where == "presence":
        type_name, body, prefix = "presence", {"state": {place[1]: value}}, f"presence.state.{place[1]}"
    else:
        type_name, body, prefix = (
            "admin",
            {"action": place[0], "args": {place[1]: value}},
            f"admin.args.{place[1]}",
        )
    try:
        decode(type_name, body)
    except RemoteProtocolError as exc:
        assert exc.code is ErrorCode.BAD_MESSAGE and not exc.fatal
        assert exc.message.startswith(prefix + " must"), exc.message
        return False, exc.message
    return True, ""


@pytest.mark.parametrize(("where", "place", "grammar"), _text_cases(), ids=lambda v: str(v))
def test_text_field_edges(where, place, grammar):
    low, high, rule = grammar
    for value in _edge_values(low, high):
        ok, message = _decode_text(where, place, value)
        assert ok == _oracle(value, low, high, rule), (repr(value[:20]), len(value), message)


def test_pattern_characters_are_data_in_keys_and_room_names():
    for pattern in PATTERNS:
        assert decode("set", {"op_id": 1, "key": pattern, "value": b""}).key == pattern
        assert decode("create_room", {"room": pattern}).room == pattern
        assert decode("lock", {"keys": [pattern, "a/" + pattern]}).keys == [pattern, "a/" + pattern]


def test_keys_may_hold_controls_but_not_nul():
    assert decode("set", {"op_id": 1, "key": "a\x01\n\x7f\x9fb", "value": b""})
    assert "U+0000" in refused("set", {"op_id": 1, "key": "a\x00", "value": b""}).message


LIMITS = [(1, 1024, "key"), (1, 256, "room"), (0, 256, "text"), (8, 64, "session"), (1, 1024, "secret")]
FIELD_OF = {
    "key": ("set", "key"),
    "room": ("create_room", "room"),
    "text": ("hello", "client_name"),
    "session": ("hello", "session"),
    "secret": ("create_room", "password"),
}


@settings(max_examples=300, deadline=None)
@given(
    grammar=st.sampled_from(LIMITS),
    chars=st.text(st.characters(exclude_categories=()), min_size=1, max_size=8),
    slack=st.integers(-6, 4),
    where=st.sampled_from(["start", "end", "middle"]),
)
def test_any_unicode_at_the_byte_limit(grammar, chars, slack, where):
    """Characters from the whole range (surrogates and controls too), placed so the value lands near the
    byte limit: the decoder agrees with the documented grammar."""
    low, high, rule = grammar
    core = chars * max(1, high // (4 * len(chars)))
    try:
        core_bytes = len(core.encode("utf-8"))
    except UnicodeEncodeError:
        core_bytes = len(core.encode("utf-8", "surrogatepass"))
    fill = "a" * max(0, high - core_bytes + slack)
    value = {"start": core + fill, "end": fill + core, "middle": fill[:4] + core + fill[4:]}[where]
    type_name, name = FIELD_OF[rule]
    ok, message = _decode_text("field", (type_name, name), value)
    assert ok == _oracle(value, low, high, rule), (value[:16], message)


# ---- presence ---------------------------------------------------------------------------------------------


def test_presence_name_of_500_kb_is_refused():
    exc = refused("presence", {"state": {"name": "n" * 500_000}})
    assert exc.message.startswith("presence.state.name must be 0 to 256 bytes")


@pytest.mark.parametrize("length", [0, 1, 15, 16, 17, 32])
def test_view_matrix_is_exactly_16_numbers(length):
    body = {"state": {"view_matrix": [0.5] * length}}
    if length == 16:
        assert decode("presence", body).state["view_matrix"] == [0.5] * 16
    else:
        assert "exactly 16 items" in refused("presence", body).message


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, True, "1", None])
def test_view_matrix_numbers_are_finite(bad):
    matrix = [1.0] * 15 + [bad]
    assert refused("presence", {"state": {"view_matrix": matrix}}).message.startswith(
        "presence.state.view_matrix[15] must be"
    )
    assert decode("presence", {"state": {"view_matrix": [1] * 15 + [-1e308]}})


@pytest.mark.parametrize(
    ("color", "ok"),
    [
        ([0.0, 0.5, 1.0], True),
        ([0, 1, 0, 1], True),
        ([0.1, 0.2], False),
        ([0.1] * 5, False),
        ([], False),
        ([0.0, 1.0000001, 0.0], False),
        ([-0.0, 0.0, 0.0], True),
        ([-1e-9, 0.0, 0.0], False),
        ([math.nan, 0.0, 0.0], False),
        ([math.inf, 0.0, 0.0], False),
        ([True, 0.0, 0.0], False),
    ],
)
def test_color_is_3_or_4_numbers_from_0_to_1(color, ok):
    body = {"state": {"color": color}}
    if ok:
        assert decode("presence", body).state["color"] == color
    else:
        assert refused("presence", body).message.startswith("presence.state.color")


def test_selection_is_bounded_in_entries_and_bytes():
    uuids = [f"{i:032x}" for i in range(4096)]
    assert decode("presence", {"state": {"selection": uuids}})  # the add-on's largest selection
    assert "4097" in refused("presence", {"state": {"selection": [*uuids, "x"]}}).message
    # 196608 bytes in all is the limit: 4096 entries of 48 bytes fit, one byte more does not.
    full = ["e" * 48] * 4096
    assert decode("presence", {"state": {"selection": full}})
    exc = refused("presence", {"state": {"selection": [*full[:-1], "e" * 49]}})
    assert exc.message == "presence.state.selection holds 196609 bytes, more than 196608"
    assert refused("presence", {"state": {"selection": [""]}}).message.startswith(
        "presence.state.selection[0]"
    )
    assert refused("presence", {"state": {"selection": ["a\nb"]}}).message.startswith(
        "presence.state.selection[0]"
    )
    assert decode("presence", {"state": {"selection": ["*", "**", "a/b", "%"]}})


def test_presence_refuses_unknown_fields_and_the_server_relay_is_checked_too():
    assert "unknown field" in refused("presence", {"state": {"nmae": "x"}}).message
    assert "unknown field" in refused("presence", {"state": {"x" * 10_000: 1}}).message
    assert len(refused("presence", {"state": {"x" * 10_000: 1}}).message) < 200
    exc = refused("client_updated", {"room": "r", "client_id": SID, "state": {"name": "\x00"}})
    assert exc.message.startswith("client_updated.state.name must be")


# ---- lists, batches, admin arguments ---------------------------------------------------------------------


def test_batch_ops_name_the_bad_operation():
    ops = [["set", "k", b""], ["delete", "a\x00"]]
    exc = refused("batch", {"op_id": 3, "ops": ops})
    assert exc.message.startswith("batch.ops[1] key must be") and exc.ref == 3
    assert refused("batch", {"op_id": 3, "ops": []}).message == "batch.ops needs at least one operation"
    assert refused("batch", {"op_id": 3, "ops": [["set", "k" * 1025, b""]]}).message.startswith(
        "batch.ops[0] key must be 1 to 1024 bytes"
    )
    assert decode("batch", {"op_id": 3, "ops": [["set", "k" * 1024, b""], ["delete", "\U0001f600" * 256]]})


def test_blob_hashes_sizes_and_counts():
    """A hash is exactly 32 bytes and must be the sha256 of the data it names; a blob is 1 byte to 1 MiB;
    each list has its bounds. Checked at decode, on both sides (blob_data too)."""
    big = b"\0" * MAX_BLOB_BYTES
    assert decode("blob_put", {"hash": hashlib.sha256(big).digest(), "data": big})
    over = big + b"\0"
    message = refused("blob_put", {"hash": hashlib.sha256(over).digest(), "data": over, "ref": 4}).message
    assert message == f"blob_put.data must be 1 to {MAX_BLOB_BYTES} bytes; it is {MAX_BLOB_BYTES + 1}"
    assert refused("blob_put", {"hash": HASH, "data": b""}).message.endswith("it is 0")
    assert (
        refused("blob_put", {"hash": HASH, "data": b"y"}).message == "blob_put.hash is not the sha256 of data"
    )
    assert (
        refused("blob_data", {"hash": HASH, "data": b"y"}).message
        == "blob_data.hash is not the sha256 of data"
    )
    assert decode("blob_data", {"hash": HASH, "data": None}).data is None
    for wrong in (b"", HASH[:31], HASH + b"\0", "x" * 32):
        assert refused("blob_put", {"hash": wrong, "data": b"x"}).message.startswith("blob_put.hash must be")
    assert decode("blob_get", {"hashes": [HASH] * MAX_BLOB_GET})
    assert refused("blob_get", {"hashes": [HASH] * (MAX_BLOB_GET + 1)}).message == (
        f"blob_get.hashes must have 1 to {MAX_BLOB_GET} items; it has {MAX_BLOB_GET + 1}"
    )
    assert refused("blob_get", {"hashes": []}).message == "blob_get.hashes must have 1 to 64 items; it has 0"
    assert decode("blob_query", {"hashes": [HASH] * MAX_BLOB_QUERY})
    assert refused("blob_query", {"hashes": [HASH] * (MAX_BLOB_QUERY + 1)}).message.startswith(
        "blob_query.hashes must have 1 to 4096 items"
    )
    assert refused("blob_query", {"hashes": [HASH, b"\0" * 31]}).message.startswith(
        "blob_query.hashes[1] must"
    )
    assert decode("blob_status", {"missing": []}).missing == []


def test_applied_blobs_pushed_with_a_write():
    """An applied may carry the blobs its write made new (since protocol 3): 0 to MAX_PUSHED_BLOBS distinct
    [hash, data], MAX_PUSHED_BYTES of data together, each hash the sha256 of its data; without them the
    body has no such key, as before the field existed."""
    base = VALID["applied"]

    def blobs(*datas: bytes) -> list[list[bytes]]:
        return [[hashlib.sha256(data).digest(), data] for data in datas]

    plain = decode("applied", base)
    assert plain.blobs is None and "blobs" not in plain.to_body()
    assert decode("applied", {**base, "blobs": None}).blobs is None
    assert decode("applied", {**base, "blobs": []}).blobs == []
    most = blobs(*(b"%d" % i for i in range(MAX_PUSHED_BLOBS)))
    assert decode("applied", {**base, "blobs": most}).blobs == most
    one_more = blobs(*(b"%d" % i for i in range(MAX_PUSHED_BLOBS + 1)))
    assert refused("applied", {**base, "blobs": one_more}).message == (
        f"applied.blobs must have 0 to {MAX_PUSHED_BLOBS} items; it has {MAX_PUSHED_BLOBS + 1}"
    )
    full = blobs(b"a" * (MAX_PUSHED_BYTES - 1), b"b")
    assert decode("applied", {**base, "blobs": full}).blobs == full
    assert refused("applied", {**base, "blobs": blobs(b"a" * MAX_PUSHED_BYTES, b"b")}).message == (
        f"applied.blobs holds {MAX_PUSHED_BYTES + 1} bytes of data, more than {MAX_PUSHED_BYTES}"
    )
    assert refused("applied", {**base, "blobs": blobs(b"x", b"y", b"x")}).message == (
        "applied.blobs must not name a blob twice"
    )
    assert refused("applied", {**base, "blobs": [[HASH, b"y"]]}).message == (
        "applied.blobs[0] hash is not the sha256 of data"
    )
    for wrong, reason in (
        ("x", "must be list[Any] | None, got str"),
        ({"a": b"x"}, "must be list[Any] | None, got dict"),
        ([[HASH]], "[0] must be [hash: bin, data: bin]"),
        ([[HASH, b"x", b"x"]], "[0] must be [hash: bin, data: bin]"),
        ([(HASH, b"x")], "[0] must be [hash: bin, data: bin]"),
        ([[HASH[:31], b"x"]], "[0] hash must be 32 bytes of bin"),
        ([["x" * 32, b"x"]], "[0] hash must be 32 bytes of bin"),
        ([[HASH, "x"]], "[0] data must be bin"),
        ([[HASH, b""]], "[0] data must be 1 to 1048576 bytes; it is 0"),
        ([[HASH, None]], "[0] data must be bin"),
    ):
        message = refused("applied", {**base, "blobs": wrong}).message
        assert message == f"applied.blobs{join(reason)}", message


def join(reason: str) -> str:
    return reason if reason.startswith("[") else f" {reason}"


def test_export_refs_and_blobs():
    """An export names each referencing key's blobs as a set does, and sends each blob checked like
    blob_data (never nil: an exported room's blobs are all there)."""
    big = b"\0" * MAX_BLOB_BYTES
    assert decode("export_blob", {"hash": hashlib.sha256(big).digest(), "data": big})
    assert refused("export_blob", {"hash": HASH, "data": b"y"}).message == (
        "export_blob.hash is not the sha256 of data"
    )
    assert refused("export_blob", {"hash": HASH, "data": None}).message.startswith("export_blob.data")
    assert decode("export_items", {"room": "r", "items": []}).refs == []
    for refs, reason in (
        ([["k"]], "[0] must be [key: str, refs: list[bin]]"),
        ([["", [HASH]]], "[0] key must be"),
        ([["k", [HASH, HASH]]], "[0] refs must not name a blob twice"),
        ([["k", [HASH[:31]]]], "[0] refs[0] must be 32 bytes"),
    ):
        message = refused("export_items", {"room": "r", "items": [], "refs": refs}).message
        assert message.startswith(f"export_items.refs{reason}"), message


@pytest.mark.parametrize("kind", ["blob_put", "export_blob"])
def test_children_of_a_tree_node(kind: str):
    """A tree node's children, as put and as exported: 1 to MAX_BLOB_CHILDREN distinct hashes, never the
    node itself; omitted for a leaf (docs/protocol.md section 3a)."""
    node = b"".join(hashlib.sha256(b"%d" % i).digest() for i in range(MAX_BLOB_CHILDREN + 1))
    node_hash = hashlib.sha256(node).digest()
    many = [node[i : i + 32] for i in range(0, len(node), 32)]

    def put(children: Any) -> dict[str, Any]:
        return {"hash": node_hash, "data": node, "children": children}

    assert decode(kind, {"hash": node_hash, "data": node}).children is None
    assert decode(kind, put(many[:MAX_BLOB_CHILDREN])).children == many[:MAX_BLOB_CHILDREN]
    assert decode(kind, put(many[:1])).children == many[:1]
    assert refused(kind, put(many)).message == (
        f"{kind}.children must have 1 to {MAX_BLOB_CHILDREN} items; it has {MAX_BLOB_CHILDREN + 1}"
    )
    assert refused(kind, put([])).message == (
        f"{kind}.children must have 1 to {MAX_BLOB_CHILDREN} items; it has 0"
    )
    twice = refused(kind, put([many[0], many[0]]))
    assert twice.message == f"{kind}.children must not name a blob twice"
    assert refused(kind, put([many[0], node_hash])).message == (
        f"{kind}.children must not name the blob itself"
    )
    for wrong in (b"", b"\0" * 31, b"\0" * 33, "x" * 32, 7, None):
        assert refused(kind, put([many[0], wrong])).message.startswith(f"{kind}.children[1] must be")
    for wrong in ("x", 7, {"a": 1}):
        assert refused(kind, put(wrong)).message.startswith(f"{kind}.children must be list")


def test_set_refs_bounds():
    """A set may carry a fourth element: the distinct 32-byte hashes of the blobs its value references."""
    refs = [i.to_bytes(32, "big") for i in range(MAX_VALUE_REFS)]
    assert decode("batch", {"op_id": 1, "ops": [["set", "k", b"", refs]]})
    assert decode("batch", {"op_id": 1, "ops": [["set", "k", b"", []]]})
    over = [*refs, (MAX_VALUE_REFS).to_bytes(32, "big")]
    assert refused("batch", {"op_id": 1, "ops": [["set", "k", b"", over]]}).message == (
        f"batch.ops[0] refs must have 0 to {MAX_VALUE_REFS} items; it has {MAX_VALUE_REFS + 1}"
    )
    ops = [["set", f"k{i}", b"", refs] for i in range(MAX_BATCH_REFS // MAX_VALUE_REFS)]
    assert decode("batch", {"op_id": 1, "ops": ops})
    assert refused("batch", {"op_id": 1, "ops": [*ops, ["set", "x", b"", [HASH]]]}).message == (
        f"batch.ops holds {MAX_BATCH_REFS + 1} blob references, more than {MAX_BATCH_REFS}"
    )
    assert refused("batch", {"op_id": 1, "ops": [["set", "k", b"", [HASH, HASH]]]}).message == (
        "batch.ops[0] refs must not name a blob twice"
    )
    assert refused("batch", {"op_id": 1, "ops": [["set", "k", b"", [HASH[:31]]]]}).message == (
        "batch.ops[0] refs[0] must be 32 bytes of bin"
    )
    assert refused("batch", {"op_id": 1, "ops": [["set", "k", b"", HASH]]}).message == (
        "batch.ops[0] refs must be list[bin], got bytes"
    )
    assert refused("batch", {"op_id": 1, "ops": [["delete", "k", [HASH]]]}).message.startswith(
        "batch.ops[0] must be"
    )
    assert refused("batch", {"op_id": 1, "ops": [["set", "k", b"", [], None]]}).message.startswith(
        "batch.ops[0] must be"
    )


def test_lock_keys_bounds():
    assert decode("lock", {"keys": ["k"] * 1024})
    assert (
        refused("lock", {"keys": ["k"] * 1025}).message == "lock.keys must have 0 to 1024 items; it has 1025"
    )
    assert refused("lock", {"keys": []}).message == "lock.keys must name at least one key or prefix"
    assert refused("lock", {}).message == "lock.keys must name at least one key or prefix"
    assert decode("lock", {"prefixes": ["obj/1/"]}).prefixes == ["obj/1/"]
    both = {"keys": ["k"] * 512, "prefixes": ["p/"] * 513}
    assert refused("lock", both).message == "lock.keys and prefixes must be at most 1024 together"
    assert decode("lock", {"keys": ["k"] * 512, "prefixes": ["p/"] * 512})
    assert refused("lock", {"prefixes": ["obj/1"]}).message == (
        "lock.prefixes[0] must be 1 to 1024 bytes of UTF-8 without NUL, ending in /"
    )
    assert refused("lock", {"prefixes": ["a\x00/"]}).message.endswith("U+0000 at 1 is not allowed")
    for pattern in ("*/", "**/", "/", "%2F/", "a/*/"):  # pattern characters are data
        assert decode("unlock", {"prefixes": [pattern]}).prefixes == [pattern]
    assert refused("lock", {"keys": ["k", ""]}).message.startswith("lock.keys[1] must be 1 to 1024 bytes")
    assert decode("unlock", {"keys": []}).keys == []


def test_admin_args_are_checked_when_present():
    args = {"room": "r", "keys": [], "prefixes": ["x"]}
    assert refused("admin", {"action": "break_lock", "args": args}).message.startswith(
        "admin.args.prefixes[0] must be"
    )
    assert refused("admin", {"action": "break_lock", "args": {"room": "r", "keys": [""]}}).message.startswith(
        "admin.args.keys[0] must be"
    )
    items = [["k", b""], ["", b""]]
    assert refused("admin", {"action": "import", "args": {"room": "r", "items": items}}).message.startswith(
        "admin.args.items[1] key must be"
    )
    assert refused("admin", {"action": "import", "args": {"room": "r", "more": 1}}).message.startswith(
        "admin.args.more must be bool"
    )
    # Missing arguments are the action's business (the server answers bad_message); unknown ones are ignored.
    assert decode("admin", {"action": "kick", "args": {"whatever": "\x00"}})
    assert decode("admin", {"action": "import", "args": {"room": "r", "seq": None}})
    assert refused("admin", {"action": "teleport"}).message.startswith("admin.action must be one of")


# ---- the wire: bytes that are not UTF-8 -------------------------------------------------------------------


def ready_server() -> Connection:
    server = Connection(Role.SERVER)
    server.receive_data(encode_frame({"type": "hello", "protocol": PROTOCOL_VERSION, "client_name": "x"}))
    server.next_event()
    return server


def raw_frame(parts: list[bytes], count: int) -> bytes:
    body = bytes([0x80 | count]) + b"".join(parts)
    return len(body).to_bytes(4, "big") + body


def s(text: bytes) -> bytes:
    """A msgpack str holding exactly these bytes (valid UTF-8 or not)."""
    return bytes([0xA0 | len(text)]) + text


@pytest.mark.parametrize(
    ("parts", "count", "where"),
    [
        (
            [
                s(b"type"),
                s(b"set"),
                s(b"op_id"),
                b"\x07",
                s(b"key"),
                s(b"\xff\xfe"),
                s(b"value"),
                b"\xc4\x00",
            ],
            4,
            "set.key",
        ),
        (
            [
                s(b"type"),
                s(b"set"),
                s(b"op_id"),
                b"\x07",
                s(b"key"),
                s(b"\xed\xa0\x80"),
                s(b"value"),
                b"\xc4\x00",
            ],
            4,
            "set.key",
        ),
        (
            [s(b"type"), s(b"set"), s(b"op_id"), b"\x07", s(b"key"), s(b"a\xc3"), s(b"value"), b"\xc4\x00"],
            4,
            "set.key",
        ),
        ([s(b"type"), s(b"create_room"), s(b"room"), s(b"r\x80"), s(b"ref"), b"\x07"], 3, "create_room.room"),
        (
            [
                s(b"type"),
                s(b"batch"),
                s(b"op_id"),
                b"\x07",
                s(b"ops"),
                b"\x91\x92" + s(b"delete") + s(b"\xc0\xaf"),
            ],
            3,
            "batch.ops[0][1]",
        ),
        ([s(b"type"), s(b"set"), s(b"op_id"), b"\x07", s(b"\xff"), b"\x01"], 3, "set: a field name"),
        ([s(b"type"), s(b"\xffset"), s(b"ref"), b"\x07"], 2, "type"),
    ],
)
def test_non_utf8_on_the_wire_is_a_bad_message_and_the_stream_goes_on(parts, count, where):
    server = ready_server()
    server.receive_data(raw_frame(parts, count))
    with pytest.raises(RemoteProtocolError) as info:
        server.next_event()
    assert info.value.code is ErrorCode.BAD_MESSAGE and not info.value.fatal
    assert info.value.message == f"{where} is not valid UTF-8"
    assert info.value.ref == 7
    server.receive_data(encode_frame({"type": "ping", "nonce": 1}))
    assert server.next_event() == EVENT_TYPES["ping"](nonce=1)
    assert server.next_event() is NEED_DATA


def test_non_utf8_with_garbage_is_still_a_fatal_bad_frame():
    server = ready_server()
    body = b"\x82" + s(b"type") + s(b"\xff") + b"\xc1"
    server.receive_data(len(body).to_bytes(4, "big") + body)
    with pytest.raises(RemoteProtocolError) as info:
        server.next_event()
    assert info.value.code is ErrorCode.BAD_FRAME and info.value.fatal


def test_largest_valid_message_round_trips_through_msgpack():
    """Everything the grammar allows can be encoded: no field at its limit breaks the sender."""
    key = "\U0001f600" * 256
    room = "é" * 128
    body = {
        "type": "applied",
        "room": room,
        "seq": I63,
        "client_id": "~" * 64,
        "op_id": I63,
        "ops": [["set", key, b"v"]],
    }
    payload = msgpack.packb(body, use_bin_type=True)
    assert decode("applied", msgpack.unpackb(payload, raw=False) | {}).ops == [["set", key, b"v"]]


# ---- names a client did not choose ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ana", "ana"),
        ("a\x00n\x01a\x7f\x85", "ana"),
        ("a\ud800b", "ab"),
        ("é" * 200, "é" * 128),
        ("a" + "\U0001f600" * 64, "a" + "\U0001f600" * 63),
        ("  spaced  ", "  spaced  "),
        ("", ""),
    ],
)
def test_fit_name_makes_any_text_a_valid_name(text, expected):
    fitted = fit_name(text)
    assert fitted == expected
    assert decode("hello", {"protocol": 1, "client_name": fitted})


@settings(max_examples=200, deadline=None)
@given(st.text(st.characters(exclude_categories=()), max_size=400))
def test_fit_name_output_always_decodes(text):
    fitted = fit_name(text)
    assert decode("presence", {"state": {"name": fitted, "scene": fitted}})


@pytest.mark.parametrize("grammar", [t for t in TEXTS if t.ascii_ok is not None], ids=lambda t: t.what)
def test_the_ascii_shortcut_agrees_with_the_rule(grammar):
    """Each name grammar has a fast form for ASCII strings; it must say what the regular expression says,
    for every ASCII character at the start, in the middle and at the end."""
    forbidden = re.compile(grammar.forbidden)
    for code in range(128):
        c = chr(code)
        for value in (c + "abcdefgh", "abcd" + c + "efgh", "abcdefgh" + c, c * 9):
            assert grammar.ascii_ok(value) == (forbidden.search(value) is None), (grammar.what, value)


def test_errors_about_huge_input_stay_short():
    """An error names what was wrong without echoing it back whole."""
    with pytest.raises(RemoteProtocolError) as info:
        event_from_body({"type": "t" * 100_000}, from_role=Sender.CLIENT)
    assert info.value.code is ErrorCode.UNKNOWN_TYPE and len(info.value.message) < 200
    body = {"type": "ping", "nonce": 1, **{f"f{i}" + "x" * 1000: i for i in range(1000)}}
    message = refused("ping", body).message
    assert message.startswith("ping has unknown fields") and len(message) < 1000
    assert len(refused("set", {"op_id": 1, "key": "k" * 100_000, "value": b""}).message) < 200
