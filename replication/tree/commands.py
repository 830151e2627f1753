"""Commands (compare / then / else transactions of ops) and the envelope that carries them in the log."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Final

import msgpack

from .errors import E_COMMAND, E_COND, E_ENVELOPE, E_OP, E_PATH, TreeError, _short
from .paths import TreePath, _check_name, _coerce_path, coerce_held_path, format_path
from .patterns import Pattern, _compile_cond, _compile_node_cond, _Cond, compile_pattern
from .payloads import _MAX_I63, NO_PAYLOAD, _check_payload

MAX_RULE_PATHS: Final = 32
MAX_HOLDS: Final = 1024  # paths one node may hold (a blob tree's node holds its children: 32 at most)


# --------------------------------------------------------------------------- commands


class _Rule:
    """A keep_while rule: the owner lives while every (watched path, condition) holds."""

    __slots__ = ("items", "wire")

    def __init__(self, items: tuple[tuple[TreePath, _Cond], ...], wire: list[list[Any]]) -> None:
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
    compiled: dict[TreePath, tuple[_Cond, Any]] = {}
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
    __slots__ = (
        "adds_holds",
        "cap",
        "cond",
        "holds",
        "kind",
        "path",
        "pattern",
        "payload",
        "rule",
        "seq_of",
        "version",
    )

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.path: TreePath = ()
        self.pattern: Pattern | None = None
        self.payload: Any = NO_PAYLOAD
        self.rule: Any = _UNSET
        self.version = 0
        self.cap: int | None = None  # also the get_many limit
        self.cond: _Cond | None = None
        self.seq_of: TreePath | None = None  # put: the payload list starts with this parent's next number
        self.holds: tuple[TreePath, ...] | None = None  # put/create: the paths it holds (None: keep them)
        self.adds_holds = False  # "add_holds": the paths are held besides those held already


_OP_KEYS: Final[dict[str, tuple[frozenset[str], frozenset[str]]]] = {
    "put": (
        frozenset({"op", "path"}),
        frozenset({"payload", "keep_while", "seq_of", "holds", "add_holds", "if"}),
    ),
    "create": (frozenset({"op", "path"}), frozenset({"payload", "keep_while", "holds", "add_holds", "if"})),
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
    if "seq_of" in raw:
        if type(op.payload) is not list:
            raise TreeError(E_COMMAND, "a put with seq_of needs a list payload")
        op.seq_of = _coerce_path(raw["seq_of"])
    if "keep_while" in raw:
        op.rule = _compile_rule(raw["keep_while"])
    if "holds" in raw and "add_holds" in raw:
        raise TreeError(E_COMMAND, "an op takes 'holds' or 'add_holds', not both")
    if "holds" in raw:
        op.holds = compile_holds(raw["holds"], op.path)
    if "add_holds" in raw:
        op.holds, op.adds_holds = compile_holds(raw["add_holds"], op.path), True
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


def compile_holds(value: object, owner: TreePath) -> tuple[TreePath, ...]:
    """The paths a node holds: sorted, each once, at most :data:`MAX_HOLDS`, never the node itself (it would
    keep itself). A path's element may be bytes: the name that is their lowercase hex."""
    if type(value) is not list and type(value) is not tuple:
        raise TreeError(E_COMMAND, "holds must be a list of paths")
    if len(value) > MAX_HOLDS:
        raise TreeError(E_COMMAND, f"holds names more than {MAX_HOLDS} paths")
    paths = sorted({coerce_held_path(p) for p in value})
    if len(paths) != len(value):
        raise TreeError(E_COMMAND, "holds names a path twice")
    if owner in paths or () in paths:
        raise TreeError(E_COMMAND, "a node cannot hold itself or the root")
    return tuple(paths)


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
