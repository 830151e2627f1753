"""The index of a node's sequential children (replication.tree.state.SeqIndex), which capped logs trim from.

A trim takes the oldest number without shifting the rest: these tests hold it to a plain sorted list through
trims past the point where the skipped front is cut, trims rolled back, and numbers added or removed out of
order, and a capped log of the tree through the same; and the reads of a log's tail or oldest entries it
serves (Tree.seq_children).
"""

from __future__ import annotations

import bisect

from hypothesis import given
from hypothesis import strategies as st

from replication.tree import Tree, encode_envelope, seq_name
from replication.tree.state import _SEQ_COMPACT, SeqIndex


def _check(index: SeqIndex, expected: list[int]) -> None:
    assert list(index) == expected
    assert len(index) == len(expected)
    if expected:
        assert index.oldest() == expected[0]


def test_empty_index_then_one_number() -> None:
    index = SeqIndex()
    _check(index, [])
    index.add(7)
    _check(index, [7])
    index.remove(7)
    _check(index, [])
    index.add(3)  # smaller than anything it held before
    _check(index, [3])


def test_trims_past_the_cut_and_a_rolled_back_trim() -> None:
    index = SeqIndex()
    total = 3 * _SEQ_COMPACT
    for number in range(1, total + 1):
        index.add(number)
    for number in range(1, 2 * _SEQ_COMPACT + 2):  # the skipped front is cut on the way
        index.remove(number)
        if number % 500 == 0:
            _check(index, list(range(number + 1, total + 1)))
    _check(index, list(range(2 * _SEQ_COMPACT + 2, total + 1)))
    # A trim rolled back puts the oldest back in front; then it is trimmed again.
    index.add(2 * _SEQ_COMPACT + 1)
    _check(index, list(range(2 * _SEQ_COMPACT + 1, total + 1)))
    index.remove(2 * _SEQ_COMPACT + 1)
    # The newest removed (an append rolled back), one from the middle, one added out of order.
    index.remove(total)
    index.remove(total - 10)
    index.add(total - 10)
    _check(index, list(range(2 * _SEQ_COMPACT + 2, total)))


@given(
    st.lists(
        st.tuples(st.sampled_from(["append", "trim", "remove", "add_old"]), st.integers(0, 10**6)),
        max_size=400,
    ),
    st.integers(0, 3000),
    st.integers(0, 3000),
)
def test_like_a_sorted_list(steps: list[tuple[str, int]], start: int, trimmed: int) -> None:
    index, expected = SeqIndex(), []
    for number in range(1, start + 1):
        index.add(number)
        expected.append(number)
    for number in range(1, min(start, trimmed) + 1):  # enough trims to cross the cut, or not
        index.remove(number)
    del expected[: min(start, trimmed)]
    _check(index, expected)
    for step, pick in steps:
        if step == "append":
            number = (expected[-1] if expected else 0) + 1 + pick % 3
            if number in expected:
                continue
        elif step == "add_old":  # before the oldest (or into an emptied index)
            if expected and expected[0] == 1:
                continue
            number = 1 + pick % (expected[0] - 1 if expected else 5)
        elif not expected:
            continue
        else:
            number = expected[0] if step == "trim" else expected[pick % len(expected)]
            index.remove(number)
            expected.remove(number)
            _check(index, expected)
            continue
        index.add(number)
        bisect.insort(expected, number)
        _check(index, expected)


def test_capped_log_longer_than_the_cut() -> None:
    """A log capped above the cut keeps its newest entries through trims, a trim rolled back and a reload."""
    cap = _SEQ_COMPACT + 300
    tree = Tree()
    for number in range(1, 3 * _SEQ_COMPACT + 1):
        tree.apply(number, _append(cap))
    last = 3 * _SEQ_COMPACT
    assert tree.children(("log",)) == [seq_name(n) for n in range(last - cap + 1, last + 1)]
    # An append that trims, then fails: the trimmed entry is back and is the next one trimmed.
    failed, _ = tree.apply(
        last + 1,
        _envelope(
            {
                "then": [
                    {"op": "append", "path": ["log"], "payload": 0, "cap": cap},
                    {"op": "create", "path": ["log"]},  # exists: the whole command fails
                ]
            }
        ),
    )
    assert failed["ok"] is False
    assert tree.children(("log",))[0] == seq_name(last - cap + 1)
    result, _ = tree.apply(last + 2, _append(cap))
    assert result["results"][0]["trimmed"] == 1
    assert tree.children(("log",)) == [seq_name(n) for n in range(last - cap + 2, last + 2)]
    again = Tree.load(tree.dump())
    again.apply(last + 3, _append(cap))
    assert again.children(("log",)) == [seq_name(n) for n in range(last - cap + 3, last + 3)]


def _append(cap: int) -> bytes:
    return _envelope({"then": [{"op": "append", "path": ["log"], "payload": 0, "cap": cap}]})


def _envelope(command: dict[str, object]) -> bytes:
    return encode_envelope(command)


def test_seq_children_lists_a_log_from_a_number_without_the_rest() -> None:
    tree = Tree()
    assert tree.seq_children(("log",)) == []  # no such node
    tree.apply(1, _envelope({"then": [{"op": "put", "path": ["log", "meta"], "payload": "x"}]}))
    assert tree.seq_children(("log",)) == []  # children, none of them sequential
    cap = _SEQ_COMPACT + 10
    for number in range(2, 2 * _SEQ_COMPACT + 2):  # entries 1 .. 2*_SEQ_COMPACT, the oldest trimmed
        tree.apply(number, _append(cap))
    last = 2 * _SEQ_COMPACT
    oldest = last - cap + 1
    listed = tree.seq_children(("log",))
    assert [number for number, _, _ in listed] == list(range(oldest, last + 1))
    assert listed[0][1] == tree.get(("log", seq_name(oldest)))[0] and listed[0][2] == 0
    assert [n for n, _, _ in tree.seq_children(["log"], after=last - 2)] == [last - 1, last]
    assert [n for n, _, _ in tree.seq_children(("log",), after=oldest - 5, limit=2)] == [oldest, oldest + 1]
    assert [n for n, _, _ in tree.seq_children(("log",), after=-3, limit=1)] == [oldest]
    assert tree.seq_children(("log",), after=last) == []
    assert tree.seq_children(("log",), after=oldest, limit=0) == []
