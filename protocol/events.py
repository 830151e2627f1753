"""Every message on the wire, as an immutable event.

On the wire each message is a msgpack map whose ``type`` field names the event and whose other keys are the
event's fields. Field types are declared once, by the dataclass annotations, and checked on decode.
"""

from __future__ import annotations

import types
import typing
from dataclasses import MISSING, dataclass, field, fields
from enum import Flag, auto
from typing import Any, ClassVar, get_args, get_origin

from .errors import ErrorCode, RemoteProtocolError

PROTOCOL_VERSION = 1

MAX_KEY_BYTES = 1024
MAX_ROOM_NAME_BYTES = 256
MAX_LOCK_KEYS = 1024  # keys in one lock/unlock request
ADMIN_ACTIONS = frozenset(
    {
        "rooms",
        "clients",
        "kick",
        "delete_room",
        "break_lock",
        "export",
        "import",
        "status",
        "add_member",
        "remove_member",
    }
)


class Sender(Flag):
    CLIENT = auto()
    SERVER = auto()
    BOTH = CLIENT | SERVER


class Event:
    """Base of all events; subclasses are frozen dataclasses registered by their ``TYPE``."""

    TYPE: ClassVar[str]
    SENDER: ClassVar[Sender]
    _fields: ClassVar[tuple[tuple[str, Any, bool], ...]]  # (name, type, required)
    _checks: ClassVar[dict[str, typing.Callable[[Any], bool]]]
    _names: ClassVar[frozenset[str]]

    def to_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"type": self.TYPE}
        for name, _, _ in self._fields:
            body[name] = getattr(self, name)
        return body

    def check(self) -> None:
        """Extra checks beyond field types; raise ValueError with a reason."""


EVENT_TYPES: dict[str, type[Event]] = {}


def _event(type_name: str, sender: Sender):
    def register(cls: type) -> type[Event]:
        cls = dataclass(frozen=True, slots=True)(cls)
        hints = typing.get_type_hints(cls)
        cls.TYPE = type_name
        cls.SENDER = sender
        cls._fields = tuple(
            (f.name, hints[f.name], f.default is MISSING and f.default_factory is MISSING)
            for f in fields(cls)
        )
        cls._checks = {name: _compile_type(tp) for name, tp, _ in cls._fields}
        cls._names = frozenset(name for name, _, _ in cls._fields) | {"type"}
        EVENT_TYPES[type_name] = cls
        return cls

    return register


Check = typing.Callable[[Any], bool]


def _compile_type(tp: Any) -> Check:
    """A fast predicate for one declared field type (built once per field, used on every decode)."""
    if tp is Any:
        return lambda value: True
    if tp is int:
        return lambda value: type(value) is int
    if tp is float:
        return lambda value: type(value) is float or type(value) is int
    if tp in (str, bool, bytes):
        return lambda value: type(value) is tp
    if tp is type(None):
        return lambda value: value is None
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = [_compile_type(arg) for arg in get_args(tp)]
        return lambda value: any(check(value) for check in options)
    if origin is list:
        (item_tp,) = get_args(tp)
        if item_tp is Any:
            return lambda value: type(value) is list
        item = _compile_type(item_tp)
        return lambda value: type(value) is list and all(item(v) for v in value)
    if origin is dict:
        key_tp, val_tp = get_args(tp)
        key, val = _compile_type(key_tp), _compile_type(val_tp)
        return lambda value: type(value) is dict and all(key(k) and val(v) for k, v in value.items())
    raise TypeError(f"unsupported field type {tp!r}")


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def event_from_body(body: dict[str, Any], *, from_role: Sender) -> Event:
    """Build and check the event a peer in ``from_role`` sent. Raises RemoteProtocolError (not fatal)."""
    ref = body.get("ref") if isinstance(body.get("ref"), int) else body.get("op_id")
    ref = ref if isinstance(ref, int) and not isinstance(ref, bool) else None
    type_name = body.get("type")
    if not isinstance(type_name, str):
        raise RemoteProtocolError(ErrorCode.BAD_MESSAGE, "message has no string 'type' field", ref=ref)
    cls = EVENT_TYPES.get(type_name)
    if cls is None:
        raise RemoteProtocolError(ErrorCode.UNKNOWN_TYPE, f"unknown message type {type_name!r}", ref=ref)
    if not (cls.SENDER & from_role):
        raise RemoteProtocolError(
            ErrorCode.PROTOCOL_STATE, f"{type_name!r} may not be sent by this side", ref=ref
        )
    kwargs: dict[str, Any] = {}
    checks = cls._checks
    for name, tp, required in cls._fields:
        if name in body:
            value = body[name]
            if not checks[name](value):
                raise RemoteProtocolError(
                    ErrorCode.BAD_MESSAGE,
                    f"{type_name}.{name} must be {_type_name(tp)}, got {type(value).__name__}",
                    ref=ref,
                )
            kwargs[name] = value
        elif required:
            raise RemoteProtocolError(ErrorCode.BAD_MESSAGE, f"{type_name}.{name} is missing", ref=ref)
    if not cls._names.issuperset(body):
        unknown = set(body) - cls._names
        raise RemoteProtocolError(
            ErrorCode.BAD_MESSAGE, f"{type_name} has unknown fields {sorted(map(str, unknown))}", ref=ref
        )
    event = cls(**kwargs)
    try:
        event.check()
    except ValueError as exc:
        raise RemoteProtocolError(ErrorCode.BAD_MESSAGE, f"{type_name}: {exc}", ref=ref) from None
    return event


