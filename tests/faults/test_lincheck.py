"""The register linearizability checker: known-good and known-bad histories, then generated ones."""

from __future__ import annotations

import math
import random
import time

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from lincheck import (
    CAS,
    DELETE,
    MISSING,
    READ,
    WRITE,
    Op,
    SearchBudgetExceeded,
    check_history,
    sequential_ops,
)


def w(p, key, value, inv, comp):
    return Op(p, WRITE, key, inv, comp, value=value)


def d(p, key, inv, comp):
    return Op(p, DELETE, key, inv, comp)


def r(p, key, result, inv, comp):
    return Op(p, READ, key, inv, comp, result=result)


def cas(p, key, expect, new, ok, inv, comp, observed=MISSING):
    return Op(p, CAS, key, inv, comp, value=new, expect=expect, result=ok, observed=observed)


def linearizable(ops, **kw):
    return check_history(ops, **kw).ok


# ---------------------------------------------------------------------------------------------------
# Linearizable histories


def test_empty_history():
    result = check_history([])
    assert result.ok and result.keys == 0


def test_sequential_history_with_every_kind():
    ops = sequential_ops(
        [
            ("read", "k", ()),
            ("write", "k", (b"a",)),
            ("read", "k", ()),
            ("cas", "k", (b"a", b"b")),
            ("cas", "k", (b"a", b"c")),
            ("read", "k", ()),
            ("delete", "k", ()),
            ("read", "k", ()),
            ("cas", "k", (None, b"d")),
            ("read", "k", ()),
        ]
    )
    assert [op.result for op in ops if op.kind == READ] == [None, b"a", b"b", None, b"d"]
    assert linearizable(ops)


def test_read_concurrent_with_write_may_see_either_value():
    ops = [w(1, "k", 1, 0, 10), r(2, "k", None, 1, 2), r(2, "k", 1, 3, 4), r(3, "k", 1, 11, 12)]
    assert linearizable(ops)


def test_concurrent_writes_may_take_effect_in_either_order():
    ops = [w(1, "k", 1, 0, 10), w(2, "k", 2, 0, 10), r(3, "k", 1, 11, 12), r(3, "k", 1, 13, 14)]
    assert linearizable(ops)
    ops = [w(1, "k", 1, 0, 10), w(2, "k", 2, 0, 10), r(3, "k", 2, 11, 12)]
    assert linearizable(ops)


def test_touching_intervals_count_as_concurrent():
    assert linearizable([w(1, "k", 1, 0, 5), r(2, "k", None, 5, 6)])


def test_concurrent_cas_one_wins_one_fails():
    ops = [
        cas(1, "k", None, b"a", True, 0, 10),
        cas(2, "k", None, b"b", False, 0, 10, observed=b"a"),
        r(3, "k", b"a", 11, 12),
    ]
    assert linearizable(ops)


def test_failed_cas_without_observed_value():
    ops = [w(1, "k", 1, 0, 1), cas(2, "k", 2, 3, False, 2, 3), r(1, "k", 1, 4, 5)]
    assert linearizable(ops)


def test_unknown_write_that_happened():
    ops = [w(1, "k", 1, 0, 1), w(2, "k", 2, 2, None), r(3, "k", 2, 50, 51), r(3, "k", 2, 52, 53)]
    assert linearizable(ops)


def test_unknown_write_that_did_not_happen():
    ops = [w(1, "k", 1, 0, 1), w(2, "k", 2, 2, None), r(3, "k", 1, 50, 51), r(3, "k", 1, 52, 53)]
    assert linearizable(ops)


def test_unknown_write_taking_effect_late():
    # The unknown write lands after a later completed write: the reads see it win.
    ops = [w(1, "k", 1, 0, None), w(2, "k", 2, 5, 6), r(3, "k", 2, 7, 8), r(3, "k", 1, 9, 10)]
    assert linearizable(ops)


def test_unknown_outcome_as_infinity():
    ops = [w(1, "k", 1, 0, math.inf), r(3, "k", 1, 9, 10)]
    assert ops[0].unknown
    assert linearizable(ops)


