"""The grammar of every name and the range of every number on the wire, in one place.

Fields declare their grammar in their type, ``Annotated[int, OP_ID]`` or ``Annotated[str, ROOM_NAME]``, and
protocol/fieldcheck.py compiles each declaration once into a fast predicate that runs on every decode. The
add-on and the server run the same code, so they accept exactly the same messages. docs/protocol.md
("Limits and grammar") states the same table in prose; keep them together.

The character rules name code points explicitly instead of asking ``str.isprintable()``: that answer depends
on the Unicode version of the Python at hand, and the server and Blender's Python may differ. (For ASCII
alone, where the answer never changes, it is the fast path.)
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

INT63_MAX = 2**63 - 1  # msgpack holds -2^63..2^64-1; the store holds ids and seqs below 2^63


# ---- markers: what a field declares beside its type -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IntRange:
    low: int
    high: int

    def describe(self) -> str:
        return f"{self.low} to {self.high}"


@dataclass(frozen=True, slots=True)
class FloatRange:
    """A number (msgpack float or integer) from ``low`` to ``high``, both finite, so that the comparison
    itself refuses NaN and the infinities."""

    low: float = -sys.float_info.max
    high: float = sys.float_info.max

    def describe(self) -> str:
        if (self.low, self.high) == (-sys.float_info.max, sys.float_info.max):
            return "a finite number"
        return f"a number from {self.low:g} to {self.high:g}"


@dataclass(frozen=True, slots=True)
class Length:
    """How many items a list may hold."""

    low: int
    high: int

    def describe(self) -> str:
        if self.low == self.high:
            return f"exactly {self.low} items"
        return f"{self.low} to {self.high} items"


@dataclass(frozen=True, slots=True)
class Text:
    """A string of ``min_bytes`` to ``max_bytes`` bytes of UTF-8 (no lone surrogates), without the characters
    ``forbidden`` matches (a regular expression)."""

    what: str
    min_bytes: int
    max_bytes: int
    forbidden: str | None = None
    forbidden_means: str = ""
    unit: str = "bytes of UTF-8"
    # The same rule as ``forbidden`` for an ASCII string, without a regular expression (most names are
    # ASCII; tests/protocol/test_limits.py checks that the two agree on every ASCII character).
    ascii_ok: Callable[[str], bool] | None = None

    def describe(self) -> str:
        rule = f"{self.min_bytes} to {self.max_bytes} {self.unit}"
        return f"{rule} {self.forbidden_means}" if self.forbidden_means else rule

    def problem(self, value: str) -> str | None:
        """Why ``value`` breaks this grammar, or None if it does not (the slow path, for error messages)."""
        size = utf8_len(value)
        if size is None:
            return "must be valid UTF-8: it holds a lone surrogate"
        if not self.min_bytes <= size <= self.max_bytes:
            return f"must be {self.describe()}; it is {size} bytes"
        if self.forbidden is not None and (match := re.search(self.forbidden, value)) is not None:
            found = match.group()
            if not found:  # a rule about where the text ends (a lock prefix's "/")
                return f"must be {self.describe()}"
            return f"must be {self.describe()}; U+{ord(found[0]):04X} at {match.start()} is not allowed"
        return None


class FieldError(ValueError):
    """A value that breaks the grammar, found by an event's own check: ``path`` names it inside the event."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}{join_reason(reason)}")
        self.path = path
        self.reason = reason


def join_reason(reason: str) -> str:
    """A reason as it follows a field's name: "[3] must be ..." sticks to it, "must be ..." is spaced."""
    return reason if reason.startswith("[") else f" {reason}"


@dataclass(frozen=True, slots=True)
class Rule:
    """A check that no marker expresses (e.g. the shape of a batch): returns a reason, or None."""

    describe: str
    reason: Callable[[Any], str | None]


def text_predicate(text: Text) -> Callable[[str], bool]:
    """The fast yes/no form of ``text`` for a value already known to be a str."""
    low, high, ascii_ok = text.min_bytes, text.max_bytes, text.ascii_ok
    search = re.compile(text.forbidden).search if text.forbidden is not None else None

    def check(value: str) -> bool:
        if value.isascii():
            if not low <= len(value) <= high:
                return False
            if ascii_ok is not None:
                return ascii_ok(value)
        else:
            try:
                size = len(value.encode("utf-8"))
            except UnicodeEncodeError:  # a lone surrogate
                return False
            if not low <= size <= high:
                return False
        return search is None or search(value) is None

    return check