def check_key(key: str) -> None:
    if not key or len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise ValueError(f"key must be 1 to {MAX_KEY_BYTES} bytes of UTF-8")


def check_room_name(room: str) -> None:
    if not room or len(room.encode("utf-8", "surrogatepass")) > MAX_ROOM_NAME_BYTES or not room.isprintable():
        raise ValueError(f"room name must be 1 to {MAX_ROOM_NAME_BYTES} bytes of printable text")


def check_ops(ops: list[list[Any]]) -> None:
    """A batch is a non-empty list of ["set", key, value] and ["delete", key]."""
    if not ops:
        raise ValueError("a batch needs at least one operation")
    for op in ops:
        is_set = len(op) == 3 and op[0] == "set" and isinstance(op[1], str) and isinstance(op[2], bytes)
        is_delete = len(op) == 2 and op[0] == "delete" and isinstance(op[1], str)
        if is_set or is_delete:
            check_key(op[1])
        else:
            raise ValueError('each operation must be ["set", key:str, value:bin] or ["delete", key:str]')


def check_lock_keys(keys: list[str], *, allow_empty: bool) -> None:
    if not keys and not allow_empty:
        raise ValueError("lock needs at least one key")
    if len(keys) > MAX_LOCK_KEYS:
        raise ValueError(f"at most {MAX_LOCK_KEYS} keys per request")
    for key in keys:
        check_key(key)


class _RoomNamed:
    def check(self) -> None:
        check_room_name(self.room)  # type: ignore[attr-defined]


# ---- both directions -------------------------------------------------------------------------------------


@_event("ping", Sender.BOTH)
class Ping(Event):
    nonce: int


@_event("pong", Sender.BOTH)
class Pong(Event):
    nonce: int


# ---- client to server ------------------------------------------------------------------------------------


@_event("hello", Sender.CLIENT)
class Hello(Event):
    protocol: int
    client_name: str
    client_kind: str = "blender"
    client_version: str = ""
    session: str | None = None  # client-chosen id, kept across reconnects so retried ops apply once
    token: str | None = None

    def check(self) -> None:
        if self.session is not None and not (8 <= len(self.session) <= 64 and self.session.isascii()):
            raise ValueError("session must be 8 to 64 ASCII characters")
        if len(self.client_name) > 128:
            raise ValueError("client_name is longer than 128 characters")


@_event("list_rooms", Sender.CLIENT)
class ListRooms(Event):
    subscribe: bool = False
    ref: int | None = None


@_event("create_room", Sender.CLIENT)
class CreateRoom(_RoomNamed, Event):
    room: str
    keep_open: bool = False
    password: str | None = None
    ref: int | None = None


@_event("join_room", Sender.CLIENT)
class JoinRoom(_RoomNamed, Event):
    room: str
    password: str | None = None
    since: int | None = None  # resume: send what came after this seq (or a snapshot if it is gone)
    ref: int | None = None


@_event("leave_room", Sender.CLIENT)
class LeaveRoom(Event):
    ref: int | None = None


@_event("delete_room", Sender.CLIENT)
class DeleteRoom(_RoomNamed, Event):
    room: str
    ref: int | None = None


@_event("set", Sender.CLIENT)
class Set(Event):
    op_id: int
    key: str
    value: bytes

    def check(self) -> None:
        check_key(self.key)


@_event("delete", Sender.CLIENT)
class Delete(Event):
    op_id: int
    key: str

    def check(self) -> None:
        check_key(self.key)


@_event("batch", Sender.CLIENT)
class Batch(Event):
    op_id: int
    ops: list[list[Any]]

    def check(self) -> None:
        check_ops(self.ops)


@_event("event", Sender.CLIENT)
class RoomEvent(Event):
    """Relayed to the room, never stored (frame change, ping on a spot)."""

    op_id: int
    value: bytes


PRESENCE_FIELDS: dict[str, Any] = {
    "name": str,
    "color": list[float],
    "mode": str,
    "frame": int,
    "scene": str,
    "view_matrix": list[float],
    "selection": list[str],
}

_PRESENCE_CHECKS = {name: _compile_type(tp) for name, tp in PRESENCE_FIELDS.items()}


