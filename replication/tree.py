"""Deterministic Khepri-style tree state machine.

Every node of a cluster applies the same committed log entries, in the same order, to its own
:class:`Tree`; the trees must then be identical. So nothing here does I/O, reads a clock, draws random
numbers or iterates a ``set``/``dict`` whose order could differ between processes: every traversal that
can be observed (results, watch events, dirty records, dumps) is sorted by path.

A command is a declarative transaction (``compare`` / ``then`` / ``else``). It applies completely or
not at all: every mutation pushes an undo record, and a failing op rolls the whole command back.

See ``docs/tree.md`` for the exact command reference.
"""

from __future__ import annotations

import bisect
import enum
import hashlib
import operator
import re
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeAlias

import msgpack

__all__ = [
    "DEFAULT_MAX_SESSIONS",
    "MAX_DEPTH",
    "MAX_NAME_BYTES",
    "MAX_PATH_LEN",
    "MAX_REGEX_LEN",
    "NO_PAYLOAD",
    "SESSION_KEY",
    "NodeProps",
    "Pattern",
    "Tree",
    "TreeError",
    "WatchEvent",
    "compile_pattern",
    "decode_envelope",
    "encode_envelope",
    "format_path",
    "match_pattern",
    "parse_path",
    "seq_name",
    "validate_command",
]

Path: TypeAlias = tuple[str, ...]

MAX_NAME_BYTES: Final = 1024
MAX_PATH_LEN: Final = 64  # bounds key size and traversal cost
MAX_DEPTH: Final = 32  # nesting of conditions and of payload containers
MAX_REGEX_LEN: Final = 256
MAX_RULE_PATHS: Final = 32
DEFAULT_MAX_SESSIONS: Final = 10_000
SEQ_DIGITS: Final = 20
MAX_SEQ: Final = 10**SEQ_DIGITS - 1
_MAX_U64: Final = 2**64
_MIN_I64: Final = -(2**63)
_MAX_I63: Final = 2**63
SNAPSHOT_FORMAT: Final = 1

# First element of the record key of a client session in take_dirty()/from_records(). User path
# elements may not contain NUL, so this key space can never collide with a node path.
SESSION_KEY: Final = "\x00sessions"

# Error codes. Validation errors (raised by validate_command, returned by apply):
E_ENVELOPE: Final = "invalid_envelope"
E_COMMAND: Final = "invalid_command"
E_OP: Final = "unknown_op"
E_PATH: Final = "invalid_path"
E_PATTERN: Final = "invalid_pattern"
E_COND: Final = "invalid_condition"
E_REGEX: Final = "invalid_regex"
E_PAYLOAD: Final = "invalid_payload"
E_DEEP: Final = "too_deep"
# Semantic failures (returned by apply, the command changes nothing):
E_EXISTS: Final = "exists"
E_MISSING: Final = "missing"
E_VERSION: Final = "version_mismatch"
E_FAILED: Final = "condition_failed"
E_KEEP: Final = "keep_while_unmet"
E_SEQ: Final = "seq_overflow"
E_STALE: Final = "stale_session"
E_INTERNAL: Final = "internal"
# Caller bugs, raised (never produced by a command):
E_INDEX: Final = "invalid_index"
E_SNAPSHOT: Final = "invalid_snapshot"