def test_unknown_cas_either_way():
    base = [w(1, "k", b"a", 0, 1), cas(2, "k", b"a", b"b", None, 2, None)]
    assert linearizable([*base, r(3, "k", b"b", 5, 6)])
    assert linearizable([*base, r(3, "k", b"a", 5, 6)])
    assert linearizable([*base, r(3, "k", b"a", 5, 6), r(3, "k", b"b", 7, 8)])


def test_unknown_cas_with_failing_expectation_never_swaps():
    ops = [w(1, "k", b"x", 0, 1), cas(2, "k", b"a", b"b", None, 2, None), r(3, "k", b"b", 5, 6)]
    assert not linearizable(ops)


def test_unknown_reads_are_ignored():
    ops = [w(1, "k", 1, 0, 1), r(2, "k", 99, 2, None)]
    assert linearizable(ops)


def test_keys_are_independent():
    ops = [w(1, "a", 1, 0, 10), w(1, "b", 2, 0, 10), r(2, "a", 1, 11, 12), r(2, "b", 2, 11, 12)]
    result = check_history(ops)
    assert result.ok and result.keys == 2 and result.ops == 4


def test_duplicate_values_are_handled():
    ops = [w(1, "k", 1, 0, 1), w(1, "k", 2, 2, 3), w(2, "k", 1, 4, None), r(3, "k", 1, 6, 7)]
    assert linearizable(ops)
    ops = [w(1, "k", 1, 0, 1), w(1, "k", 2, 2, 3), w(2, "k", 1, 8, None), r(3, "k", 1, 6, 7)]
    assert not linearizable(ops)


# ---------------------------------------------------------------------------------------------------
# Violations


def test_stale_read_after_completed_write():
    ops = [w(1, "k", 1, 0, 1), w(1, "k", 2, 2, 3), r(2, "k", 1, 4, 5)]
    result = check_history(ops)
    assert not result.ok and result.key == "k"
    assert "read() -> 1" in result.explanation


def test_lost_acknowledged_write():
    ops = [w(1, "k", b"v", 0, 1), r(2, "k", None, 2, 3)]
    assert not linearizable(ops)


def test_value_flips_back():
    ops = [w(1, "k", 1, 0, 10), r(2, "k", 1, 1, 2), r(2, "k", None, 3, 4)]
    assert not linearizable(ops)


def test_concurrent_writes_seen_in_two_orders():
    ops = [w(1, "k", 1, 0, 10), w(2, "k", 2, 0, 10), r(3, "k", 1, 11, 12), r(3, "k", 2, 13, 14)]
    assert not linearizable(ops)


def test_cas_success_seen_inconsistently():
    assert not linearizable([cas(1, "k", None, b"a", True, 0, 1), r(2, "k", None, 2, 3)])
    ops = [
        w(1, "k", b"a", 0, 1),
        cas(1, "k", b"a", b"b", True, 2, 3),
        cas(2, "k", b"a", b"c", True, 4, 5),
    ]
    assert not linearizable(ops)
    ops = [cas(1, "k", None, b"a", True, 0, 10), cas(2, "k", None, b"b", True, 0, 10)]
    assert not linearizable(ops)


def test_failed_cas_that_should_have_succeeded():
    ops = [w(1, "k", b"a", 0, 1), cas(2, "k", b"a", b"b", False, 2, 3)]
    assert not linearizable(ops)


def test_failed_cas_reporting_a_stale_value():
    ops = [w(1, "k", b"a", 0, 1), w(1, "k", b"b", 2, 3), cas(2, "k", b"x", b"y", False, 4, 5, observed=b"a")]
    assert not linearizable(ops)


def test_read_of_a_value_never_written():
    assert not linearizable([w(1, "k", 1, 0, 1), r(2, "k", 7, 2, 3)])


def test_read_before_the_unknown_write_was_invoked():
    ops = [r(2, "k", 1, 0, 1), w(1, "k", 1, 2, None)]
    assert not linearizable(ops)


