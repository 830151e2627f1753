"""What the tree holds: its nodes (:class:`TreeNode`), what reads see of them, client sessions."""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Any, Final, Literal

from .commands import _Rule
from .paths import TreePath
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


class TreeNode:
    __slots__ = ("children", "ci", "clv", "mi", "next_seq", "payload", "pv", "rule", "seqs")

    def __init__(self, payload: Any, index: int) -> None:
        self.payload = payload
        self.pv = 1
        self.clv = 0
        self.ci = index
        self.mi = index
        self.rule: _Rule | None = None
        self.next_seq = 1
        self.children: dict[str, TreeNode] = {}
        # Sorted numbers of the children with sequential names, so capped logs trim the oldest
        # without sorting all children. Derived state: rebuilt on load, never persisted.
        self.seqs: list[int] | None = None

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
        return [
            self.pv,
            self.clv,
            self.ci,
            self.mi,
            has,
            self.payload if has else None,
            self.next_seq,
            None if self.rule is None else self.rule.wire,
        ]


def _seq_add(node: TreeNode, value: int) -> None:
    seqs = node.seqs
    if seqs is None:
        node.seqs = [value]
    elif not seqs or value > seqs[-1]:
        seqs.append(value)  # the common case: appends arrive in order
    else:
        bisect.insort(seqs, value)


def _seq_remove(node: TreeNode, value: int) -> None:
    seqs = node.seqs
    assert seqs is not None
    del seqs[bisect.bisect_left(seqs, value)]


class _Session:
    __slots__ = ("last_used", "result", "seq")

    def __init__(self, seq: int, result: dict[str, Any], last_used: int) -> None:
        self.seq = seq
        self.result = result
        self.last_used = last_used
