"""Every message on the wire, as an immutable event.

On the wire each message is a msgpack map whose ``type`` field names the event and whose other keys are the
event's fields. Field types are declared once, by the dataclass annotations, and checked on decode.
"""

from __future__ import annotations

import hashlib
import typing
from dataclasses import MISSING, dataclass, field, fields
from enum import Flag, auto
from typing import Annotated, Any, ClassVar

from .blob_rules import check_blob_hash, check_tree_blob
from .errors import ErrorCode, RemoteProtocolError
from .fieldcheck import compile_check, explain
from .limits import (
    ADMIN_ACTIONS,
    ADMIN_ARGS,
    FRAME_SIZE,
    MAX_KEY_BYTES,
    MAX_LOCK_KEYS,
    MAX_ROOM_NAME_BYTES,
    MAX_SELECTION_BYTES,
    NONCE,
    PORT,
    PRESENCE_FIELDS,
    PROTOCOL,
    REF,
    SECONDS,
    Address,
    BlobChildren,
    BlobData,
    BlobGetHashes,
    BlobHash,
    BlobQueryHashes,
    BlobStatusHashes,
    FieldError,
    Items,
    Key,
    Keys,
    Label,
    LockPrefix,
    LockPrefixes,
    Name,
    OpId,
    Ops,
    Password,
    PushedBlobs,
    Ref,
    RoomName,
    Secret,
    Seq,
    SessionId,
    Sha256,
    UserName,
    check_key,
    check_room_name,
    join_reason,
    selection_bytes,
)
from .versions import PROTOCOL_MIN, PROTOCOL_VERSION

# Optional fields left out of a body when nil (the same as sending nil), so that messages without them
# stay byte for byte what they were before the field existed.
OMITTED_WHEN_NIL = frozenset({"seen", "blobs", "authors"})

# Also importable from here, where they lived before protocol/limits.py.
__all__ = [
    "MAX_KEY_BYTES",
    "MAX_LOCK_KEYS",
    "MAX_ROOM_NAME_BYTES",
    "PROTOCOL_MIN",
    "PROTOCOL_VERSION",
    "check_key",
    "check_room_name",
]


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
            value = getattr(self, name)
            if value is not None or name not in OMITTED_WHEN_NIL:
                body[name] = value
        return body

    def check(self) -> None:
        """Extra checks beyond field types; raise FieldError (or ValueError) with a reason."""


EVENT_TYPES: dict[str, type[Event]] = {}


def _event(type_name: str, sender: Sender):
    def register(cls: type) -> type[Event]:
        cls = dataclass(frozen=True, slots=True)(cls)
        hints = typing.get_type_hints(cls, include_extras=True)
        cls.TYPE = type_name
        cls.SENDER = sender
        cls._fields = tuple(
            (f.name, hints[f.name], f.default is MISSING and f.default_factory is MISSING)
            for f in fields(cls)
        )
        cls._checks = {name: compile_check(tp) for name, tp, _ in cls._fields}
        cls._names = frozenset(name for name, _, _ in cls._fields) | {"type"}
        EVENT_TYPES[type_name] = cls
        return cls

    return register


def _echo_ref(body: dict[str, Any]) -> int | None:
    """The ``ref`` (or ``op_id``) to put on an error about this body, if it is one that may be echoed."""
    for name in ("ref", "op_id"):
        ref = body.get(name)
        if type(ref) is int and REF.low <= ref <= REF.high:
            return ref
    return None


def event_from_body(body: dict[str, Any], *, from_role: Sender) -> Event:
    """Build and check the event a peer in ``from_role`` sent. Raises RemoteProtocolError (not fatal)."""
    ref = _echo_ref(body)
    type_name = body.get("type")
    if not isinstance(type_name, str):
        raise RemoteProtocolError(ErrorCode.BAD_MESSAGE, "message has no string 'type' field", ref=ref)
    cls = EVENT_TYPES.get(type_name)
    if cls is None:
        raise RemoteProtocolError(ErrorCode.UNKNOWN_TYPE, f"unknown message type {type_name[:64]!r}", ref=ref)
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
                reason = join_reason(explain(tp, value))
                raise RemoteProtocolError(ErrorCode.BAD_MESSAGE, f"{type_name}.{name}{reason}", ref=ref)
            kwargs[name] = value
        elif required:
            raise RemoteProtocolError(ErrorCode.BAD_MESSAGE, f"{type_name}.{name} is missing", ref=ref)
    if not cls._names.issuperset(body):
        unknown = sorted(str(name)[:64] for name in set(body) - cls._names)[:8]  # an error, not an echo
        raise RemoteProtocolError(ErrorCode.BAD_MESSAGE, f"{type_name} has unknown fields {unknown}", ref=ref)
    event = cls(**kwargs)
    try:
        event.check()
    except FieldError as exc:
        raise RemoteProtocolError(ErrorCode.BAD_MESSAGE, f"{type_name}.{exc}", ref=ref) from None
    except ValueError as exc:
        raise RemoteProtocolError(ErrorCode.BAD_MESSAGE, f"{type_name}: {exc}", ref=ref) from None
    return event


