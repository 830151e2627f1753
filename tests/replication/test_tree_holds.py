"""Holds (docs/tree.md, *Holds*): a node keeps the nodes it holds past their keep_while rules, counted in
memory, one record per holder."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from replication.tree import Tree, TreeError, encode_envelope, validate_command
from replication.tree.commands import MAX_HOLDS
from replication.tree.paths import MAX_NAME_BYTES, coerce_held_path, compact_name

# A blob's rule as the blob store writes it: it lives while its refs node has children.
BLOB_RULE = {"child_count": [">", 0]}


def run(tree: Tree, *ops: dict[str, Any]) -> tuple[dict[str, Any], list]:
    return tree.apply(tree.applied_index + 1, encode_envelope({"then": list(ops)}))


def ok(tree: Tree, *ops: dict[str, Any]) -> list[dict[str, Any]]:
    result, _ = run(tree, *ops)
    assert result["ok"], result
    return result["results"]


def blob(name: str, holds: list[list[str]] | None = None) -> list[dict[str, Any]]:
    """A blob with a pin, as an upload stores one (and, for a tree node, holding its children)."""
    store: dict[str, Any] = {"op": "put", "path": ["blobs", name], "payload": 1}
    store["keep_while"] = {f"/blobs/{name}/refs": BLOB_RULE}
    if holds is not None:
        store["holds"] = holds
    return [store, {"op": "put", "path": ["blobs", name, "refs", "pin"]}]


def unpin(name: str) -> dict[str, Any]:
    return {"op": "delete", "path": ["blobs", name, "refs", "pin"]}


def nodes(tree: Tree) -> list:
    """The dump's nodes (its applied index moves with every command, failed ones too)."""
    return msgpack.unpackb(tree.dump(), raw=False)[2]


def records_of(tree: Tree) -> dict:
    return {path: record for path, record in tree.take_dirty() if record is not None}


def stored(tree: Tree) -> list[str]:
    return tree.children(("blobs",))


def test_a_held_node_outlives_its_rule_and_goes_with_its_last_holder() -> None:
    tree = Tree()
    ok(tree, *blob("a"), *blob("b"))
    ok(tree, *blob("n1", [["blobs", "a"], ["blobs", "b"]]), unpin("a"), unpin("b"))
    ok(tree, *blob("n2", [["blobs", "b"]]))
    assert stored(tree) == ["a", "b", "n1", "n2"] and tree.held_count(("blobs", "b")) == 2
    # n1 unpinned: its rule is false and nothing holds it, so it goes, and a with it; b is held by n2.
    result, events = run(tree, unpin("n1"))
    assert result["ok"] and stored(tree) == ["b", "n2"]
    deleted = [e.path for e in events if e.action == "delete" and len(e.path) == 2]
    assert deleted == [("blobs", "n1"), ("blobs", "a")]  # the holder first, then what it released
    assert tree.held_count(("blobs", "a")) == 0 and tree.held_count(("blobs", "b")) == 1
    ok(tree, unpin("n2"))
    assert stored(tree) == []


def test_holds_cascade_down_a_tree_in_one_command() -> None:
    tree = Tree()
    ok(tree, *blob("leaf"))
    ok(tree, *blob("mid", [["blobs", "leaf"]]), unpin("leaf"))
    ok(tree, *blob("root", [["blobs", "mid"]]), unpin("mid"))
    assert stored(tree) == ["leaf", "mid", "root"]
    ok(tree, unpin("root"))
    assert stored(tree) == [] and tree._held == {}


def test_holding_a_missing_path_fails_the_command_whole() -> None:
    tree = Tree()
    ok(tree, *blob("a"))
    before = nodes(tree)
    result, events = run(tree, *blob("n", [["blobs", "a"], ["blobs", "gone"]]), unpin("a"))
    assert not result["ok"] and result["error"] == "missing" and "held path" in result["message"]
    assert events == [] and nodes(tree) == before and tree._held == {}


def test_a_rolled_back_command_gives_back_every_count() -> None:
    tree = Tree()
    ok(tree, *blob("a"), *blob("b"), *blob("n", [["blobs", "a"]]))
    before, held = nodes(tree), dict(tree._held)
    # Holds replaced, a holder deleted, then a failing op: nothing of it stays.
    result, _ = run(
        tree,
        {"op": "put", "path": ["blobs", "n"], "payload": 2, "holds": [["blobs", "b"]]},
        {"op": "delete", "path": ["blobs", "n"]},
        {"op": "create", "path": ["blobs", "a"]},  # exists: fails
    )
    assert not result["ok"] and nodes(tree) == before and tree._held == held


