"""Persistence of a :class:`~replication.tree.machine.Tree`: dirty records, whole records, snapshots."""

from __future__ import annotations

import hashlib
import operator
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Final, Self

import msgpack

from .commands import _compile_rule, compile_holds
from .errors import E_SNAPSHOT, TreeError
from .paths import TreePath, _check_name, _is_seq_name, format_path
from .payloads import NO_PAYLOAD
from .state import DEFAULT_MAX_SESSIONS, SESSION_KEY, TreeNode, _seq_add, _Session

SNAPSHOT_FORMAT: Final = 1


def _pack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


class TreePersistence:
    """The records and snapshots of a tree (the part of :class:`Tree` that meets storage)."""

    # Provided by Tree.
    _root: TreeNode
    _sessions: OrderedDict[str, _Session]
    _dirty: set[TreePath]
    _encoded: dict[TreePath, bytes | None]
    _watch: dict[TreePath, set[TreePath]]
    _held: dict[TreePath, int]
    applied_index: int
    max_sessions: int
    _lookup: Callable[[TreePath], TreeNode | None]

    def _walk(self) -> Iterator[tuple[TreePath, TreeNode]]:
        """Every node including the root, in sorted path order."""
        stack: list[tuple[TreePath, TreeNode]] = [((), self._root)]
        while stack:
            path, node = stack.pop()
            yield path, node
            ch = node.children
            for name in sorted(ch, reverse=True):
                stack.append(((*path, name), ch[name]))

    def take_dirty(self) -> list[tuple[TreePath, bytes | None]]:
        """Records changed since the last call, sorted by key: (path, record) or (path, None) if gone.

        Session records use the key (SESSION_KEY, client id), which no node path can equal.
        """
        out: list[tuple[TreePath, bytes | None]] = list(self._encoded.items())
        for key in self._dirty:
            s = self._sessions.get(key[1])
            out.append((key, None if s is None else _pack([s.seq, s.last_used, s.result])))
        out.sort(key=operator.itemgetter(0))
        self._dirty = set()
        self._encoded = {}
        return out

    def _encode_node(self, path: TreePath) -> bytes | None:
        node = self._lookup(path)
        return None if node is None else _pack(node.fields())

    def records(self) -> list[tuple[TreePath, bytes]]:
        """Every record of the current state: what from_records needs to rebuild it (snapshot install)."""
        out: list[tuple[TreePath, bytes]] = [(path, _pack(node.fields())) for path, node in self._walk()]
        sessions = self._sessions.items()
        out.extend(((SESSION_KEY, client), _pack([s.seq, s.last_used, s.result])) for client, s in sessions)
        return out

    @classmethod
    def from_records(
        cls,
        records: Iterable[tuple[TreePath, bytes]],
        applied_index: int,
        *,
        max_sessions: int = DEFAULT_MAX_SESSIONS,
    ) -> Self:
        """Rebuild a tree from persisted records (the accumulated output of :meth:`take_dirty`)."""
        nodes: list[tuple[TreePath, list[Any]]] = []
        sessions: list[list[Any]] = []
        for key, data in records:
            key = tuple(key)
            try:
                fields = msgpack.unpackb(data, raw=False, strict_map_key=True, use_list=True)
            except Exception:
                raise TreeError(E_SNAPSHOT, f"record {format_path(key)} is not msgpack") from None
            if key and key[0] == SESSION_KEY:
                if len(key) != 2 or type(fields) is not list or len(fields) != 3:
                    raise TreeError(E_SNAPSHOT, "malformed session record")
                sessions.append([key[1], *fields])
            else:
                nodes.append((key, fields))
        nodes.sort(key=operator.itemgetter(0))
        return cls._build(nodes, sessions, applied_index, max_sessions)

    def dump(self) -> bytes:
        """Whole-state snapshot (nodes, sessions, applied index); canonical for equal states."""
        nodes = [[list(path), node.fields()] for path, node in self._walk()]
        sessions = sorted(
            ([c, s.seq, s.last_used, s.result] for c, s in self._sessions.items()),
            key=operator.itemgetter(0),
        )
        return _pack([SNAPSHOT_FORMAT, self.applied_index, nodes, sessions])

    @classmethod
    def load(cls, data: bytes, *, max_sessions: int = DEFAULT_MAX_SESSIONS) -> Self:
        try:
            doc = msgpack.unpackb(data, raw=False, strict_map_key=True, use_list=True)
        except Exception:
            raise TreeError(E_SNAPSHOT, "snapshot is not msgpack") from None
        if type(doc) is not list or len(doc) != 4 or doc[0] != SNAPSHOT_FORMAT:
            raise TreeError(E_SNAPSHOT, "unknown snapshot format")
        _, applied_index, raw_nodes, sessions = doc
        if type(raw_nodes) is not list or type(sessions) is not list:
            raise TreeError(E_SNAPSHOT, "malformed snapshot")
        nodes: list[tuple[TreePath, list[Any]]] = []
        for item in raw_nodes:
            if type(item) is not list or len(item) != 2 or type(item[0]) is not list:
                raise TreeError(E_SNAPSHOT, "malformed node entry")
            nodes.append((tuple(item[0]), item[1]))
        return cls._build(nodes, sessions, applied_index, max_sessions)

    @classmethod
    def _build(
        cls,
        nodes: list[tuple[TreePath, Any]],
        sessions: list[Any],
        applied_index: object,
        max_sessions: int,
    ) -> Self:
        # ``nodes`` must be sorted by path, so every parent precedes its children.
        if type(applied_index) is not int or applied_index < 0:
            raise TreeError(E_SNAPSHOT, "applied_index must be a non-negative integer")
        tree = cls(max_sessions=max_sessions)
        tree.applied_index = applied_index
        for path, fields in nodes:
            try:
                node = _node_from_fields(fields, path)
                for name in path:
                    _check_name(name)
            except (TreeError, TypeError, ValueError) as e:
                raise TreeError(E_SNAPSHOT, f"bad record for {format_path(path)}: {e}") from None
            if not path:
                node.children = tree._root.children
                tree._root = node
                continue
            parent = tree._lookup(path[:-1])
            if parent is None:
                raise TreeError(E_SNAPSHOT, f"record {format_path(path)} has no parent record")
            if path[-1] in parent.children:
                raise TreeError(E_SNAPSHOT, f"duplicate record {format_path(path)}")
            parent.children[path[-1]] = node
            if _is_seq_name(path[-1]):
                _seq_add(parent, int(path[-1]))
            if node.rule is not None:
                for watched, _ in node.rule.items:
                    tree._watch.setdefault(watched, set()).add(path)
            for held in node.holds:
                tree._held[held] = tree._held.get(held, 0) + 1
        rows = []
        for item in sessions:
            if (
                type(item) is not list
                or len(item) != 4
                or type(item[0]) is not str
                or type(item[1]) is not int
                or type(item[2]) is not int
                or type(item[3]) is not dict
            ):
                raise TreeError(E_SNAPSHOT, "malformed session")
            rows.append(item)
        rows.sort(key=lambda r: (r[2], r[0]))  # least recently used first
        for client, seq, last_used, result in rows:
            tree._sessions[client] = _Session(seq, result, last_used)
        return tree

    def state_hash(self) -> str:
        """SHA-256 of :meth:`dump`: equal for replicas in the same state."""
        return hashlib.sha256(self.dump()).hexdigest()


def _node_from_fields(fields: object, path: TreePath) -> TreeNode:
    if type(fields) is not list or len(fields) not in (8, 9):
        raise TreeError(E_SNAPSHOT, "node record must have 8 or 9 fields")
    pv, clv, ci, mi, has, payload, next_seq, rule = fields[:8]
    for v in (pv, clv, ci, mi, next_seq):
        if type(v) is not int or v < 0:
            raise TreeError(E_SNAPSHOT, "node counters must be non-negative integers")
    if type(has) is not bool:
        raise TreeError(E_SNAPSHOT, "has_payload must be a boolean")
    node = TreeNode(payload if has else NO_PAYLOAD, ci)
    node.pv, node.clv, node.mi, node.next_seq = pv, clv, mi, next_seq
    if rule is not None:
        node.rule = _compile_rule(rule)
    if len(fields) == 9:
        node.holds = compile_holds(fields[8], path)
        if not node.holds:
            raise TreeError(E_SNAPSHOT, "a ninth field names no held path")
    return node
