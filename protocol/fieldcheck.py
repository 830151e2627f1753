"""Declared field types, compiled once into predicates that run on every decode.

``compile_check(tp)`` turns a type such as ``Annotated[int, OP_ID] | None`` into a fast yes/no predicate: a
few comparisons per field, nothing allocated. Only when it says no does ``explain(tp, value)`` work out why,
for the error message.
"""

from __future__ import annotations

import functools
import types
import typing
from collections.abc import Callable
from typing import Annotated, Any, get_args, get_origin

from .limits import FloatRange, IntRange, Length, Rule, Text, join_reason, text_predicate

Check = Callable[[Any], bool]


def _split(tp: Any) -> tuple[Any, tuple[Any, ...]]:
    """``Annotated[T, m1, m2]`` -> (T, (m1, m2)); any other type -> (tp, ())."""
    if get_origin(tp) is Annotated:
        base, *markers = get_args(tp)
        return base, tuple(markers)
    return tp, ()


def _marker_check(marker: Any) -> Check:
    """The marker's own rule, for a value already of the right type."""
    if isinstance(marker, IntRange | FloatRange):
        low, high = marker.low, marker.high
        return lambda value: low <= value <= high
    if isinstance(marker, Length):
        low, high = marker.low, marker.high
        return lambda value: low <= len(value) <= high
    if isinstance(marker, Text):
        return text_predicate(marker)
    if isinstance(marker, Rule):
        reason = marker.reason
        return lambda value: reason(value) is None
    raise TypeError(f"unsupported marker {marker!r}")


def _both(first: Check, second: Check) -> Check:
    return lambda value: first(value) and second(value)


def _annotated_check(base: Any, markers: tuple[Any, ...]) -> Check:
    """The type and its markers, cheapest first: the container's own type, a list's length, its items, then
    the rest (so a list far too long is refused without looking at its items). Plain nested calls, no
    generators: this runs for every field of every message."""
    if len(markers) == 1 and base in (int, float, str):
        (marker,) = markers
        if base is int and isinstance(marker, IntRange):
            low, high = marker.low, marker.high
            return lambda value: type(value) is int and low <= value <= high
        if base is float and isinstance(marker, FloatRange):
            low, high = marker.low, marker.high
            return lambda value: (type(value) is float or type(value) is int) and low <= value <= high
        if base is str and isinstance(marker, Text):
            text = text_predicate(marker)
            return lambda value: type(value) is str and text(value)
    origin = get_origin(base)
    container = {list: list, dict: dict}.get(origin)
    first = [_marker_check(m) for m in markers if isinstance(m, Length)]
    rest = [_marker_check(m) for m in markers if not isinstance(m, Length)]
    if container is None:
        checks = [compile_check(base), *first, *rest]
    else:
        checks = [lambda value: type(value) is container, *first, compile_check(base), *rest]
    return functools.reduce(_both, checks)


def _text_list_check(text: Check) -> Check:
    """A list of names (keys, a selection): one loop, no call per item beyond the name's own check."""

    def check(value: Any) -> bool:
        if type(value) is not list:
            return False
        for item in value:  # noqa: SIM110 - a plain loop: no generator frame per item
            if type(item) is not str or not text(item):
                return False
        return True

    return check


def compile_check(tp: Any) -> Check:
    """A fast predicate for one declared field type (built once per field, used on every decode)."""
    base, markers = _split(tp)
    if markers:
        return _annotated_check(base, markers)
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
        options = [compile_check(arg) for arg in get_args(tp)]
        if len(options) == 2 and type(None) in get_args(tp):
            (other,) = [compile_check(arg) for arg in get_args(tp) if arg is not type(None)]
            return lambda value: value is None or other(value)
        return lambda value: any(check(value) for check in options)
    if origin is list:
        (item_tp,) = get_args(tp)
        if item_tp is Any:
            return lambda value: type(value) is list
        item_base, item_markers = _split(item_tp)
        if item_base is str and len(item_markers) == 1 and isinstance(item_markers[0], Text):
            return _text_list_check(text_predicate(item_markers[0]))
        item = compile_check(item_tp)
        return lambda value: type(value) is list and all(map(item, value))
    if origin is dict:
        key_tp, val_tp = get_args(tp)
        key, val = compile_check(key_tp), compile_check(val_tp)
        return lambda value: type(value) is dict and all(key(k) and val(v) for k, v in value.items())
    raise TypeError(f"unsupported field type {tp!r}")


def type_name(tp: Any) -> str:
    base, _ = _split(tp)
    origin = get_origin(base)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(arg) for arg in get_args(base))
    if origin is list:
        return f"list[{type_name(get_args(base)[0])}]"
    if origin is dict:
        key_tp, val_tp = get_args(base)
        return f"dict[{type_name(key_tp)}, {type_name(val_tp)}]"
    if base is type(None):
        return "None"
    return getattr(base, "__name__", None) or str(base).replace("typing.", "")


def _marker_reason(marker: Any, value: Any) -> str | None:
    if isinstance(marker, Text):
        return marker.problem(value)
    if isinstance(marker, Rule):
        return marker.reason(value)
    if _marker_check(marker)(value):
        return None
    if isinstance(marker, Length):
        return f"must have {marker.describe()}; it has {len(value)}"
    return f"must be {marker.describe()}"


def explain(tp: Any, value: Any) -> str:
    """Why ``value`` does not fit ``tp``: a reason such as "must be 1 to 9223372036854775807" or
    "[3] must be str, got int", to follow the field's name. Only called when the predicate said no."""
    base, markers = _split(tp)
    origin = get_origin(base)
    if origin in (typing.Union, types.UnionType):
        # Explain against the option of the value's own type, if there is one.
        options = [arg for arg in get_args(base) if arg is not type(None)]
        for option in options:
            if compile_check(_split(option)[0])(value):
                return explain(option, value)
        return f"must be {type_name(base)}, got {type(value).__name__}"
    if not compile_check(base)(value) and origin not in (list, dict):
        return f"must be {type_name(base)}, got {type(value).__name__}"
    if origin is list:
        if type(value) is not list:
            return f"must be {type_name(base)}, got {type(value).__name__}"
        for marker in markers:  # a length first: checking 10^6 items of a list that is too long is waste
            if isinstance(marker, Length) and (reason := _marker_reason(marker, value)) is not None:
                return reason
        (item_tp,) = get_args(base)
        item_check = compile_check(item_tp)
        for i, item in enumerate(value):
            if not item_check(item):
                return f"[{i}]{join_reason(explain(item_tp, item))}"
    if origin is dict:
        if type(value) is not dict:
            return f"must be {type_name(base)}, got {type(value).__name__}"
        key_tp, val_tp = get_args(base)
        key_check, val_check = compile_check(key_tp), compile_check(val_tp)
        for k, v in value.items():
            if not key_check(k):
                return f"has a key that {explain(key_tp, k)}"
            if not val_check(v):
                return f"[{k!r}]{join_reason(explain(val_tp, v))}"
    for marker in markers:
        if (reason := _marker_reason(marker, value)) is not None:
            return reason
    return f"must be {type_name(tp)}"