def utf8_len(value: str) -> int | None:
    """Bytes of ``value`` in UTF-8, or None when it holds a lone surrogate (not encodable)."""
    if value.isascii():
        return len(value)
    try:
        return len(value.encode("utf-8"))
    except UnicodeEncodeError:
        return None


# ---- characters -------------------------------------------------------------------------------------------

# C0, DEL and C1: never in a name or a label (NUL included).
CONTROL = "[\x00-\x1f\x7f-\x9f]"
# Unicode White_Space that is not already a control character.
_SPACE = "[ \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"

# ---- numbers ----------------------------------------------------------------------------------------------

OP_ID = IntRange(1, INT63_MAX)
REF = IntRange(0, INT63_MAX)  # ref and ping nonces: echoed, never stored
NONCE = REF
SEQ = IntRange(0, INT63_MAX)  # seq, since, key_count, an import's seq
PROTOCOL = IntRange(0, 65535)
PORT = IntRange(1, 65535)
FRAME_SIZE = IntRange(0, 2**32 - 1)  # a frame's length prefix is 32 bits
NODE_ID = IntRange(1, INT63_MAX)
SHARE_SECONDS = IntRange(1, 10 * 365 * 86400)  # a share link's lifetime: at most 10 years
SCENE_FRAME = IntRange(-(2**31), 2**31 - 1)  # Blender's own limit is about +-1 million
FINITE = FloatRange()
UNIT = FloatRange(0.0, 1.0)
SECONDS = FloatRange(0.0, 86400.0)

# ---- strings ----------------------------------------------------------------------------------------------

MAX_KEY_BYTES = 1024  # one path element of the store (replication/tree/paths.py MAX_NAME_BYTES)
MAX_ROOM_NAME_BYTES = 256
MAX_NAME_BYTES = 256  # client, user and scene names: Blender's longest name is 255 bytes
MAX_LABEL_BYTES = 64
MAX_SECRET_BYTES = 1024
MAX_MESSAGE_BYTES = 1024
# A server's limit on a frame before it has read the hello: a hello is under 2 KiB (its strings above), and
# until then the peer is nobody, whose frames it should not hold megabytes of.
MAX_HELLO_FRAME_BYTES = 16 * 1024
MAX_LOCK_KEYS = 1024  # keys in one lock/unlock/break_lock request

_NO_CONTROL = "without control characters"
_NO_CONTROL_OR_EDGE = "without control characters or leading/trailing whitespace"


# For ASCII, "printable" is exactly "no C0 and no DEL", and the only whitespace that is not a control is " ".
def _ascii_no_nul(value: str) -> bool:
    return "\x00" not in value


def _ascii_no_control(value: str) -> bool:
    return value.isprintable()


def _ascii_no_control_or_edge(value: str) -> bool:
    return value.isprintable() and value[:1] != " " and value[-1:] != " "


def _ascii_graphic(value: str) -> bool:
    return value.isprintable() and " " not in value


_EDGE = f"{CONTROL}|^{_SPACE}|{_SPACE}$"

KEY = Text("key", 1, MAX_KEY_BYTES, "\x00", "without NUL", ascii_ok=_ascii_no_nul)


def _ascii_prefix(value: str) -> bool:
    return "\x00" not in value and value.endswith("/")


