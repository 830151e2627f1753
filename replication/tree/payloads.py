"""Payloads: which msgpack values a node may hold, and their canonical bytes for comparison."""

from __future__ import annotations

import enum
from typing import Any, Final

import msgpack

from .errors import E_DEEP, E_PAYLOAD, TreeError

MAX_DEPTH: Final = 32  # nesting of conditions and of payload containers
_MAX_U64: Final = 2**64
_MIN_I64: Final = -(2**63)
_MAX_I63: Final = 2**63


class _Sentinel(enum.Enum):
    NO_PAYLOAD = "NO_PAYLOAD"

    def __repr__(self) -> str:
        return "NO_PAYLOAD"


# A node without payload; distinct from a node whose payload is None.
NO_PAYLOAD: Final = _Sentinel.NO_PAYLOAD


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
