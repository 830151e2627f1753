"""A stateful test of a real server: raw clients send random valid and invalid requests; a model checks them.

Four clients on one ``blendsync serve`` process create, join, leave and delete rooms, write keys, lock,
send presence, list and export rooms, upload blobs and reference them from keys, checkpoint, restore and
fork rooms, ask for blame, and send
garbage: names and keys from the whole Unicode range, at every length boundary, with pattern characters,
NUL, control characters and lone surrogates; once per run the server may be restarted (SIGTERM, which
must exit 0, or kill -9). The model is a dict per room changed only by writes (and restores) the server
acknowledged. After every step:

- the server process is alive;
- a bystander writing in a room of its own gets its ack within a bounded wait;
- every client's view of its room (snapshot, then its own acks and others' ``applied``) equals the model,
  and no client ever received a frame of a room it was not in;
- every blob a live key or a checkpoint of any room references is stored;
- every request got the answer the model predicts; invalid ones an ``error`` (fatal only where
  docs/protocol.md says so), never ``internal``. Whether a request is valid at all is the protocol's own
  decoder's call (a server-side protocol.Connection), so the model follows protocol/limits.py when a limit
  changes; what a valid request does is the model's.

The clients speak frames by hand (protocol.Connection parses what the server sends) so that they can send
what the library would refuse. Longer runs: ``BLENDSYNC_FUZZ_EXAMPLES=2000 pytest <this file>``.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import signal
import socket
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from support import ServerProcess

from protocol import (
    CLOSED,
    EVENT_TYPES,
    MAX_KEY_BYTES,
    MAX_LOCK_KEYS,
    MAX_ROOM_NAME_BYTES,
    NEED_DATA,
    PROTOCOL_VERSION,
    Ack,
    AdminResult,
    Applied,
    BlobStatus,
    BlobStored,
    CheckpointDeleted,
    CheckpointMade,
    Connection,
    Error,
    Event,
    ExportBlob,
    ExportItems,
    Forked,
    Hello,
    HistoryResult,
    Joined,
    Left,
    LockGranted,
    Ping,
    Pong,
    RemoteProtocolError,
    Restored,
    Role,
    RoomCreated,
    RoomDeleted,
    RoomList,
    RoomsChanged,
    SnapshotChunk,
    Unlocked,
    Welcome,
)
from protocol.events import Sender
from protocol.limits import MAX_BLOB_CHILDREN, OP_ID, PASSWORD, ROOM_NAME, text_predicate

# The frame fuzz's switch: a stateful example is a run of up to STEPS requests, so it takes a tenth as many.
FUZZ_EXAMPLES = int(os.environ.get("BLENDSYNC_FUZZ_EXAMPLES", "150"))
STATEFUL_EXAMPLES = max(1, FUZZ_EXAMPLES // 10)
STEPS = 30
CLIENTS = 4
REPLY_SECONDS = 15.0  # any one answer (an scrypt hash, an fsync on a loaded machine): a hang, not a wait
BYSTANDER_ROOM = "bystander's room"

# ---- frames ------------------------------------------------------------------------------------------

_packer = msgpack.Packer(use_bin_type=True, unicode_errors="surrogatepass")  # lone surrogates on the wire


def frame(body: Any) -> bytes:
    payload = _packer.pack(body)
    return struct.pack(">I", len(payload)) + payload


def utf8_size(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def has_surrogate(text: str) -> bool:
    return any("\ud800" <= ch <= "\udfff" for ch in text)


# The grammar is the protocol's own (protocol/limits.py): the model asks it instead of restating it, so this
# test stays true when a limit changes, while the strategies below keep drawing every boundary.
room_name_ok = text_predicate(ROOM_NAME)
password_ok = text_predicate(PASSWORD)
_HELLO = frame({"type": "hello", "protocol": PROTOCOL_VERSION, "client_name": "model"})


def decode_error(data: bytes) -> RemoteProtocolError | None:
    """What the protocol's decoder, on the server's side of a connection past its hello, makes of ``data``:
    the error the server must answer with, or None for a valid message (whose outcome the model decides)."""
    conn = Connection(Role.SERVER)
    conn.receive_data(_HELLO)
    assert isinstance(conn.next_event(), Hello)
    conn.receive_data(data)
    try:
        conn.next_event()
    except RemoteProtocolError as exc:
        return exc
    return None


# ---- strategies --------------------------------------------------------------------------------------

SPECIALS = [
    "*", "**", "/", "%", "?", "[", "]", "a/b", "*/*", "**/x", "%2F", "%25", "..", ".", "[a-z]", "a?",
    "\x00", "a\x00b", "\ud800", "\udfff", "x\udc80", "\x07", "\n", "\x1f", "\x7f", "\u202e", "\u200b", " ",
    "\ufeff", "\U0010ffff", "😀", "é", "€",
]  # fmt: skip
FILLERS = ["a", "é", "€", "😀", "*", "/", "%"]


@st.composite
def text_of_size(draw: st.DrawFn, size: int) -> str:
    """Text of exactly ``size`` UTF-8 bytes: a random head (any code point), then wide or pattern filler."""
    head = "".join(draw(st.lists(st.characters(codec="utf-8") | st.sampled_from(SPECIALS), max_size=4)))
    while utf8_size(head) > size:
        head = head[:-1]
    filler = draw(st.sampled_from(FILLERS))
    rest = size - utf8_size(head)
    count = rest // utf8_size(filler)
    return head + filler * count + "a" * (rest - count * utf8_size(filler))


def names(limit: int) -> st.SearchStrategy[str]:
    """Names around a byte limit: empty, short, pattern characters, 1, limit-1, limit, limit+1 bytes."""
    return st.one_of(
        st.sampled_from(SPECIALS),
        st.text(st.characters() | st.characters(categories=["Cs"]), max_size=6),
        st.sampled_from(
            [0, 1, limit // 2 - 1, limit // 2, limit // 2 + 1, limit - 1, limit, limit + 1]
        ).flatmap(text_of_size),
        st.integers(1, limit + 1).flatmap(text_of_size),
    )


COMMON_KEYS = ["k", "obj/1/name", "*", "%2F", "é"]
room_names = names(MAX_ROOM_NAME_BYTES)
key_names = names(MAX_KEY_BYTES)
values = st.binary(max_size=64) | st.binary(min_size=1000, max_size=3000)
BLOBS = {hashlib.sha256(data).digest(): data for data in (b"chunk %d " % i * 200 for i in range(3))}
# Tree nodes over those chunks (docs/protocol.md section 3a): two that share a chunk, and a root above one
# of them; a node's bytes are its children's hashes. A key may reference a root, a node, a chunk.
CHILDREN: dict[bytes, list[bytes]] = {}
_leaves = sorted(BLOBS)
for _children in ([_leaves[0], _leaves[1]], [_leaves[1], _leaves[2]]):
    CHILDREN[hashlib.sha256(b"".join(_children)).digest()] = _children
_children = [sorted(CHILDREN)[0], _leaves[2]]
CHILDREN[hashlib.sha256(b"".join(_children)).digest()] = _children
BLOBS.update({node: b"".join(children) for node, children in CHILDREN.items()})
blob_refs = st.lists(st.sampled_from(sorted(BLOBS)), max_size=3, unique=True)


def reachable(blobs: Any) -> set[bytes]:
    """The blobs these hold, themselves included (down their trees)."""
    found: set[bytes] = set()
    todo = list(blobs)
    while todo:
        blob = todo.pop()
        if blob not in found:
            found.add(blob)
            todo += CHILDREN.get(blob, [])
    return found


passwords = st.none() | st.sampled_from(["", "pw", "\x00", "p\u00e9", "x" * 300]) | st.text(max_size=8)
presence_states = st.dictionaries(
    st.sampled_from(["name", "color", "mode", "frame", "scene", "view_matrix", "selection", "bogus"]),
    st.text(max_size=4) | st.integers(-(2**63), 2**64 - 1) | st.lists(st.floats(allow_nan=False), max_size=4)
    | st.lists(st.text(max_size=3), max_size=3) | st.booleans(),
    max_size=3,
)  # fmt: skip
# Wrong-typed values for a field, and requests to put them in: (body, the field to spoil).
WRONG_VALUES = [True, 1.5, "text", b"bytes", [1], {"a": 1}, -(2**63), 2**64 - 1]
SPOILABLE = [
    ({"type": "create_room", "room": "r", "keep_open": True, "ref": 1}, ["room", "keep_open", "ref"]),
    ({"type": "join_room", "room": "r", "since": 0, "ref": 1}, ["room", "since", "password", "ref"]),
    ({"type": "set", "op_id": 1, "key": "k", "value": b"v"}, ["op_id", "key", "value"]),
    ({"type": "batch", "op_id": 1, "ops": [["set", "k", b"v"]]}, ["op_id", "ops"]),
    ({"type": "lock", "keys": ["k"], "ref": 1}, ["keys", "ref"]),
    ({"type": "list_rooms", "subscribe": False, "ref": 1}, ["subscribe", "ref"]),
    ({"type": "presence", "state": {}}, ["state"]),
    ({"type": "ping", "nonce": 1}, ["nonce"]),
    ({"type": "admin", "action": "rooms", "args": {}, "ref": 1}, ["action", "args", "ref"]),
    ({"type": "history", "prefix": "obj/", "since": 0, "limit": 5, "ref": 1}, ["prefix", "since", "limit"]),
    ({"type": "checkpoint", "name": "c", "ref": 1}, ["name", "ref"]),
    ({"type": "restore", "checkpoint": 1, "ref": 1}, ["checkpoint", "ref"]),
    ({"type": "fork", "room": "r", "seq": 0, "keep_open": True, "ref": 1}, ["room", "seq", "keep_open"]),
]
SERVER_ONLY = sorted(name for name, kind in EVENT_TYPES.items() if not kind.SENDER & Sender.CLIENT)
# Raw frames and the error docs/protocol.md gives them: (bytes, code, fatal). Fatal ones lose the stream.
GARBAGE = [
    (struct.pack(">I", 2**31), "frame_too_large", True),
    (struct.pack(">I", 64 * 1024 * 1024 + 1), "frame_too_large", True),
    (struct.pack(">I", 1) + b"\xc1", "bad_frame", True),  # never valid msgpack
    (struct.pack(">I", 1) + b"\x05", "bad_frame", True),  # msgpack, not a map
    (frame([1, 2]), "bad_frame", True),
    (frame("set"), "bad_frame", True),
    (struct.pack(">I", 5) + b"\x81\xa2\xff\xfe\x01", "bad_message", False),  # a field name not UTF-8
    (frame({"type": "set", "op_id": 7, "key": "\udcff", "value": b""}), "bad_message", False),
    (frame({"type": "hello", "protocol": PROTOCOL_VERSION, "client_name": "again"}), "protocol_state", False),
]

# ---- a client speaking raw frames ----------------------------------------------------------------------

REPLIES = (
    RoomCreated,
    Joined,
    Left,
    RoomDeleted,
    RoomList,
    LockGranted,
    Unlocked,
    AdminResult,
    ExportItems,
    ExportBlob,
    Ack,
    Error,
    HistoryResult,
    CheckpointMade,
    CheckpointDeleted,
    Restored,
    Forked,
    BlobStored,
    BlobStatus,
)


class Gone(Exception):
    """The server closed this connection."""


class RawClient:
    """One connection. Every frame it receives passes through ``track``, in order, which keeps its view of
    its room and fails the test on a frame of a room it is not in."""

    def __init__(self, address: tuple[str, int], label: str):
        self.label = label
        self.sock = socket.create_connection(address, timeout=REPLY_SECONDS)
        self.conn = Connection(Role.CLIENT)
        self.session = secrets.token_hex(16)
        self.room: str | None = None
        self.view: dict[str, bytes] = {}
        self.pending: dict[int, list[list[Any]]] = {}  # op_id -> ops, applied to the view at its ack
        self.acked_ops: dict[
            int, list[list[Any]]
        ] = {}  # what our acked writes did (a resumed tail acks them)
        self.in_tail = False  # between a resumed join and the pong behind it
        self.op_id = 0  # the highest op_id the server may have taken; new writes go above it
        # (op_id, seq, room) of the last write that reached the store; a retry is answered by its room
        self.last_acked: tuple[int, int, RoomModel] | None = None
        self.joined_seq = 0  # this connection's stream of its room starts after this seq
        self.older_acked: list[int] = []
        self.nonce = 0
        self.ref = 0
        self.closed = False
        self.sock.sendall(
            self.conn.send(Hello(protocol=PROTOCOL_VERSION, client_name=label, session=self.session))
        )
        welcome = self.next_event()
        assert isinstance(welcome, Welcome), welcome

    def close(self) -> None:
        self.sock.close()

    def next_ref(self) -> int:
        self.ref += 1
        return self.ref

    def next_event(self, deadline: float | None = None) -> Event:
        deadline = deadline or time.monotonic() + REPLY_SECONDS
        while True:
            try:
                event = self.conn.next_event()
            except RemoteProtocolError as exc:
                raise AssertionError(f"{self.label}: the server sent an invalid frame: {exc}") from None
            if event is CLOSED:
                self.closed = True
                raise Gone(self.label)
            if event is not NEED_DATA:
                assert isinstance(event, Event)
                self.track(event)
                return event
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"{self.label}: no frame from the server within {REPLY_SECONDS} s"
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                raise AssertionError(
                    f"{self.label}: no frame from the server within {REPLY_SECONDS} s"
                ) from None
            except ConnectionResetError:
                data = b""
            self.conn.receive_data(data)

    def track(self, event: Event) -> None:
        room = getattr(event, "room", None)
        if isinstance(event, Joined):
            assert self.room is None, f"{self.label}: joined {event.room!r} while in {self.room!r}"
            self.room, self.view, self.joined_seq = event.room, {}, event.seq
            self.in_tail = event.mode == "resume"
        elif isinstance(event, Left | RoomDeleted) and (isinstance(event, Left) or event.ref is None):
            assert room == self.room, f"{self.label} in {self.room!r} told it left {room!r}"
            self.room, self.view = None, {}
        elif isinstance(event, Ping):
            self.sock.sendall(frame({"type": "pong", "nonce": event.nonce}))
        elif isinstance(event, Ack) and event.op_id in self.pending:
            self.acked_ops[event.op_id] = self.pending.pop(event.op_id)
            for op in self.acked_ops[event.op_id]:
                apply_op(self.view, op)
        elif isinstance(event, Ack) and self.in_tail:
            assert event.op_id in self.acked_ops, (
                f"{self.label}: a resumed tail acks op {event.op_id}, never acked"
            )
            for op in self.acked_ops[event.op_id]:
                apply_op(self.view, op)
        elif room is not None and not isinstance(event, (*REPLIES, RoomsChanged)):
            # applied, snapshot, client_joined/left/updated, locks_changed, room_event: only of our room
            assert room == self.room, f"{self.label} in room {self.room!r} got {event.TYPE} of room {room!r}"
            if isinstance(event, SnapshotChunk):
                self.view.update((key, value) for key, value in event.items)
            elif isinstance(event, Applied):
                for op in event.ops:
                    apply_op(self.view, op)

    def exchange(self, data: bytes, op_id: int | None = None) -> list[Event]:
        """Send ``data`` and a ping; return the replies received before the pong (and, for a write, until
        its ack or error). The server handles a connection's requests in order, so the pong comes after
        every reply to ``data`` except a write's ack, which comes at commit."""
        self.nonce += 1
        nonce = self.nonce
        self.sock.sendall(data + frame({"type": "ping", "nonce": nonce}))
        replies: list[Event] = []
        deadline = time.monotonic() + REPLY_SECONDS
        pong = False
        while not pong or (op_id is not None and not any(_answers(e, op_id) for e in replies)):
            try:
                event = self.next_event(deadline)
            except Gone:
                assert any(isinstance(e, Error) and e.fatal for e in replies), (
                    f"{self.label}: closed without a fatal error"
                )
                return replies
            if isinstance(event, Pong) and event.nonce == nonce:
                pong = True
                self.in_tail = False
            elif isinstance(event, Ack) and self.in_tail:
                pass  # part of a resumed tail, not a reply
            elif isinstance(event, REPLIES) and not _notice(event):
                replies.append(event)
        return replies

    def sync(self) -> list[Event]:
        """Everything queued for this client before now has been read (and tracked)."""
        return self.exchange(b"")


