"""``blendsync serve`` that also counts the logical bytes its storage writes (for ``tools.bench storage``).

Run as ``python tools/bench/counting_server.py COUNTER_FILE serve ...`` with the checkout under test first
on PYTHONPATH. It wraps the lmdb environment of ``replication.lmdb_store.Storage`` so every ``put`` that
stores something (key + value bytes; a ``put(overwrite=False)`` that finds the key stores nothing) and every
``putmulti`` is counted, whatever that checkout's storage code does with them, and writes the running total
to COUNTER_FILE (on tmpfs: it adds nothing to the process's ``write_bytes``) after each write transaction.
"""

from __future__ import annotations

import os
import runpy
import sys
from typing import Any

COUNTER = sys.argv.pop(1)
_total = 0


def _note(size: int) -> None:
    global _total
    _total += size


class _Cursor:
    def __init__(self, cursor: Any):
        self._cursor = cursor

    def putmulti(self, items, *args: Any, **kwargs: Any):
        items = list(items)
        _note(sum(len(k) + len(v) for k, v in items))
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
            _note(len(key) + len(value))
        return stored

    def cursor(self, *args: Any, **kwargs: Any) -> _Cursor:
        return _Cursor(self._txn.cursor(*args, **kwargs))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._txn, name)

    def __enter__(self) -> _Txn:
        self._txn.__enter__()
        return self

    def __exit__(self, *exc: Any) -> Any:
        result = self._txn.__exit__(*exc)
        if self._write:
            with open(COUNTER, "w") as out:
                out.write(str(_total))
        return result


class _Env:
    def __init__(self, env: Any):
        self._env = env

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
        out.write("0")
    sys.argv = ["broadcaster.cli", *sys.argv[1:]]
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    runpy.run_module("broadcaster.cli", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