def test_unknown_write_observed_then_undone():
    ops = [w(1, "k", 1, 0, 1), w(2, "k", 2, 2, None), r(3, "k", 2, 3, 4), r(3, "k", 1, 5, 6)]
    assert not linearizable(ops)


def test_reports_the_violating_key_and_a_small_witness():
    rng = random.Random(5)
    ops = simulate(rng, processes=6, per_process=150, keys=["a", "b", "c"])
    # Corrupt one late read on key "b": make it return a value that never existed.
    reads = [i for i, op in enumerate(ops) if op.kind == READ and op.key == "b"]
    victim = reads[len(reads) // 2]
    ops[victim] = Op(**{**ops[victim].__dict__, "result": b"never-written"})
    result = check_history(ops)
    assert not result.ok and result.key == "b"
    assert ops[victim] in result.witness
    assert len(result.witness) <= 3, result.explanation
    assert "never-written" in str(result)


def test_witness_of_a_stale_read_is_minimal():
    rng = random.Random(11)
    ops = simulate(rng, processes=5, per_process=100, keys=["k"])
    mutated = mutate_stale_read(ops, rng)
    assert mutated is not None
    result = check_history(mutated)
    assert not result.ok
    # The stale read, the write it claims to see, the write that overwrote it before the read began,
    # and at most one op that a remaining cas needs as its expectation.
    assert 2 <= len(result.witness) <= 4, result.explanation
    witness = check_history(result.witness)
    assert not witness.ok


def test_search_budget():
    ops = [w(p, "k", p, 0, 100) for p in range(12)] + [r(99, "k", 99, 101, 102)]
    with pytest.raises(SearchBudgetExceeded):
        check_history(ops, max_states=50)


def test_invalid_ops_are_rejected():
    with pytest.raises(ValueError):
        Op(1, "append", "k", 0, 1)
    with pytest.raises(ValueError):
        Op(1, WRITE, "k", 5, 1, value=1)


# ---------------------------------------------------------------------------------------------------
# Generated histories


def simulate(
    rng: random.Random,
    processes: int,
    per_process: int,
    keys: list,
    unknown_rate: float = 0.0,
    max_duration: float = 3.0,
) -> list[Op]:
    """A concurrent execution against a dict: each process runs its ops one after another, every op
    takes effect at a random instant inside its interval (or, if its outcome is unknown, maybe never).
    Written values are unique."""
    planned = []  # (effect time or None, process, n, kind, key, invoke, complete, args)
    for p in range(processes):
        t = rng.random()
        for n in range(per_process):
            invoke = t
            complete = t + rng.uniform(0.01, max_duration)
            effect: float | None = rng.uniform(invoke, complete)
            kind = rng.choice([READ, READ, WRITE, WRITE, CAS, DELETE])
            key = rng.choice(keys)
            unknown = kind != READ and rng.random() < unknown_rate
            if unknown and rng.random() < 0.5:
                effect = None if rng.random() < 0.5 else complete + rng.uniform(0, 20)
            planned.append((effect, p, n, kind, key, invoke, None if unknown else complete, unknown))
            t = complete + rng.uniform(0, 0.5)
    state: dict = {}
    recent: dict = {}
    ops = []
    for effect, p, n, kind, key, invoke, complete, _unknown in sorted(
        planned, key=lambda x: math.inf if x[0] is None else x[0]
    ):
        current = state.get(key)
        value = f"{p}.{n}".encode()
        applies = effect is not None
        if kind == READ:
            ops.append(Op(p, READ, key, invoke, complete, result=current))
        elif kind == WRITE:
            ops.append(Op(p, WRITE, key, invoke, complete, value=value))
            if applies:
                state[key] = value
        elif kind == DELETE:
            ops.append(Op(p, DELETE, key, invoke, complete))
            if applies:
                state[key] = None
        else:
            expect = current if rng.random() < 0.6 else recent.get(key, b"x")
            ok = current == expect
            observed = MISSING if ok else current
            ops.append(
                Op(p, CAS, key, invoke, complete, value=value, expect=expect, result=ok, observed=observed)
            )
            if applies and ok:
                state[key] = value
        if applies and current is not None:
            recent[key] = current
    return sorted(ops, key=lambda op: op.invoke)


def mutate_stale_read(ops: list[Op], rng: random.Random) -> list[Op] | None:
    """Change one read to return a value that had certainly been overwritten before it was invoked:
    its only writer w1 completed before an acknowledged mutation w2 of the same key began, and w2
    completed before the read began. Returns None when the history offers no such read."""
    candidates = []
    for i, op in enumerate(ops):
        if op.kind != READ or op.unknown:
            continue
        same_key = [o for o in ops if o.key == op.key and not o.unknown]
        barrier = max((w2.invoke for w2 in same_key if w2.mutates and w2.complete < op.invoke), default=None)
        if barrier is None:
            continue
        values = [
            w1.value
            for w1 in same_key
            if w1.kind in (WRITE, CAS) and w1.complete < barrier and w1.value != op.result
        ]
        if values:
            candidates.append((i, rng.choice(values)))
    if not candidates:
        return None
    i, value = rng.choice(candidates)
    mutated = list(ops)
    mutated[i] = Op(**{**ops[i].__dict__, "result": value})
    return mutated


histories = st.builds(
    dict,
    seed=st.integers(0, 2**32 - 1),
    processes=st.integers(2, 8),
    per_process=st.integers(5, 40),
    nkeys=st.integers(1, 3),
    unknown_rate=st.sampled_from([0.0, 0.1, 0.3]),
    max_duration=st.sampled_from([0.05, 1.0, 5.0]),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories)
def test_generated_concurrent_executions_are_linearizable(params):
    rng = random.Random(params["seed"])
    keys = ["k0", "k1", "k2"][: params["nkeys"]]
    ops = simulate(
        rng, params["processes"], params["per_process"], keys, params["unknown_rate"], params["max_duration"]
    )
    result = check_history(ops)
    assert result.ok, str(result)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]
)
@given(histories)
def test_generated_stale_reads_are_rejected(params):
    rng = random.Random(params["seed"])
    keys = ["k0", "k1", "k2"][: params["nkeys"]]
    ops = simulate(
        rng, params["processes"], params["per_process"], keys, params["unknown_rate"], params["max_duration"]
    )
    mutated = mutate_stale_read(ops, rng)
    assume(mutated is not None)
    result = check_history(mutated, shrink_budget=1.0)
    assert not result.ok
    assert not check_history(result.witness, shrink=False).ok