def _notice(event: Event) -> bool:
    """Not an answer: the room one is in was deleted, or dropped presence (rate limited, at most 1/s)."""
    if isinstance(event, RoomDeleted):
        return event.ref is None
    return isinstance(event, Error) and event.code == "rate_limited" and event.ref is None


def _answers(event: Event, op_id: int) -> bool:
    return (isinstance(event, Ack) and event.op_id == op_id) or (
        isinstance(event, Error) and event.ref == op_id
    )


def apply_op(view: dict[str, bytes], op: list[Any]) -> None:
    if op[0] == "set":
        view[op[1]] = op[2]
    else:
        view.pop(op[1], None)


# ---- the server under test -----------------------------------------------------------------------------


class Target:
    """One server process for the whole run, emptied before each example; restarted on a fresh data
    directory if a previous example killed it (so that shrinking still has a server to talk to)."""

    def __init__(self, root: Path):
        self.root = root
        self.process: ServerProcess | None = None
        self.address: tuple[str, int] = ("127.0.0.1", 0)
        self.starts = 0
        self.deaths: list[int | None] = []  # exit codes of deaths found between runs (e.g. at an idle flush)

    def alive(self) -> bool:
        return self.process is not None and self.process.proc is not None and self.process.proc.poll() is None

    def fresh(self) -> tuple[str, int]:
        if not self.alive():
            if self.process is not None and self.process.proc is not None:
                self.deaths.append(self.process.proc.poll())
            self.stop()
            self.starts += 1
            data = self.root / f"data{self.starts}"
            shutil.rmtree(data, ignore_errors=True)
            # Every client comes from 127.0.0.1, so the password-guess allowance (docs/security.md) would turn
            # the model's wrong passwords into rate_limited after a few; lockouts are tested on their own.
            config = self.root / "serve.toml"
            # A short pin_grace: the uploads of an example's sessions are gone before the next example.
            config.write_text(
                "[server]\npassword_failures_per_address = 0\npassword_failures_per_room = 0\n"
                "pin_grace = 0.2\n"
            )
            self.process = ServerProcess(data, extra=["--config", str(config)])
            self.address = self.process.start()
        admin = RawClient(self.address, "cleaner")
        try:
            listed = admin.exchange(frame({"type": "admin", "action": "rooms", "ref": 1}))
            for info in listed[-1].result:
                admin.exchange(
                    frame(
                        {"type": "admin", "action": "delete_room", "args": {"room": info["name"]}, "ref": 2}
                    )
                )
            remaining = admin.exchange(frame({"type": "admin", "action": "rooms", "ref": 3}))[-1].result
            assert remaining == [], f"rooms left over after deleting them all: {remaining}"
            # No blob is left held either (so a replayed example starts alike): nothing holds them now.
            deadline = time.monotonic() + REPLY_SECONDS
            query = frame({"type": "blob_query", "hashes": sorted(BLOBS), "ref": 4})
            while len(admin.exchange(query)[-1].missing) < len(BLOBS):
                assert time.monotonic() < deadline, "blobs still stored with no room and no session"
                time.sleep(0.05)
        finally:
            admin.close()
        return self.address

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()