# ---- both directions -------------------------------------------------------------------------------------


@_event("ping", Sender.BOTH)
class Ping(Event):
    nonce: Annotated[int, NONCE]


@_event("pong", Sender.BOTH)
class Pong(Event):
    nonce: Annotated[int, NONCE]


# ---- client to server ------------------------------------------------------------------------------------


@_event("hello", Sender.CLIENT)
class Hello(Event):
    protocol: Annotated[int, PROTOCOL]  # the newest version the client speaks
    client_name: Name
    client_kind: Label = "blender"
    client_version: Label = ""
    session: SessionId | None = None  # client-chosen id, kept across reconnects so retried ops apply once
    token: Secret | None = None
    protocol_min: Annotated[int, PROTOCOL] | None = None  # the oldest it speaks (nil: only ``protocol``)

    @property
    def versions(self) -> tuple[int, int]:
        return (self.protocol if self.protocol_min is None else self.protocol_min), self.protocol

    def check(self) -> None:
        if self.protocol_min is not None and self.protocol_min > self.protocol:
            raise FieldError("protocol_min", f"must be at most protocol ({self.protocol})")


@_event("list_rooms", Sender.CLIENT)
class ListRooms(Event):
    subscribe: bool = False
    ref: Ref | None = None


@_event("create_room", Sender.CLIENT)
class CreateRoom(Event):
    room: RoomName
    keep_open: bool = False
    password: Password | None = None
    ref: Ref | None = None


@_event("join_room", Sender.CLIENT)
class JoinRoom(Event):
    room: RoomName
    password: Password | None = None
    since: Seq | None = None  # resume: send what came after this seq (or a snapshot if it is gone)
    ref: Ref | None = None


@_event("leave_room", Sender.CLIENT)
class LeaveRoom(Event):
    ref: Ref | None = None


@_event("delete_room", Sender.CLIENT)
class DeleteRoom(Event):
    room: RoomName
    ref: Ref | None = None


@_event("set", Sender.CLIENT)
class Set(Event):
    op_id: OpId
    key: Key
    value: bytes
    seen: Seq | None = None  # the last seq the client had when it made the edit (override notices)


@_event("delete", Sender.CLIENT)
class Delete(Event):
    op_id: OpId
    key: Key
    seen: Seq | None = None


@_event("batch", Sender.CLIENT)
class Batch(Event):
    op_id: OpId
    ops: Ops
    seen: Seq | None = None


@_event("event", Sender.CLIENT)
class RoomEvent(Event):
    """Relayed to the room, never stored (frame change, ping on a spot)."""

    op_id: OpId
    value: bytes


_PRESENCE_CHECKS = {name: compile_check(tp) for name, tp in PRESENCE_FIELDS.items()}


def presence_field_ok(name: str, value: Any) -> bool:
    """Whether one presence field is valid on its own (for a client building its state)."""
    check = _PRESENCE_CHECKS.get(name)
    return check is not None and check(value)


def check_presence(state: dict[str, Any]) -> None:
    """Each field as declared in limits.PRESENCE_FIELDS, and the selection within its byte bound."""
    for name, value in state.items():
        check = _PRESENCE_CHECKS.get(name)
        if check is None:
            raise FieldError("state", f"has an unknown field {str(name)[:64]!r}")
        if not check(value):
            raise FieldError(f"state.{name}", explain(PRESENCE_FIELDS[name], value))
    if "selection" in state and (size := selection_bytes(state["selection"])) > MAX_SELECTION_BYTES:
        raise FieldError("state.selection", f"holds {size} bytes, more than {MAX_SELECTION_BYTES}")


@_event("presence", Sender.CLIENT)
class Presence(Event):
    state: dict[str, Any]

    def check(self) -> None:
        check_presence(self.state)


