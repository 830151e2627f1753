"""Property tests for the tree state machine: random command sequences and garbage input."""

from __future__ import annotations

from typing import Any

import msgpack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from replication.tree import NO_PAYLOAD, Tree, format_path, match_pattern, seq_name

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --------------------------------------------------------------------------- strategies

names = st.sampled_from(["a", "b", "é", seq_name(1)])
paths = st.lists(names, min_size=1, max_size=3)
regexes = st.sampled_from(["a", "[a-c]", ".*", "0+1", "é|b"])
ops_cmp = st.sampled_from(["==", "!=", "<", "<=", ">", ">="])
counts = st.integers(0, 3)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.sampled_from([0.0, -0.0, 1.0, 1.5, float("nan")]),
    st.text(alphabet="ab\xe9", max_size=2),
    st.binary(max_size=2),
)
payloads = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=2), st.dictionaries(st.sampled_from(["x", "y"]), inner)),
    max_leaves=4,
)


def node_conds() -> st.SearchStrategy[dict[str, Any]]:
    leaf = st.one_of(
        st.builds(lambda b: {"exists": b}, st.booleans()),
        st.builds(lambda b: {"has_payload": b}, st.booleans()),
        st.builds(lambda n: {"payload_version": n}, counts),
        st.builds(lambda n: {"created_index": n}, counts),
        st.builds(lambda v: {"payload_equals": v}, scalars),
        st.builds(lambda o, n: {"child_count": [o, n]}, ops_cmp, counts),
        st.builds(lambda r: {"name_matches": r}, regexes),
    )
    return st.recursive(
        leaf,
        lambda inner: st.one_of(
            st.builds(lambda c: {"not": c}, inner),
            st.builds(lambda cs: {"all": cs}, st.lists(inner, max_size=2)),
            st.builds(lambda cs: {"any": cs}, st.lists(inner, max_size=2)),
        ),
        max_leaves=3,
    )


abs_conds = st.recursive(
    st.one_of(
        st.builds(lambda p: {"exists": p}, paths),
        st.builds(lambda p: {"has_payload": format_path(p)}, paths),
        st.builds(lambda p, n: {"payload_version": [p, n]}, paths, counts),
        st.builds(lambda p, n: {"created_index": [p, n]}, paths, counts),
        st.builds(lambda p, v: {"payload_equals": [p, v]}, paths, scalars),
        st.builds(lambda p, o, n: {"child_count": [p, o, n]}, paths, ops_cmp, counts),
    ),
    lambda inner: st.one_of(
        st.builds(lambda c: {"not": c}, inner),
        st.builds(lambda cs: {"all": cs}, st.lists(inner, max_size=2)),
        st.builds(lambda cs: {"any": cs}, st.lists(inner, max_size=2)),
    ),
    max_leaves=3,
)

pattern_elements = st.one_of(
    names,
    st.sampled_from(["*", "**"]),
    st.builds(lambda r: {"name_matches": r}, regexes),
    st.builds(lambda c: {"cond": c}, node_conds()),
)
patterns = st.lists(pattern_elements, min_size=1, max_size=4)
# Watch few, short paths with mostly simple conditions, so that rules really get triggered.
keep_whiles = st.dictionaries(
    st.sampled_from(["/a", "/b", "/a/b", "/b/a", "/"]),
    st.one_of(
        st.just({"exists": True}),
        st.just({"child_count": [">", 0]}),
        st.just({"has_payload": True}),
        node_conds(),
    ),
    min_size=1,
    max_size=2,
)


def _op(kind: str, **fields: Any) -> dict[str, Any]:
    return {"op": kind, **{k: v for k, v in fields.items() if v is not NO_PAYLOAD}}


maybe_payload = st.one_of(st.just(NO_PAYLOAD), payloads)
maybe_if = st.one_of(st.just(NO_PAYLOAD), st.just(NO_PAYLOAD), abs_conds)

ops = st.one_of(
    st.builds(
        lambda p, v, k, c: _op("put", path=p, payload=v, keep_while=k, **{"if": c}),
        paths,
        maybe_payload,
        st.one_of(st.just(NO_PAYLOAD), st.just({}), keep_whiles, keep_whiles),
        maybe_if,
    ),
    st.builds(
        lambda p, v, k: _op("create", path=p, payload=v, keep_while=k),
        paths,
        maybe_payload,
        st.one_of(st.just(NO_PAYLOAD), keep_whiles),
    ),
    st.builds(lambda p, v: _op("update", path=p, payload=v), paths, maybe_payload),
    st.builds(lambda p, v, n: _op("cas", path=p, payload=v, payload_version=n), paths, maybe_payload, counts),
    st.builds(lambda p, c: _op("delete", path=p, **{"if": c}), paths, maybe_if),
    # rules on, and deletes of, the few watched paths, so that keep_while cascades happen
    st.builds(lambda p, k: _op("put", path=p, keep_while=k), paths, keep_whiles),
    st.builds(lambda p: _op("delete", path=p), st.sampled_from([["a"], ["b"], ["a", "b"], ["b", "a"]])),
    st.builds(lambda p: _op("delete_many", pattern=p), patterns),
    st.builds(
        lambda p, v, cap: _op("append", path=p, payload=v, cap=cap),
        st.one_of(st.just([]), paths),
        maybe_payload,
        st.one_of(st.just(NO_PAYLOAD), st.integers(1, 3)),
    ),
    st.builds(lambda p: _op("get", path=p), paths),
    st.builds(
        lambda p, n: _op("get_many", pattern=p, limit=n),
        patterns,
        st.one_of(st.just(NO_PAYLOAD), st.integers(1, 3)),
    ),
)