def test_thousands_of_ops_per_key_with_ten_clients():
    rng = random.Random(2024)
    ops = simulate(rng, processes=10, per_process=300, keys=["hot"], unknown_rate=0.02)
    assert len(ops) == 3000
    started = time.monotonic()
    result = check_history(ops)
    elapsed = time.monotonic() - started
    assert result.ok, str(result)
    assert elapsed < 20, elapsed
    mutated = mutate_stale_read(ops, rng)
    assert mutated is not None
    started = time.monotonic()
    result = check_history(mutated, shrink_budget=3.0)
    assert not result.ok
    assert time.monotonic() - started < 40


def test_many_interchangeable_unknown_ops_stay_fast():
    # Thirty deletes of unknown outcome, all still possibly pending, among acknowledged writes and
    # reads that see None now and then: without the symmetry rule this explores 2**30 subsets.
    ops = []
    t = 0.0
    for n in range(30):
        ops.append(d(100 + n, "k", t, None))
        ops.append(w(1, "k", n, t + 1, t + 2))
        ops.append(r(2, "k", None, t + 3, t + 4))
        t += 5
    ops.append(r(2, "k", 29, t, t + 1))
    started = time.monotonic()
    # The last read cannot see 29: a delete must follow write(29) for the read of None after it.
    assert not linearizable(ops, shrink=False)
    assert time.monotonic() - started < 5