@_event("lock", Sender.CLIENT)
class Lock(Event):
    """Lock keys, and every key under prefixes, of the joined room for this session: all of them or none
    (error ``locked``)."""

    keys: Keys = field(default_factory=list)
    ref: Ref | None = None
    prefixes: LockPrefixes = field(default_factory=list)

    def check(self) -> None:
        if not self.keys and not self.prefixes:
            raise FieldError("keys", "must name at least one key or prefix")
        if len(self.keys) + len(self.prefixes) > MAX_LOCK_KEYS:
            raise FieldError("keys", f"and prefixes must be at most {MAX_LOCK_KEYS} together")


@_event("unlock", Sender.CLIENT)
class Unlock(Event):
    """Release locks this session holds in the joined room; no keys and no prefixes release all of them."""

    keys: Keys = field(default_factory=list)
    ref: Ref | None = None
    prefixes: LockPrefixes = field(default_factory=list)


@_event("blob_query", Sender.CLIENT)
class BlobQuery(Event):
    """Which of these blobs does the server not hold? Answered by ``blob_status``."""

    hashes: BlobQueryHashes
    ref: Ref | None = None


@_event("blob_put", Sender.CLIENT)
class BlobPut(Event):
    """Store one blob (content-addressed: ``hash`` is the sha256 of ``data``); held for this session until a
    value references it. A tree node names the blobs it holds as ``children`` (docs/protocol.md section
    3a). Answered by ``blob_stored`` once durable."""

    hash: BlobHash
    data: BlobData
    ref: Ref | None = None
    children: BlobChildren | None = None

    def check(self) -> None:
        check_tree_blob(self.hash, self.data, self.children)


@_event("blob_get", Sender.CLIENT)
class BlobGet(Event):
    """Fetch blobs by hash: one ``blob_data`` each, in order."""

    hashes: BlobGetHashes
    ref: Ref | None = None


_ADMIN_CHECKS = {
    action: {name: compile_check(tp) for name, tp in args.items()} for action, args in ADMIN_ARGS.items()
}


@_event("admin", Sender.CLIENT)
class Admin(Event):
    """An operator request (role admin): see docs/protocol.md for each action's args and result."""

    action: str
    args: dict[str, Any] = field(default_factory=dict)
    ref: Ref | None = None

    def check(self) -> None:
        checks = _ADMIN_CHECKS.get(self.action)
        if checks is None:
            raise FieldError("action", f"must be one of {', '.join(sorted(ADMIN_ACTIONS))}")
        for name, check in checks.items():
            value = self.args.get(name)
            if value is not None and not check(value):
                raise FieldError(f"args.{name}", explain(ADMIN_ARGS[self.action][name], value))


# ---- server to client ------------------------------------------------------------------------------------


@_event("welcome", Sender.SERVER)
class Welcome(Event):
    protocol: Annotated[int, PROTOCOL]
    server_version: Label
    session: SessionId
    client_id: SessionId
    nodes: list[Address] = field(default_factory=list)  # host:port
    max_frame_size: Annotated[int, FRAME_SIZE] = 0
    heartbeat_interval: Annotated[float, SECONDS] = 5.0
    user: UserName | None = None  # the authenticated user (None when the server has no auth)
    role: Label | None = None  # "viewer", "user" or "admin"
    # Since protocol 2 (left out when ``protocol`` is 1, whose clients know no such fields):
    protocol_min: Annotated[int, PROTOCOL] | None = None  # the server's range of versions
    protocol_max: Annotated[int, PROTOCOL] | None = None
    addon_version: Label | None = None  # the add-on the server offers for download...
    addon_port: Annotated[int, PORT] | None = None  # ...on its HTTP port, at ADDON_PATH...
    addon_sha256: Sha256 | None = None  # ...with this digest (checked before installing it)

    def to_body(self) -> dict[str, Any]:
        body = Event.to_body(self)
        if self.protocol < 2:
            for name in WELCOME_V2_FIELDS:
                del body[name]
        return body


WELCOME_V2_FIELDS = ("protocol_min", "protocol_max", "addon_version", "addon_port", "addon_sha256")
ADDON_PATH = "/addon/blendsync.zip"  # where a server's HTTP port serves the add-on (welcome.addon_port)


@_event("room_list", Sender.SERVER)
class RoomList(Event):
    rooms: list[dict[str, Any]]
    ref: Ref | None = None


@_event("rooms_changed", Sender.SERVER)
class RoomsChanged(Event):
    updated: list[dict[str, Any]] = field(default_factory=list)
    deleted: list[RoomName] = field(default_factory=list)