class TreeError(Exception):
    """A malformed command, path, pattern, snapshot or record."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class _Sentinel(enum.Enum):
    NO_PAYLOAD = "NO_PAYLOAD"

    def __repr__(self) -> str:
        return "NO_PAYLOAD"


# A node without payload; distinct from a node whose payload is None.
NO_PAYLOAD: Final = _Sentinel.NO_PAYLOAD


@dataclass(frozen=True, slots=True)
class NodeProps:
    payload_version: int
    child_list_version: int
    child_count: int
    created_index: int
    modified_index: int
    has_payload: bool
    next_seq: int

    def to_wire(self) -> dict[str, Any]:
        return {
            "payload_version": self.payload_version,
            "child_list_version": self.child_list_version,
            "child_count": self.child_count,
            "created_index": self.created_index,
            "modified_index": self.modified_index,
            "has_payload": self.has_payload,
            "next_seq": self.next_seq,
        }


@dataclass(frozen=True, slots=True)
class WatchEvent:
    index: int
    action: Literal["create", "update", "delete"]
    path: Path
    props: NodeProps
    payload: Any  # NO_PAYLOAD when the node has none


# --------------------------------------------------------------------------- paths


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _check_name(name: object) -> str:
    if type(name) is not str:
        raise TreeError(E_PATH, f"path element must be a string, not {type(name).__name__}")
    if not name:
        raise TreeError(E_PATH, "path element must not be empty")
    if name.isascii():
        size = len(name)
    else:
        try:
            size = len(name.encode("utf-8"))
        except UnicodeEncodeError:
            raise TreeError(E_PATH, "path element is not valid UTF-8 (lone surrogate)") from None
    if size > MAX_NAME_BYTES:
        raise TreeError(E_PATH, f"path element is {size} bytes, more than {MAX_NAME_BYTES}")
    if "\x00" in name:
        raise TreeError(E_PATH, "path element must not contain NUL")
    return name


def _escape(name: str) -> str:
    if "%" in name or "/" in name:
        return name.replace("%", "%25").replace("/", "%2F")
    return name


def _unescape(part: str, text: str) -> str:
    if "%" not in part:
        return part
    out: list[str] = []
    i = 0
    while i < len(part):
        ch = part[i]
        if ch == "%":
            code = part[i + 1 : i + 3].upper()
            if code == "25":
                out.append("%")
            elif code == "2F":
                out.append("/")
            else:
                raise TreeError(E_PATH, f"bad escape in {_short(text)!r}: only %25 and %2F are allowed")
            i += 3
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def format_path(path: Iterable[object]) -> str:
    """Display form: ``/a/b``; ``/`` is the root; '%' and '/' inside elements are escaped."""
    return "/" + "/".join(_escape(e if isinstance(e, str) else str(e)) for e in path)


def parse_path(text: str) -> Path:
    """Inverse of :func:`format_path` (``parse_path(format_path(p)) == p`` for every valid path)."""
    if type(text) is not str:
        raise TreeError(E_PATH, f"path string expected, not {type(text).__name__}")
    if not text.startswith("/"):
        raise TreeError(E_PATH, f"path must start with '/': {_short(text)!r}")
    if text == "/":
        return ()
    parts = text[1:].split("/")
    if len(parts) > MAX_PATH_LEN:
        raise TreeError(E_PATH, f"path has more than {MAX_PATH_LEN} elements")
    out = []
    for part in parts:
        if not part:
            raise TreeError(E_PATH, f"empty path element in {_short(text)!r}")
        out.append(_check_name(_unescape(part, text)))
    return tuple(out)


def _coerce_path(value: object) -> Path:
    if type(value) is str:
        return parse_path(value)
    if type(value) is list or type(value) is tuple:
        if len(value) > MAX_PATH_LEN:
            raise TreeError(E_PATH, f"path has more than {MAX_PATH_LEN} elements")
        for e in value:
            _check_name(e)
        return tuple(value)
    raise TreeError(E_PATH, f"path must be a list of strings or a '/a/b' string, not {type(value).__name__}")


def seq_name(seq: int) -> str:
    """Name of the sequential child number ``seq`` (zero-padded so name order == numeric order)."""
    return f"{seq:0{SEQ_DIGITS}d}"


def _is_seq_name(name: str) -> bool:
    return len(name) == SEQ_DIGITS and name.isascii() and name.isdigit()


# --------------------------------------------------------------------------- payloads

_SCALARS: Final = (type(None), bool, float, bytes)


def _check_payload(value: object, depth: int = 0) -> None:
    t = type(value)
    if t in _SCALARS:
        return
    if t is str:
        if not value.isascii():  # type: ignore[union-attr]
            try:
                value.encode("utf-8")  # type: ignore[union-attr]
            except UnicodeEncodeError:
                raise TreeError(E_PAYLOAD, "string is not valid UTF-8 (lone surrogate)") from None
        return
    if t is int:
        if not _MIN_I64 <= value < _MAX_U64:  # type: ignore[operator]
            raise TreeError(E_PAYLOAD, "integer does not fit in 64 bits")
        return
    if t is list or t is tuple:
        if depth >= MAX_DEPTH:
            raise TreeError(E_DEEP, f"payload nested deeper than {MAX_DEPTH}")
        for item in value:  # type: ignore[attr-defined]
            _check_payload(item, depth + 1)
        return
    if t is dict:
        if depth >= MAX_DEPTH:
            raise TreeError(E_DEEP, f"payload nested deeper than {MAX_DEPTH}")
        for k, v in value.items():  # type: ignore[attr-defined]
            if type(k) is not str:
                raise TreeError(E_PAYLOAD, f"map keys must be strings, not {type(k).__name__}")
            _check_payload(k, depth + 1)
            _check_payload(v, depth + 1)
        return
    raise TreeError(E_PAYLOAD, f"{t.__name__} is not a msgpack payload type")


def _normalise(value: Any) -> Any:
    t = type(value)
    if t is dict:
        return {k: _normalise(value[k]) for k in sorted(value)}
    if t is list or t is tuple:
        return [_normalise(v) for v in value]
    return value


def _canon(value: Any) -> bytes:
    """Canonical bytes of a payload: type-exact (1, 1.0, True, b"1", "1" all differ), map-order free."""
    return msgpack.packb(_normalise(value), use_bin_type=True)


# --------------------------------------------------------------------------- conditions
#
# Compiled conditions are tuples, evaluated against (path, node-or-None):
#   ("at", path, c)       evaluate c on the node at an absolute path (compare / "if" conditions)
#   ("exists", bool) ("hp", bool) ("pv", n) ("peq", canon_bytes) ("cc", op, n) ("name", regex)
#   ("not", c) ("all", (c, ...)) ("any", (c, ...))

_Cond: TypeAlias = tuple[Any, ...]

_CMP: Final[dict[str, Callable[[int, int], bool]]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def _compile_regex(value: object) -> re.Pattern[str]:
    if type(value) is not str:
        raise TreeError(E_REGEX, "regular expression must be a string")
    if len(value) > MAX_REGEX_LEN:
        raise TreeError(E_REGEX, f"regular expression longer than {MAX_REGEX_LEN} characters")
    try:
        return re.compile(value)
    except (re.error, OverflowError, RecursionError, ValueError):
        raise TreeError(E_REGEX, f"invalid regular expression {_short(value)!r}") from None


def _check_count(value: object, what: str) -> int:
    if type(value) is not int or not 0 <= value < _MAX_I63:
        raise TreeError(E_COND, f"{what} must be a non-negative integer")
    return value


def _single(c: object, depth: int) -> tuple[str, Any]:
    if depth > MAX_DEPTH:
        raise TreeError(E_DEEP, f"conditions nested deeper than {MAX_DEPTH}")
    if type(c) is not dict or len(c) != 1:
        raise TreeError(E_COND, "a condition is a map with exactly one key")
    ((key, arg),) = c.items()
    if type(key) is not str:
        raise TreeError(E_COND, "condition key must be a string")
    return key, arg


def _compile_list(arg: object, depth: int, each: Callable[[object, int], _Cond]) -> tuple[_Cond, ...]:
    if type(arg) is not list and type(arg) is not tuple:
        raise TreeError(E_COND, "'all'/'any' take a list of conditions")
    return tuple(each(x, depth + 1) for x in arg)


def _compile_node_cond(c: object, depth: int = 1) -> _Cond:
    """A condition on one node whose path is implied (keep_while values, pattern 'cond' elements)."""
    key, arg = _single(c, depth)
    if key in ("exists", "has_payload"):
        if type(arg) is not bool:
            raise TreeError(E_COND, f"{key!r} takes true or false here")
        return ("exists" if key == "exists" else "hp", arg)
    if key == "payload_version":
        return ("pv", _check_count(arg, "payload_version"))
    if key == "payload_equals":
        _check_payload(arg)
        return ("peq", _canon(arg))
    if key == "child_count":
        if (type(arg) is not list and type(arg) is not tuple) or len(arg) != 2:
            raise TreeError(E_COND, "'child_count' takes [operator, n] here")
        return ("cc", _check_op(arg[0]), _check_count(arg[1], "child_count"))
    if key == "name_matches":
        return ("name", _compile_regex(arg))
    if key == "not":
        return ("not", _compile_node_cond(arg, depth + 1))
    if key in ("all", "any"):
        return (key, _compile_list(arg, depth, _compile_node_cond))
    raise TreeError(E_COND, f"unknown condition {_short(key)!r}")


def _check_op(value: object) -> str:
    if type(value) is not str or value not in _CMP:
        raise TreeError(E_COND, "comparison operator must be one of == != < <= > >=")
    return value


def _pair(arg: object, n: int, key: str, shape: str) -> list[Any] | tuple[Any, ...]:
    if (type(arg) is not list and type(arg) is not tuple) or len(arg) != n:
        raise TreeError(E_COND, f"{key!r} takes {shape}")
    return arg  # type: ignore[return-value]


def _compile_cond(c: object, depth: int = 1) -> _Cond:
    """A condition naming its own paths (txn 'compare' and op 'if')."""
    key, arg = _single(c, depth)
    if key == "exists":
        return ("at", _coerce_path(arg), ("exists", True))
    if key == "has_payload":
        return ("at", _coerce_path(arg), ("hp", True))
    if key == "payload_version":
        a = _pair(arg, 2, key, "[path, n]")
        return ("at", _coerce_path(a[0]), ("pv", _check_count(a[1], "payload_version")))
    if key == "payload_equals":
        a = _pair(arg, 2, key, "[path, value]")
        _check_payload(a[1])
        return ("at", _coerce_path(a[0]), ("peq", _canon(a[1])))
    if key == "child_count":
        a = _pair(arg, 3, key, "[path, operator, n]")
        return ("at", _coerce_path(a[0]), ("cc", _check_op(a[1]), _check_count(a[2], "child_count")))
    if key == "name_matches":
        raise TreeError(E_COND, "'name_matches' is only valid in patterns and keep_while rules")
    if key == "not":
        return ("not", _compile_cond(arg, depth + 1))
    if key in ("all", "any"):
        return (key, _compile_list(arg, depth, _compile_cond))
    raise TreeError(E_COND, f"unknown condition {_short(key)!r}")


# --------------------------------------------------------------------------- patterns

_REC: Final = ("**",)
_ANY: Final = ("*",)


class Pattern:
    """A compiled path pattern (reusable; see :func:`compile_pattern`)."""

    __slots__ = ("elements", "name_only")

    def __init__(self, elements: tuple[_Cond, ...]) -> None:
        self.elements = elements
        self.name_only = all(e[0] != "cond" for e in elements)


def compile_pattern(pattern: object) -> Pattern:
    """Validate a pattern: a list of names, "*", "**", {"name_matches": re} and/or {"cond": c}."""
    if isinstance(pattern, Pattern):
        return pattern
    if type(pattern) is str:
        raw: list[Any] | tuple[Any, ...] = parse_path(pattern)
    elif type(pattern) is list or type(pattern) is tuple:
        raw = pattern
    else:
        raise TreeError(E_PATTERN, f"pattern must be a list or a '/a/*' string, not {type(pattern).__name__}")
    if not raw:
        raise TreeError(E_PATTERN, "pattern must not be empty")
    if len(raw) > MAX_PATH_LEN:
        raise TreeError(E_PATTERN, f"pattern has more than {MAX_PATH_LEN} elements")
    out: list[_Cond] = []
    for e in raw:
        if type(e) is str:
            if e == "**":
                if out and out[-1] is _REC:
                    continue  # "**/**" == "**"; also avoids duplicate matches
                out.append(_REC)
            elif e == "*":
                out.append(_ANY)
            else:
                out.append(("lit", _check_name(e)))
        elif type(e) is dict:
            if not e or not set(e) <= {"name_matches", "cond"}:
                raise TreeError(E_PATTERN, "pattern map element takes 'name_matches' and/or 'cond'")
            regex = _compile_regex(e["name_matches"]) if "name_matches" in e else None
            cond = _compile_node_cond(e["cond"]) if "cond" in e else None
            if cond is None:
                out.append(("name", regex))
            else:
                out.append(("cond", regex, cond))
        else:
            raise TreeError(E_PATTERN, f"pattern element must be a string or a map, not {type(e).__name__}")
    return Pattern(tuple(out))


def _closure(elements: tuple[_Cond, ...], states: set[int]) -> frozenset[int]:
    # A "**" at position s may match zero elements, so s+1 is reachable too.
    n = len(elements)
    todo = list(states)
    seen = set(states)
    while todo:
        s = todo.pop()
        if s < n and elements[s] is _REC and s + 1 not in seen:
            seen.add(s + 1)
            todo.append(s + 1)
    return frozenset(seen)


def match_pattern(pattern: object, path: Iterable[str]) -> bool:
    """Whether ``path`` matches ``pattern`` on names alone (for filtering watch events).

    Patterns with 'cond' elements need the nodes themselves: use :meth:`Tree.match`.
    """
    pat = compile_pattern(pattern)
    if not pat.name_only:
        raise TreeError(E_PATTERN, "'cond' pattern elements need a tree; use Tree.match")
    elements = pat.elements
    n = len(elements)
    states = _closure(elements, {0})
    for name in path:
        nxt: set[int] = set()
        for s in states:
            if s == n:
                continue
            e = elements[s]
            if e is _REC:
                nxt.add(s)
            elif _name_step(e, name):
                nxt.add(s + 1)
        if not nxt:
            return False
        states = _closure(elements, nxt)
    return n in states


def _name_step(e: _Cond, name: str) -> bool:
    kind = e[0]
    if kind == "lit":
        return e[1] == name
    if kind == "*":
        return True
    if kind == "name":
        return e[1].fullmatch(name) is not None
    return False


# --------------------------------------------------------------------------- commands


class _Rule:
    """A keep_while rule: the owner lives while every (watched path, condition) holds."""

    __slots__ = ("items", "wire")

    def __init__(self, items: tuple[tuple[Path, _Cond], ...], wire: list[list[Any]]) -> None:
        self.items = items
        self.wire = wire  # [[path list, condition], ...] sorted by path; what records store


def _compile_rule(value: object) -> _Rule | None:
    if type(value) is dict:
        pairs: list[tuple[object, object]] = list(value.items())
    elif type(value) is list or type(value) is tuple:
        pairs = []
        for item in value:
            if (type(item) is not list and type(item) is not tuple) or len(item) != 2:
                raise TreeError(E_COND, "keep_while list items are [path, condition]")
            pairs.append((item[0], item[1]))
    else:
        raise TreeError(E_COND, "keep_while must be a map {path: condition} or a list of [path, condition]")
    if len(pairs) > MAX_RULE_PATHS:
        raise TreeError(E_COND, f"keep_while watches more than {MAX_RULE_PATHS} paths")
    compiled: dict[Path, tuple[_Cond, Any]] = {}
    for p, c in pairs:
        path = _coerce_path(p)
        if path in compiled:
            raise TreeError(E_COND, f"keep_while names {format_path(path)} twice")
        compiled[path] = (_compile_node_cond(c), c)
    if not compiled:
        return None  # an empty rule clears the node's rule
    keys = sorted(compiled)
    return _Rule(
        tuple((k, compiled[k][0]) for k in keys),
        [[list(k), compiled[k][1]] for k in keys],
    )


_UNSET: Final = object()  # "keep_while" absent: keep the node's current rule


class _Op:
    __slots__ = ("cap", "cond", "kind", "path", "pattern", "payload", "rule", "version")

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.path: Path = ()
        self.pattern: Pattern | None = None
        self.payload: Any = NO_PAYLOAD
        self.rule: Any = _UNSET
        self.version = 0
        self.cap: int | None = None  # also the get_many limit
        self.cond: _Cond | None = None


_OP_KEYS: Final[dict[str, tuple[frozenset[str], frozenset[str]]]] = {
    "put": (frozenset({"op", "path"}), frozenset({"payload", "keep_while", "if"})),
    "create": (frozenset({"op", "path"}), frozenset({"payload", "keep_while", "if"})),
    "update": (frozenset({"op", "path"}), frozenset({"payload", "if"})),
    "cas": (frozenset({"op", "path", "payload_version"}), frozenset({"payload", "if"})),
    "delete": (frozenset({"op", "path"}), frozenset({"if"})),
    "delete_many": (frozenset({"op", "pattern"}), frozenset({"if"})),
    "append": (frozenset({"op", "path"}), frozenset({"payload", "cap", "if"})),
    "get": (frozenset({"op", "path"}), frozenset({"if"})),
    "get_many": (frozenset({"op", "pattern"}), frozenset({"limit", "if"})),
}
_ROOT_FORBIDDEN: Final = frozenset({"put", "create", "update", "cas", "delete"})


def _compile_op(raw: object) -> _Op:
    if type(raw) is not dict:
        raise TreeError(E_COMMAND, f"an op must be a map, not {type(raw).__name__}")
    kind = raw.get("op")
    if type(kind) is not str or kind not in _OP_KEYS:
        raise TreeError(E_OP, f"unknown op {_short(kind) if type(kind) is str else type(kind).__name__!r}")
    required, optional = _OP_KEYS[kind]
    for key in raw:
        if key not in required and key not in optional:
            shown = _short(key) if type(key) is str else type(key).__name__
            raise TreeError(E_COMMAND, f"unknown key {shown!r} in {kind!r} op")
    for key in required:
        if key not in raw:
            raise TreeError(E_COMMAND, f"{kind!r} op needs {key!r}")
    op = _Op(kind)
    if "path" in raw:
        op.path = _coerce_path(raw["path"])
        if not op.path and kind in _ROOT_FORBIDDEN:
            raise TreeError(E_PATH, f"{kind!r} cannot target the root")
    if "pattern" in raw:
        op.pattern = compile_pattern(raw["pattern"])
    if "payload" in raw:
        payload = raw["payload"]
        _check_payload(payload)
        op.payload = payload
    if "keep_while" in raw:
        op.rule = _compile_rule(raw["keep_while"])
    if "payload_version" in raw:
        v = raw["payload_version"]
        if type(v) is not int or not 0 <= v < _MAX_I63:
            raise TreeError(E_COMMAND, "payload_version must be a non-negative integer")
        op.version = v
    for key in ("cap", "limit"):
        if key in raw:
            v = raw[key]
            if type(v) is not int or not 1 <= v < _MAX_I63:
                raise TreeError(E_COMMAND, f"{key} must be a positive integer")
            op.cap = v
    if "if" in raw:
        op.cond = _compile_cond(raw["if"])
    return op


class _Command:
    __slots__ = ("compare", "else_", "then")

    def __init__(self, compare: tuple[_Cond, ...], then: tuple[_Op, ...], else_: tuple[_Op, ...]) -> None:
        self.compare = compare
        self.then = then
        self.else_ = else_


def _compile_command(cmd: object) -> _Command:
    if type(cmd) is not dict:
        raise TreeError(E_COMMAND, f"a command must be a map, not {type(cmd).__name__}")
    for key in cmd:
        if key not in ("compare", "then", "else"):
            shown = _short(key) if type(key) is str else type(key).__name__
            raise TreeError(E_COMMAND, f"unknown command key {shown!r}")
    lists: dict[str, list[Any] | tuple[Any, ...]] = {}
    for key in ("compare", "then", "else"):
        value = cmd.get(key, ())
        if type(value) is not list and type(value) is not tuple:
            raise TreeError(E_COMMAND, f"{key!r} must be a list")
        lists[key] = value
    return _Command(
        tuple(_compile_cond(c) for c in lists["compare"]),
        tuple(_compile_op(o) for o in lists["then"]),
        tuple(_compile_op(o) for o in lists["else"]),
    )


def validate_command(cmd: object) -> None:
    """Raise :class:`TreeError` unless ``cmd`` is a well-formed command. Call before proposing."""
    _compile_command(cmd)


def _check_client(client: object, seq: object) -> None:
    if type(client) is not str:
        raise TreeError(E_ENVELOPE, "client must be a string")
    try:
        _check_name(client)
    except TreeError as e:
        raise TreeError(E_ENVELOPE, f"client id: {e.message}") from None
    if type(seq) is not int or not 0 <= seq < _MAX_I63:
        raise TreeError(E_ENVELOPE, "seq must be a non-negative integer")


# Commands this process encoded, by their entry bytes, so that applying them locally does not compile them
# a second time. Compiling is a pure function of the bytes, so a hit gives exactly what a miss would.
_precompiled: OrderedDict[bytes, _Command] = OrderedDict()
_PRECOMPILED_MAX = 65536


def encode_envelope(cmd: object, client: str | None = None, seq: int | None = None) -> bytes:
    """Validate ``cmd`` and pack it (with an optional client session id and seq) as log entry data."""
    command = _compile_command(cmd)
    env: dict[str, Any] = {}
    if client is not None or seq is not None:
        _check_client(client, seq)
        env["client"] = client
        env["seq"] = seq
    env["cmd"] = cmd
    data = msgpack.packb(env, use_bin_type=True)
    _precompiled[data] = command
    if len(_precompiled) > _PRECOMPILED_MAX:
        _precompiled.popitem(last=False)
    return data


def _unpack(data: object) -> Any:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TreeError(E_ENVELOPE, f"entry data must be bytes, not {type(data).__name__}")
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=True, use_list=True)
    except Exception:  # msgpack raises many types for garbage; all mean the same here
        raise TreeError(E_ENVELOPE, "entry data is not a msgpack document") from None


def _split_envelope(env: object) -> tuple[str | None, int, object]:
    if type(env) is not dict:
        raise TreeError(E_ENVELOPE, "envelope must be a map")
    for key in env:
        if key not in ("client", "seq", "cmd"):
            raise TreeError(E_ENVELOPE, "unknown envelope key")
    if "cmd" not in env:
        raise TreeError(E_ENVELOPE, "envelope has no 'cmd'")
    if "client" in env or "seq" in env:
        client, seq = env.get("client"), env.get("seq")
        _check_client(client, seq)
        return client, seq, env["cmd"]  # type: ignore[return-value]
    return None, 0, env["cmd"]


def decode_envelope(data: bytes, *, validate: bool = True) -> dict[str, Any]:
    """Decode log entry data into {"client"?, "seq"?, "cmd"}; raise TreeError on malformed input.

    With ``validate`` the command itself is checked too (as :func:`validate_command` does).
    """
    client, seq, cmd = _split_envelope(_unpack(data))
    if validate:
        _compile_command(cmd)
    out: dict[str, Any] = {"cmd": cmd}
    if client is not None:
        out["client"] = client
        out["seq"] = seq
    return out


# --------------------------------------------------------------------------- the tree


class _Node:
    __slots__ = ("children", "ci", "clv", "mi", "next_seq", "payload", "pv", "rule", "seqs")

    def __init__(self, payload: Any, index: int) -> None:
        self.payload = payload
        self.pv = 1
        self.clv = 0
        self.ci = index
        self.mi = index
        self.rule: _Rule | None = None
        self.next_seq = 1
        self.children: dict[str, _Node] = {}
        # Sorted numbers of the children with sequential names, so capped logs trim the oldest
        # without sorting all children. Derived state: rebuilt on load, never persisted.
        self.seqs: list[int] | None = None

    def props(self) -> NodeProps:
        return NodeProps(
            self.pv,
            self.clv,
            len(self.children),
            self.ci,
            self.mi,
            self.payload is not NO_PAYLOAD,
            self.next_seq,
        )

    def fields(self) -> list[Any]:
        has = self.payload is not NO_PAYLOAD
        return [
            self.pv,
            self.clv,
            self.ci,
            self.mi,
            has,
            self.payload if has else None,
            self.next_seq,
            None if self.rule is None else self.rule.wire,
        ]


def _seq_add(node: _Node, value: int) -> None:
    seqs = node.seqs
    if seqs is None:
        node.seqs = [value]
    elif not seqs or value > seqs[-1]:
        seqs.append(value)  # the common case: appends arrive in order
    else:
        bisect.insort(seqs, value)


def _seq_remove(node: _Node, value: int) -> None:
    seqs = node.seqs
    assert seqs is not None
    del seqs[bisect.bisect_left(seqs, value)]


class _Abort(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.op: int | None = None


# Undo record kinds.
_U_ATTRS: Final = 0
_U_ATTACH: Final = 1
_U_DETACH: Final = 2
_U_WATCH_ADD: Final = 3
_U_WATCH_DEL: Final = 4


class _Txn:
    __slots__ = ("changed", "created", "events", "index", "new_rules", "undo")

    def __init__(self, index: int) -> None:
        self.index = index
        self.undo: list[tuple[Any, ...]] = []
        self.events: list[WatchEvent] = []
        self.changed: list[Path] = []  # paths whose record changed, in order; feeds keep_while and dirty
        self.created: set[Path] = set()
        self.new_rules: list[tuple[Path, int]] = []


class _Session:
    __slots__ = ("last_used", "result", "seq")

    def __init__(self, seq: int, result: dict[str, Any], last_used: int) -> None:
        self.seq = seq
        self.result = result
        self.last_used = last_used


def _error(code: str, message: str, index: int, op: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"ok": False, "error": code, "message": message, "index": index}
    if op is not None:
        out["op"] = op
    return out


def _pack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


class Tree:
    """The replicated tree. Apply committed log entries with :meth:`apply`, in index order."""

    def __init__(self, *, max_sessions: int = DEFAULT_MAX_SESSIONS) -> None:
        if type(max_sessions) is not int or max_sessions < 1:
            raise ValueError("max_sessions must be a positive integer")
        # Must be the same on every node: eviction is part of the replicated state.
        self.max_sessions = max_sessions
        self._root = _Node(NO_PAYLOAD, 0)
        self.applied_index = 0
        # watched path -> owners whose keep_while rule reads it (a set: always sorted before use)
        self._watch: dict[Path, set[Path]] = {}
        # client id -> session, least recently used first (last_used is strictly increasing)
        self._sessions: OrderedDict[str, _Session] = OrderedDict()
        self._dirty: set[Path] = set()  # session keys changed since take_dirty()
        self._encoded: dict[Path, bytes | None] = {}  # node records changed since take_dirty(), encoded

    # ------------------------------------------------------------------ reads

    def _lookup(self, path: Path) -> _Node | None:
        node: _Node | None = self._root
        for name in path:
            node = node.children.get(name)  # type: ignore[union-attr]
            if node is None:
                return None
        return node

    def get(self, path: Path | list[str] | str) -> tuple[NodeProps, Any] | None:
        """(props, payload) of the node at ``path`` (payload NO_PAYLOAD if none), or None."""
        node = self._lookup(_coerce_path(path))
        return None if node is None else (node.props(), node.payload)

    def children(self, path: Path | list[str] | str) -> list[str]:
        node = self._lookup(_coerce_path(path))
        return [] if node is None else sorted(node.children)

    def children_items(self, path: Path | list[str]) -> list[tuple[str, NodeProps, Any]]:
        """(name, props, payload) of each child of the literal ``path``, sorted by name.

        Every element is a plain name ("*" is a node called "*"): use this, not :meth:`match`, when a
        path holds user strings.
        """
        node = self._lookup(_coerce_path(tuple(path)))
        if node is None:
            return []
        children = node.children
        return [(name, children[name].props(), children[name].payload) for name in sorted(children)]

    def match(self, pattern: object) -> Iterator[tuple[Path, NodeProps, Any]]:
        """Existing nodes matching ``pattern``, sorted by path. The root never matches."""
        for path, node in self._match(compile_pattern(pattern)):
            yield path, node.props(), node.payload

    def session(self, client: str) -> tuple[int, dict[str, Any]] | None:
        """(last applied seq, its result) remembered for ``client``, or None."""
        s = self._sessions.get(client)
        return None if s is None else (s.seq, s.result)

    def _match(self, pat: Pattern) -> list[tuple[Path, _Node]]:
        # Pre-order walk with sorted children yields paths in sorted order. States are positions in
        # the pattern (an NFA), so "**" never needs backtracking and no path is yielded twice.
        elements = pat.elements
        n = len(elements)
        out: list[tuple[Path, _Node]] = []
        stack: list[tuple[Path, _Node, frozenset[int]]] = [((), self._root, _closure(elements, {0}))]
        while stack:
            path, node, states = stack.pop()
            if path and n in states:
                out.append((path, node))
            if not node.children:
                continue
            live = [s for s in states if s < n]
            if not live:
                continue
            if all(elements[s][0] == "lit" for s in live):
                # Only literal names can follow: look them up instead of scanning all children.
                names = sorted({elements[s][1] for s in live})
                candidates = [(nm, node.children[nm]) for nm in names if nm in node.children]
            else:
                candidates = sorted(node.children.items(), key=operator.itemgetter(0))
            pushed: list[tuple[Path, _Node, frozenset[int]]] = []
            for name, child in candidates:
                cpath = (*path, name)
                nxt: set[int] = set()
                for s in live:
                    e = elements[s]
                    if e is _REC:
                        nxt.add(s)
                    elif e[0] == "cond":
                        named = e[1] is None or e[1].fullmatch(name) is not None
                        if named and self._eval(e[2], cpath, child):
                            nxt.add(s + 1)
                    elif _name_step(e, name):
                        nxt.add(s + 1)
                if nxt:
                    pushed.append((cpath, child, _closure(elements, nxt)))
            stack.extend(reversed(pushed))
        return out

    def _eval(self, c: _Cond, path: Path, node: _Node | None) -> bool:
        kind = c[0]
        if kind == "at":
            return self._eval(c[2], c[1], self._lookup(c[1]))
        if kind == "exists":
            return (node is not None) is c[1]
        if kind == "hp":
            return (node is not None and node.payload is not NO_PAYLOAD) is c[1]
        if kind == "pv":
            return c[1] == 0 if node is None else node.pv == c[1]
        if kind == "peq":
            return node is not None and node.payload is not NO_PAYLOAD and _canon(node.payload) == c[1]
        if kind == "cc":
            return node is not None and _CMP[c[1]](len(node.children), c[2])
        if kind == "name":
            return bool(path) and c[1].fullmatch(path[-1]) is not None
        if kind == "not":
            return not self._eval(c[1], path, node)
        if kind == "all":
            return all(self._eval(x, path, node) for x in c[1])
        if kind == "any":
            return any(self._eval(x, path, node) for x in c[1])
        raise AssertionError(kind)

    # ------------------------------------------------------------------ apply

    def advance(self, index: int) -> None:
        """Record that log entry ``index`` was applied without a tree command (e.g. a no-op entry)."""
        self._check_index(index)
        self.applied_index = index

    def _check_index(self, index: int) -> None:
        if type(index) is not int or index <= self.applied_index:
            raise TreeError(E_INDEX, f"index {index!r} is not after the applied index {self.applied_index}")

    def apply(self, index: int, entry_data: bytes) -> tuple[dict[str, Any], list[WatchEvent]]:
        """Apply the committed entry ``index``. Never raises for any ``entry_data``.

        ``entry_data`` may be any bytes-like object (lmdb hands out memoryviews). Raises TreeError
        only if ``index`` is not after :attr:`applied_index` (a caller bug).

        Returns the result (msgpack-able) and the watch events in the order the changes happened.
        """
        self._check_index(index)
        self.applied_index = index
        try:
            client, seq, raw = _split_envelope(_unpack(entry_data))
        except TreeError as e:
            return _error(e.code, e.message, index), []
        if client is not None:
            session = self._sessions.get(client)
            if session is not None:
                if seq == session.seq:
                    return session.result, []
                if seq < session.seq:
                    message = f"seq {seq} is older than the last applied {session.seq}"
                    return _error(E_STALE, message, index), []
        try:
            cmd = _precompiled.pop(entry_data, None) if type(entry_data) is bytes else None
            if cmd is None:
                cmd = _compile_command(raw)
        except TreeError as e:
            result, events = _error(e.code, e.message, index), []
        else:
            result, events = self._run(index, cmd)
        if client is not None:
            self._remember(client, seq, result, index)
        return result, events

    def _remember(self, client: str, seq: int, result: dict[str, Any], index: int) -> None:
        sessions = self._sessions
        session = sessions.get(client)
        if session is None:
            sessions[client] = _Session(seq, result, index)
            while len(sessions) > self.max_sessions:
                evicted, _ = sessions.popitem(last=False)
                self._dirty.add((SESSION_KEY, evicted))
        else:
            session.seq, session.result, session.last_used = seq, result, index
            sessions.move_to_end(client)
        self._dirty.add((SESSION_KEY, client))

    def _run(self, index: int, cmd: _Command) -> tuple[dict[str, Any], list[WatchEvent]]:
        tx = _Txn(index)
        results: list[dict[str, Any]] = []
        try:
            succeeded = all(self._eval(c, (), None) for c in cmd.compare)
            for i, op in enumerate(cmd.then if succeeded else cmd.else_):
                try:
                    if op.cond is not None and not self._eval(op.cond, (), None):
                        raise _Abort(E_FAILED, f"'if' condition of {op.kind!r} is false")
                    results.append(_HANDLERS[op.kind](self, tx, op, i))
                except _Abort as a:
                    if a.op is None:
                        a.op = i
                    raise
            self._check_new_rules(tx)
            self._cascade(tx)
            # Encoded inside the transaction: a record that cannot be encoded fails this command here, the
            # same way on every replica, instead of failing the node's next storage write.
            encoded = {path: self._encode_node(path) for path in dict.fromkeys(tx.changed)}
        except _Abort as a:
            self._rollback(tx)
            return _error(a.code, a.message, index, a.op), []
        except (MemoryError, RecursionError):
            # Depends on the machine, not on the command: re-applying must be possible.
            self._rollback(tx)
            raise
        except Exception as e:  # a bug must not wedge the log: fail the command the same way everywhere
            self._rollback(tx)
            return _error(E_INTERNAL, f"internal error {type(e).__name__}", index), []
        self._encoded.update(encoded)
        return {"ok": True, "succeeded": succeeded, "results": results, "index": index}, tx.events

    # ------------------------------------------------------------------ mutation primitives (undoable)

    @staticmethod
    def _save(tx: _Txn, node: _Node) -> None:
        tx.undo.append((_U_ATTRS, node, node.payload, node.pv, node.clv, node.mi, node.rule, node.next_seq))

    def _attach(self, tx: _Txn, parent: _Node, ppath: Path, name: str, child: _Node) -> None:
        self._save(tx, parent)
        parent.children[name] = child
        parent.clv += 1
        if _is_seq_name(name):
            _seq_add(parent, int(name))
        tx.undo.append((_U_ATTACH, parent, name))
        tx.changed.append(ppath)

    def _detach(self, tx: _Txn, parent: _Node, ppath: Path, name: str) -> None:
        self._save(tx, parent)
        child = parent.children.pop(name)
        parent.clv += 1
        if _is_seq_name(name):
            _seq_remove(parent, int(name))
        tx.undo.append((_U_DETACH, parent, name, child))
        tx.changed.append(ppath)

    def _watch_add(self, tx: _Txn, watched: Path, owner: Path) -> None:
        owners = self._watch.get(watched)
        if owners is None:
            owners = self._watch[watched] = set()
        if owner not in owners:
            owners.add(owner)
            tx.undo.append((_U_WATCH_ADD, watched, owner))

    def _watch_del(self, tx: _Txn, watched: Path, owner: Path) -> None:
        owners = self._watch.get(watched)
        if owners is not None and owner in owners:
            owners.discard(owner)
            if not owners:
                del self._watch[watched]
            tx.undo.append((_U_WATCH_DEL, watched, owner))

    def _rollback(self, tx: _Txn) -> None:
        watch = self._watch
        for entry in reversed(tx.undo):
            kind = entry[0]
            if kind == _U_ATTRS:
                node = entry[1]
                node.payload, node.pv, node.clv, node.mi, node.rule, node.next_seq = entry[2:]
            elif kind == _U_ATTACH:
                parent, name = entry[1], entry[2]
                del parent.children[name]
                if _is_seq_name(name):
                    _seq_remove(parent, int(name))
            elif kind == _U_DETACH:
                parent, name = entry[1], entry[2]
                parent.children[name] = entry[3]
                if _is_seq_name(name):
                    _seq_add(parent, int(name))
            elif kind == _U_WATCH_ADD:
                owners = watch[entry[1]]
                owners.discard(entry[2])
                if not owners:
                    del watch[entry[1]]
            else:
                watch.setdefault(entry[1], set()).add(entry[2])
        tx.undo.clear()

    def _set_rule(self, tx: _Txn, path: Path, node: _Node, rule: _Rule | None, op_index: int) -> None:
        old = node.rule
        if old is not None:
            for watched, _ in old.items:
                self._watch_del(tx, watched, path)
        self._save(tx, node)
        node.rule = rule
        if rule is not None:
            for watched, _ in rule.items:
                self._watch_add(tx, watched, path)
            tx.new_rules.append((path, op_index))

    def _ensure(self, tx: _Txn, path: Path) -> _Node:
        """The node at ``path``, creating missing ancestors (and itself) without payload."""
        node = self._root
        for depth, name in enumerate(path):
            child = node.children.get(name)
            if child is None:
                child = _Node(NO_PAYLOAD, tx.index)
                cpath = path[: depth + 1]
                self._attach(tx, node, path[:depth], name, child)
                self._created(tx, cpath, child)
            node = child
        return node

    def _created(self, tx: _Txn, path: Path, node: _Node) -> None:
        tx.created.add(path)
        tx.changed.append(path)
        tx.events.append(WatchEvent(tx.index, "create", path, node.props(), node.payload))

    def _write(self, tx: _Txn, path: Path, node: _Node | None, payload: Any) -> tuple[_Node, bool]:
        """Create the node at ``path`` with ``payload`` or replace the payload of ``node``."""
        if node is None:
            parent = self._ensure(tx, path[:-1])
            node = _Node(payload, tx.index)
            self._attach(tx, parent, path[:-1], path[-1], node)
            self._created(tx, path, node)
            return node, True
        self._save(tx, node)
        node.payload = payload
        node.pv += 1
        node.mi = tx.index
        tx.changed.append(path)
        tx.events.append(WatchEvent(tx.index, "update", path, node.props(), payload))
        return node, False

    def _delete(self, tx: _Txn, path: Path, node: _Node, parent: _Node) -> int:
        """Delete ``node`` and its subtree; events in post-order (children first), sorted."""
        index = tx.index
        count = 0
        stack: list[tuple[Path, _Node, bool]] = [(path, node, False)]
        while stack:
            p, n, expanded = stack.pop()
            if n.children and not expanded:
                stack.append((p, n, True))
                ch = n.children
                for name in sorted(ch, reverse=True):
                    stack.append(((*p, name), ch[name], False))
                continue
            if n.rule is not None:
                for watched, _ in n.rule.items:
                    self._watch_del(tx, watched, p)
            tx.changed.append(p)
            tx.events.append(WatchEvent(index, "delete", p, n.props(), n.payload))
            count += 1
        # Descendants stay linked to the detached node, so undo only has to re-attach it.
        self._detach(tx, parent, path[:-1], path[-1])
        return count

    # ------------------------------------------------------------------ op handlers

    def _op_put(self, tx: _Txn, op: _Op, i: int) -> dict[str, Any]:
        path = op.path
        node, created = self._write(tx, path, self._lookup(path), op.payload)
        if op.rule is not _UNSET:
            self._set_rule(tx, path, node, op.rule, i)
        return {"created": created, "props": node.props().to_wire()}

    def _op_create(self, tx: _Txn, op: _Op, i: int) -> dict[str, Any]:
        if self._lookup(op.path) is not None:
            raise _Abort(E_EXISTS, f"{_short(format_path(op.path))} already exists")
        return self._op_put(tx, op, i)

    def _op_update(self, tx: _Txn, op: _Op, i: int) -> dict[str, Any]:
        node = self._lookup(op.path)
        if node is None:
            raise _Abort(E_MISSING, f"{_short(format_path(op.path))} does not exist")
        node, _ = self._write(tx, op.path, node, op.payload)
        return {"created": False, "props": node.props().to_wire()}

    def _op_cas(self, tx: _Txn, op: _Op, i: int) -> dict[str, Any]:
        node = self._lookup(op.path)
        current = 0 if node is None else node.pv
        if current != op.version:
            raise _Abort(
                E_VERSION,
                f"{_short(format_path(op.path))} has payload_version {current}, expected {op.version}",
            )
        node, created = self._write(tx, op.path, node, op.payload)
        return {"created": created, "props": node.props().to_wire()}

    def _op_delete(self, tx: _Txn, op: _Op, i: int) -> dict[str, Any]:
        path = op.path
        parent = self._lookup(path[:-1])
        node = None if parent is None else parent.children.get(path[-1])
        if node is None or parent is None:
            return {"deleted": False, "count": 0}
        return {"deleted": True, "count": self._delete(tx, path, node, parent)}

    def _op_delete_many(self, tx: _Txn, op: _Op, i: int) -> dict[str, Any]:
        assert op.pattern is not None
        count = 0
        for path, node in self._match(op.pattern):
            parent = self._lookup(path[:-1])
            # Sorted order puts ancestors first: skip nodes already removed with them.
            if parent is not None and parent.children.get(path[-1]) is node:
                count += self._delete(tx, path, node, parent)
        return {"deleted": count}

    def _op_append(self, tx: _Txn, op: _Op, i: int) -> dict[str, Any]:
        ppath = op.path
        parent = self._ensure(tx, ppath)
        seq = parent.next_seq
        while seq_name(seq) in parent.children:  # a put may have taken the name: never overwrite
            seq += 1
        if seq > MAX_SEQ:
            raise _Abort(E_SEQ, f"{_short(format_path(ppath))} has used every sequence number")
        self._save(tx, parent)
        parent.next_seq = seq + 1
        name = seq_name(seq)
        node = _Node(op.payload, tx.index)
        path = (*ppath, name)
        self._attach(tx, parent, ppath, name, node)
        self._created(tx, path, node)
        trimmed = 0
        if op.cap is not None:
            seqs = parent.seqs
            assert seqs is not None
            while len(seqs) > op.cap:
                oldest = seq_name(seqs[0])
                self._delete(tx, (*ppath, oldest), parent.children[oldest], parent)
                trimmed += 1
        return {"seq": seq, "path": list(path), "trimmed": trimmed, "props": node.props().to_wire()}

    def _op_get(self, tx: _Txn, op: _Op, i: int) -> dict[str, Any]:
        node = self._lookup(op.path)
        if node is None:
            return {"found": False}
        out: dict[str, Any] = {"found": True, "props": node.props().to_wire()}
        if node.payload is not NO_PAYLOAD:
            out["payload"] = node.payload
        return out

    def _op_get_many(self, tx: _Txn, op: _Op, i: int) -> dict[str, Any]:
        assert op.pattern is not None
        matches = self._match(op.pattern)
        truncated = op.cap is not None and len(matches) > op.cap
        if truncated:
            matches = matches[: op.cap]
        nodes = []
        for path, node in matches:
            item: dict[str, Any] = {"path": list(path), "props": node.props().to_wire()}
            if node.payload is not NO_PAYLOAD:
                item["payload"] = node.payload
            nodes.append(item)
        return {"nodes": nodes, "truncated": truncated}

    # ------------------------------------------------------------------ keep_while

    def _rule_holds(self, tx: _Txn, owner: Path, node: _Node) -> bool:
        assert node.rule is not None
        fresh = owner in tx.created  # self-conditions are not evaluated on the first insert
        for watched, cond in node.rule.items:
            if fresh and watched == owner:
                continue
            if not self._eval(cond, watched, self._lookup(watched)):
                return False
        return True

    def _check_new_rules(self, tx: _Txn) -> None:
        # A rule that is already false when set is refused (rather than deleting the node at once).
        for owner, op_index in tx.new_rules:
            node = self._lookup(owner)
            if node is not None and node.rule is not None and not self._rule_holds(tx, owner, node):
                a = _Abort(E_KEEP, f"keep_while rule of {_short(format_path(owner))} does not hold")
                a.op = op_index
                raise a

    def _cascade(self, tx: _Txn) -> None:
        """Delete nodes whose keep_while rule became false, until nothing changes."""
        if not self._watch:
            return
        pos = 0
        changed = tx.changed
        while pos < len(changed):
            batch = changed[pos:]
            pos = len(changed)
            owners: set[Path] = set()
            for path in batch:
                found = self._watch.get(path)
                if found:
                    owners.update(found)
            for owner in sorted(owners):
                parent = self._lookup(owner[:-1])
                node = None if parent is None else parent.children.get(owner[-1])
                if node is None or parent is None or node.rule is None:
                    continue
                if not self._rule_holds(tx, owner, node):
                    self._delete(tx, owner, node, parent)

    # ------------------------------------------------------------------ persistence

    def _walk(self) -> Iterator[tuple[Path, _Node]]:
        """Every node including the root, in sorted path order."""
        stack: list[tuple[Path, _Node]] = [((), self._root)]
        while stack:
            path, node = stack.pop()
            yield path, node
            ch = node.children
            for name in sorted(ch, reverse=True):
                stack.append(((*path, name), ch[name]))

    def take_dirty(self) -> list[tuple[Path, bytes | None]]:
        """Records changed since the last call, sorted by key: (path, record) or (path, None) if gone.

        Session records use the key (SESSION_KEY, client id), which no node path can equal.
        """
        out: list[tuple[Path, bytes | None]] = list(self._encoded.items())
        for key in self._dirty:
            s = self._sessions.get(key[1])
            out.append((key, None if s is None else _pack([s.seq, s.last_used, s.result])))
        out.sort(key=operator.itemgetter(0))
        self._dirty = set()
        self._encoded = {}
        return out

    def _encode_node(self, path: Path) -> bytes | None:
        node = self._lookup(path)
        return None if node is None else _pack(node.fields())

    def records(self) -> list[tuple[Path, bytes]]:
        """Every record of the current state: what from_records needs to rebuild it (snapshot install)."""
        out: list[tuple[Path, bytes]] = [(path, _pack(node.fields())) for path, node in self._walk()]
        sessions = self._sessions.items()
        out.extend(((SESSION_KEY, client), _pack([s.seq, s.last_used, s.result])) for client, s in sessions)
        return out

    @classmethod
    def from_records(
        cls,
        records: Iterable[tuple[Path, bytes]],
        applied_index: int,
        *,
        max_sessions: int = DEFAULT_MAX_SESSIONS,
    ) -> Tree:
        """Rebuild a tree from persisted records (the accumulated output of :meth:`take_dirty`)."""
        nodes: list[tuple[Path, list[Any]]] = []
        sessions: list[list[Any]] = []
        for key, data in records:
            key = tuple(key)
            try:
                fields = msgpack.unpackb(data, raw=False, strict_map_key=True, use_list=True)
            except Exception:
                raise TreeError(E_SNAPSHOT, f"record {format_path(key)} is not msgpack") from None
            if key and key[0] == SESSION_KEY:
                if len(key) != 2 or type(fields) is not list or len(fields) != 3:
                    raise TreeError(E_SNAPSHOT, "malformed session record")
                sessions.append([key[1], *fields])
            else:
                nodes.append((key, fields))
        nodes.sort(key=operator.itemgetter(0))
        return cls._build(nodes, sessions, applied_index, max_sessions)

    def dump(self) -> bytes:
        """Whole-state snapshot (nodes, sessions, applied index); canonical for equal states."""
        nodes = [[list(path), node.fields()] for path, node in self._walk()]
        sessions = sorted(
            ([c, s.seq, s.last_used, s.result] for c, s in self._sessions.items()),
            key=operator.itemgetter(0),
        )
        return _pack([SNAPSHOT_FORMAT, self.applied_index, nodes, sessions])

    @classmethod
    def load(cls, data: bytes, *, max_sessions: int = DEFAULT_MAX_SESSIONS) -> Tree:
        try:
            doc = msgpack.unpackb(data, raw=False, strict_map_key=True, use_list=True)
        except Exception:
            raise TreeError(E_SNAPSHOT, "snapshot is not msgpack") from None
        if type(doc) is not list or len(doc) != 4 or doc[0] != SNAPSHOT_FORMAT:
            raise TreeError(E_SNAPSHOT, "unknown snapshot format")
        _, applied_index, raw_nodes, sessions = doc
        if type(raw_nodes) is not list or type(sessions) is not list:
            raise TreeError(E_SNAPSHOT, "malformed snapshot")
        nodes: list[tuple[Path, list[Any]]] = []
        for item in raw_nodes:
            if type(item) is not list or len(item) != 2 or type(item[0]) is not list:
                raise TreeError(E_SNAPSHOT, "malformed node entry")
            nodes.append((tuple(item[0]), item[1]))
        return cls._build(nodes, sessions, applied_index, max_sessions)

    @classmethod
    def _build(
        cls,
        nodes: list[tuple[Path, Any]],
        sessions: list[Any],
        applied_index: object,
        max_sessions: int,
    ) -> Tree:
        # ``nodes`` must be sorted by path, so every parent precedes its children.
        if type(applied_index) is not int or applied_index < 0:
            raise TreeError(E_SNAPSHOT, "applied_index must be a non-negative integer")
        tree = cls(max_sessions=max_sessions)
        tree.applied_index = applied_index
        for path, fields in nodes:
            try:
                node = _node_from_fields(fields)
                for name in path:
                    _check_name(name)
            except (TreeError, TypeError, ValueError) as e:
                raise TreeError(E_SNAPSHOT, f"bad record for {format_path(path)}: {e}") from None
            if not path:
                node.children = tree._root.children
                tree._root = node
                continue
            parent = tree._lookup(path[:-1])
            if parent is None:
                raise TreeError(E_SNAPSHOT, f"record {format_path(path)} has no parent record")
            if path[-1] in parent.children:
                raise TreeError(E_SNAPSHOT, f"duplicate record {format_path(path)}")
            parent.children[path[-1]] = node
            if _is_seq_name(path[-1]):
                _seq_add(parent, int(path[-1]))
            if node.rule is not None:
                for watched, _ in node.rule.items:
                    tree._watch.setdefault(watched, set()).add(path)
        rows = []
        for item in sessions:
            if (
                type(item) is not list
                or len(item) != 4
                or type(item[0]) is not str
                or type(item[1]) is not int
                or type(item[2]) is not int
                or type(item[3]) is not dict
            ):
                raise TreeError(E_SNAPSHOT, "malformed session")
            rows.append(item)
        rows.sort(key=lambda r: (r[2], r[0]))  # least recently used first
        for client, seq, last_used, result in rows:
            tree._sessions[client] = _Session(seq, result, last_used)
        return tree

    def state_hash(self) -> str:
        """SHA-256 of :meth:`dump`: equal for replicas in the same state."""
        return hashlib.sha256(self.dump()).hexdigest()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Tree):
            return NotImplemented
        return self.dump() == other.dump()

    __hash__ = None  # type: ignore[assignment]  # mutable


def _node_from_fields(fields: object) -> _Node:
    if type(fields) is not list or len(fields) != 8:
        raise TreeError(E_SNAPSHOT, "node record must have 8 fields")
    pv, clv, ci, mi, has, payload, next_seq, rule = fields
    for v in (pv, clv, ci, mi, next_seq):
        if type(v) is not int or v < 0:
            raise TreeError(E_SNAPSHOT, "node counters must be non-negative integers")
    if type(has) is not bool:
        raise TreeError(E_SNAPSHOT, "has_payload must be a boolean")
    node = _Node(payload if has else NO_PAYLOAD, ci)
    node.pv, node.clv, node.mi, node.next_seq = pv, clv, mi, next_seq
    if rule is not None:
        node.rule = _compile_rule(rule)
    return node


_Handler: TypeAlias = Callable[[Tree, _Txn, _Op, int], dict[str, Any]]
_HANDLERS: Final[dict[str, _Handler]] = {
    "put": Tree._op_put,
    "create": Tree._op_create,
    "update": Tree._op_update,
    "cas": Tree._op_cas,
    "delete": Tree._op_delete,
    "delete_many": Tree._op_delete_many,
    "append": Tree._op_append,
    "get": Tree._op_get,
    "get_many": Tree._op_get_many,
}
