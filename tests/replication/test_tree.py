"""Unit tests for the tree state machine (replication.tree)."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest

from replication.node import prefixed_children
from replication.tree import (
    NO_PAYLOAD,
    SESSION_KEY,
    NodeProps,
    Tree,
    TreeError,
    WatchEvent,
    decode_envelope,
    encode_envelope,
    format_path,
    match_pattern,
    parse_path,
    seq_name,
    validate_command,
)

# --------------------------------------------------------------------------- helpers


def run(
    tree: Tree, *ops: dict[str, Any], client: str | None = None, seq: int | None = None
) -> tuple[dict[str, Any], list[WatchEvent]]:
    return txn(tree, {"then": list(ops)}, client=client, seq=seq)


def txn(
    tree: Tree, cmd: dict[str, Any], client: str | None = None, seq: int | None = None
) -> tuple[dict[str, Any], list[WatchEvent]]:
    return tree.apply(tree.applied_index + 1, encode_envelope(cmd, client, seq))


def ok(tree: Tree, *ops: dict[str, Any]) -> list[dict[str, Any]]:
    result, _ = run(tree, *ops)
    assert result["ok"], result
    return result["results"]


def put(path: Any, payload: Any = NO_PAYLOAD, **extra: Any) -> dict[str, Any]:
    op = {"op": "put", "path": path, **extra}
    if payload is not NO_PAYLOAD:
        op["payload"] = payload
    return op


def payload(tree: Tree, path: Any) -> Any:
    got = tree.get(path)
    assert got is not None, path
    return got[1]


def props(tree: Tree, path: Any) -> NodeProps:
    got = tree.get(path)
    assert got is not None, path
    return got[0]


def paths(tree: Tree, pattern: Any) -> list[tuple[str, ...]]:
    return [p for p, _, _ in tree.match(pattern)]


def evs(events: list[WatchEvent]) -> list[tuple[str, str]]:
    return [(e.action, format_path(e.path)) for e in events]


def rebuilt(tree: Tree, records: dict[tuple[str, ...], bytes]) -> Tree:
    return Tree.from_records(records.items(), tree.applied_index, max_sessions=tree.max_sessions)


def accumulate(
    records: dict[tuple[str, ...], bytes], dirty: list[tuple[tuple[str, ...], bytes | None]]
) -> None:
    for key, data in dirty:
        if data is None:
            records.pop(key, None)
        else:
            records[key] = data


# --------------------------------------------------------------------------- paths


@pytest.mark.parametrize(
    "path",
    [(), ("a",), ("a", "b", "c"), ("a/b", "100%", "%2F"), ("ключ", "日本", "🎨"), ("*", "**", " ", ".")],
)
def test_path_round_trip(path: tuple[str, ...]) -> None:
    text = format_path(path)
    assert text.startswith("/")
    assert parse_path(text) == path


def test_format_escapes_slash_and_percent() -> None:
    assert format_path(("a/b", "50%")) == "/a%2Fb/50%25"
    assert format_path(()) == "/"
    assert parse_path("/a%2fb") == ("a/b",)


@pytest.mark.parametrize(
    "text", ["", "a/b", "//", "/a//b", "/a/", "/a%", "/a%41", "/a%2", "/x\x00y", "/" + "é" * 513]
)
def test_parse_path_rejects(text: str) -> None:
    with pytest.raises(TreeError) as info:
        parse_path(text)
    assert info.value.code == "invalid_path"


def test_name_length_limit_is_in_utf8_bytes() -> None:
    tree = Tree()
    ok(tree, put(["a" * 1024], 1), put(["é" * 512], 2))
    for bad in (["a" * 1025], ["é" * 513], ["\ud800"], [""], [1], ["a\x00"]):
        with pytest.raises(TreeError) as info:
            validate_command({"then": [put(bad, 1)]})
        assert info.value.code == "invalid_path"


def test_path_as_string_in_commands() -> None:
    tree = Tree()
    ok(tree, put("/rooms/r%2F1/keys", "v"))
    assert payload(tree, ("rooms", "r/1", "keys")) == "v"
    assert payload(tree, "/rooms/r%2F1/keys") == "v"


# --------------------------------------------------------------------------- put / create / update / cas


def test_put_creates_intermediate_nodes_without_payload() -> None:
    tree = Tree()
    result, events = run(tree, put(["rooms", "r1", "keys", "k"], b"v"))
    assert result == {
        "ok": True,
        "succeeded": True,
        "index": 1,
        "results": [{"created": True, "props": props(tree, ("rooms", "r1", "keys", "k")).to_wire()}],
    }
    assert evs(events) == [
        ("create", "/rooms"),
        ("create", "/rooms/r1"),
        ("create", "/rooms/r1/keys"),
        ("create", "/rooms/r1/keys/k"),
    ]
    assert [e.index for e in events] == [1, 1, 1, 1]
    rooms, p = tree.get(("rooms",))  # type: ignore[misc]
    assert p is NO_PAYLOAD
    assert rooms == NodeProps(1, 1, 1, 1, 1, False, 1)
    assert tree.get(("rooms", "r1", "keys", "k")) == (NodeProps(1, 0, 0, 1, 1, True, 1), b"v")
    root, _ = tree.get(())  # type: ignore[misc]
    assert root.child_count == 1
    assert root.child_list_version == 1


def test_put_replaces_and_bumps_versions() -> None:
    tree = Tree()
    ok(tree, put(["a", "k"], 1))
    result, events = run(tree, put(["a", "k"], 2))
    assert result["results"][0]["created"] is False
    assert evs(events) == [("update", "/a/k")]
    assert events[0].payload == 2
    assert tree.get(("a", "k")) == (NodeProps(2, 0, 0, 1, 2, True, 1), 2)
    assert props(tree, ("a",)).child_list_version == 1  # no child added


def test_no_payload_is_distinct_from_none() -> None:
    tree = Tree()
    ok(tree, put(["none"], None), put(["empty"]))
    assert tree.get(("none",)) == (props(tree, ("none",)), None)
    assert props(tree, ("none",)).has_payload
    assert payload(tree, ("empty",)) is NO_PAYLOAD
    assert not props(tree, ("empty",)).has_payload
    # A put without payload clears it (and is still a payload change).
    ok(tree, put(["none"]))
    assert payload(tree, ("none",)) is NO_PAYLOAD
    assert props(tree, ("none",)).payload_version == 2
    got = ok(tree, {"op": "get", "path": ["empty"]})[0]
    assert "payload" not in got and got["found"]


def test_create_fails_if_exists_even_without_payload() -> None:
    tree = Tree()
    ok(tree, {"op": "create", "path": ["a", "b"], "payload": 1})
    for path in (["a", "b"], ["a"]):
        result, events = run(tree, {"op": "create", "path": path, "payload": 2})
        assert result["ok"] is False
        assert result["error"] == "exists"
        assert result["op"] == 0
        assert events == []
    assert payload(tree, ("a", "b")) == 1


def test_update_requires_existing_node() -> None:
    tree = Tree()
    result, _ = run(tree, {"op": "update", "path": ["x"], "payload": 1})
    assert result["error"] == "missing"
    assert tree.get(("x",)) is None
    ok(tree, put(["x"], 1))
    ok(tree, {"op": "update", "path": ["x"], "payload": 2})
    assert tree.get(("x",)) == (NodeProps(2, 0, 0, 2, 3, True, 1), 2)


def test_cas() -> None:
    tree = Tree()
    # version 0: must not exist
    r = ok(tree, {"op": "cas", "path": ["m"], "payload": "a", "payload_version": 0})
    assert r[0]["created"] and r[0]["props"]["payload_version"] == 1
    result, _ = run(tree, {"op": "cas", "path": ["m"], "payload": "b", "payload_version": 0})
    assert result["error"] == "version_mismatch"
    result, _ = run(tree, {"op": "cas", "path": ["m"], "payload": "b", "payload_version": 2})
    assert result["error"] == "version_mismatch"
    ok(tree, {"op": "cas", "path": ["m"], "payload": "b", "payload_version": 1})
    assert tree.get(("m",)) == (NodeProps(2, 0, 0, 1, 4, True, 1), "b")
    result, _ = run(tree, {"op": "cas", "path": ["missing"], "payload": 1, "payload_version": 1})
    assert result["error"] == "version_mismatch"


# --------------------------------------------------------------------------- delete


def test_delete_subtree_events_post_order() -> None:
    tree = Tree()
    ok(tree, put(["r", "b", "y"], 1), put(["r", "a"], 2), put(["r", "b", "x"], 3), put(["s"], 4))
    tree.take_dirty()
    result, events = run(tree, {"op": "delete", "path": ["r"]})
    assert result["results"] == [{"deleted": True, "count": 5}]
    assert evs(events) == [
        ("delete", "/r/a"),
        ("delete", "/r/b/x"),
        ("delete", "/r/b/y"),
        ("delete", "/r/b"),
        ("delete", "/r"),
    ]
    assert events[1].payload == 3
    assert tree.children(()) == ["s"]
    assert props(tree, ()).child_list_version == 3
    dirty = dict(tree.take_dirty())
    assert set(dirty) == {(), ("r",), ("r", "a"), ("r", "b"), ("r", "b", "x"), ("r", "b", "y")}
    assert all(dirty[k] is None for k in dirty if k)


def test_delete_missing_is_not_an_error() -> None:
    tree = Tree()
    result, events = run(tree, {"op": "delete", "path": ["no", "such"]})
    assert result["ok"] and result["results"] == [{"deleted": False, "count": 0}]
    assert events == []
    assert tree.take_dirty() == []


def test_delete_many() -> None:
    tree = Tree()
    ok(tree, *(put(["rooms", r, "keys", k], 1) for r in ("r1", "r2") for k in ("a", "b")))
    ok(tree, put(["rooms", "r1", "meta"], 0))
    result, events = run(tree, {"op": "delete_many", "pattern": ["rooms", "*", "keys", "a"]})
    assert result["results"] == [{"deleted": 2}]
    assert evs(events) == [("delete", "/rooms/r1/keys/a"), ("delete", "/rooms/r2/keys/a")]
    # overlapping matches: ancestors first, descendants are not deleted twice
    result, events = run(tree, {"op": "delete_many", "pattern": "/rooms/*/**"})
    assert result["results"] == [{"deleted": 7}]
    assert len(events) == 7
    assert tree.children(()) == ["rooms"]
    assert tree.children(("rooms",)) == []


# --------------------------------------------------------------------------- append


def test_append_names_and_seq() -> None:
    tree = Tree()
    r = ok(
        tree,
        {"op": "append", "path": ["log"], "payload": "a"},
        {"op": "append", "path": ["log"], "payload": "b"},
    )
    assert [x["seq"] for x in r] == [1, 2]
    assert r[0]["path"] == ["log", "00000000000000000001"]
    assert seq_name(2) == "00000000000000000002" and len(seq_name(10**19)) == 20
    assert tree.children(("log",)) == [seq_name(1), seq_name(2)]
    assert props(tree, ("log",)).next_seq == 3
    # deletes never make a number reusable
    ok(tree, {"op": "delete", "path": ["log", seq_name(2)]})
    r = ok(tree, {"op": "append", "path": ["log"], "payload": "c"})
    assert r[0]["seq"] == 3
    # a name taken by a plain put is skipped, never overwritten
    ok(tree, put(["log", seq_name(4)], "manual"))
    r = ok(tree, {"op": "append", "path": ["log"], "payload": "d"})
    assert r[0]["seq"] == 5
    assert payload(tree, ("log", seq_name(4))) == "manual"
    # the root can hold a log too
    assert ok(tree, {"op": "append", "path": [], "payload": 0})[0]["path"] == [seq_name(1)]


def test_append_with_cap_keeps_newest() -> None:
    tree = Tree()
    ok(tree, put(["log", "meta"], "not sequential"))
    for i in range(1, 8):
        result, events = run(tree, {"op": "append", "path": ["log"], "payload": i, "cap": 3})
        assert result["results"][0]["trimmed"] == (1 if i > 3 else 0)
        if i > 3:
            assert evs(events) == [("create", f"/log/{seq_name(i)}"), ("delete", f"/log/{seq_name(i - 3)}")]
    assert tree.children(("log",)) == [seq_name(5), seq_name(6), seq_name(7), "meta"]
    # lowering the cap trims several at once; seq numbering continues
    r = ok(tree, {"op": "append", "path": ["log"], "payload": 8, "cap": 1})
    assert r[0]["trimmed"] == 3 and r[0]["seq"] == 8
    assert tree.children(("log",)) == [seq_name(8), "meta"]


def test_put_seq_of_names_the_entry_the_next_append_takes() -> None:
    tree = Tree()
    # no parent yet: the first append takes 1
    r = ok(
        tree,
        put(["who", "k"], ["ana"], seq_of=["log"]),
        {"op": "append", "path": ["log"], "payload": "a"},
    )
    assert payload(tree, ("who", "k")) == [r[1]["seq"], "ana"] == [1, "ana"]
    ok(tree, {"op": "append", "path": ["log"], "payload": "b", "cap": 1})
    ok(tree, put(["log", seq_name(3)], "taken by a put"))
    r = ok(
        tree,
        put(["who", "k"], ["ben", 7], seq_of="/log"),
        {"op": "append", "path": ["log"], "payload": "c", "cap": 1},
    )
    assert payload(tree, ("who", "k")) == [r[1]["seq"], "ben", 7] == [4, "ben", 7]
    # the same on a tree rebuilt from its records
    assert Tree.load(tree.dump()).get(("who", "k")) == tree.get(("who", "k"))
    for bad, code in [
        (put(["who", "k"], "not a list", seq_of=["log"]), "invalid_command"),
        (put(["who", "k"], seq_of=["log"]), "invalid_command"),
        (put(["who", "k"], [], seq_of=["a\x00"]), "invalid_path"),
        ({"op": "append", "path": ["log"], "payload": [], "seq_of": ["log"]}, "invalid_command"),
    ]:
        with pytest.raises(TreeError) as info:
            validate_command({"then": [bad]})
        assert info.value.code == code


def test_append_cap_survives_reload() -> None:
    tree = Tree()
    for i in range(5):
        ok(tree, {"op": "append", "path": ["log"], "payload": i, "cap": 2})
    again = Tree.load(tree.dump())
    ok(again, {"op": "append", "path": ["log"], "payload": 9, "cap": 2})
    assert again.children(("log",)) == [seq_name(5), seq_name(6)]


# --------------------------------------------------------------------------- get / get_many


def test_reads_inside_txn_see_earlier_ops() -> None:
    tree = Tree()
    ok(tree, put(["a"], 1))
    r = ok(
        tree,
        {"op": "get", "path": ["a"]},
        put(["a"], 2),
        {"op": "get", "path": ["a"]},
        {"op": "get", "path": ["nope"]},
    )
    assert r[0]["payload"] == 1 and r[0]["props"]["payload_version"] == 1
    assert r[2]["payload"] == 2 and r[2]["props"]["payload_version"] == 2
    assert r[3] == {"found": False}


def test_prefixed_children_are_a_literal_sorted_range() -> None:
    tree = Tree()
    names = ["a", "a/", "a/*", "a/b", "a/b/c", "a0", "b", "é/1", "é/2", "*"]
    ok(tree, *[put(["k", name], name.upper()) for name in names])
    assert prefixed_children(tree, ("k",), "a/") == [
        ("a/", "A/"),
        ("a/*", "A/*"),
        ("a/b", "A/B"),
        ("a/b/c", "A/B/C"),
    ]
    assert [n for n, _ in prefixed_children(tree, ("k",), "*")] == ["*"]  # data, not a pattern
    assert [n for n, _ in prefixed_children(tree, ("k",), "é/")] == ["é/1", "é/2"]
    assert [n for n, _ in prefixed_children(tree, ("k",), "")] == sorted(names)
    assert [n for n, _ in prefixed_children(tree, ("k",), "a", limit=2)] == ["a", "a/"]
    assert prefixed_children(tree, ("k",), "c") == prefixed_children(tree, ("none",), "") == []


def test_get_many_sorted_and_limit() -> None:
    tree = Tree()
    ok(tree, put(["k", "b"], 2), put(["k", "a"], 1), put(["k", "c"]))
    r = ok(
        tree, {"op": "get_many", "pattern": ["k", "*"]}, {"op": "get_many", "pattern": ["k", "*"], "limit": 2}
    )
    assert [n["path"] for n in r[0]["nodes"]] == [["k", "a"], ["k", "b"], ["k", "c"]]
    assert [n.get("payload") for n in r[0]["nodes"]] == [1, 2, None]
    assert "payload" not in r[0]["nodes"][2]
    assert r[0]["truncated"] is False
    assert len(r[1]["nodes"]) == 2 and r[1]["truncated"] is True


# --------------------------------------------------------------------------- conditions


def compare(tree: Tree, cond: dict[str, Any]) -> bool:
    result, _ = txn(tree, {"compare": [cond]})
    assert result["ok"], result
    return result["succeeded"]


@pytest.fixture
def cond_tree() -> Tree:
    tree = Tree()
    ok(tree, put(["p", "a"], 1), put(["p", "b"], b"x"), put(["p", "c"], {"k": [1, 2], "j": None}), put(["e"]))
    ok(tree, put(["p", "a"], 1))
    return tree


@pytest.mark.parametrize(
    ("cond", "expected"),
    [
        ({"exists": ["p", "a"]}, True),
        ({"exists": "/p/zz"}, False),
        ({"has_payload": ["p", "a"]}, True),
        ({"has_payload": ["e"]}, False),
        ({"has_payload": ["zz"]}, False),
        ({"payload_version": [["p", "a"], 2]}, True),
        ({"payload_version": [["p", "a"], 1]}, False),
        ({"payload_version": [["zz"], 0]}, True),
        ({"payload_version": [["p", "b"], 0]}, False),
        ({"payload_equals": [["p", "a"], 1]}, True),
        ({"payload_equals": [["p", "a"], 1.0]}, False),
        ({"payload_equals": [["p", "a"], True]}, False),
        ({"payload_equals": [["p", "b"], b"x"]}, True),
        ({"payload_equals": [["p", "b"], "x"]}, False),
        ({"payload_equals": [["p", "c"], {"j": None, "k": [1, 2]}]}, True),
        ({"payload_equals": [["p", "c"], {"j": None, "k": [2, 1]}]}, False),
        ({"payload_equals": [["e"], None]}, False),
        ({"payload_equals": [["zz"], None]}, False),
        ({"child_count": [["p"], "==", 3]}, True),
        ({"child_count": [["p"], "!=", 3]}, False),
        ({"child_count": [["p"], "<", 3]}, False),
        ({"child_count": [["p"], "<=", 3]}, True),
        ({"child_count": [["p"], ">", 2]}, True),
        ({"child_count": [["p"], ">=", 4]}, False),
        ({"child_count": [["zz"], "==", 0]}, False),
        ({"not": {"exists": ["zz"]}}, True),
        ({"all": [{"exists": ["p"]}, {"exists": ["e"]}]}, True),
        ({"all": [{"exists": ["p"]}, {"exists": ["zz"]}]}, False),
        ({"all": []}, True),
        ({"any": [{"exists": ["zz"]}, {"exists": ["e"]}]}, True),
        ({"any": []}, False),
    ],
)
def test_conditions(cond_tree: Tree, cond: dict[str, Any], expected: bool) -> None:
    assert compare(cond_tree, cond) is expected


def test_created_index_tells_a_node_from_one_made_again_at_its_path() -> None:
    tree = Tree()
    ok(tree, put(["r", "meta"], {"v": 1}))
    first = props(tree, ["r", "meta"]).created_index
    ok(tree, put(["r", "meta"], {"v": 1}))  # written again: the same node
    assert compare(tree, {"created_index": [["r", "meta"], first]})
    ok(tree, {"op": "delete", "path": ["r"]})
    assert not compare(tree, {"created_index": [["r", "meta"], first]})  # missing
    ok(tree, put(["r", "meta"], {"v": 1}))  # the same payload, another node
    again = props(tree, ["r", "meta"]).created_index
    assert again != first
    assert not compare(tree, {"created_index": [["r", "meta"], first]})
    assert compare(tree, {"created_index": [["r", "meta"], again]})


def test_txn_then_else() -> None:
    tree = Tree()
    cmd = {
        "compare": [{"exists": ["lock"]}],
        "then": [put(["who"], "then")],
        "else": [put(["lock"], 1), put(["who"], "else")],
    }
    result, _ = txn(tree, cmd)
    assert result["succeeded"] is False and len(result["results"]) == 2
    assert payload(tree, ("who",)) == "else"
    result, _ = txn(tree, cmd)
    assert result["succeeded"] is True and len(result["results"]) == 1
    assert payload(tree, ("who",)) == "then"
    result, events = txn(tree, {})
    assert result == {"ok": True, "succeeded": True, "results": [], "index": 3} and events == []
    result, _ = txn(tree, {"compare": [{"exists": ["zz"]}]})
    assert result["succeeded"] is False and result["results"] == []


def test_if_condition_aborts_whole_txn() -> None:
    tree = Tree()
    ok(tree, put(["a"], 1))
    before = tree.state_hash()
    result, events = run(tree, put(["b"], 1), put(["c"], 1, **{"if": {"exists": ["zz"]}}))
    assert result["ok"] is False and result["error"] == "condition_failed" and result["op"] == 1
    assert events == [] and tree.state_hash() != before  # applied_index moved on
    assert tree.get(("b",)) is None
    r = ok(tree, {"op": "delete", "path": ["a"], "if": {"payload_equals": [["a"], 1]}})
    assert r[0]["deleted"]


# --------------------------------------------------------------------------- patterns


@pytest.fixture
def pat_tree() -> Tree:
    tree = Tree()
    ok(
        tree,
        put(["rooms", "r1", "keys", "obj-1"], 1),
        put(["rooms", "r1", "keys", "mesh-1"], 2),
        put(["rooms", "r2", "keys", "obj-2"], 3),
        put(["rooms", "r2", "meta"], 4),
        put(["users", "u"], 5),
    )
    return tree


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        (["rooms", "*"], ["/rooms/r1", "/rooms/r2"]),
        ("/rooms/*/keys/*", ["/rooms/r1/keys/mesh-1", "/rooms/r1/keys/obj-1", "/rooms/r2/keys/obj-2"]),
        (["rooms", "r2", "**"], ["/rooms/r2", "/rooms/r2/keys", "/rooms/r2/keys/obj-2", "/rooms/r2/meta"]),
        (["**", "obj-2"], ["/rooms/r2/keys/obj-2"]),
        (["**", "**", "r1"], ["/rooms/r1"]),
        (
            ["**", "keys", "**"],
            [
                "/rooms/r1/keys",
                "/rooms/r1/keys/mesh-1",
                "/rooms/r1/keys/obj-1",
                "/rooms/r2/keys",
                "/rooms/r2/keys/obj-2",
            ],
        ),
        (
            ["rooms", "*", "keys", {"name_matches": "obj-.*"}],
            ["/rooms/r1/keys/obj-1", "/rooms/r2/keys/obj-2"],
        ),
        (["rooms", "*", "keys", {"name_matches": "obj"}], []),  # whole-name match
        (["rooms", {"cond": {"child_count": [">", 1]}}], ["/rooms/r2"]),
        (["rooms", {"cond": {"exists": True}, "name_matches": "r1"}], ["/rooms/r1"]),
        (["**", {"cond": {"payload_equals": 4}}], ["/rooms/r2/meta"]),
        (
            ["**", {"cond": {"all": [{"has_payload": True}, {"payload_version": 1}]}}],
            [
                "/rooms/r1/keys/mesh-1",
                "/rooms/r1/keys/obj-1",
                "/rooms/r2/keys/obj-2",
                "/rooms/r2/meta",
                "/users/u",
            ],
        ),
        (["nope", "**"], []),
        (["rooms", "r1", "keys", "obj-1"], ["/rooms/r1/keys/obj-1"]),
    ],
)
def test_patterns(pat_tree: Tree, pattern: Any, expected: list[str]) -> None:
    assert [format_path(p) for p in paths(pat_tree, pattern)] == expected


def test_double_star_matches_everything_but_root(pat_tree: Tree) -> None:
    found = paths(pat_tree, ["**"])
    assert () not in found
    assert found == sorted(found)
    assert len(found) == len(set(found)) == 11


def test_match_pattern_on_names() -> None:
    assert match_pattern("/rooms/*/keys/**", ("rooms", "r1", "keys"))
    assert match_pattern(["rooms", "**"], ("rooms", "r1", "keys", "k"))
    assert match_pattern(["rooms", {"name_matches": "r[0-9]+"}], ("rooms", "r12"))
    assert not match_pattern(["rooms", {"name_matches": "r[0-9]+"}], ("rooms", "r12x"))
    assert not match_pattern(["rooms", "*"], ("rooms",))
    assert not match_pattern(["rooms", "*"], ("rooms", "a", "b"))
    with pytest.raises(TreeError):
        match_pattern(["rooms", {"cond": {"exists": True}}], ("rooms", "a"))


# --------------------------------------------------------------------------- atomicity


def test_failing_op_in_the_middle_changes_nothing() -> None:
    tree = Tree()
    ok(tree, put(["a", "x"], 1), {"op": "append", "path": ["log"], "payload": 0})
    ok(tree, put(["w"], 1, keep_while={"/a": {"exists": True}}))
    tree.take_dirty()
    dump_before = tree.dump()
    result, events = run(
        tree,
        put(["a", "x"], 2),
        put(["new", "deep", "node"], 3, keep_while={"/a/x": {"exists": True}}),
        {"op": "append", "path": ["log"], "payload": 1, "cap": 1},
        {"op": "delete", "path": ["a"]},
        put(["w"], 9, keep_while={}),
        {"op": "create", "path": ["log"]},  # fails: exists
        put(["never"], 1),
    )
    assert result == {
        "ok": False,
        "error": "exists",
        "message": result["message"],
        "op": 5,
        "index": tree.applied_index,
    }
    assert events == []
    assert tree.take_dirty() == []
    after = Tree.load(tree.dump())
    after.applied_index = Tree.load(dump_before).applied_index
    assert after.dump() == dump_before
    # the keep_while index was restored too: deleting /a still removes /w
    _, events = run(tree, {"op": "delete", "path": ["a"]})
    assert ("delete", "/w") in evs(events)
    # and the append counter did not move, and the trimmed entry is back in the capped log
    r = ok(tree, {"op": "append", "path": ["log"], "cap": 2})
    assert r[0]["seq"] == 2 and r[0]["trimmed"] == 0
    r = ok(tree, {"op": "append", "path": ["log"], "cap": 2})
    assert r[0]["trimmed"] == 1
    assert tree.children(("log",)) == [seq_name(2), seq_name(3)]


# --------------------------------------------------------------------------- keep_while


def test_keep_while_parent_exists() -> None:
    tree = Tree()
    ok(tree, put(["rooms", "r"], {"owner": "u"}))
    for c in ("c1", "c2"):
        ok(tree, put(["rooms", "r", "clients", c], 1, keep_while={"/rooms/r": {"exists": True}}))
    ok(tree, put(["elsewhere", "c3"], 1, keep_while=[[["rooms", "r"], {"exists": True}]]))
    ok(tree, put(["rooms", "r"], {"owner": "v"}))  # an update does not end the rule
    assert tree.get(("elsewhere", "c3")) is not None
    result, events = run(tree, {"op": "delete", "path": ["rooms", "r"]})
    assert result["results"] == [{"deleted": True, "count": 4}]
    assert evs(events)[-1] == ("delete", "/elsewhere/c3")  # cascade after the ops
    assert tree.get(("elsewhere", "c3")) is None
    assert tree.children(("elsewhere",)) == []


def test_keep_while_child_count_self_rule() -> None:
    tree = Tree()
    rule = {"/rooms/r/clients": {"child_count": [">", 0]}}
    # The self-condition is skipped on the first insert, so the empty room may be created...
    ok(tree, put(["rooms", "r", "clients"], keep_while=rule))
    ok(tree, put(["rooms", "r", "clients", "c1"], 1), put(["rooms", "r", "clients", "c2"], 1))
    ok(tree, {"op": "delete", "path": ["rooms", "r", "clients", "c1"]})
    assert tree.get(("rooms", "r", "clients")) is not None
    # ...and it goes when its last child goes.
    _, events = run(tree, {"op": "delete", "path": ["rooms", "r", "clients", "c2"]})
    assert evs(events) == [("delete", "/rooms/r/clients/c2"), ("delete", "/rooms/r/clients")]
    assert tree.children(("rooms", "r")) == []


def test_keep_while_other_path_child_count() -> None:
    tree = Tree()
    ok(tree, put(["rooms", "r", "clients", "c"], 1))
    ok(tree, put(["rooms", "r", "meta"], 1, keep_while={"/rooms/r/clients": {"child_count": [">=", 1]}}))
    _, events = run(tree, {"op": "delete", "path": ["rooms", "r", "clients", "c"]})
    assert ("delete", "/rooms/r/meta") in evs(events)


def test_keep_while_cascade_chain() -> None:
    tree = Tree()
    ok(tree, put(["a"], 1))
    ok(tree, put(["b"], 1, keep_while={"/a": {"exists": True}}))
    ok(tree, put(["c"], 1, keep_while={"/b": {"exists": True}}))
    ok(tree, put(["d"], 1, keep_while={"/c": {"exists": True}, "/a/x": {"exists": False}}))
    ok(tree, put(["e"], 1, keep_while={"/d": {"payload_equals": 1}}))
    _, events = run(tree, {"op": "delete", "path": ["a"]})
    assert evs(events) == [
        ("delete", "/a"),
        ("delete", "/b"),
        ("delete", "/c"),
        ("delete", "/d"),
        ("delete", "/e"),
    ]
    assert tree.children(()) == []


def test_keep_while_payload_condition_fires_on_update() -> None:
    tree = Tree()
    ok(tree, put(["flag"], "on"))
    ok(tree, put(["dep"], 1, keep_while={"/flag": {"payload_equals": "on"}}))
    result, events = run(tree, put(["flag"], "off"))
    assert evs(events) == [("update", "/flag"), ("delete", "/dep")]
    assert result["ok"]


def test_keep_while_unmet_when_set_is_refused() -> None:
    tree = Tree()
    result, _ = run(tree, put(["x"], 1), put(["c"], 1, keep_while={"/room": {"exists": True}}))
    assert result["error"] == "keep_while_unmet" and result["op"] == 1
    assert tree.get(("x",)) is None
    # ...but the watched node may be created later in the same command
    ok(tree, put(["c"], 1, keep_while={"/room": {"exists": True}}), put(["room"], 1))
    assert tree.get(("c",)) is not None


def test_keep_while_replace_and_clear() -> None:
    tree = Tree()
    ok(tree, put(["a"], 1), put(["b"], 1))
    ok(tree, put(["x"], 1, keep_while={"/a": {"exists": True}}))
    ok(tree, put(["x"], 2))  # no keep_while key: the rule stays
    ok(tree, put(["x"], 3, keep_while={"/b": {"exists": True}}))  # replaced
    ok(tree, {"op": "delete", "path": ["a"]})
    assert payload(tree, ("x",)) == 3
    ok(tree, put(["x"], 4, keep_while={}))  # cleared
    ok(tree, {"op": "delete", "path": ["b"]})
    assert payload(tree, ("x",)) == 4


def test_keep_while_recreated_node_without_rule_is_kept() -> None:
    tree = Tree()
    ok(tree, put(["a"], 1), put(["x"], 1, keep_while={"/a": {"exists": True}}))
    ok(tree, {"op": "delete", "path": ["x"]}, put(["x"], 2))  # recreated with no rule
    ok(tree, {"op": "delete", "path": ["a"]})
    assert payload(tree, ("x",)) == 2


def test_keep_while_survives_persistence() -> None:
    tree = Tree()
    records: dict[tuple[str, ...], bytes] = {}
    ok(
        tree,
        put(["a"], 1),
        put(["x", "y"], 1, keep_while={"/a": {"exists": True}, "/": {"child_count": [">", 0]}}),
    )
    accumulate(records, tree.take_dirty())
    for copy in (Tree.load(tree.dump()), rebuilt(tree, records)):
        _, events = run(copy, {"op": "delete", "path": ["a"]})
        assert ("delete", "/x/y") in evs(events)


# --------------------------------------------------------------------------- sessions


def test_session_retry_returns_cached_result_and_applies_once() -> None:
    tree = Tree()
    first, events = run(tree, {"op": "append", "path": ["log"], "payload": "x"}, client="c1", seq=1)
    assert events
    again, events = run(tree, {"op": "append", "path": ["log"], "payload": "x"}, client="c1", seq=1)
    assert again == first and again["index"] == 1
    assert events == []
    assert tree.children(("log",)) == [seq_name(1)]
    assert tree.session("c1") == (1, first)
    second, _ = run(tree, {"op": "append", "path": ["log"], "payload": "y"}, client="c1", seq=2)
    assert second["results"][0]["seq"] == 2
    stale, events = run(tree, {"op": "append", "path": ["log"]}, client="c1", seq=1)
    assert stale["ok"] is False and stale["error"] == "stale_session" and events == []
    assert tree.children(("log",)) == [seq_name(1), seq_name(2)]
    # other clients are independent
    ok_result, _ = run(tree, {"op": "append", "path": ["log"]}, client="c2", seq=1)
    assert ok_result["ok"]


def test_session_caches_failures_too() -> None:
    tree = Tree()
    env = msgpack.packb({"client": "c", "seq": 5, "cmd": {"then": [{"op": "bogus"}]}})
    r1, _ = tree.apply(1, env)
    assert r1["error"] == "unknown_op"
    ok(tree, put(["a"], 1))
    r2, _ = tree.apply(3, env)
    assert r2 is r1 or r2 == r1


def test_session_eviction_least_recently_used() -> None:
    tree = Tree(max_sessions=2)
    run(tree, client="a", seq=1)
    run(tree, client="b", seq=1)
    run(tree, client="a", seq=2)  # a is now more recent than b
    tree.take_dirty()
    run(tree, client="c", seq=1)  # evicts b
    assert tree.session("b") is None and tree.session("a") is not None
    dirty = dict(tree.take_dirty())
    assert dirty[(SESSION_KEY, "b")] is None
    assert dirty[(SESSION_KEY, "c")] is not None
    # an evicted client's retry is applied again (bounded memory, documented)
    result, _ = run(tree, put(["z"], 1), client="b", seq=1)
    assert result["ok"] and result["results"]
    # eviction order is preserved through a reload
    copy = Tree.load(tree.dump(), max_sessions=2)
    run(copy, client="d", seq=1)
    run(tree, client="d", seq=1)
    assert copy == tree
    assert tree.session("c") is None


def test_session_keys_never_collide_with_paths() -> None:
    tree = Tree()
    run(tree, put(["sessions", "c"], 1), client="c", seq=1)
    keys = [k for k, _ in tree.take_dirty()]
    assert (SESSION_KEY, "c") in keys and ("sessions", "c") in keys
    with pytest.raises(TreeError):
        validate_command({"then": [put([SESSION_KEY, "c"], 1)]})


# --------------------------------------------------------------------------- payload fidelity


def test_bytes_and_str_stay_distinct_and_exact() -> None:
    tree = Tree()
    blob = bytes(range(256))
    ok(
        tree,
        put(["b"], blob),
        put(["s"], "\x00é🎨"),
        put(["n", "日本語"], {"ключ": [b"\xff", "\xff", 1, 1.5, True, None, -(2**63), 2**64 - 1]}),
    )
    records: dict[tuple[str, ...], bytes] = {}
    accumulate(records, tree.take_dirty())
    for copy in (tree, Tree.load(tree.dump()), rebuilt(tree, records)):
        assert payload(copy, ("b",)) == blob and type(payload(copy, ("b",))) is bytes
        assert payload(copy, ("s",)) == "\x00é🎨"
        value = payload(copy, ("n", "日本語"))
        assert value == {"ключ": [b"\xff", "\xff", 1, 1.5, True, None, -(2**63), 2**64 - 1]}
        assert [type(x) for x in value["ключ"][:6]] == [bytes, str, int, float, bool, type(None)]
        assert copy.state_hash() == tree.state_hash()


# --------------------------------------------------------------------------- validation


def _nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("cmd", "code"),
    [
        ([], "invalid_command"),
        ({"then": {}}, "invalid_command"),
        ({"when": []}, "invalid_command"),
        ({"then": [1]}, "invalid_command"),
        ({"then": [{"op": "frob", "path": ["a"]}]}, "unknown_op"),
        ({"then": [{"path": ["a"]}]}, "unknown_op"),
        ({"then": [{"op": "put"}]}, "invalid_command"),
        ({"then": [{"op": "put", "path": ["a"], "extra": 1}]}, "invalid_command"),
        ({"then": [{"op": "update", "path": ["a"], "keep_while": {}}]}, "invalid_command"),
        ({"then": [{"op": "cas", "path": ["a"], "payload": 1}]}, "invalid_command"),
        ({"then": [{"op": "cas", "path": ["a"], "payload_version": -1}]}, "invalid_command"),
        ({"then": [{"op": "cas", "path": ["a"], "payload_version": True}]}, "invalid_command"),
        ({"then": [{"op": "append", "path": ["a"], "cap": 0}]}, "invalid_command"),
        ({"then": [{"op": "get_many", "pattern": ["a"], "limit": "x"}]}, "invalid_command"),
        ({"then": [{"op": "put", "path": []}]}, "invalid_path"),
        ({"then": [{"op": "delete", "path": "/"}]}, "invalid_path"),
        ({"then": [{"op": "put", "path": "a/b"}]}, "invalid_path"),
        ({"then": [{"op": "put", "path": ["a", ""]}]}, "invalid_path"),
        ({"then": [{"op": "put", "path": ["a", 1]}]}, "invalid_path"),
        ({"then": [{"op": "put", "path": 5}]}, "invalid_path"),
        ({"then": [{"op": "put", "path": ["a"] * 65}]}, "invalid_path"),
        ({"then": [{"op": "put", "path": ["a"], "payload": {1: 2}}]}, "invalid_payload"),
        ({"then": [{"op": "put", "path": ["a"], "payload": {b"k": 2}}]}, "invalid_payload"),
        ({"then": [{"op": "put", "path": ["a"], "payload": {1, 2}}]}, "invalid_payload"),
        ({"then": [{"op": "put", "path": ["a"], "payload": 2**64}]}, "invalid_payload"),
        ({"then": [{"op": "put", "path": ["a"], "payload": "\udc80"}]}, "invalid_payload"),
        ({"then": [{"op": "put", "path": ["a"], "payload": bytearray(b"x")}]}, "invalid_payload"),
        ({"then": [{"op": "put", "path": ["a"], "payload": _nested(33)}]}, "too_deep"),
        ({"compare": [{"exists": ["a"], "x": 1}]}, "invalid_condition"),
        ({"compare": [{"frob": ["a"]}]}, "invalid_condition"),
        ({"compare": [{"exists": True}]}, "invalid_path"),
        ({"compare": [{"payload_version": ["a"]}]}, "invalid_condition"),
        ({"compare": [{"created_index": ["a"]}]}, "invalid_condition"),
        ({"compare": [{"created_index": [["a"], -1]}]}, "invalid_condition"),
        ({"compare": [{"created_index": [["a"], True]}]}, "invalid_condition"),
        ({"compare": [{"child_count": [["a"], "~", 1]}]}, "invalid_condition"),
        ({"compare": [{"child_count": [["a"], "==", -1]}]}, "invalid_condition"),
        ({"compare": [{"name_matches": "x"}]}, "invalid_condition"),
        ({"compare": [{"all": {"exists": ["a"]}}]}, "invalid_condition"),
        ({"compare": [{"not": {"not": {"frob": 1}}}]}, "invalid_condition"),
        ({"compare": [{"payload_equals": [["a"], {1: 1}]}]}, "invalid_payload"),
        ({"then": [{"op": "put", "path": ["a"], "if": {"frob": 1}}]}, "invalid_condition"),
        ({"then": [{"op": "put", "path": ["a"], "keep_while": 1}]}, "invalid_condition"),
        (
            {"then": [{"op": "put", "path": ["a"], "keep_while": {"/b": {"exists": ["b"]}}}]},
            "invalid_condition",
        ),
        ({"then": [{"op": "put", "path": ["a"], "keep_while": {"b": {"exists": True}}}]}, "invalid_path"),
        (
            {
                "then": [
                    {
                        "op": "put",
                        "path": ["a"],
                        "keep_while": [[["b"], {"exists": True}], ["/b", {"exists": True}]],
                    }
                ]
            },
            "invalid_condition",
        ),
        ({"then": [{"op": "delete_many", "pattern": []}]}, "invalid_pattern"),
        ({"then": [{"op": "delete_many", "pattern": [1]}]}, "invalid_pattern"),
        ({"then": [{"op": "delete_many", "pattern": [{"foo": 1}]}]}, "invalid_pattern"),
        ({"then": [{"op": "delete_many", "pattern": [{"name_matches": "("}]}]}, "invalid_regex"),
        ({"then": [{"op": "delete_many", "pattern": [{"name_matches": "a" * 257}]}]}, "invalid_regex"),
        ({"then": [{"op": "delete_many", "pattern": [{"name_matches": 5}]}]}, "invalid_regex"),
        ({"then": [{"op": "delete_many", "pattern": [{"cond": {"exists": "yes"}}]}]}, "invalid_condition"),
    ],
)
def test_validation_errors(cmd: Any, code: str) -> None:
    with pytest.raises(TreeError) as info:
        validate_command(cmd)
    assert info.value.code == code
    assert info.value.message
    # apply() reports the same error without raising, and changes nothing but the applied index
    tree = Tree()
    ok(tree, put(["a"], 1))
    tree.take_dirty()
    before = tree.dump()
    wire = _wire(cmd)
    result, events = tree.apply(2, wire)
    try:
        validate_command(msgpack.unpackb(wire, raw=False)["cmd"])
    except TreeError as e:  # the wire form may lose the fault (bytearray -> bytes)
        assert result["error"] == e.code
    except Exception:  # or may not carry it at all (non-str map keys)
        assert result["error"] == "invalid_envelope"
    else:
        return
    assert result["ok"] is False and events == []
    tree.applied_index = 1
    assert tree.dump() == before
    assert tree.take_dirty() == []


def _wire(cmd: Any) -> bytes:
    try:
        return msgpack.packb({"cmd": cmd}, use_bin_type=True)
    except (TypeError, OverflowError, ValueError):
        return b"\xc1"  # not representable: send garbage instead


def test_too_deep_conditions() -> None:
    cond: dict[str, Any] = {"exists": ["a"]}
    for _ in range(31):
        cond = {"not": cond}
    validate_command({"compare": [cond]})
    with pytest.raises(TreeError) as info:
        validate_command({"compare": [{"not": cond}]})
    assert info.value.code == "too_deep"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xc1",
        b"\x91\x01",
        msgpack.packb({"cmd": {}}) + b"\x00",
        msgpack.packb({"cmd": {}, "x": 1}),
        msgpack.packb({"client": "c", "cmd": {}}),
        msgpack.packb({"client": "c", "seq": -1, "cmd": {}}),
        msgpack.packb({"client": "", "seq": 1, "cmd": {}}),
        msgpack.packb({"client": 1, "seq": 1, "cmd": {}}),
        msgpack.packb({"seq": 1, "cmd": {}}),
        msgpack.packb({b"cmd": {}}, use_bin_type=True),
        msgpack.packb({1: {}}),
        msgpack.packb(msgpack.ExtType(1, b"x")),
        b"\x91" * 5000,
    ],
)
def test_garbage_entry_data(data: bytes) -> None:
    tree = Tree()
    result, events = tree.apply(1, data)
    assert result["ok"] is False and result["error"] == "invalid_envelope" and result["index"] == 1
    assert events == [] and tree.take_dirty() == []
    assert tree.applied_index == 1
    with pytest.raises(TreeError):
        decode_envelope(data)


def test_ext_types_are_not_payloads() -> None:
    tree = Tree()
    data = msgpack.packb(
        {"cmd": {"then": [{"op": "put", "path": ["a"], "payload": msgpack.ExtType(3, b"x")}]}}
    )
    result, _ = tree.apply(1, data)
    assert result["error"] == "invalid_payload"


def test_apply_index_must_increase() -> None:
    tree = Tree()
    tree.apply(5, encode_envelope({}))
    for bad in (5, 4, True, "6"):
        with pytest.raises(TreeError):
            tree.apply(bad, encode_envelope({}))  # type: ignore[arg-type]
    tree.advance(7)
    assert tree.applied_index == 7


def test_envelope_round_trip() -> None:
    cmd = {"then": [put(["a"], b"x")]}
    assert decode_envelope(encode_envelope(cmd)) == {
        "cmd": {"then": [{"op": "put", "path": ["a"], "payload": b"x"}]}
    }
    assert decode_envelope(encode_envelope(cmd, "c", 3))["seq"] == 3
    with pytest.raises(TreeError):
        encode_envelope(cmd, "c")
    with pytest.raises(TreeError):
        encode_envelope({"then": [{"op": "nope"}]})


# --------------------------------------------------------------------------- persistence


def build_sample() -> tuple[Tree, dict[tuple[str, ...], bytes]]:
    tree = Tree(max_sessions=3)
    records: dict[tuple[str, ...], bytes] = {}
    steps: list[tuple[dict[str, Any], str | None, int | None]] = [
        ({"then": [put(["rooms", "r", "meta"], {"o": "u"})]}, "c1", 1),
        (
            {"then": [put(["rooms", "r", "clients", "c1"], 1, keep_while={"/rooms/r": {"exists": True}})]},
            "c1",
            2,
        ),
        ({"then": [{"op": "append", "path": ["rooms", "r", "cmds"], "payload": b"\x01", "cap": 2}]}, "c2", 1),
        ({"then": [{"op": "append", "path": ["rooms", "r", "cmds"], "payload": b"\x02", "cap": 2}]}, "c2", 2),
        ({"then": [{"op": "append", "path": ["rooms", "r", "cmds"], "payload": b"\x03", "cap": 2}]}, "c3", 1),
        ({"then": [put(["tmp", "x"], 1), {"op": "delete", "path": ["tmp"]}]}, None, None),
        ({"then": [{"op": "create", "path": ["rooms", "r", "meta"]}]}, "c4", 1),  # fails, evicts c1
        ({"then": [put(["s", "é/%"], "v")]}, None, None),
    ]
    for cmd, client, seq in steps:
        txn(tree, cmd, client, seq)
        accumulate(records, tree.take_dirty())
    return tree, records


def test_from_records_and_dump_round_trip() -> None:
    tree, records = build_sample()
    assert (SESSION_KEY, "c1") not in records and (SESSION_KEY, "c4") in records
    assert ("tmp",) not in records
    copies = [rebuilt(tree, records), Tree.load(tree.dump(), max_sessions=3)]
    for copy in copies:
        assert copy.state_hash() == tree.state_hash()
        assert copy == tree
        assert copy.applied_index == tree.applied_index
        assert list(copy.match(["**"])) == list(tree.match(["**"]))
        assert copy.get(()) == tree.get(())
        for client in ("c2", "c3", "c4"):
            assert copy.session(client) == tree.session(client)
        assert copy._watch == tree._watch
    # and all continue identically
    for t in [*copies, tree]:
        txn(t, {"then": [{"op": "delete", "path": ["rooms", "r"]}]}, "c5", 1)
    assert copies[0] == copies[1] == tree


def test_from_records_order_independent_and_checked() -> None:
    tree, records = build_sample()
    shuffled = list(reversed(list(records.items())))
    assert Tree.from_records(shuffled, tree.applied_index, max_sessions=3) == tree
    orphan = {k: v for k, v in records.items() if k != ("rooms", "r")}
    with pytest.raises(TreeError):
        Tree.from_records(orphan.items(), tree.applied_index)
    with pytest.raises(TreeError):
        Tree.from_records([(("a",), b"\xc1")], 1)
    with pytest.raises(TreeError):
        Tree.from_records([(("a",), msgpack.packb([1, 2]))], 1)


@pytest.mark.parametrize(
    "data", [b"", b"\xc1", msgpack.packb([2, 0, [], []]), msgpack.packb([1, 0, [[["a"], [1]]], []])]
)
def test_load_rejects_bad_snapshots(data: bytes) -> None:
    with pytest.raises(TreeError):
        Tree.load(data)


def test_empty_tree_round_trips() -> None:
    tree = Tree()
    assert tree.take_dirty() == []
    assert Tree.from_records([], 0) == tree == Tree.load(tree.dump())
    assert tree.get(()) == (NodeProps(1, 0, 0, 0, 0, False, 1), NO_PAYLOAD)


def test_dirty_records_only_what_changed() -> None:
    tree = Tree()
    ok(tree, *(put(["rooms", "r", "keys", f"k{i}"], i) for i in range(200)))
    dirty = tree.take_dirty()
    assert len(dirty) == 200 + 4  # keys, rooms, r, keys and the root
    ok(tree, put(["rooms", "r", "keys", "k5"], "new"))
    assert [k for k, _ in tree.take_dirty()] == [("rooms", "r", "keys", "k5")]
    ok(tree, put(["rooms", "r", "keys", "k900"], "new"))
    assert [k for k, _ in tree.take_dirty()] == [("rooms", "r", "keys"), ("rooms", "r", "keys", "k900")]
    assert tree.take_dirty() == []


def test_state_hash_differs_on_any_change() -> None:
    a, b = Tree(), Tree()
    ok(a, put(["k"], b"1"))
    ok(b, put(["k"], "1"))
    assert a.state_hash() != b.state_hash()
    c = Tree()
    ok(c, put(["k"], b"1"))
    assert a.state_hash() == c.state_hash()


# --------------------------------------------------------------------------- watch events


def test_watch_events_order_and_props() -> None:
    tree = Tree()
    ok(tree, put(["keep"], 1))
    ok(tree, put(["dep"], 1, keep_while={"/keep": {"exists": True}}))
    result, events = run(
        tree,
        put(["a", "b"], 1),
        put(["a", "b"], 2),
        {"op": "append", "path": ["a"], "payload": "x"},
        {"op": "delete", "path": ["keep"]},
        {"op": "get", "path": ["a"]},
    )
    assert result["ok"]
    assert evs(events) == [
        ("create", "/a"),
        ("create", "/a/b"),
        ("update", "/a/b"),
        ("create", f"/a/{seq_name(1)}"),
        ("delete", "/keep"),
        ("delete", "/dep"),
    ]
    assert all(e.index == 3 for e in events)
    assert events[1].props.payload_version == 1 and events[2].props.payload_version == 2
    assert events[0].props.child_count == 0  # props at the time of the change
    assert events[4].payload == 1
    assert isinstance(events[0].props, NodeProps)


def test_results_are_msgpack_round_trippable() -> None:
    tree, _ = build_sample()
    result, _ = run(
        tree,
        {"op": "get_many", "pattern": ["**"]},
        {"op": "append", "path": ["x"], "cap": 1},
        {"op": "cas", "path": ["y"], "payload": 1, "payload_version": 0},
    )
    assert msgpack.unpackb(msgpack.packb(result, use_bin_type=True), raw=False) == result


def test_apply_accepts_bytes_like_entries() -> None:
    tree = Tree()
    data = encode_envelope({"then": [put(["a"], 1)]})
    assert tree.apply(1, memoryview(data))[0]["ok"]
    assert tree.apply(2, bytearray(data))[0]["ok"]
    assert tree.apply(3, "text")[0]["error"] == "invalid_envelope"  # type: ignore[arg-type]
    assert decode_envelope(msgpack.packb({"cmd": {"then": [{"op": "?"}]}}), validate=False)["cmd"]


def test_children_items_reads_a_literal_path_even_with_pattern_characters():
    tree = Tree()
    for room in ("*", "**", "a", "%2F", "a/b"):
        ok(tree, put(["rooms", room, "keys", "k"], room), put(["rooms", room, "keys", "*"], f"{room}!"))
    ok(tree, put(["rooms", "*", "keys", "z"]))  # no payload: listed too
    for room in ("*", "**", "a", "%2F", "a/b"):
        items = tree.children_items(("rooms", room, "keys"))
        names = ["*", "k", "z"] if room == "*" else ["*", "k"]
        assert [name for name, _, _ in items] == names
        assert items[1][2] == room and items[0][2] == f"{room}!"
        assert items[0][1] == tree.get(("rooms", room, "keys", "*"))[0]
    assert tree.children_items(("rooms", "*", "keys", "k")) == []  # a leaf
    assert tree.children_items(("rooms", "nope")) == []
    assert [name for name, _, _ in tree.children_items(())] == ["rooms"]
    with pytest.raises(TreeError):
        tree.children_items(("rooms", ""))