@_event("room_created", Sender.SERVER)
class RoomCreated(Event):
    room: RoomName
    ref: Ref | None = None


@_event("joined", Sender.SERVER)
class Joined(Event):
    room: RoomName
    seq: Seq  # snapshot: its seq; resume: the seq the tail starts after
    mode: Label  # "snapshot" or "resume"
    key_count: Seq
    clients: list[dict[str, Any]] = field(default_factory=list)
    ref: Ref | None = None
    role: Label | None = None  # the joiner's role in the room: "owner", "editor" or "viewer"


@_event("snapshot", Sender.SERVER)
class SnapshotChunk(Event):
    room: RoomName
    items: Items  # [key, value]


@_event("snapshot_end", Sender.SERVER)
class SnapshotEnd(Event):
    room: RoomName
    seq: Seq


@_event("ack", Sender.SERVER)
class Ack(Event):
    op_id: OpId
    seq: Seq


@_event("applied", Sender.SERVER)
class Applied(Event):
    room: RoomName
    seq: Seq
    client_id: SessionId
    op_id: OpId
    ops: Ops
    seen: Seq | None = None  # the author's ``seen``, passed on unchanged
    # Since protocol 3: blobs the write made new, [hash, data] each (docs/protocol.md section 3a); a
    # client of an older version is never sent them (it refuses unknown fields).
    blobs: PushedBlobs | None = None

    def check(self) -> None:
        for i, (blob, data) in enumerate(self.blobs or ()):
            if hashlib.sha256(data).digest() != blob:
                raise FieldError(f"blobs[{i}]", "hash is not the sha256 of data")


@_event("room_event", Sender.SERVER)
class EventRelayed(Event):
    room: RoomName
    client_id: SessionId
    value: bytes
    seq: Seq  # the room's seq when the event was relayed


@_event("left", Sender.SERVER)
class Left(Event):
    room: RoomName
    ref: Ref | None = None


@_event("room_deleted", Sender.SERVER)
class RoomDeleted(Event):
    room: RoomName
    ref: Ref | None = None


@_event("client_joined", Sender.SERVER)
class ClientJoined(Event):
    room: RoomName
    client: dict[str, Any]


@_event("client_left", Sender.SERVER)
class ClientLeft(Event):
    room: RoomName
    client_id: SessionId


@_event("client_updated", Sender.SERVER)
class ClientUpdated(Event):
    room: RoomName
    client_id: SessionId
    state: dict[str, Any]

    def check(self) -> None:
        check_presence(self.state)


@_event("error", Sender.SERVER)
class Error(Event):
    code: Label
    message: str
    ref: Ref | None = None
    fatal: bool = False


@_event("lock_granted", Sender.SERVER)
class LockGranted(Event):
    room: RoomName
    keys: Keys
    ref: Ref | None = None
    prefixes: LockPrefixes = field(default_factory=list)


@_event("unlocked", Sender.SERVER)
class Unlocked(Event):
    room: RoomName
    keys: list[Key]
    ref: Ref | None = None
    prefixes: list[LockPrefix] = field(default_factory=list)


@_event("locks_changed", Sender.SERVER)
class LocksChanged(Event):
    """Locks taken (key or prefix -> owner client_id) and released in the room, coalesced."""

    room: RoomName
    locked: dict[Key, SessionId] = field(default_factory=dict)
    unlocked: list[Key] = field(default_factory=list)
    prefixes: dict[LockPrefix, SessionId] = field(default_factory=dict)
    unlocked_prefixes: list[LockPrefix] = field(default_factory=list)


@_event("blob_status", Sender.SERVER)
class BlobStatus(Event):
    missing: BlobStatusHashes  # the queried hashes the server does not hold, in query order
    ref: Ref | None = None


@_event("blob_stored", Sender.SERVER)
class BlobStored(Event):
    hash: BlobHash
    ref: Ref | None = None


@_event("blob_data", Sender.SERVER)
class BlobDataEvent(Event):
    """One blob of a ``blob_get``; ``data`` is nil when the server does not hold it."""

    hash: BlobHash
    data: BlobData | None = None
    ref: Ref | None = None

    def check(self) -> None:
        if self.data is not None:
            check_blob_hash(self.hash, self.data)


@_event("admin_result", Sender.SERVER)
class AdminResult(Event):
    action: Label
    result: Any = None
    ref: Ref | None = None
