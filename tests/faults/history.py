"""``History``: every operation of one or more KV clients (``tools.kvclient``), for ``lincheck``.

Invoke and complete times come from ``time.monotonic()``; writes of unknown outcome get ``complete=None``.
Reads that fail are left out (they have no effect); so are writes that certainly did not apply.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lincheck import CAS, DELETE, MISSING, READ, WRITE, Op

from tools import kvclient

# The client reports the kinds the checker knows.
assert (kvclient.READ, kvclient.WRITE, kvclient.CAS, kvclient.DELETE) == (READ, WRITE, CAS, DELETE)


@dataclass
class Pending:
    process: Any
    kind: str
    key: str
    invoke: float
    value: Any = None
    expect: Any = None
    complete: float | None = None
    result: Any = None
    observed: Any = MISSING
    status: str = "pending"  # pending | ok | unknown | failed


@dataclass
class History:
    """Operations of every client, in invoke order, for the linearizability check."""

    entries: list[Pending] = field(default_factory=list)
    clock: Callable[[], float] = time.monotonic

    def invoke(self, process: Any, kind: str, key: str, value: Any = None, expect: Any = None) -> Pending:
        entry = Pending(process, kind, key, self.clock(), value=value, expect=expect)
        self.entries.append(entry)
        return entry

    def ok(self, entry: Pending, result: Any = None, observed: Any = MISSING) -> None:
        entry.complete = self.clock()
        entry.result = result
        entry.observed = observed
        entry.status = "ok"

    def unknown(self, entry: Pending) -> None:
        entry.status = "unknown"

    def fail(self, entry: Pending) -> None:
        entry.status = "failed"

    def ops(self) -> list[Op]:
        """The history as ``lincheck`` ops. Still-pending operations count as of unknown outcome."""
        out = []
        for e in self.entries:
            if e.status == "failed":
                continue
            if e.status != "ok" and e.kind == READ:
                continue
            complete = e.complete if e.status == "ok" else None
            result = e.result if e.status == "ok" else None
            out.append(
                Op(
                    e.process,
                    e.kind,
                    e.key,
                    e.invoke,
                    complete,
                    value=e.value,
                    expect=e.expect,
                    result=result,
                    observed=e.observed,
                )
            )
        return out

    def acknowledged_writes(self) -> list[Pending]:
        """Writes (put, delete, successful cas) the cluster acknowledged."""
        return [
            e
            for e in self.entries
            if e.status == "ok" and (e.kind in (WRITE, DELETE) or (e.kind == CAS and e.result is True))
        ]

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for e in self.entries:
            name = f"{e.kind}:{e.status}"
            counts[name] = counts.get(name, 0) + 1
        return dict(sorted(counts.items()))