# A lock prefix covers every key that starts with it; it ends with "/", so it names whole path segments
# (``obj/<uuid>/`` is every key of one datablock, ones made later too) and a server finds the prefixes
# covering a key by cutting the key at each "/".
LOCK_PREFIX = Text(
    "lock prefix", 1, MAX_KEY_BYTES, "\x00|(?<!/)\\Z", "without NUL, ending in /", ascii_ok=_ascii_prefix
)
ROOM_NAME = Text(
    "room name", 1, MAX_ROOM_NAME_BYTES, _EDGE, _NO_CONTROL_OR_EDGE, ascii_ok=_ascii_no_control_or_edge
)
# A user of a tokens file: shown to others like a room name, so the same rules.
USER_NAME = Text(
    "user name", 1, MAX_NAME_BYTES, _EDGE, _NO_CONTROL_OR_EDGE, ascii_ok=_ascii_no_control_or_edge
)
NAME = Text("name", 0, MAX_NAME_BYTES, CONTROL, _NO_CONTROL, ascii_ok=_ascii_no_control)
LABEL = Text("label", 0, MAX_LABEL_BYTES, CONTROL, _NO_CONTROL, ascii_ok=_ascii_no_control)
SELECTED = Text("selection entry", 1, MAX_NAME_BYTES, CONTROL, _NO_CONTROL, ascii_ok=_ascii_no_control)
SESSION_ID = Text(
    "session id", 8, 64, "[^!-~]", "(no spaces)", unit="printable ASCII characters", ascii_ok=_ascii_graphic
)
SECRET = Text("secret", 0, MAX_SECRET_BYTES)  # passwords and tokens: any valid UTF-8
PASSWORD = Text("password", 1, MAX_SECRET_BYTES)
MESSAGE = Text("message", 0, MAX_MESSAGE_BYTES, CONTROL, _NO_CONTROL, ascii_ok=_ascii_no_control)
ADDRESS = Text("address", 1, MAX_ROOM_NAME_BYTES, CONTROL, _NO_CONTROL, ascii_ok=_ascii_no_control)
SHA256 = Text("digest", 64, 64, "[^0-9a-f]", "of lowercase hex digits", unit="characters")
TEXTS = (
    KEY,
    LOCK_PREFIX,
    ROOM_NAME,
    USER_NAME,
    NAME,
    LABEL,
    SELECTED,
    SESSION_ID,
    SECRET,
    PASSWORD,
    MESSAGE,
    ADDRESS,
    SHA256,
)

Key = Annotated[str, KEY]
Address = Annotated[str, ADDRESS]
RoomName = Annotated[str, ROOM_NAME]
Name = Annotated[str, NAME]
UserName = Annotated[str, USER_NAME]
Label = Annotated[str, LABEL]
SessionId = Annotated[str, SESSION_ID]
Password = Annotated[str, PASSWORD]
Secret = Annotated[str, SECRET]
OpId = Annotated[int, OP_ID]
Ref = Annotated[int, REF]
Seq = Annotated[int, SEQ]
Keys = Annotated[list[Key], Length(0, MAX_LOCK_KEYS)]
Sha256 = Annotated[str, SHA256]
LockPrefix = Annotated[str, LOCK_PREFIX]
LockPrefixes = Annotated[list[LockPrefix], Length(0, MAX_LOCK_KEYS)]


def covering_prefixes(key: str) -> list[str]:
    """Every lock prefix that covers ``key``: the key cut after each "/" (the key itself if it ends so)."""
    out = []
    at = key.find("/")
    while at != -1:
        out.append(key[: at + 1])
        at = key.find("/", at + 1)
    return out


def check_key(key: str) -> None:
    """Raise ValueError unless ``key`` is a valid key (for callers outside message decoding)."""
    if (reason := KEY.problem(key)) is not None:
        raise ValueError(f"key {reason}")


def check_room_name(room: str) -> None:
    if (reason := ROOM_NAME.problem(room)) is not None:
        raise ValueError(f"room name {reason}")


def check_user_name(name: str) -> None:
    if (reason := USER_NAME.problem(name)) is not None:
        raise ValueError(f"user name {reason}")


def fit_name(text: str, max_bytes: int = MAX_NAME_BYTES) -> str:
    """``text`` made to fit the name grammar: control characters and lone surrogates dropped, cut at a
    character boundary to ``max_bytes``. For clients that send names they did not choose (Blender's)."""
    text = re.sub(CONTROL, "", text.encode("utf-8", "ignore").decode("utf-8"))
    return text.encode("utf-8")[:max_bytes].decode("utf-8", "ignore")


# ---- blobs ------------------------------------------------------------------------------------------------