# ---- the model and the machine -------------------------------------------------------------------------


@dataclass
class RoomModel:
    password: str | None
    keep_open: bool
    keys: dict[str, bytes] = field(default_factory=dict)
    members: set[int] = field(default_factory=set)
    locks: dict[str, int] = field(default_factory=dict)  # key -> client index
    checkpoints: dict[int, dict[str, bytes]] = field(default_factory=dict)  # id -> the keys it holds
    forked: bool = False
    refs: dict[str, tuple[bytes, ...]] = field(default_factory=dict)  # key -> the blobs its value references
    checkpoint_refs: dict[int, dict[str, tuple[bytes, ...]]] = field(default_factory=dict)

    def apply(self, op: list[Any]) -> None:
        apply_op(self.keys, op)
        self.refs.pop(op[1], None)
        if op[0] == "set" and len(op) == 4 and op[3]:
            self.refs[op[1]] = tuple(sorted(op[3]))


BYSTANDER = -1
clients_ = st.integers(0, CLIENTS - 1)


class ServerMachine(RuleBasedStateMachine):
    target: Target

    def __init__(self) -> None:
        super().__init__()
        self.address = self.target.fresh()
        self.restarted = False  # one restart per run at most: it costs a second or two
        self.clients = [RawClient(self.address, f"client{i}") for i in range(CLIENTS)]
        self.bystander = RawClient(self.address, "bystander")
        self.rooms: dict[str, RoomModel] = {BYSTANDER_ROOM: RoomModel(None, True, members={BYSTANDER})}
        self.expect(
            self.bystander, {"type": "create_room", "room": BYSTANDER_ROOM, "keep_open": True}, RoomCreated
        )
        self.expect(self.bystander, {"type": "join_room", "room": BYSTANDER_ROOM}, Joined)

    def teardown(self) -> None:
        for client in [*self.clients, self.bystander]:
            client.close()

    # ---- helpers ----

    @staticmethod
    def with_ref(client: RawClient, body: dict[str, Any]) -> dict[str, Any]:
        if "ref" not in body and body["type"] not in ("presence", "set", "delete", "batch", "event"):
            body = {**body, "ref": client.next_ref()}
        return body

    def refused(self, client: RawClient, body: dict[str, Any] | bytes) -> bool:
        """If the protocol's decoder refuses ``body``, the server answers with exactly that error (code, fatal
        or not, ref) before anything of the session's state matters: check that and return True."""
        data = frame(body) if isinstance(body, dict) else body
        predicted = decode_error(data)
        if predicted is None:
            return False
        code = str(predicted.code)
        fatal = predicted.fatal
        error = self.expect_error(client, data, *((code,) * (not fatal)), fatal_ok=(code,) * fatal)
        assert error.ref == predicted.ref, f"{client.label}: {_short(body)} -> {error}, wanted {predicted}"
        return True

    def request(self, client: RawClient, body: dict[str, Any]) -> list[Event]:
        body = self.with_ref(client, body)
        replies = client.exchange(
            frame(body), op_id=body.get("op_id") if body["type"] in ("set", "delete", "batch") else None
        )
        for reply in replies:
            if isinstance(reply, Error):
                assert reply.code != "internal", (
                    f"{client.label}: {body['type']} got internal: {reply.message}"
                )
        return replies

    def expect(self, client: RawClient, body: dict[str, Any], kind: type[Event]) -> Event:
        replies = self.request(client, body)
        final = [r for r in replies if not isinstance(r, ExportItems)]
        assert len(final) == 1 and isinstance(final[0], kind), (
            f"{client.label}: {_short(body)} -> {replies}, wanted {kind.TYPE}"
        )
        return final[0]

    def expect_error(
        self, client: RawClient, body: dict[str, Any] | bytes, *codes: str, fatal_ok: tuple[str, ...] = ()
    ) -> Error:
        """An error with one of ``codes`` (non-fatal), or with one of ``fatal_ok`` fatal and a close."""
        replies = client.exchange(body, None) if isinstance(body, bytes) else self.request(client, body)
        errors = [r for r in replies if isinstance(r, Error)]
        assert len(errors) == 1 and len(replies) == 1, (
            f"{client.label}: {_short(body)} -> {replies}, wanted {codes}"
        )
        error = errors[0]
        if error.fatal:
            assert error.code in fatal_ok, f"{client.label}: {_short(body)} -> fatal {error}"
            self.reconnect(client)
        else:
            assert error.code in codes, f"{client.label}: {_short(body)} -> {error}, wanted {codes}"
        return error

    def reconnect(self, client: RawClient) -> None:
        """A connection the server closed: the session left its room without leaving (the room stays)."""
        index = self.clients.index(client)
        self.drop_member(index)
        client.close()
        self.clients[index] = RawClient(self.address, client.label)

    def drop_member(self, index: int) -> None:
        for room in self.rooms.values():
            room.members.discard(index)
            for key in [k for k, owner in room.locks.items() if owner == index]:
                del room.locks[key]

    def room_of(self, index: int) -> str | None:
        return next((name for name, room in self.rooms.items() if index in room.members), None)

    def pick_room(self, data: st.DataObject, spare: str | None = None) -> str:
        known = sorted(name for name in self.rooms if name != spare)
        drawn = room_names.filter(lambda name: name != spare)
        return data.draw(st.sampled_from(known) | drawn if known else drawn, label="room")

    def pick_client(self, data: st.DataObject) -> int:
        """A client in a room, more often than not: most requests only mean something there."""
        members = [i for i in range(CLIENTS) if self.room_of(i) is not None]
        in_room = st.sampled_from(members)
        return data.draw(st.one_of(in_room, in_room, clients_) if members else clients_, label="client")

    def pick_key(self, data: st.DataObject, index: int) -> str:
        room = self.rooms.get(self.room_of(index) or "")
        known = sorted(room.keys) + sorted(room.locks) if room else []
        common = st.sampled_from(COMMON_KEYS) | key_names  # shared keys make clients collide (locks)
        return data.draw(st.sampled_from(known) | common if known else common, label="key")

    # ---- rooms ----

    @initialize(
        name=room_names.filter(lambda name: room_name_ok(name) and name != BYSTANDER_ROOM),
        password=passwords,
        keep_open=st.booleans(),
        joiners=st.sets(clients_, min_size=1),
    )
    def a_room_with_members(
        self, name: str, password: str | None, keep_open: bool, joiners: set[int]
    ) -> None:
        """Start with a room and some clients in it, so that most steps act inside rooms."""
        password = password if password is None or password_ok(password) else None
        self.create(0, name, password, keep_open)
        for index in sorted(joiners):
            self.join(index, name, password, None)

    @rule(index=clients_, data=st.data(), password=passwords, keep_open=st.booleans())
    def create_room(self, index: int, data: st.DataObject, password: str | None, keep_open: bool) -> None:
        self.create(index, data.draw(room_names, label="room"), password, keep_open)

    def create(self, index: int, name: str, password: str | None, keep_open: bool) -> None:
        client = self.clients[index]
        body = self.with_ref(
            client, {"type": "create_room", "room": name, "keep_open": keep_open, "password": password}
        )
        if self.refused(client, body):
            return
        if name in self.rooms:
            self.expect_error(client, body, "room_exists")
        else:
            self.expect(client, body, RoomCreated)
            self.rooms[name] = RoomModel(password, keep_open)

    @rule(
        index=clients_,
        data=st.data(),
        guess=passwords,
        since=st.none() | st.sampled_from([-(2**63), -1, 0, 2**63, 2**64 - 1]),
    )
    def join_room(self, index: int, data: st.DataObject, guess: str | None, since: int | None) -> None:
        name = self.pick_room(data)
        room = self.rooms.get(name)
        if (
            room is not None
            and room.password is not None
            and data.draw(st.booleans(), label="right password")
        ):
            guess = room.password
        self.join(index, name, guess, since)

    def join(self, index: int, name: str, guess: str | None, since: int | None) -> None:
        client = self.clients[index]
        room = self.rooms.get(name)
        body = self.with_ref(client, {"type": "join_room", "room": name, "password": guess, "since": since})
        if self.refused(client, body):
            return
        if self.room_of(index) is not None:
            self.expect_error(client, body, "already_in_room")
        elif room is None:
            self.expect_error(client, body, "no_such_room")
        elif room.password is not None and guess != room.password:
            self.expect_error(client, body, "wrong_password")  # never rate_limited: see Target.fresh
        else:
            joined = self.expect(client, body, Joined)
            assert joined.room == name and client.room == name
            # the snapshot (or a resumed tail from an empty log) came before the pong
            assert client.view == room.keys, (
                f"{client.label} joined {name!r}: snapshot {_keys(client.view)} != model {_keys(room.keys)}"
            )
            room.members.add(index)

    @rule(data=st.data())
    def leave_room(self, data: st.DataObject) -> None:
        index = self.pick_client(data)
        client = self.clients[index]
        name = self.room_of(index)
        if name is None:
            self.expect_error(client, {"type": "leave_room"}, "not_in_room")
            return
        self.expect(client, {"type": "leave_room"}, Left)
        self.drop_member(index)
        room = self.rooms[name]
        if not room.members and not room.keep_open:
            del self.rooms[name]

    @rule(index=clients_, data=st.data())
    def delete_room(self, index: int, data: st.DataObject) -> None:
        client = self.clients[index]
        name = self.pick_room(data)
        body = self.with_ref(client, {"type": "delete_room", "room": name})
        if self.refused(client, body):
            return
        if name not in self.rooms:
            self.expect_error(client, body, "no_such_room")
        elif self.rooms[name].members:
            self.expect_error(client, body, "room_in_use")
        else:
            self.expect(client, body, RoomDeleted)
            del self.rooms[name]

    # ---- writes ----

    @rule(data=st.data(), kinds=st.lists(st.sampled_from(["set", "delete", "batch"]), min_size=1, max_size=4))
    def write(self, data: st.DataObject, kinds: list[str]) -> None:
        """A client writes a few times in a row (writes are most of what clients do)."""
        index = self.pick_client(data)
        for kind in kinds:
            self.write_one(index, data, kind)

    def write_one(self, index: int, data: st.DataObject, kind: str) -> None:
        client = self.clients[index]
        if kind == "batch":
            count = data.draw(st.integers(1, 4), label="batch size")
            ops = [
                ["set", self.pick_key(data, index), data.draw(values)]
                if data.draw(st.booleans(), label="set?")
                else ["delete", self.pick_key(data, index)]
                for _ in range(count)
            ]
            body: dict[str, Any] = {"type": "batch", "ops": ops}
        elif kind == "set":
            ops = [["set", self.pick_key(data, index), data.draw(values)]]
            body = {"type": "set", "key": ops[0][1], "value": ops[0][2]}
        else:
            ops = [["delete", self.pick_key(data, index)]]
            body = {"type": "delete", "key": ops[0][1]}
        self.send_write(index, client, body, ops)

    def send_write(
        self,
        index: int,
        client: RawClient,
        body: dict[str, Any],
        ops: list[list[Any]],
        op_id: int | None = None,
    ) -> None:
        """Send a write with a new op_id (the next, or ``op_id``); check the answer against the model."""
        op_id = client.op_id + 1 if op_id is None else op_id
        body = {**body, "op_id": op_id}
        keys = [op[1] for op in ops]
        room = self.rooms.get(self.room_of(index) or "")
        if self.refused(client, body):
            return
        if room is None:
            self.expect_error(client, body, "not_in_room")
        elif any(room.locks.get(k, index) != index for k in keys):
            self.expect_error(client, body, "locked")
        else:
            # Every key the grammar admits is one the store holds (long, patterned, control characters).
            client.pending[op_id] = ops
            replies = self.request(client, body)
            client.op_id = op_id
            assert len(replies) == 1 and isinstance(replies[0], Ack), (
                f"{client.label}: {_short(body)} -> {replies}"
            )
            for op in ops:
                room.apply(op)
            if client.last_acked is not None:
                client.older_acked.append(client.last_acked[0])
            client.last_acked = (op_id, replies[0].seq, room)

    @rule(data=st.data(), value=values, refs=blob_refs)
    def write_with_blobs(self, data: st.DataObject, value: bytes, refs: list[bytes]) -> None:
        """Upload a few blobs and set a key whose value references them (a chunked mesh, a packed file);
        with no refs, the set lets go of what the key held."""
        index = self.pick_client(data)
        if self.room_of(index) is not None:
            self.upload_and_set(index, self.pick_key(data, index), value, refs)

    def upload_and_set(self, index: int, key: str, value: bytes, refs: list[bytes]) -> None:
        client = self.clients[index]
        for blob in refs:
            self.upload(client, blob)
        op = ["set", key, value, refs]
        self.send_write(index, client, {"type": "batch", "ops": [op]}, [op])

    def upload(self, client: RawClient, blob: bytes) -> None:
        """Put a blob, a node's children first (a node names them: they must be stored)."""
        body = {"type": "blob_put", "hash": blob, "data": BLOBS[blob]}
        if blob in CHILDREN:
            for child in CHILDREN[blob]:
                self.upload(client, child)
            body["children"] = CHILDREN[blob]
        replies = client.exchange(frame(self.with_ref(client, body)))
        while not replies:  # blob_stored comes once the blob is durable, like an ack: maybe after the pong
            event = client.next_event()
            if isinstance(event, REPLIES) and not _notice(event):
                replies.append(event)
        assert len(replies) == 1 and isinstance(replies[0], BlobStored), f"blob_put -> {replies}"

    @rule(data=st.data(), claim=st.sampled_from(["unknown", "self", "none", "twice", "many"]))
    def put_a_bad_tree_node(self, data: st.DataObject, claim: str) -> None:
        """A node whose children cannot be: never uploaded, itself, none, one twice, too many. Refused,
        nothing stored, nothing held."""
        client = self.clients[self.pick_client(data)]
        never = hashlib.sha256(b"never uploaded").digest()
        node = b"bad node " + claim.encode()
        blob = hashlib.sha256(node).digest()
        children = {
            "unknown": [_leaves[0], never],
            "self": [blob],
            "none": [],
            "twice": [_leaves[0], _leaves[0]],
            "many": [i.to_bytes(32, "big") for i in range(MAX_BLOB_CHILDREN + 1)],
        }[claim]
        body = self.with_ref(client, {"type": "blob_put", "hash": blob, "data": node, "children": children})
        if not self.refused(client, body):
            self.expect_error(client, body, "no_such_blob")
        status = self.expect(self.bystander, {"type": "blob_query", "hashes": [blob, never]}, BlobStatus)
        assert status.missing == [blob, never]

    @rule(data=st.data(), value=values)
    def write_then_leave(self, data: st.DataObject, value: bytes) -> None:
        """A write and a leave sent together: the server took the write first, so it is acked, not dropped."""
        index = self.pick_client(data)
        client = self.clients[index]
        name = self.room_of(index)
        room = self.rooms.get(name or "")
        free = [k for k in COMMON_KEYS if room is not None and room.locks.get(k, index) == index]
        if name is None or room is None or not free or client.op_id >= OP_ID.high:
            return  # (an assume would throw the whole run away)
        key = data.draw(st.sampled_from(free), label="key")
        op_id = client.op_id + 1
        client.op_id = op_id
        client.pending[op_id] = [["set", key, value]]
        ref = client.next_ref()
        write = frame({"type": "set", "op_id": op_id, "key": key, "value": value})
        replies = client.exchange(write + frame({"type": "leave_room", "ref": ref}))
        self.bystander_writes()  # the write has committed now, and its ack is queued if it ever will be
        replies += client.sync()
        assert sorted(type(r).__name__ for r in replies) == ["Ack", "Left"], (
            f"{client.label}: set+leave -> {replies}"
        )
        room.apply(["set", key, value])
        if client.last_acked is not None:
            client.older_acked.append(client.last_acked[0])
        client.last_acked = (op_id, next(r.seq for r in replies if isinstance(r, Ack)), room)
        self.drop_member(index)
        if not room.members and not room.keep_open:
            del self.rooms[name]

    @rule(data=st.data(), value=values)
    def retry_write(self, data: st.DataObject, value: bytes) -> None:
        """An op_id sent again is a retry, never applied again: the last committed one is acked with its first
        seq if this connection's stream of the room starts after it (it is in the snapshot), and not at all
        if the stream already acked it (docs/protocol.md, "Session id"); an older one is refused."""
        index = self.pick_client(data)
        client = self.clients[index]
        room = self.rooms.get(self.room_of(index) or "")
        if client.last_acked is None or (room is not None and room is not client.last_acked[2]):
            return  # a retry in another room than the op's: the protocol does not say (see the report)
        key = data.draw(st.sampled_from(["retried", "k"]), label="key")
        older = client.older_acked and data.draw(st.booleans(), label="older")
        op_id = (
            data.draw(st.sampled_from(client.older_acked), label="op_id") if older else client.last_acked[0]
        )
        body = {"type": "set", "op_id": op_id, "key": key, "value": value}
        if self.refused(client, body):
            return
        if room is None:
            self.expect_error(client, body, "not_in_room")
        elif room.locks.get(key, index) != index:
            self.expect_error(client, body, "locked")
        elif older:
            self.expect_error(client, body, "bad_message")
        elif client.last_acked[1] > client.joined_seq:
            replies = client.exchange(frame(body))  # the invariant's sync finds an ack that comes later
            assert replies == [], f"{client.label}: retry of op {op_id}, acked in this stream -> {replies}"
        else:
            ack = self.expect(client, body, Ack)
            assert ack.seq == client.last_acked[1], (
                f"retry of op {op_id} acked as seq {ack.seq}, first {client.last_acked[1]}"
            )

    @rule(
        data=st.data(),
        op_id=st.sampled_from([0, -1, -(2**63), 2**63 - 1, 2**63, 2**64 - 1]) | st.integers(1, 2**40),
    )
    def write_with_odd_op_id(self, data: st.DataObject, op_id: int) -> None:
        """Jumps forwards are fine up to the top of OP_ID; outside its range the decoder refuses."""
        index = self.pick_client(data)
        client = self.clients[index]
        if OP_ID.low <= op_id <= OP_ID.high:
            op_id = min(client.op_id + op_id, OP_ID.high)
            if op_id <= client.op_id:
                return
        self.send_write(
            index, client, {"type": "set", "key": "odd", "value": b"v"}, [["set", "odd", b"v"]], op_id
        )

    # ---- locks and presence ----

    @rule(data=st.data(), many=st.booleans())
    def lock(self, data: st.DataObject, many: bool) -> None:
        index = self.pick_client(data)
        client = self.clients[index]
        keys = [self.pick_key(data, index) for _ in range(data.draw(st.integers(0, 3), label="count"))]
        if many and data.draw(st.integers(0, 4), label="too many") == 0:
            keys = [f"k{i}" for i in range(MAX_LOCK_KEYS + 1)]
        body = self.with_ref(client, {"type": "lock", "keys": keys})
        room = self.rooms.get(self.room_of(index) or "")
        if self.refused(client, body):
            return
        if room is None:
            self.expect_error(client, body, "not_in_room")
            return
        if any(room.locks.get(k, index) != index for k in keys):
            self.expect_error(client, body, "locked")
            return
        replies = self.request(client, body)
        assert len(replies) == 1 and isinstance(replies[0], LockGranted), (
            f"{client.label}: lock {keys} -> {replies}"
        )
        assert replies[0].keys == sorted(set(keys))
        for key in keys:
            room.locks[key] = index

    @rule(data=st.data())
    def unlock(self, data: st.DataObject) -> None:
        index = self.pick_client(data)
        client = self.clients[index]
        keys = [self.pick_key(data, index) for _ in range(data.draw(st.integers(0, 2), label="count"))]
        body = self.with_ref(client, {"type": "unlock", "keys": keys})
        room = self.rooms.get(self.room_of(index) or "")
        if self.refused(client, body):
            return
        if room is None:
            self.expect_error(client, body, "not_in_room")
        else:
            mine = {k for k, owner in room.locks.items() if owner == index}
            released = sorted(mine & set(keys)) if keys else sorted(mine)
            replies = self.request(client, body)
            assert [type(r) for r in replies] == [Unlocked], f"{client.label}: unlock {keys} -> {replies}"
            unlocked = replies[0]
            assert unlocked.keys == released, (
                f"{client.label}: unlock {keys} released {unlocked.keys}, holds {mine}"
            )
            for key in released:
                del room.locks[key]

    @rule(data=st.data(), state=presence_states)
    def presence(self, data: st.DataObject, state: dict[str, Any]) -> None:
        index = self.pick_client(data)
        client = self.clients[index]
        body = {"type": "presence", "state": state}
        if not self.refused(client, body):
            assert self.request(client, body) == [], "presence has no reply"

    # ---- listing and admin ----

    @rule(
        index=clients_, ref=st.none() | st.sampled_from([-(2**63), 0, 2**63, 2**64 - 1]), admin=st.booleans()
    )
    def list_rooms(self, index: int, ref: int | None, admin: bool) -> None:
        client = self.clients[index]
        ref = client.next_ref() if ref is None else ref
        body = (
            {"type": "admin", "action": "rooms", "ref": ref} if admin else {"type": "list_rooms", "ref": ref}
        )
        if self.refused(client, body):  # a ref outside REF's range
            return
        result = self.expect(client, body, AdminResult if admin else RoomList)
        rooms = result.result if admin else result.rooms
        assert result.ref == ref
        listed = {info["name"]: (info["keys"], info["users"], info["locked"]) for info in rooms}
        model = {
            name: (len(r.keys), len(r.members), r.password is not None) for name, r in self.rooms.items()
        }
        assert listed == model, f"listed {listed} != model {model}"

    @rule(index=clients_, data=st.data())
    def admin_export(self, index: int, data: st.DataObject) -> None:
        client = self.clients[index]
        name = self.pick_room(data)
        body = self.with_ref(client, {"type": "admin", "action": "export", "args": {"room": name}})
        if self.refused(client, body):
            return
        if name not in self.rooms:
            self.expect_error(client, body, "no_such_room")
            return
        replies = self.request(client, body)
        assert replies and isinstance(replies[-1], AdminResult), f"export {name!r} -> {replies}"
        chunks = [r for r in replies[:-1] if isinstance(r, ExportItems)]
        blobs = replies[len(chunks) : -1]  # the keys first, then the blobs they reference or hold
        assert all(r.room == name for r in chunks) and all(isinstance(r, ExportBlob) for r in blobs)
        items = {key: value for chunk in chunks for key, value in chunk.items}
        room = self.rooms[name]
        assert items == room.keys, f"export of {name!r}: {_keys(items)} != model {_keys(room.keys)}"
        refs = {key: tuple(found) for chunk in chunks for key, found in chunk.refs}
        assert refs == room.refs, f"export of {name!r}: refs {refs} != model {room.refs}"
        wanted = reachable(blob for found in room.refs.values() for blob in found)
        assert sorted(r.hash for r in blobs) == sorted(wanted) and all(r.data == BLOBS[r.hash] for r in blobs)
        # Each node with the children it holds, after them (an import stores them first).
        assert all(sorted(r.children or []) == sorted(CHILDREN.get(r.hash, [])) for r in blobs)
        order = [r.hash for r in blobs]
        assert all(order.index(c) < order.index(r.hash) for r in blobs for c in r.children or [])
        assert replies[-1].result["key_count"] == len(room.keys)
        assert replies[-1].result["meta"]["keep_open"] == room.keep_open

    @rule(index=clients_, data=st.data())
    def admin_delete_room(self, index: int, data: st.DataObject) -> None:
        """Deleted even with members, who get room_deleted without ref (the bystander's room is spared)."""
        client = self.clients[index]
        name = self.pick_room(data, spare=BYSTANDER_ROOM)
        body = self.with_ref(client, {"type": "admin", "action": "delete_room", "args": {"room": name}})
        if self.refused(client, body):
            return
        if name not in self.rooms:
            self.expect_error(client, body, "no_such_room")
        else:
            result = self.expect(client, body, AdminResult)
            assert result.result == {"room": name, "clients": len(self.rooms[name].members)}
            del self.rooms[name]

    # ---- history ----

    def pick_checkpoint(self, data: st.DataObject, index: int) -> int:
        room = self.rooms.get(self.room_of(index) or "")
        odd = st.sampled_from([-1, 0, 1, 2, 2**63 - 1, 2**63])
        known = sorted(room.checkpoints) if room else []
        return data.draw(st.sampled_from(known) | odd if known else odd, label="checkpoint")

    @rule(data=st.data(), name=names(256))
    def checkpoint(self, data: st.DataObject, name: str) -> None:
        self.checkpoint_as(self.pick_client(data), name)

    def checkpoint_as(self, index: int, name: str) -> None:
        client = self.clients[index]
        body = self.with_ref(client, {"type": "checkpoint", "name": name})
        if self.refused(client, body):
            return
        room = self.rooms.get(self.room_of(index) or "")
        if room is None:
            self.expect_error(client, body, "not_in_room")
            return
        made = self.expect(client, body, CheckpointMade).checkpoint
        assert made["name"] == name and made["keys"] == len(room.keys) and made["id"] not in room.checkpoints
        room.checkpoints[made["id"]] = dict(room.keys)
        room.checkpoint_refs[made["id"]] = dict(room.refs)

    @rule(data=st.data())
    def restore(self, data: st.DataObject) -> None:
        """To a checkpoint: one operation every member applies; the room's map becomes the checkpoint's."""
        index = self.pick_client(data)
        self.restore_to(index, self.pick_checkpoint(data, index))

    @rule(data=st.data(), kinds=st.lists(st.sampled_from(["set", "delete", "batch"]), min_size=1, max_size=3))
    def checkpoint_edit_restore(self, data: st.DataObject, kinds: list[str]) -> None:
        """The common case, made likely: name a checkpoint, edit (maybe another client), restore it."""
        index = self.pick_client(data)
        room = self.rooms.get(self.room_of(index) or "")
        if room is None:
            return
        before = set(room.checkpoints)
        self.checkpoint_as(index, "before")
        (made,) = set(room.checkpoints) - before
        editor = data.draw(st.sampled_from(sorted(i for i in room.members if i != BYSTANDER)), label="editor")
        for kind in kinds:
            self.write_one(editor, data, kind)
        self.restore_to(data.draw(st.sampled_from(sorted(i for i in room.members if i != BYSTANDER))), made)

    def restore_to(self, index: int, number: int) -> None:
        client = self.clients[index]
        body = self.with_ref(client, {"type": "restore", "checkpoint": number})
        if self.refused(client, body):
            return
        room = self.rooms.get(self.room_of(index) or "")
        if room is None:
            self.expect_error(client, body, "not_in_room")
            return
        target = room.checkpoints.get(number)
        if target is None:
            self.expect_error(client, body, "no_such_checkpoint")
            return
        refs = room.checkpoint_refs[number]
        changed = {
            k
            for k in room.keys.keys() | target.keys()
            if room.keys.get(k) != target.get(k) or room.refs.get(k) != refs.get(k)
        }
        if any(room.locks.get(k, index) != index for k in changed):
            self.expect_error(client, body, "locked")
            return
        restored = self.expect(client, body, Restored)
        assert (restored.undo is None) == (not changed), f"restore changing {len(changed)} keys -> {restored}"
        if restored.undo is not None:
            assert restored.undo not in room.checkpoints
            room.checkpoints[restored.undo] = dict(room.keys)
            room.checkpoint_refs[restored.undo] = dict(room.refs)
        room.keys, room.refs = dict(target), dict(refs)
        assert client.view == room.keys, "the restorer's view right after `restored`"

    @rule(data=st.data(), old=blob_refs, new=blob_refs, restore=st.booleans())
    def checkpoint_replace_blobs(
        self, data: st.DataObject, old: list[bytes], new: list[bytes], restore: bool
    ) -> None:
        """The heavy mesh's case, made likely: its chunks, a checkpoint, new chunks (the old ones' last
        live holder gone), maybe a restore of the checkpoint."""
        index = self.pick_client(data)
        room = self.rooms.get(self.room_of(index) or "")
        if room is None:
            return
        key = data.draw(st.sampled_from(COMMON_KEYS), label="key")
        self.upload_and_set(index, key, b"mesh", old)
        before = set(room.checkpoints)
        self.checkpoint_as(index, "before")
        (made,) = set(room.checkpoints) - before
        self.upload_and_set(index, key, b"edited mesh", new)
        if restore:
            self.restore_to(index, made)

    @rule(data=st.data())
    def delete_checkpoint(self, data: st.DataObject) -> None:
        index = self.pick_client(data)
        client = self.clients[index]
        number = self.pick_checkpoint(data, index)
        body = self.with_ref(client, {"type": "delete_checkpoint", "checkpoint": number})
        if self.refused(client, body):
            return
        room = self.rooms.get(self.room_of(index) or "")
        if room is None:
            self.expect_error(client, body, "not_in_room")
        elif number not in room.checkpoints:
            self.expect_error(client, body, "no_such_checkpoint")
        else:
            self.expect(client, body, CheckpointDeleted)
            del room.checkpoints[number]
            del room.checkpoint_refs[number]

    @rule(data=st.data(), keep_open=st.booleans(), now=st.booleans())
    def fork(self, data: st.DataObject, keep_open: bool, now: bool) -> None:
        index = self.pick_client(data)
        client = self.clients[index]
        name = self.pick_room(data)
        number = None if now else self.pick_checkpoint(data, index)
        body = self.with_ref(
            client, {"type": "fork", "room": name, "checkpoint": number, "keep_open": keep_open}
        )
        if self.refused(client, body):
            return
        room = self.rooms.get(self.room_of(index) or "")
        if room is None:
            self.expect_error(client, body, "not_in_room")
        elif number is not None and number not in room.checkpoints:
            self.expect_error(client, body, "no_such_checkpoint")
        elif name in self.rooms:
            self.expect_error(client, body, "room_exists")
        else:
            self.expect(client, body, Forked)
            keys = dict(room.keys if number is None else room.checkpoints[number])
            refs = dict(room.refs if number is None else room.checkpoint_refs[number])
            self.rooms[name] = RoomModel(None, keep_open, keys=keys, forked=True, refs=refs)

    @rule(data=st.data(), prefix=key_names | st.sampled_from(["", "obj/", "*"]))
    def history(self, data: st.DataObject, prefix: str) -> None:
        """Blame: exactly the live keys with the prefix (literally), each once, sorted (a fork's first keys
        are its maker's)."""
        index = self.pick_client(data)
        client = self.clients[index]
        body = self.with_ref(client, {"type": "history", "prefix": prefix, "limit": 10_000})
        if self.refused(client, body):
            return
        room = self.rooms.get(self.room_of(index) or "")
        if room is None:
            self.expect_error(client, body, "not_in_room")
            return
        rows = self.expect(client, body, HistoryResult).keys
        keys = [row[0] for row in rows]
        assert keys == sorted(set(keys)) and all(k.startswith(prefix) for k in keys), keys
        assert set(keys) == {k for k in room.keys if k.startswith(prefix)}, "blame is of the live keys"

    # ---- garbage ----

    @rule(index=clients_, data=st.data())
    def spoiled_request(self, index: int, data: st.DataObject) -> None:
        """A request with one field of a wrong type, an unknown field, a missing field or an unknown type."""
        client = self.clients[index]
        body, spoilable = data.draw(st.sampled_from(SPOILABLE), label="request")
        how = data.draw(
            st.sampled_from(["wrong type", "unknown field", "missing", "unknown type"]), label="how"
        )
        body = dict(body)
        kind = EVENT_TYPES[body["type"]]
        code = "bad_message"
        if how == "wrong type":
            name = data.draw(st.sampled_from(spoilable), label="field")
            body[name] = data.draw(st.sampled_from(WRONG_VALUES).filter(lambda v: not kind._checks[name](v)))
        elif how == "unknown field":
            name = data.draw(
                st.text(min_size=1, max_size=5).filter(lambda n: n not in kind._names), label="field"
            )
            body[name] = 1
        elif how == "missing":
            required = [name for name, _, needed in kind._fields if needed]
            if required:
                del body[data.draw(st.sampled_from(required), label="field")]
            else:
                body["?"] = 1  # nothing required: an unknown field instead
        else:
            unknown = st.text(max_size=6).filter(lambda t: t not in EVENT_TYPES)
            type_name = data.draw(unknown | st.sampled_from(SERVER_ONLY), label="type")
            other = EVENT_TYPES.get(type_name)
            body = {"type": type_name, "ref": 1}
            code = "unknown_type" if other is None else "protocol_state"
        predicted = decode_error(frame(body))
        assert predicted is not None, f"the decoder takes {body} spoiled by {how}"
        # Which error, by docs/protocol.md; a field name or type that is not UTF-8 is its own bad_message.
        surrogate = any(isinstance(k, str) and has_surrogate(k) for k in [*body, *body.values()])
        assert predicted.code == ("bad_message" if surrogate else code) and not predicted.fatal, predicted
        assert self.refused(client, frame(body))

    @rule(index=clients_, garbage=st.sampled_from(GARBAGE))
    def garbage(self, index: int, garbage: tuple[bytes, str, bool]) -> None:
        """Frames the decoder refuses; a fatal error closes the connection (the client reconnects)."""
        client = self.clients[index]
        data, code, fatal = garbage
        predicted = decode_error(data)
        assert predicted is not None and (predicted.code, predicted.fatal) == (code, fatal), predicted
        if not fatal:
            assert self.refused(client, data)
            return
        replies = client.exchange(data)
        assert len(replies) == 1 and isinstance(replies[0], Error), (
            f"{client.label}: {data[:16]!r} -> {replies}"
        )
        assert replies[0].code == code and replies[0].fatal, replies
        assert client.closed, f"{client.label}: still open after a fatal {code}"
        self.reconnect(client)

    # ---- the process ----

    @precondition(lambda self: not self.restarted)
    @rule(kill=st.booleans())
    def restart_server(self, kill: bool) -> None:
        """Acknowledged writes survive a restart, kill -9 included: sessions end, rooms and keys stay."""
        self.restarted = True
        for client in [*self.clients, self.bystander]:
            client.close()
        process = self.target.process
        assert process is not None
        process.kill(signal.SIGKILL if kill else signal.SIGTERM)
        assert kill or process.proc.returncode == 0, f"a clean stop exited with {process.proc.returncode}"
        self.address = process.start()
        for index in range(CLIENTS):
            self.drop_member(index)
            self.clients[index] = RawClient(self.address, f"client{index}")
        self.drop_member(BYSTANDER)
        self.bystander = RawClient(self.address, "bystander")
        self.expect(self.bystander, {"type": "join_room", "room": BYSTANDER_ROOM}, Joined)
        self.rooms[BYSTANDER_ROOM].members.add(BYSTANDER)
        assert self.bystander.view == self.rooms[BYSTANDER_ROOM].keys, "the bystander's room after a restart"

    # ---- after every step ----

    def bystander_writes(self) -> None:
        """One write in the bystander's room, acked within REPLY_SECONDS. Once it is acked, every write
        submitted before it has committed too (one log, in order): a barrier as well as a health check."""
        bystander = self.bystander
        bystander.op_id += 1
        # Clients may join the bystander's room too and lock its keys: it writes one they have not locked.
        locked = self.rooms[BYSTANDER_ROOM].locks
        n = bystander.op_id
        key = next(k for k in [*(f"b{(n + i) % 5}" for i in range(5)), f"b{n}"] if k not in locked)
        op = ["set", key, str(bystander.op_id).encode()]
        bystander.pending[bystander.op_id] = [op]
        replies = bystander.exchange(
            frame({"type": "set", "op_id": bystander.op_id, "key": op[1], "value": op[2]}), bystander.op_id
        )
        assert [type(r) for r in replies] == [Ack], f"bystander's write -> {replies}"
        apply_op(self.rooms[BYSTANDER_ROOM].keys, op)

    @invariant()
    def server_alive_bystander_acked_views_match(self) -> None:
        assert self.target.alive(), "the server process died"
        self.bystander_writes()
        assert self.bystander.view == self.rooms[BYSTANDER_ROOM].keys
        for index, client in enumerate(self.clients):
            stray = client.sync()  # the ack above means every fan-out before it is queued
            assert stray == [], f"{client.label}: unexpected {stray}"
            name = self.room_of(index)
            assert client.room == name, (
                f"{client.label} is in {client.room!r} by its stream, {name!r} by the model"
            )
            if name is not None:
                model = self.rooms[name].keys
                assert client.view == model, (
                    f"{client.label} in {name!r}: {_keys(client.view)} != model {_keys(model)}"
                )

    @invariant()
    def every_referenced_blob_is_stored(self) -> None:
        """A blob reachable from a live key or a checkpoint (down the trees of the blobs they reference) is
        never collected (restoring it must work)."""
        referenced = reachable(
            blob
            for room in self.rooms.values()
            for refs in [room.refs, *room.checkpoint_refs.values()]
            for blobs in refs.values()
            for blob in blobs
        )
        if referenced:
            hashes = sorted(referenced)
            status = self.expect(self.bystander, {"type": "blob_query", "hashes": hashes}, BlobStatus)
            assert status.missing == [], f"referenced blobs gone: {[h.hex()[:12] for h in status.missing]}"


def _short(body: Any, limit: int = 300) -> str:
    text = repr(body)
    return text if len(text) <= limit else text[:limit] + "..."


def _keys(view: dict[str, bytes]) -> str:
    return _short({k[:20] + ("..." if len(k) > 20 else ""): v[:8] for k, v in sorted(view.items())})


@pytest.mark.timeout(600 + 60 * STATEFUL_EXAMPLES)  # a failure's shrinking replays many runs
def test_server_stateful(tmp_path: Path) -> None:
    target = Target(tmp_path)
    machine = type("ServerMachine", (ServerMachine,), {"target": target})
    try:
        run_state_machine_as_test(
            machine,
            settings=settings(
                max_examples=STATEFUL_EXAMPLES,
                stateful_step_count=STEPS,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            ),
        )
    finally:
        target.stop()
    # A death outside any step (the tree is flushed to disk after a second without writes) has no example.
    assert not target.deaths, f"the server died between runs, exit codes {target.deaths}"
