"""Paths: element rules, the ``/a/b`` display form and its escapes, sequential child names."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final, TypeAlias

from .errors import E_PATH, TreeError, _short

# A path in the tree: its element names from the root; () is the root.
TreePath: TypeAlias = tuple[str, ...]

MAX_NAME_BYTES: Final = 1024
MAX_PATH_LEN: Final = 64  # bounds key size and traversal cost
SEQ_DIGITS: Final = 20
MAX_SEQ: Final = 10**SEQ_DIGITS - 1


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


def parse_path(text: str) -> TreePath:
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


def _coerce_path(value: object) -> TreePath:
    if type(value) is str:
        return parse_path(value)
    if type(value) is list or type(value) is tuple:
        if len(value) > MAX_PATH_LEN:
            raise TreeError(E_PATH, f"path has more than {MAX_PATH_LEN} elements")
        for e in value:
            _check_name(e)
        return tuple(value)
    raise TreeError(E_PATH, f"path must be a list of strings or a '/a/b' string, not {type(value).__name__}")


def coerce_held_path(value: object) -> TreePath:
    """A path in ``holds``: as any path, except that an element may be bytes, naming the node whose name
    is their lowercase hex (a blob's hash: half the bytes of its name in the command and the record)."""
    if (type(value) is list or type(value) is tuple) and len(value) <= MAX_PATH_LEN:
        value = [e.hex() if type(e) is bytes else e for e in value]
    return _coerce_path(value)


def compact_name(name: str) -> str | bytes:
    """``name`` as a held path's element in a record: its bytes when it is lowercase hex (an even count of
    digits), which :func:`coerce_held_path` reads back as the same name; any other name as it is."""
    if not name or len(name) % 2:
        return name
    try:
        raw = bytes.fromhex(name)
    except ValueError:
        return name
    return raw if raw.hex() == name else name  # fromhex also takes capitals and spaces


def seq_name(seq: int) -> str:
    """Name of the sequential child number ``seq`` (zero-padded so name order == numeric order)."""
    return f"{seq:0{SEQ_DIGITS}d}"


def _is_seq_name(name: str) -> bool:
    return len(name) == SEQ_DIGITS and name.isascii() and name.isdigit()