BLOB_HASH_BYTES = 32  # sha256 of the blob's bytes
MAX_BLOB_BYTES = 1024 * 1024  # one blob (a chunk of a large value); larger data is split into chunks
MAX_VALUE_REFS = 16384  # blob references of one set operation
MAX_BATCH_REFS = 65536  # blob references of one batch, all its operations together
MAX_BLOB_QUERY = 4096  # hashes in one blob_query / blob_status
MAX_BLOB_GET = 64  # hashes in one blob_get (each answered by its own blob_data frame)
MAX_BLOB_CHILDREN = 256  # blobs a tree node blob holds (its blob_put children; the add-on's nodes name 32)
# Blobs an ``applied`` carries with the operation (since protocol 3): the ones its write made new, so a
# member applies the value without a blob_get round trip per tree level. Small: an edit's chunk and nodes.
MAX_PUSHED_BLOBS = 64
MAX_PUSHED_BYTES = 256 * 1024  # their data together


def _hash_reason(value: bytes) -> str | None:
    if len(value) != BLOB_HASH_BYTES:
        return f"must be exactly {BLOB_HASH_BYTES} bytes; it is {len(value)}"
    return None


def _blob_reason(value: bytes) -> str | None:
    if not 1 <= len(value) <= MAX_BLOB_BYTES:
        return f"must be 1 to {MAX_BLOB_BYTES} bytes; it is {len(value)}"
    return None


def _refs_reason(refs: Any) -> str | None:
    """The blob references of one set: a list of distinct 32-byte hashes, at most MAX_VALUE_REFS."""
    if type(refs) is not list:
        return f"must be list[bin], got {type(refs).__name__}"
    if len(refs) > MAX_VALUE_REFS:
        return f"must have 0 to {MAX_VALUE_REFS} items; it has {len(refs)}"
    for i, ref in enumerate(refs):
        if type(ref) is not bytes or len(ref) != BLOB_HASH_BYTES:
            return f"[{i}] must be {BLOB_HASH_BYTES} bytes of bin"
    if len(set(refs)) != len(refs):
        return "must not name a blob twice"
    return None


def _children_reason(children: Any) -> str | None:
    """The blobs a tree node holds: 1 to MAX_BLOB_CHILDREN distinct 32-byte hashes (omitted: a leaf)."""
    if type(children) is not list:
        return f"must be list[bin], got {type(children).__name__}"
    if not 1 <= len(children) <= MAX_BLOB_CHILDREN:
        return f"must have 1 to {MAX_BLOB_CHILDREN} items; it has {len(children)}"
    for i, child in enumerate(children):
        if type(child) is not bytes or len(child) != BLOB_HASH_BYTES:
            return f"[{i}] must be {BLOB_HASH_BYTES} bytes of bin"
    if len(set(children)) != len(children):
        return "must not name a blob twice"
    return None


def _pushed_reason(blobs: Any) -> str | None:
    """An applied's blobs: 0 to MAX_PUSHED_BLOBS distinct [hash, data], MAX_PUSHED_BYTES of data in all (the
    hashes are checked against the data by Applied.check)."""
    if type(blobs) is not list:
        return f"must be list[[hash: bin, data: bin]], got {type(blobs).__name__}"
    if len(blobs) > MAX_PUSHED_BLOBS:
        return f"must have 0 to {MAX_PUSHED_BLOBS} items; it has {len(blobs)}"
    total = 0
    for i, item in enumerate(blobs):
        if type(item) is not list or len(item) != 2:
            return f"[{i}] must be [hash: bin, data: bin]"
        if type(item[0]) is not bytes or len(item[0]) != BLOB_HASH_BYTES:
            return f"[{i}] hash must be {BLOB_HASH_BYTES} bytes of bin"
        if type(item[1]) is not bytes:
            return f"[{i}] data must be bin"
        if (reason := _blob_reason(item[1])) is not None:
            return f"[{i}] data {reason}"
        total += len(item[1])
    if total > MAX_PUSHED_BYTES:
        return f"holds {total} bytes of data, more than {MAX_PUSHED_BYTES}"
    if len({item[0] for item in blobs}) != len(blobs):
        return "must not name a blob twice"
    return None