junk = st.recursive(
    st.one_of(scalars, st.sampled_from(["put", "op", "path", "then", "**"])),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.sampled_from(["op", "path", "payload", "then", "else", "compare", "if", "x"]), inner
        ),
    ),
    max_leaves=8,
)

valid_commands = st.fixed_dictionaries(
    {"then": st.lists(ops, min_size=1, max_size=4)},
    optional={"compare": st.lists(abs_conds, max_size=2), "else": st.lists(ops, max_size=3)},
)
commands = valid_commands

envelopes = st.one_of(
    st.builds(lambda c: {"cmd": c}, commands),
    st.builds(
        lambda cl, s, c: {"client": cl, "seq": s, "cmd": c},
        st.sampled_from(["c1", "c2", "c3"]),
        st.integers(0, 6),
        commands,
    ),
)
packed = envelopes.map(lambda e: msgpack.packb(e, use_bin_type=True))
entries = st.one_of(packed, packed, packed, packed, packed, st.binary(max_size=8))

# A small universe of names, so rules, their watched paths and deletes keep meeting; "ab" is hex, which a
# hold may name by its bytes and a holder's record keeps as bytes.
small_paths = st.lists(st.sampled_from(["a", "b", "ab"]), min_size=1, max_size=2)
held_paths = small_paths.flatmap(
    lambda p: st.sampled_from([p, [bytes.fromhex(n) if n == "ab" else n for n in p]])
)
small_rules = st.dictionaries(
    st.sampled_from(["/a", "/b", "/a/b", "/b/a", "/"]),
    st.sampled_from(
        [
            {"exists": True},
            {"child_count": [">", 0]},
            {"child_count": ["<", 2]},
            {"has_payload": True},
            {"payload_version": 1},
            {"not": {"payload_equals": 0}},
        ]
    ),
    max_size=2,
)


def _named(path: list[Any]) -> list[str]:
    return [e.hex() if type(e) is bytes else e for e in path]


rule_ops = st.one_of(
    st.builds(
        lambda p, v, k: _op("put", path=p, payload=v, keep_while=k), small_paths, maybe_payload, small_rules
    ),
    st.builds(lambda p, v: _op("put", path=p, payload=v), small_paths, st.integers(0, 1)),
    st.builds(lambda p: _op("delete", path=p), small_paths),
    # holds on the same few paths (each must exist, so some fail and roll back), with or without a rule
    st.builds(
        lambda p, h, k: _op("put", path=p, holds=[x for x in h if _named(x) != p], keep_while=k),
        small_paths,
        st.lists(held_paths, max_size=2, unique_by=lambda x: tuple(_named(x))),
        small_rules,
    ),
    st.builds(
        lambda p, n: _op("append", path=p, cap=n), st.one_of(st.just([]), small_paths), st.integers(1, 2)
    ),
    st.builds(lambda p: _op("delete_many", pattern=p), st.just(["*", "*"])),
)
rule_entries = st.builds(
    lambda ops: msgpack.packb({"cmd": {"then": ops}}, use_bin_type=True),
    st.lists(rule_ops, min_size=1, max_size=3),
)

# --------------------------------------------------------------------------- helpers


def nodes_of(tree: Tree) -> bytes:
    # compared as bytes so that NaN payloads compare equal to themselves
    return msgpack.packb(msgpack.unpackb(tree.dump(), raw=False)[2], use_bin_type=True)


def projection_of(tree: Tree) -> dict[tuple[str, ...], tuple[Any, int, int, int]]:
    return {
        p: (payload, props.payload_version, props.created_index, props.modified_index)
        for p, props, payload in tree.match(["**"])
    }


def held_counts(tree: Tree) -> dict[tuple[str, ...], int]:
    """How many nodes hold each path, counted afresh from every node's holds."""
    counts: dict[tuple[str, ...], int] = {}
    for _, node in tree._walk():
        for held in node.holds:
            counts[held] = counts.get(held, 0) + 1
    return counts


def check_rules(tree: Tree) -> None:
    # Every keep_while condition on another path holds after every command (self-conditions may
    # not: they are skipped until the node is first changed after its creation), but for held nodes.
    assert tree._held == held_counts(tree)  # the counts kept in memory are the nodes' holds
    for path, node in tree._walk():
        if node.rule is None or path in tree._held:
            continue
        for watched, cond in node.rule.items:
            if watched != path:
                assert tree._eval(cond, watched, tree._lookup(watched)), (path, watched)