def test_a_put_that_stops_holding_a_path_lets_its_rule_apply() -> None:
    tree = Tree()
    ok(tree, *blob("a"), *blob("b"))
    ok(tree, *blob("n", [["blobs", "a"], ["blobs", "b"]]), unpin("a"), unpin("b"))
    ok(tree, {"op": "put", "path": ["blobs", "n"], "payload": 1, "holds": [["blobs", "b"]]})
    assert stored(tree) == ["b", "n"]
    ok(tree, {"op": "put", "path": ["blobs", "n"], "payload": 1})  # no "holds": kept
    assert tree.holds_of(("blobs", "n")) == (("blobs", "b"),)
    ok(tree, {"op": "put", "path": ["blobs", "n"], "payload": 1, "holds": []})
    assert stored(tree) == ["n"]


def test_add_holds_keeps_the_holds_a_node_has() -> None:
    tree = Tree()
    ok(tree, *blob("a"), *blob("n", [["blobs", "a"]]), unpin("a"))
    ok(tree, *blob("b"))
    ok(tree, {"op": "put", "path": ["blobs", "n"], "payload": 1, "add_holds": [["blobs", "b"]]}, unpin("b"))
    assert tree.holds_of(("blobs", "n")) == (("blobs", "a"), ("blobs", "b")) and stored(tree) == [
        "a",
        "b",
        "n",
    ]
    # at the limit: a node holding 1,024 paths takes no more
    names = [f"c{i}" for i in range(MAX_HOLDS - 2)]
    ok(tree, *[{"op": "put", "path": ["blobs", c]} for c in names])
    ok(tree, {"op": "put", "path": ["blobs", "n"], "payload": 1, "add_holds": [["blobs", c] for c in names]})
    assert len(tree.holds_of(("blobs", "n"))) == MAX_HOLDS
    result, _ = run(
        tree, *blob("x"), {"op": "put", "path": ["blobs", "n"], "payload": 1, "add_holds": [["blobs", "x"]]}
    )
    assert not result["ok"] and result["error"] == "too_many_holds"
    with pytest.raises(TreeError):
        validate_command({"then": [{"op": "put", "path": ["n"], "holds": [], "add_holds": []}]})


def test_a_held_node_can_still_be_deleted_and_is_held_again_when_made_again() -> None:
    tree = Tree()
    ok(tree, *blob("a"), *blob("n", [["blobs", "a"]]))
    ok(tree, {"op": "delete", "path": ["blobs", "a"]})
    assert stored(tree) == ["n"] and tree.held_count(("blobs", "a")) == 1
    ok(tree, *blob("a"), unpin("a"))
    assert stored(tree) == ["a", "n"]  # held again: its empty refs do not delete it


def test_a_new_rule_on_a_held_node_is_not_refused() -> None:
    tree = Tree()
    ok(tree, *blob("a"), *blob("n", [["blobs", "a"]]), unpin("a"))
    ok(
        tree,
        {"op": "put", "path": ["blobs", "a"], "payload": 1, "keep_while": {"/nowhere": {"exists": True}}},
    )
    assert stored(tree) == ["a", "n"]


def test_watch_events_carry_the_holds() -> None:
    tree = Tree()
    ok(tree, *blob("a"))
    _, events = run(tree, *blob("n", [["blobs", "a"]]))
    created = [e for e in events if e.path == ("blobs", "n")]
    assert created[0].action == "create" and created[0].holds == (("blobs", "a"),)
    _, events = run(tree, {"op": "delete", "path": ["blobs", "n"]})
    gone = [e for e in events if e.path == ("blobs", "n")]
    assert gone[0].action == "delete" and gone[0].holds == (("blobs", "a"),)


def test_holds_persist_in_the_holders_record_and_counts_are_rebuilt() -> None:
    tree = Tree()
    ok(tree, *blob("a"), *blob("b"))
    ok(tree, *blob("n", [["blobs", "b"], ["blobs", "a"]]), unpin("a"), unpin("b"))
    records = records_of(tree)
    record = msgpack.unpackb(records[("blobs", "n")], raw=False)
    assert record[8] == [["blobs", "a"], ["blobs", "b"]]  # sorted
    assert len(msgpack.unpackb(records[("blobs", "a")], raw=False)) == 8  # holds nothing: as before
    for again in (Tree.from_records(records.items(), tree.applied_index), Tree.load(tree.dump())):
        assert again == tree and again._held == tree._held == {("blobs", "a"): 1, ("blobs", "b"): 1}
        ok(again, unpin("n"))
        assert stored(again) == []
    # An 8-field record (a store written before holds) loads as holding nothing.
    records[("blobs", "n")] = msgpack.packb(record[:8])
    assert Tree.from_records(records.items(), tree.applied_index)._held == {}