BLOB_HASH = Rule(f"{BLOB_HASH_BYTES} bytes (sha256)", _hash_reason)
BLOB_DATA = Rule(f"1 to {MAX_BLOB_BYTES} bytes", _blob_reason)
BlobHash = Annotated[bytes, BLOB_HASH]
BlobData = Annotated[bytes, BLOB_DATA]
BlobQueryHashes = Annotated[list[BlobHash], Length(1, MAX_BLOB_QUERY)]
BlobStatusHashes = Annotated[list[BlobHash], Length(0, MAX_BLOB_QUERY)]
BlobGetHashes = Annotated[list[BlobHash], Length(1, MAX_BLOB_GET)]
BLOB_CHILDREN = Rule(f"1 to {MAX_BLOB_CHILDREN} distinct hashes", _children_reason)
BlobChildren = Annotated[list[Any], BLOB_CHILDREN]  # the rule checks each hash itself
PUSHED_BLOBS = Rule(
    f"0 to {MAX_PUSHED_BLOBS} distinct [hash, data], {MAX_PUSHED_BYTES} bytes", _pushed_reason
)
PushedBlobs = Annotated[list[Any], PUSHED_BLOBS]

# ---- batches ----------------------------------------------------------------------------------------------


_key_ok = text_predicate(KEY)


def _ops_reason(ops: list[list[Any]]) -> str | None:
    """A batch is a non-empty list of ["set", key, value], ["set", key, value, refs] and ["delete", key]."""
    if not ops:
        return "needs at least one operation"
    total_refs = 0
    for i, op in enumerate(ops):
        if type(op) is not list:
            return f"[{i}] must be a list"
        is_set = 3 <= len(op) <= 4 and op[0] == "set" and type(op[1]) is str and type(op[2]) is bytes
        is_delete = len(op) == 2 and op[0] == "delete" and type(op[1]) is str
        if not (is_set or is_delete):
            return f'[{i}] must be ["set", key:str, value:bin, refs?] or ["delete", key:str]'
        if not _key_ok(op[1]):
            return f"[{i}] key {KEY.problem(op[1])}"
        if len(op) == 4:
            if (reason := _refs_reason(op[3])) is not None:
                return f"[{i}] refs{join_reason(reason)}"
            total_refs += len(op[3])
    if total_refs > MAX_BATCH_REFS:
        return f"holds {total_refs} blob references, more than {MAX_BATCH_REFS}"
    return None


OPS = Rule('a non-empty list of ["set", key, value:bin, refs?] and ["delete", key]', _ops_reason)
Ops = Annotated[list[Any], OPS]  # the rule checks each operation's shape itself


def _items_reason(items: list[Any]) -> str | None:
    for i, item in enumerate(items):
        if not (type(item) is list and len(item) == 2 and type(item[0]) is str and type(item[1]) is bytes):
            return f"[{i}] must be [key: str, value: bin]"
        if not _key_ok(item[0]):
            return f"[{i}] key {KEY.problem(item[0])}"
    return None


ITEMS = Rule("a list of [key: str, value: bin]", _items_reason)
Items = Annotated[list[Any], ITEMS]


def _key_refs_reason(pairs: list[Any]) -> str | None:
    for i, pair in enumerate(pairs):
        if not (type(pair) is list and len(pair) == 2 and type(pair[0]) is str):
            return f"[{i}] must be [key: str, refs: list[bin]]"
        if not _key_ok(pair[0]):
            return f"[{i}] key {KEY.problem(pair[0])}"
        if (reason := _refs_reason(pair[1])) is not None:
            return f"[{i}] refs{join_reason(reason)}"
    return None


KEY_REFS = Rule("a list of [key: str, refs: list[bin]]", _key_refs_reason)
KeyRefs = Annotated[list[Any], KEY_REFS]  # the blobs exported keys' values reference

_session_id_ok = text_predicate(SESSION_ID)
_name_ok = text_predicate(NAME)


def _key_authors_reason(rows: list[Any]) -> str | None:
    for i, row in enumerate(rows):
        if not (
            type(row) is list
            and len(row) == 5
            and type(row[0]) is str
            and type(row[1]) is int
            and type(row[2]) is str
            and type(row[3]) is str
            and type(row[4]) is int
        ):
            return f"[{i}] must be [key: str, seq: int, client_id: str, name: str, time: int]"
        if not _key_ok(row[0]):
            return f"[{i}] key {KEY.problem(row[0])}"
        if not (0 <= row[1] <= INT63_MAX and 0 <= row[4] <= INT63_MAX):
            return f"[{i}] seq and time must be 0 to {INT63_MAX}"
        if not _session_id_ok(row[2]):
            return f"[{i}] client_id {SESSION_ID.problem(row[2])}"
        if not _name_ok(row[3]):
            return f"[{i}] name {NAME.problem(row[3])}"
    return None


