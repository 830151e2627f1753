"""Plain data exchanged with the Raft core: entries, states, messages, snapshots, errors.

Everything here is immutable and free of I/O. Messages convert to and from plain lists of
ints/bools/bytes (``message_to_wire`` / ``message_from_wire``) so any msgpack transport can carry them.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum, IntEnum
from typing import Any

NO_NODE = 0  # node ids are positive; 0 means "nobody" in HardState.vote and on the wire


class EntryKind(IntEnum):
    NORMAL = 0
    CONF_CHANGE = 1


@dataclass(frozen=True, slots=True)
class Entry:
    term: int
    index: int
    kind: EntryKind = EntryKind.NORMAL
    data: bytes = b""

    def size(self) -> int:
        # Rough wire size; only used to cap message and Ready batches.
        return len(self.data) + 16


@dataclass(frozen=True, slots=True)
class HardState:
    """What must be durable before any message produced with it is sent."""

    term: int = 0
    vote: int = NO_NODE
    commit: int = 0


class Role(Enum):
    FOLLOWER = "follower"
    PRE_CANDIDATE = "pre_candidate"
    CANDIDATE = "candidate"
    LEADER = "leader"


@dataclass(frozen=True, slots=True)
class SoftState:
    """Volatile state worth reporting to the driver; never persisted."""

    leader: int | None
    role: Role


class MessageType(IntEnum):
    VOTE = 1
    VOTE_RESP = 2
    PRE_VOTE = 3
    PRE_VOTE_RESP = 4
    APPEND = 5
    APPEND_RESP = 6
    HEARTBEAT = 7
    HEARTBEAT_RESP = 8
    SNAPSHOT = 9
    TIMEOUT_NOW = 10
    READ_INDEX = 11
    READ_INDEX_RESP = 12
    PROPOSE = 13


RESPONSE_TYPES = frozenset(
    {
        MessageType.VOTE_RESP,
        MessageType.PRE_VOTE_RESP,
        MessageType.APPEND_RESP,
        MessageType.HEARTBEAT_RESP,
        MessageType.READ_INDEX_RESP,
    }
)


class ConfChangeType(IntEnum):
    ADD_NODE = 0
    REMOVE_NODE = 1


@dataclass(frozen=True, slots=True)
class ConfChange:
    """Add or remove one voter.

    ``voters`` is the complete configuration that results from the change. The leader fills it in
    when it proposes the change, so that applying the entry never depends on what the applying node
    knew before (a node that joins empty learns the whole configuration from this one entry).
    """

    type: ConfChangeType
    node_id: int
    context: bytes = b""
    voters: frozenset[int] | None = None

    _HEADER = struct.Struct(">BQH")
    _VOTER = struct.Struct(">Q")

    def to_bytes(self) -> bytes:
        voters = sorted(self.voters) if self.voters is not None else []
        flag_and_count = len(voters) if self.voters is not None else 0xFFFF
        parts = [self._HEADER.pack(int(self.type), self.node_id, flag_and_count)]
        parts.extend(self._VOTER.pack(v) for v in voters)
        parts.append(self.context)
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, data: bytes) -> ConfChange:
        if len(data) < cls._HEADER.size:
            raise ValueError("conf change entry too short")
        kind, node_id, count = cls._HEADER.unpack_from(data)
        try:
            cc_type = ConfChangeType(kind)
        except ValueError:
            raise ValueError(f"unknown conf change type {kind}") from None
        if node_id <= 0:
            raise ValueError("conf change node id must be positive")
        pos = cls._HEADER.size
        voters: frozenset[int] | None = None
        if count != 0xFFFF:
            end = pos + count * cls._VOTER.size
            if len(data) < end:
                raise ValueError("conf change entry truncated")
            voters = frozenset(cls._VOTER.unpack_from(data, pos + i * 8)[0] for i in range(count))
            pos = end
        return cls(cc_type, node_id, bytes(data[pos:]), voters)


@dataclass(frozen=True, slots=True)
class SnapshotMeta:
    index: int = 0
    term: int = 0
    voters: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class Snapshot:
    """State machine image covering every entry up to ``meta.index``; ``data`` is opaque to the core."""

    meta: SnapshotMeta = field(default_factory=SnapshotMeta)
    data: bytes = b""

    @property
    def index(self) -> int:
        return self.meta.index

    @property
    def term(self) -> int:
        return self.meta.term

    def is_empty(self) -> bool:
        return self.meta.index == 0


@dataclass(frozen=True, slots=True)
class Message:
    type: MessageType
    src: int
    dst: int
    term: int = 0
    log_term: int = 0
    index: int = 0
    entries: tuple[Entry, ...] = ()
    commit: int = 0
    reject: bool = False
    reject_hint: int = 0
    snapshot: Snapshot | None = None
    context: bytes = b""


@dataclass(frozen=True, slots=True)
class ReadState:
    """Answer to ``read_index(ctx)``: reads are linearizable once ``index`` is applied locally."""

    index: int
    ctx: bytes


@dataclass(slots=True)
class Ready:
    """One batch of work for the driver. See docs/raft.md for the exact order of operations."""

    soft_state: SoftState | None = None
    hard_state: HardState | None = None
    entries: list[Entry] = field(default_factory=list)
    snapshot: Snapshot | None = None
    committed_entries: list[Entry] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    read_states: list[ReadState] = field(default_factory=list)
    must_sync: bool = False


class RaftError(Exception):
    """Base class of errors raised by the Raft core."""


class NotLeaderError(RaftError):
    """The request needs the leader; ``leader`` is the known leader id, or None."""

    def __init__(self, leader: int | None) -> None:
        super().__init__(f"not the leader (leader: {leader})")
        self.leader = leader


class ProposalDroppedError(RaftError):
    """The leader refused the proposal (transfer in progress, conf change pending, ...)."""


class StorageError(RaftError):
    pass


class CompactedError(StorageError):
    """The requested index is covered by a snapshot and its entry is gone."""


class UnavailableError(StorageError):
    """The requested index is past the end of the log."""


class SnapshotOutOfDateError(StorageError):
    """A snapshot older than the current one was offered."""


class SnapshotTemporarilyUnavailableError(StorageError):
    """The storage cannot produce a snapshot right now; the leader retries later."""


# ---------------------------------------------------------------------------------------------
# Wire form: a fixed-position list of plain values. Decoding is strict: anything malformed raises
# ValueError and nothing else, so a transport can reject a bad peer frame with one except clause.

_MAX_U64 = (1 << 64) - 1


def entry_to_wire(entry: Entry) -> list[Any]:
    return [entry.term, entry.index, int(entry.kind), entry.data]


def snapshot_to_wire(snap: Snapshot) -> list[Any]:
    return [snap.meta.index, snap.meta.term, sorted(snap.meta.voters), snap.data]


def message_to_wire(m: Message) -> list[Any]:
    return [
        int(m.type),
        m.src,
        m.dst,
        m.term,
        m.log_term,
        m.index,
        [entry_to_wire(e) for e in m.entries],
        m.commit,
        m.reject,
        m.reject_hint,
        None if m.snapshot is None else snapshot_to_wire(m.snapshot),
        m.context,
    ]


def _u64(value: object, what: str) -> int:
    # bool is an int subclass; a peer sending True where a number belongs is malformed.
    if type(value) is not int or not 0 <= value <= _MAX_U64:
        raise ValueError(f"{what}: expected an unsigned 64-bit int, got {value!r:.40}")
    return value


def _bytes(value: object, what: str) -> bytes:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise ValueError(f"{what}: expected bytes, got {type(value).__name__}")
    return bytes(value)


def _seq(value: object, length: int | None, what: str) -> Sequence[Any]:
    if not isinstance(value, list | tuple):
        raise ValueError(f"{what}: expected a list, got {type(value).__name__}")
    if length is not None and len(value) != length:
        raise ValueError(f"{what}: expected {length} items, got {len(value)}")
    return value


def entry_from_wire(obj: object) -> Entry:
    term, index, kind, data = _seq(obj, 4, "entry")
    try:
        entry_kind = EntryKind(_u64(kind, "entry kind"))
    except ValueError:
        raise ValueError(f"entry: unknown kind {kind!r:.20}") from None
    return Entry(_u64(term, "entry term"), _u64(index, "entry index"), entry_kind, _bytes(data, "entry data"))


def snapshot_from_wire(obj: object) -> Snapshot:
    index, term, voters, data = _seq(obj, 4, "snapshot")
    voter_ids = frozenset(_u64(v, "snapshot voter") for v in _seq(voters, None, "snapshot voters"))
    meta = SnapshotMeta(_u64(index, "snapshot index"), _u64(term, "snapshot term"), voter_ids)
    return Snapshot(meta, _bytes(data, "snapshot data"))


def message_from_wire(obj: object) -> Message:
    try:
        return _message_from_wire(obj)
    except ValueError:
        raise
    except Exception as exc:  # belt and braces: the contract is "only ValueError"
        raise ValueError(f"malformed message: {exc!r:.80}") from None


def _message_from_wire(obj: object) -> Message:
    (mtype, src, dst, term, log_term, index, entries, commit, reject, reject_hint, snap, context) = _seq(
        obj, 12, "message"
    )
    try:
        msg_type = MessageType(_u64(mtype, "message type"))
    except ValueError:
        raise ValueError(f"message: unknown type {mtype!r:.20}") from None
    if type(reject) is not bool:
        raise ValueError("message reject: expected a bool")
    return Message(
        type=msg_type,
        src=_u64(src, "message src"),
        dst=_u64(dst, "message dst"),
        term=_u64(term, "message term"),
        log_term=_u64(log_term, "message log_term"),
        index=_u64(index, "message index"),
        entries=tuple(entry_from_wire(e) for e in _seq(entries, None, "message entries")),
        commit=_u64(commit, "message commit"),
        reject=reject,
        reject_hint=_u64(reject_hint, "message reject_hint"),
        snapshot=None if snap is None else snapshot_from_wire(snap),
        context=_bytes(context, "message context"),
    )