@pytest.mark.parametrize(
    "bad",
    [
        [["blobs", "n"]],  # itself
        [[]],  # the root
        [["blobs", "a"], ["blobs", "a"]],  # twice
        [["blobs", "x"]] * 2,
        "blobs/a",
        [["blobs", "a\x00"]],
        [["blobs", str(i)] for i in range(MAX_HOLDS + 1)],
    ],
)
def test_malformed_holds_are_refused(bad: object) -> None:
    with pytest.raises(TreeError):
        validate_command({"then": [{"op": "put", "path": ["blobs", "n"], "holds": bad}]})


@pytest.mark.parametrize(
    "bad",
    [
        [["blobs", b""]],  # the empty name
        [["blobs", b"\x01" * (MAX_NAME_BYTES // 2 + 1)]],  # a name one byte pair past the longest
        [["blobs", "ab" * 32], ["blobs", bytes.fromhex("ab" * 32)]],  # one path twice, spelled both ways
        [["blobs", bytearray(b"\xab")]],  # bytes only
    ],
)
def test_malformed_hash_names_in_holds_are_refused(bad: object) -> None:
    with pytest.raises(TreeError):
        validate_command({"then": [{"op": "put", "path": ["blobs", "n"], "holds": bad}]})


def test_bytes_name_a_node_only_in_holds() -> None:
    with pytest.raises(TreeError, match="string"):
        validate_command({"then": [{"op": "put", "path": ["blobs", b"\xab"]}]})


def test_a_held_hash_named_by_its_bytes_is_that_node_and_its_record_keeps_the_bytes() -> None:
    """A hash named by its 32 bytes instead of 64 hex digits (a blob tree's node holds up to 32 of them):
    the same node in memory, events and counts; half the bytes in the command and in the holder's record."""
    tree = Tree()
    a, b = "ab" * 32, "0f" * 32
    ok(tree, *blob(a), *blob(b))
    ok(tree, {"op": "put", "path": ["n"], "add_holds": [["blobs", bytes.fromhex(a)], ["blobs", b]]})
    assert tree.holds_of(("n",)) == (("blobs", b), ("blobs", a)) and tree.held_count(("blobs", a)) == 1
    ok(tree, {"op": "put", "path": ["n"], "add_holds": [["blobs", a]]})  # the same path either way
    assert tree.holds_of(("n",)) == (("blobs", b), ("blobs", a))
    records = records_of(tree)
    held = msgpack.unpackb(records[("n",)], raw=False)[8]
    assert held == [["blobs", bytes.fromhex(b)], ["blobs", bytes.fromhex(a)]]
    for again in (Tree.from_records(records.items(), tree.applied_index), Tree.load(tree.dump())):
        assert again == tree and again._held == tree._held
        ok(again, unpin(a), unpin(b))
        assert stored(again) == [b, a]  # still held by n
    longest = "01" * (MAX_NAME_BYTES // 2)
    ok(tree, {"op": "put", "path": ["blobs", longest]})
    ok(tree, {"op": "put", "path": ["m"], "holds": [["blobs", bytes.fromhex(longest)]]})
    assert tree.holds_of(("m",)) == (("blobs", longest),)


@given(
    st.one_of(
        st.text(min_size=1, max_size=12),
        st.binary(min_size=1, max_size=40).map(bytes.hex),
        st.binary(min_size=1, max_size=8).map(lambda raw: raw.hex().upper()),
        st.sampled_from(["ab cd", "0x", "a", "AbCd", "ab\x00", "é0"]),
    )
)
def test_a_records_name_reads_back_as_itself(name: str) -> None:
    """Whatever a name is, its record form reads back as the same name (or is refused as before)."""
    try:
        expected = coerce_held_path(["x", name])
    except TreeError:
        return
    form = compact_name(name)
    assert coerce_held_path(["x", form]) == expected
    assert type(form) is bytes or form == name
    assert (type(form) is bytes) == (len(name) % 2 == 0 and all(c in "0123456789abcdef" for c in name))


def test_holds_at_their_limit_are_taken() -> None:
    tree = Tree()
    names = [f"c{i}" for i in range(MAX_HOLDS)]
    ok(tree, *[{"op": "put", "path": ["blobs", n]} for n in names])
    ok(tree, {"op": "put", "path": ["n"], "holds": [["blobs", n] for n in names]})
    assert len(tree.holds_of(("n",))) == MAX_HOLDS and tree.held_count(("blobs", "c1")) == 1


def test_a_record_with_bad_holds_is_refused_on_load() -> None:
    tree = Tree()
    ok(tree, *blob("a"))
    records = records_of(tree)
    fields = msgpack.unpackb(records[("blobs", "a")], raw=False)
    for bad in ([], [["blobs", "a"]], "x"):
        records[("blobs", "a")] = msgpack.packb([*fields, bad])
        with pytest.raises(TreeError):
            Tree.from_records(records.items(), tree.applied_index)
