"""Conditions on nodes and path patterns (names, "*", "**", regexes, conditions), compiled once."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable
from typing import Any, Final, TypeAlias

from .errors import E_COND, E_DEEP, E_PATTERN, E_REGEX, TreeError, _short
from .paths import MAX_PATH_LEN, _check_name, _coerce_path, parse_path
from .payloads import _MAX_I63, MAX_DEPTH, _canon, _check_payload

MAX_REGEX_LEN: Final = 256


# --------------------------------------------------------------------------- conditions
#
# Compiled conditions are tuples, evaluated against (path, node-or-None):
#   ("at", path, c)       evaluate c on the node at an absolute path (compare / "if" conditions)
#   ("exists", bool) ("hp", bool) ("pv", n) ("ci", n) ("peq", canon_bytes) ("cc", op, n) ("name", regex)
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
    if key == "created_index":
        return ("ci", _check_count(arg, "created_index"))
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
    if key == "created_index":
        a = _pair(arg, 2, key, "[path, n]")
        return ("at", _coerce_path(a[0]), ("ci", _check_count(a[1], "created_index")))
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
