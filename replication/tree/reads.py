"""Reads of a :class:`~replication.tree.machine.Tree`: lookups, listings, pattern matches, conditions.

Nothing here changes the tree. Conditions (:meth:`TreeReads._eval`) live here because matching a pattern
evaluates them too; applying a command uses the same evaluation for ``compare``, ``if`` and keep_while.
"""

from __future__ import annotations

import operator
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from .paths import TreePath, _coerce_path, seq_name
from .patterns import _CMP, _REC, Pattern, _closure, _Cond, _name_step, compile_pattern
from .payloads import NO_PAYLOAD, _canon
from .state import NodeProps, TreeNode, _Session


class TreeReads:
    """The read side of :class:`Tree`: every method here leaves the tree as it was."""

    # Provided by Tree.
    _root: TreeNode
    _sessions: OrderedDict[str, _Session]

    def _lookup(self, path: TreePath) -> TreeNode | None:
        node: TreeNode | None = self._root
        for name in path:
            node = node.children.get(name)  # type: ignore[union-attr]
            if node is None:
                return None
        return node

    def get(self, path: TreePath | list[str] | str) -> tuple[NodeProps, Any] | None:
        """(props, payload) of the node at ``path`` (payload NO_PAYLOAD if none), or None."""
        node = self._lookup(_coerce_path(path))
        return None if node is None else (node.props(), node.payload)

    def holds_of(self, path: TreePath | list[str] | str) -> tuple[TreePath, ...]:
        """The paths the node at ``path`` holds, sorted (none if it holds nothing or does not exist)."""
        node = self._lookup(_coerce_path(path))
        return () if node is None else node.holds

    def held_count(self, path: TreePath | list[str] | str) -> int:
        """How many nodes hold ``path``."""
        return self._held.get(_coerce_path(path), 0)

    def children(self, path: TreePath | list[str] | str) -> list[str]:
        node = self._lookup(_coerce_path(path))
        return [] if node is None else sorted(node.children)

    def children_items(self, path: TreePath | list[str]) -> list[tuple[str, NodeProps, Any]]:
        """(name, props, payload) of each child of the literal ``path``, sorted by name.

        Every element is a plain name ("*" is a node called "*"): use this, not :meth:`match`, when a
        path holds user strings.
        """
        node = self._lookup(_coerce_path(tuple(path)))
        if node is None:
            return []
        children = node.children
        return [(name, children[name].props(), children[name].payload) for name in sorted(children)]

    def seq_children(
        self, path: TreePath | list[str], after: int = 0, limit: int | None = None
    ) -> list[tuple[int, NodeProps, Any]]:
        """(number, props, payload) of the sequential children of the literal ``path`` numbered after
        ``after``, in order, at most ``limit``: a log's tail without listing and sorting the whole log."""
        node = self._lookup(_coerce_path(tuple(path)))
        if node is None or node.seqs is None:
            return []
        children = node.children
        found = [(number, children[seq_name(number)]) for number in node.seqs.after(after, limit)]
        return [(number, child.props(), child.payload) for number, child in found]

    def match(self, pattern: object) -> Iterator[tuple[TreePath, NodeProps, Any]]:
        """Existing nodes matching ``pattern``, sorted by path. The root never matches."""
        for path, node in self._match(compile_pattern(pattern)):
            yield path, node.props(), node.payload

    def session(self, client: str) -> tuple[int, dict[str, Any]] | None:
        """(last applied seq, its result) remembered for ``client``, or None."""
        s = self._sessions.get(client)
        return None if s is None else (s.seq, s.result)

    def _match(self, pat: Pattern) -> list[tuple[TreePath, TreeNode]]:
        # Pre-order walk with sorted children yields paths in sorted order. States are positions in
        # the pattern (an NFA), so "**" never needs backtracking and no path is yielded twice.
        elements = pat.elements
        n = len(elements)
        out: list[tuple[TreePath, TreeNode]] = []
        stack: list[tuple[TreePath, TreeNode, frozenset[int]]] = [((), self._root, _closure(elements, {0}))]
        while stack:
            path, node, states = stack.pop()
            if path and n in states:
                out.append((path, node))
            if not node.children:
                continue
            live = [s for s in states if s < n]
            if not live:
                continue
            if all(elements[s][0] == "lit" for s in live):
                # Only literal names can follow: look them up instead of scanning all children.
                names = sorted({elements[s][1] for s in live})
                candidates = [(nm, node.children[nm]) for nm in names if nm in node.children]
            else:
                candidates = sorted(node.children.items(), key=operator.itemgetter(0))
            pushed: list[tuple[TreePath, TreeNode, frozenset[int]]] = []
            for name, child in candidates:
                cpath = (*path, name)
                nxt: set[int] = set()
                for s in live:
                    e = elements[s]
                    if e is _REC:
                        nxt.add(s)
                    elif e[0] == "cond":
                        named = e[1] is None or e[1].fullmatch(name) is not None
                        if named and self._eval(e[2], cpath, child):
                            nxt.add(s + 1)
                    elif _name_step(e, name):
                        nxt.add(s + 1)
                if nxt:
                    pushed.append((cpath, child, _closure(elements, nxt)))
            stack.extend(reversed(pushed))
        return out

    def _eval(self, c: _Cond, path: TreePath, node: TreeNode | None) -> bool:
        kind = c[0]
        if kind == "at":
            return self._eval(c[2], c[1], self._lookup(c[1]))
        if kind == "exists":
            return (node is not None) is c[1]
        if kind == "hp":
            return (node is not None and node.payload is not NO_PAYLOAD) is c[1]
        if kind == "pv":
            return c[1] == 0 if node is None else node.pv == c[1]
        if kind == "ci":  # the log index that created the node: a node deleted and made again differs
            return node is not None and node.ci == c[1]
        if kind == "peq":
            return node is not None and node.payload is not NO_PAYLOAD and _canon(node.payload) == c[1]
        if kind == "cc":
            return node is not None and _CMP[c[1]](len(node.children), c[2])
        if kind == "name":
            return bool(path) and c[1].fullmatch(path[-1]) is not None
        if kind == "not":
            return not self._eval(c[1], path, node)
        if kind == "all":
            return all(self._eval(x, path, node) for x in c[1])
        if kind == "any":
            return any(self._eval(x, path, node) for x in c[1])
        raise AssertionError(kind)
