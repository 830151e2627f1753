"""``blendsync serve`` that also counts the logical bytes its storage writes (for ``tools.bench storage``).

Run as ``python tools/bench/counting_server.py COUNTER_FILE serve ...`` with the checkout under test first
on PYTHONPATH. It wraps the lmdb environment of ``replication.lmdb_store.Storage`` so every ``put`` that
stores something (key + value bytes; a ``put(overwrite=False)`` that finds the key stores nothing) and every
``putmulti`` is counted, whatever that checkout's storage code does with them, and writes the running total
to COUNTER_FILE (on tmpfs: it adds nothing to the process's ``write_bytes``) after each write transaction,
as JSON: ``{"total": bytes, "by": {where: bytes}, "commits": write transactions}``, where is the
sub-database, and for the tree the shape of the record's path (``/blobs/*/refs/n:*``: hashes, names and
holders' ids as ``*``).
"""

from __future__ import annotations

import json
import os
import re
import runpy
import struct
import sys
from typing import Any

import msgpack

COUNTER = sys.argv.pop(1)
_total = 0
_commits = 0  # write transactions ended (each an lmdb commit, fsync'd)
_by: dict[str, int] = {}
_names: dict[int, str] = {}  # id of an lmdb sub-database handle -> its name
_WORD = re.compile(r"[a-z_]{1,12}")


def _shape(value: bytes) -> str:
    """The shape of a tree record's path (a tree value starts with the path's length and its msgpack)."""
    try:
        (size,) = struct.unpack_from(">I", value)
        path = msgpack.unpackb(value[4 : 4 + size], raw=False)
    except (struct.error, ValueError, TypeError, msgpack.UnpackException):
        return "tree"
    parts = []
    for segment in path if isinstance(path, list) else ():
        text = str(segment)
        holder = re.match(r"[a-z]:", text)
        parts.append(text if _WORD.fullmatch(text) else holder.group(0) + "*" if holder else "*")
    return "tree /" + "/".join(parts)


def _note(size: int, db: Any = None, value: bytes = b"") -> None:
    global _total
    _total += size
    where = _names.get(id(db), "main")
    if where == "tree":
        where = _shape(value)
    _by[where] = _by.get(where, 0) + size


class _Cursor:
    def __init__(self, cursor: Any, db: Any):
        self._cursor = cursor
        self._db = db

    def putmulti(self, items, *args: Any, **kwargs: Any):
        items = list(items)
        for k, v in items:
            _note(len(k) + len(v), self._db, v)
        return self._cursor.putmulti(items, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)

    def __iter__(self):
        return iter(self._cursor)


class _Txn:
    def __init__(self, txn: Any, write: bool):
        self._txn = txn
        self._write = write

    def put(self, key: bytes, value: bytes, *args: Any, **kwargs: Any) -> bool:
        stored = self._txn.put(key, value, *args, **kwargs)
        if stored:
            _note(len(key) + len(value), kwargs.get("db"), value)
        return stored

    def cursor(self, *args: Any, **kwargs: Any) -> _Cursor:
        return _Cursor(self._txn.cursor(*args, **kwargs), kwargs.get("db", args[0] if args else None))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._txn, name)

    def __enter__(self) -> _Txn:
        self._txn.__enter__()
        return self

    def __exit__(self, *exc: Any) -> Any:
        global _commits
        result = self._txn.__exit__(*exc)
        if self._write:
            _commits += 1
            with open(COUNTER, "w") as out:
                json.dump({"total": _total, "by": _by, "commits": _commits}, out)
        return result


class _Env:
    def __init__(self, env: Any):
        self._env = env

    def open_db(self, key: bytes | None = None, *args: Any, **kwargs: Any) -> Any:
        db = self._env.open_db(key, *args, **kwargs)
        _names[id(db)] = (key or b"main").decode()
        return db

    def begin(self, *args: Any, **kwargs: Any) -> _Txn:
        return _Txn(self._env.begin(*args, **kwargs), bool(kwargs.get("write")))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._env, name)


def main() -> None:
    import lmdb

    from replication import lmdb_store

    opened = lmdb.open
    lmdb_store.lmdb = type("_lmdb", (), {"open": staticmethod(lambda *a, **k: _Env(opened(*a, **k)))})
    for name in dir(lmdb):
        if not hasattr(lmdb_store.lmdb, name):
            setattr(lmdb_store.lmdb, name, getattr(lmdb, name))
    with open(COUNTER, "w") as out:
        json.dump({"total": 0, "by": {}, "commits": 0}, out)
    sys.argv = ["broadcaster.cli", *sys.argv[1:]]
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    runpy.run_module("broadcaster.cli", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
