"""What the tree holds: its nodes (:class:`TreeNode`), what reads see of them, client sessions."""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final, Literal

from .commands import _Rule
from .paths import TreePath, compact_name
from .payloads import NO_PAYLOAD

DEFAULT_MAX_SESSIONS: Final = 10_000

# First element of the record key of a client session in take_dirty()/from_records(). User path
# elements may not contain NUL, so this key space can never collide with a node path.
SESSION_KEY: Final = "\x00sessions"


@dataclass(frozen=True, slots=True)
class NodeProps:
    payload_version: int
    child_list_version: int
    child_count: int
    created_index: int
    modified_index: int
    has_payload: bool
    next_seq: int

    def to_wire(self) -> dict[str, Any]:
        return {
            "payload_version": self.payload_version,
            "child_list_version": self.child_list_version,
            "child_count": self.child_count,
            "created_index": self.created_index,
            "modified_index": self.modified_index,
            "has_payload": self.has_payload,
            "next_seq": self.next_seq,
        }


@dataclass(frozen=True, slots=True)
class WatchEvent:
    index: int
    action: Literal["create", "update", "delete"]
    path: TreePath
    props: NodeProps
    payload: Any  # NO_PAYLOAD when the node has none
    holds: tuple[TreePath, ...] = ()  # the paths the node holds (docs/tree.md, holds)


class TreeNode:
    __slots__ = ("children", "ci", "clv", "holds", "mi", "next_seq", "payload", "pv", "rule", "seqs")

    def __init__(self, payload: Any, index: int) -> None:
        self.payload = payload
        self.pv = 1
        self.clv = 0
        self.ci = index
        self.mi = index
        self.rule: _Rule | None = None
        self.next_seq = 1
        self.holds: tuple[TreePath, ...] = ()  # sorted; keeps each held node from its keep_while rule
        self.children: dict[str, TreeNode] = {}
        # The numbers of the children with sequential names, so capped logs trim the oldest without
        # sorting all children. Derived state: rebuilt on load, never persisted.
        self.seqs: SeqIndex | None = None

    def props(self) -> NodeProps:
        return NodeProps(
            self.pv,
            self.clv,
            len(self.children),
            self.ci,
            self.mi,
            self.payload is not NO_PAYLOAD,
            self.next_seq,
        )

    def fields(self) -> list[Any]:
        has = self.payload is not NO_PAYLOAD
        fields = [
            self.pv,
            self.clv,
            self.ci,
            self.mi,
            has,
            self.payload if has else None,
            self.next_seq,
            None if self.rule is None else self.rule.wire,
        ]
        if self.holds:  # a ninth field only then: the records of nodes holding nothing are as before
            # A hash's name as its 32 bytes, not 64 digits: a blob tree's node holds up to 32 of them.
            fields.append([[compact_name(name) for name in path] for path in self.holds])
        return fields


class SeqIndex:
    """The numbers of a node's children with sequential names, in order: the oldest of a capped log.

    Appends arrive in order and a trim takes the oldest, both O(1) amortised: the trimmed front is skipped
    and cut only once it is half the list. Shifting the list on every trim made each write to a room cost
    in proportion to the log it retains (docs/tree.md, Performance).
    """

    __slots__ = ("_head", "_items")

    def __init__(self) -> None:
        self._items: list[int] = []  # sorted; the live numbers are _items[_head:]
        self._head = 0

    def __len__(self) -> int:
        return len(self._items) - self._head

    def __iter__(self) -> Iterator[int]:
        return iter(self._items[self._head :])

    def oldest(self) -> int:
        return self._items[self._head]

    def after(self, number: int, limit: int | None = None) -> list[int]:
        """The numbers after ``number``, in order (the first ``limit`` of them)."""
        start = bisect.bisect_right(self._items, number, self._head)
        return self._items[start : None if limit is None else start + limit]

    def add(self, value: int) -> None:
        items, head = self._items, self._head
        if len(items) == head or value > items[-1]:
            items.append(value)  # the common case: appends arrive in order
        elif head and value < items[head]:
            self._head = head - 1  # back in front of the oldest (a trim rolled back)
            items[head - 1] = value
        else:
            bisect.insort(items, value, head)

    def remove(self, value: int) -> None:
        items, head = self._items, self._head
        index = bisect.bisect_left(items, value, head)
        assert index < len(items) and items[index] == value, value
        if index > head:
            del items[index]
            return
        head += 1
        if head >= _SEQ_COMPACT and 2 * head >= len(items):
            del items[:head]
            head = 0
        self._head = head


_SEQ_COMPACT: Final = 1024  # trimmed numbers kept in front before the list is cut


def _seq_add(node: TreeNode, value: int) -> None:
    if node.seqs is None:
        node.seqs = SeqIndex()
    node.seqs.add(value)


def _seq_remove(node: TreeNode, value: int) -> None:
    assert node.seqs is not None
    node.seqs.remove(value)


class _Session:
    __slots__ = ("last_used", "result", "seq")

    def __init__(self, seq: int, result: dict[str, Any], last_used: int) -> None:
        self.seq = seq
        self.result = result
        self.last_used = last_used
