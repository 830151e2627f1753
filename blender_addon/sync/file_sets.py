"""Files behind a datablock that Blender cannot pack (a movie clip, an Alembic or USD cache file): read to
travel inside its value, and written on the receiving side into a folder named by their content, which
Blender then loads from. Libraries and .vdb volumes read their single file through :func:`read_file`.

A sequence is every file in the folder whose name differs from the first file's in its frame number only.

Reading is cached: a datablock is read again whenever anything of it changes (a clip's tracking data, a
cache file's settings), and reading and hashing its files every time would cost the main thread tens of
milliseconds per edit for tens of megabytes, a second for hundreds. A file whose size and modification
time are unchanged is not read again, its bytes keep their hash, and their chunks keep theirs (chunks.pin).
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections import OrderedDict

from . import chunks

_FRAME_NUMBER = re.compile(r"^(.*?)(\d+)(\D*)$")

Content = list[list[object]]  # [[file name, bytes], ...] in name order
MAX_BYTES = 512 * 1024 * 1024  # the most one datablock's files may hold to travel (in chunks)
CACHE_BYTES = MAX_BYTES  # file contents kept between reads, at most (least recently read go first)
_read: OrderedDict[str, tuple[tuple[int, int], bytes]] = OrderedDict()  # path -> ((size, mtime), bytes)
_hashes: dict[int, bytes] = {}  # id() of bytes held in _read -> their SHA-256 (a live object's id is its own)


def files_behind(path: str, sequence: bool) -> list[str] | None:
    """The files at ``path`` (an absolute path; every frame's file for a sequence), if they exist."""
    if not path or not os.path.isfile(path):
        return None
    if not sequence:
        return [path]
    folder, base = os.path.split(path)
    match = _FRAME_NUMBER.match(base)
    if match is None:
        return [path]
    head, digits, tail = match.groups()
    pattern = re.compile(re.escape(head) + r"\d{" + str(len(digits)) + "}" + re.escape(tail) + "$")
    return sorted(os.path.join(folder, f) for f in os.listdir(folder) if pattern.match(f))


def total_bytes(files: list[str]) -> int:
    return sum(os.path.getsize(f) for f in files)


def read_file(path: str) -> bytes:
    """One file's bytes (the same bytes object while the file is unchanged and cached)."""
    stat = os.stat(path)
    signature = (stat.st_size, stat.st_mtime_ns)
    cached = _read.get(path)
    if cached is not None and cached[0] == signature:
        _read.move_to_end(path)
        return cached[1]
    with open(path, "rb") as fh:
        data = fh.read()
    if cached is not None:
        _forget(path)
    if len(data) <= CACHE_BYTES:
        _read[path] = (signature, data)
        chunks.pin(data)  # split again, its chunks keep their hashes
        while sum(len(entry[1]) for entry in _read.values()) > CACHE_BYTES:
            _forget(next(iter(_read)))
    return data


def clear() -> None:
    """Forget every file read (the next read of each reads it again)."""
    for path in list(_read):
        _forget(path)


def _forget(path: str) -> None:
    _signature, data = _read.pop(path)
    _hashes.pop(id(data), None)
    chunks.unpin(data)


def read(files: list[str]) -> Content:
    return [[os.path.basename(path), read_file(path)] for path in files]


def _sha256(data: bytes) -> bytes:
    known = _hashes.get(id(data))
    if known is not None:
        return known
    hashed = hashlib.sha256(data).digest()
    if any(entry[1] is data for entry in _read.values()):
        _hashes[id(data)] = hashed
    return hashed


def sha256_hex(data: bytes) -> str:
    """``data``'s SHA-256 (kept with the bytes of a cached file)."""
    return _sha256(data).hex()


def digest(content: Content) -> str:
    hashed = hashlib.sha256()
    for name, data in content:
        hashed.update(str(name).encode() + b"\0" + _sha256(data))  # type: ignore[arg-type]
    return hashed.hexdigest()


def folder(kind: str, content_digest: str) -> str:
    """Where received files of that content are kept: ``<temp>/blendsync-<kind>/<digest>``."""
    return os.path.join(tempfile.gettempdir(), f"blendsync-{kind}", content_digest)


def store(kind: str, content: Content) -> str:
    """Write ``content`` into its folder (a file already there whole is kept); returns the folder."""
    where = folder(kind, digest(content))
    os.makedirs(where, exist_ok=True)
    for name, data in content:
        path = os.path.join(where, os.path.basename(str(name)))
        if not os.path.isfile(path) or os.path.getsize(path) != len(data):  # type: ignore[arg-type]
            fd, tmp = tempfile.mkstemp(dir=where)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)  # type: ignore[arg-type]
            os.replace(tmp, path)
    return where