@_event("presence", Sender.CLIENT)
class Presence(Event):
    state: dict[str, Any]

    def check(self) -> None:
        for name, value in self.state.items():
            check = _PRESENCE_CHECKS.get(name)
            if check is None:
                raise ValueError(f"unknown presence field {name!r}")
            if not check(value):
                raise ValueError(f"presence field {name!r} must be {_type_name(PRESENCE_FIELDS[name])}")
        if len(self.state.get("selection", ())) > 4096:
            raise ValueError("selection is limited to 4096 entries")


@_event("lock", Sender.CLIENT)
class Lock(Event):
    """Lock keys of the joined room for this session: all of them or none (error ``locked``)."""

    keys: list[str]
    ref: int | None = None

    def check(self) -> None:
        check_lock_keys(self.keys, allow_empty=False)


@_event("unlock", Sender.CLIENT)
class Unlock(Event):
    """Release locks this session holds in the joined room; an empty list releases all of them."""

    keys: list[str] = field(default_factory=list)
    ref: int | None = None

    def check(self) -> None:
        check_lock_keys(self.keys, allow_empty=True)


@_event("admin", Sender.CLIENT)
class Admin(Event):
    """An operator request (role admin): see docs/protocol.md for each action's args and result."""

    action: str
    args: dict[str, Any] = field(default_factory=dict)
    ref: int | None = None

    def check(self) -> None:
        if self.action not in ADMIN_ACTIONS:
            raise ValueError(f"action must be one of {', '.join(sorted(ADMIN_ACTIONS))}")


# ---- server to client ------------------------------------------------------------------------------------


@_event("welcome", Sender.SERVER)
class Welcome(Event):
    protocol: int
    server_version: str
    session: str
    client_id: str
    nodes: list[str] = field(default_factory=list)
    max_frame_size: int = 0
    heartbeat_interval: float = 5.0
    user: str | None = None  # the authenticated user (None when the server has no auth)
    role: str | None = None  # "user" or "admin"


@_event("room_list", Sender.SERVER)
class RoomList(Event):
    rooms: list[dict[str, Any]]
    ref: int | None = None


@_event("rooms_changed", Sender.SERVER)
class RoomsChanged(Event):
    updated: list[dict[str, Any]] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)


@_event("room_created", Sender.SERVER)
class RoomCreated(Event):
    room: str
    ref: int | None = None


@_event("joined", Sender.SERVER)
class Joined(Event):
    room: str
    seq: int  # snapshot: its seq; resume: the seq the tail starts after
    mode: str  # "snapshot" or "resume"
    key_count: int
    clients: list[dict[str, Any]] = field(default_factory=list)
    ref: int | None = None


@_event("snapshot", Sender.SERVER)
class SnapshotChunk(Event):
    room: str
    items: list[list[Any]]  # [key, value]


@_event("snapshot_end", Sender.SERVER)
class SnapshotEnd(Event):
    room: str
    seq: int


@_event("ack", Sender.SERVER)
class Ack(Event):
    op_id: int
    seq: int


@_event("applied", Sender.SERVER)
class Applied(Event):
    room: str
    seq: int
    client_id: str
    op_id: int
    ops: list[list[Any]]


@_event("room_event", Sender.SERVER)
class EventRelayed(Event):
    room: str
    client_id: str
    value: bytes
    seq: int  # the room's seq when the event was relayed


@_event("left", Sender.SERVER)
class Left(Event):
    room: str
    ref: int | None = None


@_event("room_deleted", Sender.SERVER)
class RoomDeleted(Event):
    room: str
    ref: int | None = None


@_event("client_joined", Sender.SERVER)
class ClientJoined(Event):
    room: str
    client: dict[str, Any]


@_event("client_left", Sender.SERVER)
class ClientLeft(Event):
    room: str
    client_id: str


@_event("client_updated", Sender.SERVER)
class ClientUpdated(Event):
    room: str
    client_id: str
    state: dict[str, Any]


@_event("error", Sender.SERVER)
class Error(Event):
    code: str
    message: str
    ref: int | None = None
    fatal: bool = False


@_event("lock_granted", Sender.SERVER)
class LockGranted(Event):
    room: str
    keys: list[str]
    ref: int | None = None


@_event("unlocked", Sender.SERVER)
class Unlocked(Event):
    room: str
    keys: list[str]
    ref: int | None = None


@_event("locks_changed", Sender.SERVER)
class LocksChanged(Event):
    """Locks taken (key -> owner client_id) and released in the room, coalesced."""

    room: str
    locked: dict[str, str] = field(default_factory=dict)
    unlocked: list[str] = field(default_factory=list)


@_event("admin_result", Sender.SERVER)
class AdminResult(Event):
    action: str
    result: Any = None
    ref: int | None = None


@_event("export_items", Sender.SERVER)
class ExportItems(Event):
    """A chunk of an exported room's keys; the export's admin_result follows the last one."""

    room: str
    items: list[list[Any]]
    ref: int | None = None