KEY_AUTHORS = Rule(
    "a list of [key: str, seq: int, client_id: str, name: str, time: int]", _key_authors_reason
)
KeyAuthors = Annotated[list[Any], KEY_AUTHORS]  # who last changed exported keys, as blame rows

# ---- presence ---------------------------------------------------------------------------------------------

MAX_SELECTION = 4096
MAX_SELECTION_BYTES = 192 * 1024  # the entries of one selection together (4096 uuids of 32 hex digits fit)

PRESENCE_FIELDS: dict[str, Any] = {
    "name": Name,
    "color": Annotated[list[Annotated[float, UNIT]], Length(3, 4)],
    "mode": Label,
    "frame": Annotated[int, SCENE_FRAME],
    "scene": Name,
    "view_matrix": Annotated[list[Annotated[float, FINITE]], Length(16, 16)],
    "selection": Annotated[list[Annotated[str, SELECTED]], Length(0, MAX_SELECTION)],
}
# So a client's whole presence state (every field at its largest) holds at most this many bytes of text.
MAX_PRESENCE_TEXT_BYTES = 2 * MAX_NAME_BYTES + MAX_LABEL_BYTES + MAX_SELECTION_BYTES


def selection_bytes(selection: list[str]) -> int:
    """Bytes of a selection whose entries passed their checks (so each one encodes)."""
    return sum(len(entry) if entry.isascii() else len(entry.encode("utf-8")) for entry in selection)


# ---- history ----------------------------------------------------------------------------------------------

MAX_HISTORY_RESULTS = 10_000  # keys in one history (blame) answer
CHECKPOINT_ID = IntRange(1, INT63_MAX)
HISTORY_LIMIT = IntRange(1, MAX_HISTORY_RESULTS)
UNIX_TIME = IntRange(0, INT63_MAX)  # whole seconds since 1970 (UTC)
RETENTION_DAYS = IntRange(0, 36_500)  # 0: no age limit
KEY_PREFIX = Text("key prefix", 0, MAX_KEY_BYTES, "\x00", "without NUL", ascii_ok=_ascii_no_nul)
CHECKPOINT_NAME = Text("checkpoint name", 1, MAX_NAME_BYTES, CONTROL, _NO_CONTROL, ascii_ok=_ascii_no_control)
KeyPrefix = Annotated[str, KEY_PREFIX]
CheckpointName = Annotated[str, CHECKPOINT_NAME]
CheckpointId = Annotated[int, CHECKPOINT_ID]
TEXTS += (KEY_PREFIX, CHECKPOINT_NAME)

# ---- admin arguments --------------------------------------------------------------------------------------

# Arguments each admin action reads; a listed argument that is present (not nil) must fit here. Whether it
# is required is the action's business (the server answers bad_message when it is missing).
ADMIN_ARGS: dict[str, dict[str, Any]] = {
    "rooms": {},
    "clients": {},
    "status": {},
    "kick": {"client_id": SessionId, "reason": Annotated[str, MESSAGE]},
    "delete_room": {"room": RoomName},
    "break_lock": {"room": RoomName, "keys": Keys, "prefixes": LockPrefixes},
    "export": {"room": RoomName},
    "import": {"room": RoomName, "items": Items, "meta": dict[str, Any], "seq": Seq, "more": bool},
    "add_member": {"node_id": Annotated[int, NODE_ID], "raft": Address},
    "remove_member": {"node_id": Annotated[int, NODE_ID]},
    "history": {
        "room": RoomName,
        "prefix": KeyPrefix,
        "since": Annotated[int, UNIX_TIME],
        "limit": Annotated[int, HISTORY_LIMIT],
    },
    "checkpoints": {"room": RoomName},
    "share": {"room": RoomName, "expires_in": Annotated[int, SHARE_SECONDS]},
    "shares": {"room": RoomName},
    "revoke_share": {"name": UserName},
    "backup": {},
}
ADMIN_ACTIONS = frozenset(ADMIN_ARGS)
