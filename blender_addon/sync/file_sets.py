"""Files behind a datablock that Blender cannot pack (a movie clip, an Alembic or USD cache file): read to
travel inside its value, and written on the receiving side into a folder named by their content, which
Blender then loads from.

A sequence is every file in the folder whose name differs from the first file's in its frame number only.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile

_FRAME_NUMBER = re.compile(r"^(.*?)(\d+)(\D*)$")

Content = list[list[object]]  # [[file name, bytes], ...] in name order


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


def read(files: list[str]) -> Content:
    out: Content = []
    for path in files:
        with open(path, "rb") as fh:
            out.append([os.path.basename(path), fh.read()])
    return out


def digest(content: Content) -> str:
    hashed = hashlib.sha256()
    for name, data in content:
        hashed.update(str(name).encode() + b"\0" + hashlib.sha256(data).digest())  # type: ignore[arg-type]
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