def _same(a: Any, b: Any) -> bool:
    # NaN-aware equality through the wire form
    return msgpack.packb(a, use_bin_type=True, default=repr) == msgpack.packb(
        b, use_bin_type=True, default=repr
    )


# --------------------------------------------------------------------------- properties


@settings(SETTINGS, max_examples=500)
@given(st.lists(entries, min_size=3, max_size=30))
def test_random_sequences(seq: list[bytes]) -> None:
    check_sequence(seq)


@settings(SETTINGS, max_examples=600)
@given(st.lists(rule_entries, min_size=3, max_size=25))
def test_keep_while_sequences(seq: list[bytes]) -> None:
    check_sequence(seq)


def check_sequence(seq: list[bytes]) -> None:
    a = Tree(max_sessions=2)
    b = Tree(max_sessions=2)
    records: dict[tuple[str, ...], bytes] = {}
    projection: dict[tuple[str, ...], tuple[Any, int, int, int]] = {}
    for i, data in enumerate(seq, start=1):
        before = nodes_of(a)
        result, events = a.apply(i, data)  # (a) never raises
        b.apply(i, data)
        assert set(result) >= {"ok", "index"}
        msgpack.packb(result, use_bin_type=True)  # results are msgpack-able
        if not result["ok"]:
            assert events == []
            assert nodes_of(a) == before  # atomic: nothing changed
        # events replayed onto a projection reproduce the tree
        for e in events:
            assert e.index == i
            if e.action == "delete":
                del projection[e.path]
            else:
                assert (e.action == "create") is (e.path not in projection)
                projection[e.path] = (
                    e.payload,
                    e.props.payload_version,
                    e.props.created_index,
                    e.props.modified_index,
                )
        check_rules(a)
        actual = projection_of(a)
        assert actual.keys() == projection.keys()
        assert all(_same(actual[k], projection[k]) for k in actual)
        # (c) persisted records rebuild the same tree
        for key, rec in a.take_dirty():
            if rec is None:
                records.pop(key, None)
            else:
                records[key] = rec
        if i % 5 == 0 or i == len(seq):
            again = Tree.from_records(records.items(), i, max_sessions=2)
            assert again.dump() == a.dump()
            assert again._watch == a._watch  # the keep_while index survived every rollback
            assert again._held == a._held
    # (b) replicas agree
    assert a.state_hash() == b.state_hash()
    # (d) snapshot round trip, and the copy keeps behaving the same
    c = Tree.load(a.dump(), max_sessions=2)
    assert c == a and c.state_hash() == a.state_hash()
    for t in (a, c):
        t.apply(
            len(seq) + 1,
            msgpack.packb({"client": "c9", "seq": 1, "cmd": {"then": [_op("delete", path=["a"])]}}),
        )
    assert c == a


@SETTINGS
@given(st.binary(max_size=64))
def test_garbage_bytes_never_raise(data: bytes) -> None:
    tree = Tree()
    tree.apply(1, msgpack.packb({"cmd": {"then": [_op("put", path=["a", "b"], payload=1)]}}))
    before = tree.dump()
    result, events = tree.apply(2, data)
    assert result["ok"] is False or result["results"] == [] or events == []
    if not result["ok"]:
        tree.applied_index = 1
        assert tree.dump() == before


@SETTINGS
@given(junk)
def test_malformed_commands_fail_cleanly(cmd: Any) -> None:
    tree = Tree()
    tree.apply(1, msgpack.packb({"cmd": {"then": [_op("put", path=["a", "b"], payload=1)]}}))
    before = tree.dump()
    result, events = tree.apply(2, msgpack.packb({"cmd": cmd}, use_bin_type=True))
    if not result["ok"]:
        assert events == []
        tree.applied_index = 1
        assert tree.dump() == before


@SETTINGS
@given(envelopes, st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), min_size=1, max_size=4))
def test_mutated_entries_never_raise(env: dict[str, Any], flips: list[tuple[int, int]]) -> None:
    data = bytearray(msgpack.packb(env, use_bin_type=True))
    for pos, value in flips:
        data[pos % len(data)] = value
    a, b = Tree(), Tree()
    ra, _ = a.apply(1, bytes(data))
    rb, _ = b.apply(1, bytes(data))
    assert _same(ra, rb)
    assert a.state_hash() == b.state_hash()


@SETTINGS
@given(
    st.lists(st.lists(names, min_size=1, max_size=4), max_size=12),
    st.lists(
        st.one_of(names, st.sampled_from(["*", "**"]), st.builds(lambda r: {"name_matches": r}, regexes)),
        min_size=1,
        max_size=4,
    ),
)
def test_match_agrees_with_name_matcher(node_paths: list[list[str]], pattern: list[Any]) -> None:
    tree = Tree()
    tree.apply(1, msgpack.packb({"cmd": {"then": [_op("put", path=p) for p in node_paths]}}))
    every = [p for p, _, _ in tree.match(["**"])]
    assert every == sorted(set(every))
    expected = [p for p in every if match_pattern(pattern, p)]
    assert [p for p, _, _ in tree.match(pattern)] == expected
