"""A linearizability checker for histories of per-key registers.

The model is one register per key, starting empty (``None``). Operations:

* ``write(v)``  sets the register (``delete`` is a write of ``None``);
* ``read() -> v`` returns the current value;
* ``cas(expect, new) -> ok``  swaps when the current value equals ``expect``. A failed cas may carry
  the value it saw (``observed``), which then makes it a read as well.

Each operation has an invoke time and a complete time. ``complete=None`` means the outcome is unknown
(the client timed out or lost its connection): the operation may have taken effect at any point after
it was invoked, or never.

Linearizability is compositional, so every key is checked on its own. The search is the one of Wing
and Gong with Lowe's memoization: walk the time-ordered list of call and return events, try to
linearize each call that is currently pending, undo on reaching a return whose operation has not been
linearized, and never explore the same (set of linearized operations, register value) twice.

Before the search, operations of unknown outcome are simplified:

* an unknown read is dropped (it has no effect);
* an unknown write or cas whose new value nobody observes is dropped: whether it happened or not,
  no other operation can tell;
* an unknown write or cas whose new value is unique and observed must have happened before the
  earliest observer returned, so it gets that completion time (and an unknown cas is then known to
  have succeeded).

The last two rules need every failed cas to carry ``observed``; otherwise they are skipped for that key.
Operations of unknown outcome that remain and have the same effect (several deletes, say) are
interchangeable, so the search only ever tries the earliest-invoked one not yet placed.

On a violation the checker shrinks the key's history to a small sub-history that is still not
linearizable. It only removes operations that cannot be what makes a history linearizable: a read-only
operation, or a write whose new value no remaining operation observes. Removing either keeps a
linearizable history linearizable, so a shrunk history that is not linearizable proves that the full
one is not either, and its few operations are the explanation.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

READ = "read"
WRITE = "write"
CAS = "cas"
DELETE = "delete"
KINDS = (READ, WRITE, CAS, DELETE)


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


@dataclass(frozen=True)
class Op:
    """One client operation on one key.

    ``value``: the value written (write) or swapped in (cas). ``expect``: the cas expectation.
    ``result``: the value read (read) or whether the swap happened (cas); for a cas of unknown outcome
    it is ignored. ``observed``: the current value a failed cas reported, if any. ``complete=None``
    (or ``math.inf``): unknown outcome.
    """

    process: Hashable
    kind: str
    key: Hashable
    invoke: float
    complete: float | None
    value: Any = None
    expect: Any = None
    result: Any = None
    observed: Any = MISSING

    def __post_init__(self) -> None:
        if self.complete is not None and math.isinf(self.complete):
            object.__setattr__(self, "complete", None)
        if self.kind not in KINDS:
            raise ValueError(f"unknown op kind {self.kind!r}")
        if self.complete is not None and self.complete < self.invoke:
            raise ValueError(f"op completes before it is invoked: {self!r}")

    @property
    def unknown(self) -> bool:
        return self.complete is None

    @property
    def new_value(self) -> Any:
        """The value this op leaves in the register when it takes effect (writes and cas)."""
        return None if self.kind == DELETE else self.value

    @property
    def mutates(self) -> bool:
        return self.kind in (WRITE, DELETE) or (self.kind == CAS and (self.unknown or bool(self.result)))

    def describe(self) -> str:
        end = "?" if self.complete is None else f"{self.complete:.6f}"
        if self.kind == READ:
            what = f"read() -> {_short(self.result)}"
        elif self.kind == WRITE:
            what = f"write({_short(self.value)})"
        elif self.kind == DELETE:
            what = "delete()"
        else:
            outcome = "?" if self.unknown else self.result
            seen = "" if self.observed is MISSING else f", saw {_short(self.observed)}"
            what = f"cas({_short(self.expect)} -> {_short(self.value)}) -> {outcome}{seen}"
        if self.unknown and self.kind != CAS:
            what += " (outcome unknown)"
        return f"[p={self.process} {self.invoke:.6f}..{end}] {what}"


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 15]}...<{len(text)} chars>"


@dataclass
class CheckResult:
    ok: bool
    keys: int = 0
    ops: int = 0
    key: Hashable | None = None
    explanation: str = ""
    witness: list[Op] = field(default_factory=list)
    seconds: float = 0.0

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        if self.ok:
            return f"linearizable ({self.ops} ops on {self.keys} keys, {self.seconds:.2f} s)"
        return f"NOT linearizable on key {self.key!r}:\n{self.explanation}"


class SearchBudgetExceeded(Exception):
    """The search visited more states than allowed; the answer is unknown."""


# ---------------------------------------------------------------------------------------------------
# The model


def _step(state: Any, op: Op) -> tuple[bool, Any]:
    kind = op.kind
    if kind == READ:
        return state == op.result, state
    if kind == WRITE:
        return True, op.value
    if kind == DELETE:
        return True, None
    # cas
    if op.complete is None:
        return True, (op.value if state == op.expect else state)
    if op.result:
        return state == op.expect, op.value
    if state == op.expect:
        return False, state
    if op.observed is not MISSING and state != op.observed:
        return False, state
    return True, state


def _observes(op: Op) -> list[Any]:
    """Register values that must have been current when ``op`` took effect (for a cas of unknown
    outcome: if it took effect as a swap)."""
    if op.kind == READ:
        return [op.result]
    if op.kind == CAS:
        if op.complete is None or op.result:
            return [op.expect]
        if op.observed is not MISSING:
            return [op.observed]
    return []


def _blind_failed_cas(op: Op) -> bool:
    return op.kind == CAS and op.complete is not None and not op.result and op.observed is MISSING


# ---------------------------------------------------------------------------------------------------
# Preparation of one key's history


def _simplify(ops: list[Op], initial: Any) -> tuple[list[Op], list[int]]:
    """Apply the unknown-outcome rules described in the module docstring. Returns the new list and,
    for each of its ops, the index of the op it came from."""
    keep = [i for i, op in enumerate(ops) if not (op.unknown and op.kind == READ)]
    if any(_blind_failed_cas(ops[i]) for i in keep):
        return [ops[i] for i in keep], keep
    writers: dict[Any, int] = defaultdict(int)
    writers[initial] += 1
    for op in ops:
        if op.kind in (WRITE, DELETE, CAS):
            writers[op.new_value] += 1
    seen: set[Any] = set()
    first_seen: dict[Any, float] = {}
    for i in keep:
        op = ops[i]
        for v in _observes(op):
            seen.add(v)
            if op.complete is not None and (v not in first_seen or op.complete < first_seen[v]):
                first_seen[v] = op.complete
    out: list[Op] = []
    origin: list[int] = []
    for i in keep:
        op = ops[i]
        if op.unknown and op.kind in (WRITE, DELETE, CAS):
            v = op.new_value
            if v not in seen:
                continue  # unobservable either way
            if writers[v] == 1 and v in first_seen and first_seen[v] >= op.invoke:
                if op.kind == CAS:
                    op = replace(op, complete=first_seen[v], result=True)
                else:
                    op = replace(op, complete=first_seen[v])
        out.append(op)
        origin.append(i)
    return out, origin


def _search(ops: list[Op], initial: Any, max_states: int | None) -> tuple[bool, dict[str, Any]]:
    """WGL search over one key. Returns (linearizable, details of the deepest point reached)."""
    n = len(ops)
    # Events: (time, order, op index, is_call). Calls sort before returns at equal times, which
    # treats touching intervals as concurrent (the lenient choice: no false alarms from clock ties).
    events = []
    for i, op in enumerate(ops):
        events.append((op.invoke, 0, i, True))
        if op.complete is not None:
            events.append((op.complete, 1, i, False))
    events.sort(key=lambda e: (e[0], e[1]))
    # A doubly linked list over the events; index m is the head sentinel, -1 the end.
    m = len(events)
    head = m
    prv = [0] * (m + 1)
    nxt = [0] * (m + 1)
    for k in range(m):
        prv[k] = k - 1 if k > 0 else head
        nxt[k] = k + 1 if k < m - 1 else -1
    nxt[head] = 0 if m else -1
    prv[head] = -1
    op_of = [e[2] for e in events]
    is_call = [e[3] for e in events]
    ret_of = [-1] * n
    call_of = [-1] * n
    for k, e in enumerate(events):
        if e[3]:
            call_of[e[2]] = k
        else:
            ret_of[e[2]] = k
    completed = [op.complete is not None for op in ops]
    remaining = sum(completed)
    # Symmetry: ops of unknown outcome with the same effect (say, several deletes) are interchangeable,
    # so only the earliest-invoked one not yet linearized of each such group is ever tried.
    group = [-1] * n
    rank = [0] * n
    members: dict[tuple[str, Any, Any], list[int]] = defaultdict(list)
    for i in sorted(range(n), key=lambda i: ops[i].invoke):
        op = ops[i]
        if op.complete is None:
            members[(op.kind, op.new_value, op.expect if op.kind == CAS else None)].append(i)
    group_next = []
    for g, ids in enumerate(members.values()):
        for r, i in enumerate(ids):
            group[i] = g
            rank[i] = r
        group_next.append(0)

    def lift(k: int) -> None:
        a, b = prv[k], nxt[k]
        nxt[a] = b
        if b != -1:
            prv[b] = a
        r = ret_of[op_of[k]]
        if r != -1:
            a, b = prv[r], nxt[r]
            nxt[a] = b
            if b != -1:
                prv[b] = a

    def unlift(k: int) -> None:
        r = ret_of[op_of[k]]
        if r != -1:
            a, b = prv[r], nxt[r]
            nxt[a] = r
            if b != -1:
                prv[b] = r
        a, b = prv[k], nxt[k]
        nxt[a] = k
        if b != -1:
            prv[b] = k

    cache: set[tuple[int, Any]] = set()
    stack: list[tuple[int, Any]] = []
    linearized = 0
    state = initial
    best: dict[str, Any] = {"depth": -1}
    entry = nxt[head]
    visited = 0
    while True:
        if remaining == 0:
            return True, best
        if entry != -1 and is_call[entry]:
            i = op_of[entry]
            g = group[i]
            if g >= 0 and rank[i] != group_next[g]:
                entry = nxt[entry]
                continue
            ok, new_state = _step(state, ops[i])
            if ok:
                lin2 = linearized | (1 << i)
                memo = (lin2, new_state)
                if memo not in cache:
                    cache.add(memo)
                    visited += 1
                    if max_states is not None and visited > max_states:
                        raise SearchBudgetExceeded(f"more than {max_states} states")
                    stack.append((entry, state))
                    state = new_state
                    linearized = lin2
                    lift(entry)
                    if completed[i]:
                        remaining -= 1
                    if g >= 0:
                        group_next[g] += 1
                    entry = nxt[head]
                    continue
            entry = nxt[entry]
            continue
        # A return event of an op not yet linearized (or the end of the list): dead end.
        if len(stack) > best["depth"]:
            best = {
                "depth": len(stack),
                "order": [op_of[k] for k, _ in stack],
                "state": state,
                "stuck": op_of[entry] if entry != -1 else None,
            }
        if not stack:
            return False, best
        entry, state = stack.pop()
        i = op_of[entry]
        linearized &= ~(1 << i)
        unlift(entry)
        if completed[i]:
            remaining += 1
        if group[i] >= 0:
            group_next[group[i]] -= 1
        entry = nxt[entry]


def _linearizable(ops: list[Op], initial: Any, max_states: int | None) -> bool:
    return _search(_simplify(ops, initial)[0], initial, max_states)[0]


def _diagnose(ops: list[Op], initial: Any, max_states: int | None) -> tuple[bool, dict[str, Any]]:
    """Like ``_linearizable``, with the deepest point of the search expressed in terms of ``ops``:
    ``order`` (linearized ops), ``state`` and ``stuck`` (the op that could not be placed, or None)."""
    simplified, origin = _simplify(ops, initial)
    ok, best = _search(simplified, initial, max_states)
    if ok or best.get("depth", -1) < 0:
        return ok, {}
    return ok, {
        "order": [simplified[i] for i in best["order"]],
        "state": best["state"],
        "stuck": None if best["stuck"] is None else ops[origin[best["stuck"]]],
    }


# ---------------------------------------------------------------------------------------------------
# Shrinking a violation


def _observation_counts(ops: list[Op]) -> dict[Any, int]:
    counts: dict[Any, int] = defaultdict(int)
    for op in ops:
        for v in _observes(op):
            counts[v] += 1
    return counts


def _peel(chunk: list[int], ops: list[Op], counts: dict[Any, int], blind: bool) -> list[int]:
    """The positions in ``chunk`` that can be removed one by one, each removal keeping every
    linearizable history linearizable: read-only ops always, then mutations whose new value no
    remaining op observes (only when no failed cas lacks its observed value). ``counts`` are the
    observation counts of the whole of ``ops``."""
    delta: dict[Any, int] = defaultdict(int)
    removed = []
    left = []
    for pos in chunk:
        if ops[pos].mutates:
            left.append(pos)
        else:
            removed.append(pos)
            for v in _observes(ops[pos]):
                delta[v] -= 1
    if blind:
        return removed
    progress = True
    while left and progress:
        progress = False
        for pos in list(left):
            v = ops[pos].new_value
            if counts.get(v, 0) + delta[v] == 0:
                left.remove(pos)
                removed.append(pos)
                for w in _observes(ops[pos]):
                    delta[w] -= 1
                progress = True
    return sorted(removed)


def _still_bad(ops: list[Op], initial: Any, max_states: int | None) -> bool:
    try:
        return not _linearizable(ops, initial, max_states)
    except SearchBudgetExceeded:
        return False


def _shrink(ops: list[Op], initial: Any, budget: float, max_states: int | None) -> list[Op]:
    """Reduce a non-linearizable history, within a time budget, by safe removals only.

    First the search's dead end locates the problem: every read-only op other than the one the search
    got stuck on goes at once, if that keeps the violation. Then a delta-debugging pass removes chunks,
    trying the ops furthest in time from the dead end first.
    """
    deadline = time.monotonic() + budget
    current = list(ops)
    try:
        _, where = _diagnose(current, initial, max_states)
    except SearchBudgetExceeded:
        where = {}
    stuck = where.get("stuck")
    if stuck is not None:
        readers = [op for op in current if not op.mutates and op is not stuck]
        rest = [op for op in current if op.mutates or op is stuck]
        if readers and _still_bad(rest, initial, max_states):
            current = rest
        centre = stuck.invoke
        current.sort(key=lambda op: -abs(op.invoke - centre))
    chunk = max(1, len(current) // 2)
    while time.monotonic() < deadline:
        changed = False
        start = 0
        counts = _observation_counts(current)
        blind = any(_blind_failed_cas(op) for op in current)
        while start < len(current) and time.monotonic() < deadline:
            window = list(range(start, min(start + chunk, len(current))))
            removed = set(_peel(window, current, counts, blind))
            if removed:
                rest = [op for pos, op in enumerate(current) if pos not in removed]
                if _still_bad(rest, initial, max_states):
                    for pos in removed:
                        for v in _observes(current[pos]):
                            counts[v] -= 1
                    current = rest
                    changed = True
                    start += chunk - len(removed)
                    continue
            start += chunk
        if not changed:
            if chunk == 1:
                break
            chunk = max(1, chunk // 2)
    return sorted(current, key=lambda op: op.invoke)


def _explain(ops: list[Op], initial: Any, max_states: int | None, limit: int = 40) -> str:
    try:
        _, where = _diagnose(ops, initial, max_states)
    except SearchBudgetExceeded:
        where = {}
    ordered = sorted(ops, key=lambda op: op.invoke)
    lines = []
    stuck = where.get("stuck")
    if len(ordered) > limit and stuck is not None:
        # Only the ops around the dead end.
        near = [op for op in ordered if op.complete is None or op.complete >= stuck.invoke - 1e-9]
        near = [op for op in near if op.invoke <= (stuck.complete or stuck.invoke)][:limit]
        lines.append(f"{len(ordered)} operations; those overlapping the dead end:")
        lines += ["  " + op.describe() for op in near]
    else:
        lines.append("operations (sorted by invoke time):")
        lines += ["  " + op.describe() for op in ordered[:limit]]
        if len(ordered) > limit:
            lines.append(f"  ... {len(ordered) - limit} more")
    if where:
        order = where["order"]
        lines.append(f"longest linearizable prefix found ({len(order)} ops), ending:")
        lines += ["  " + op.describe() for op in order[-8:]]
        lines.append(f"register then holds {where['state']!r}")
        if stuck is not None:
            lines.append("and no order lets this op take effect before it returns:")
            lines.append("  " + stuck.describe())
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------
# Public entry points


def check_key(
    ops: list[Op],
    initial: Any = None,
    *,
    max_states: int | None = None,
) -> bool:
    """Whether the history of a single key is linearizable (no shrinking, no grouping)."""
    return _linearizable(list(ops), initial, max_states)


def check_history(
    ops: Iterable[Op],
    initial: Any = None,
    *,
    shrink: bool = True,
    shrink_budget: float = 5.0,
    max_states: int | None = None,
    initial_for: Callable[[Hashable], Any] | None = None,
) -> CheckResult:
    """Check a history of register operations on any number of keys.

    Returns a ``CheckResult`` (truthy when linearizable). On a violation, ``key`` names the first key
    found to be non-linearizable, ``witness`` holds a small sub-history of that key which is already
    not linearizable, and ``explanation`` describes it. ``max_states`` bounds the search per key
    (``SearchBudgetExceeded`` when exceeded).
    """
    started = time.monotonic()
    by_key: dict[Hashable, list[Op]] = defaultdict(list)
    count = 0
    for op in ops:
        by_key[op.key].append(op)
        count += 1
    for key in sorted(by_key, key=repr):
        key_ops = by_key[key]
        init = initial_for(key) if initial_for is not None else initial
        if _linearizable(key_ops, init, max_states):
            continue
        witness = _shrink(key_ops, init, shrink_budget, max_states) if shrink else key_ops
        return CheckResult(
            ok=False,
            keys=len(by_key),
            ops=count,
            key=key,
            witness=witness,
            explanation=_explain(witness, init, max_states),
            seconds=time.monotonic() - started,
        )
    return CheckResult(ok=True, keys=len(by_key), ops=count, seconds=time.monotonic() - started)


def sequential_ops(
    steps: Iterable[tuple[str, Hashable, tuple[Any, ...]]], process: Hashable = 0, start: float = 0.0
) -> list[Op]:
    """Build a strictly sequential history from ``(kind, key, args)`` steps, computing results from
    the model. Handy in tests: ``("write", "k", (b"v",))``, ``("read", "k", ())``,
    ``("cas", "k", (expect, new))``, ``("delete", "k", ())``."""
    state: dict[Hashable, Any] = {}
    ops = []
    t = start
    for kind, key, args in steps:
        current = state.get(key)
        if kind == READ:
            op = Op(process, READ, key, t, t + 1, result=current)
        elif kind == WRITE:
            op = Op(process, WRITE, key, t, t + 1, value=args[0])
            state[key] = args[0]
        elif kind == DELETE:
            op = Op(process, DELETE, key, t, t + 1)
            state[key] = None
        else:
            expect, new = args
            ok = current == expect
            op = Op(
                process,
                CAS,
                key,
                t,
                t + 1,
                value=new,
                expect=expect,
                result=ok,
                observed=MISSING if ok else current,
            )
            if ok:
                state[key] = new
        ops.append(op)
        t += 2
    return ops


__all__ = [
    "CAS",
    "DELETE",
    "MISSING",
    "READ",
    "WRITE",
    "CheckResult",
    "Op",
    "SearchBudgetExceeded",
    "check_history",
    "check_key",
    "sequential_ops",
]
