"""The tree state machine: :class:`Tree` applies commands, rolls them back, keeps rules and sessions.

Every node of a cluster applies the same committed log entries, in the same order, to its own
:class:`Tree`; the trees must then be identical. So nothing here does I/O, reads a clock, draws random
numbers or iterates a ``set``/``dict`` whose order could differ between processes: every traversal that
can be observed (results, watch events, dirty records, dumps) is sorted by path.

A command is a declarative transaction (``compare`` / ``then`` / ``else``). It applies completely or
not at all: every mutation pushes an undo record, and a failing op rolls the whole command back.

See ``docs/tree.md`` for the exact command reference.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any, Final, TypeAlias

from .commands import (
    _UNSET,
    MAX_HOLDS,
    _Command,
    _compile_command,
    _Op,
    _precompiled,
    _Rule,
    _split_envelope,
    _unpack,
)
from .errors import (
    E_EXISTS,
    E_FAILED,
    E_HOLDS,
    E_INDEX,
    E_INTERNAL,
    E_KEEP,
    E_MISSING,
    E_SEQ,
    E_STALE,
    E_VERSION,
    TreeError,
    _short,
)
from .paths import MAX_SEQ, TreePath, _is_seq_name, format_path, seq_name
from .payloads import NO_PAYLOAD
from .reads import TreeReads
from .snapshot import TreePersistence
from .state import (
    DEFAULT_MAX_SESSIONS,
    SESSION_KEY,
    TreeNode,
    WatchEvent,
    _seq_add,
    _seq_remove,
    _Session,
)


class _Abort(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.op: int | None = None


# Undo record kinds.
_U_ATTRS: Final = 0
_U_ATTACH: Final = 1
_U_DETACH: Final = 2
_U_WATCH_ADD: Final = 3
_U_WATCH_DEL: Final = 4
_U_HELD: Final = 5


class _Txn:
    __slots__ = ("changed", "created", "events", "index", "new_rules", "released", "undo")

    def __init__(self, index: int) -> None:
        self.index = index
        self.undo: list[tuple[Any, ...]] = []
        self.events: list[WatchEvent] = []
        self.changed: list[TreePath] = []  # paths whose record changed, in order; feeds keep_while and dirty
        self.created: set[TreePath] = set()
        self.new_rules: list[tuple[TreePath, int]] = []
        self.released: list[TreePath] = []  # paths no node holds any more: their keep_while rules apply again


def _error(code: str, message: str, index: int, op: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"ok": False, "error": code, "message": message, "index": index}
    if op is not None:
        out["op"] = op
    return out


class Tree(TreeReads, TreePersistence):
    """The replicated tree. Apply committed log entries with :meth:`apply`, in index order."""

    def __init__(self, *, max_sessions: int = DEFAULT_MAX_SESSIONS) -> None:
        if type(max_sessions) is not int or max_sessions < 1:
            raise ValueError("max_sessions must be a positive integer")
        # Must be the same on every node: eviction is part of the replicated state.
        self.max_sessions = max_sessions
        self._root = TreeNode(NO_PAYLOAD, 0)
        self.applied_index = 0
        # watched path -> owners whose keep_while rule reads it (a set: always sorted before use)
        self._watch: dict[TreePath, set[TreePath]] = {}
        # held path -> how many nodes hold it (derived from every node's holds: rebuilt on load, not stored)
        self._held: dict[TreePath, int] = {}
        # client id -> session, least recently used first (last_used is strictly increasing)
        self._sessions: OrderedDict[str, _Session] = OrderedDict()
        self._dirty: set[TreePath] = set()  # session keys changed since take_dirty()
        self._encoded: dict[TreePath, bytes | None] = {}  # node records changed since take_dirty(), encoded

    # ------------------------------------------------------------------ apply

    def advance(self, index: int) -> None:
        """Record that log entry ``index`` was applied without a tree command (e.g. a no-op entry)."""
        self._check_index(index)
        self.applied_index = index

    def _check_index(self, index: int) -> None:
        if type(index) is not int or index <= self.applied_index:
            raise TreeError(E_INDEX, f"index {index!r} is not after the applied index {self.applied_index}")

    def apply(self, index: int, entry_data: bytes) -> tuple[dict[str, Any], list[WatchEvent]]:
        """Apply the committed entry ``index``. Never raises for any ``entry_data``.

        ``entry_data`` may be any bytes-like object (lmdb hands out memoryviews). Raises TreeError
        only if ``index`` is not after :attr:`applied_index` (a caller bug).

        Returns the result (msgpack-able) and the watch events in the order the changes happened.
        """
        self._check_index(index)
        self.applied_index = index
        try:
            client, seq, raw = _split_envelope(_unpack(entry_data))
        except TreeError as e:
            return _error(e.code, e.message, index), []
        if client is not None:
            session = self._sessions.get(client)
            if session is not None:
                if seq == session.seq:
                    return session.result, []
                if seq < session.seq:
                    message = f"seq {seq} is older than the last applied {session.seq}"
                    return _error(E_STALE, message, index), []
        try:
            cmd = _precompiled.pop(entry_data, None) if type(entry_data) is bytes else None
            if cmd is None:
                cmd = _compile_command(raw)
        except TreeError as e:
            result, events = _error(e.code, e.message, index), []
        else:
            result, events = self._run(index, cmd)
        if client is not None:
            self._remember(client, seq, result, index)
        return result, events

    def _remember(self, client: str, seq: int, result: dict[str, Any], index: int) -> None:
        sessions = self._sessions
        session = sessions.get(client)
        if session is None:
            sessions[client] = _Session(seq, result, index)
            while len(sessions) > self.max_sessions:
                evicted, _ = sessions.popitem(last=False)
                self._dirty.add((SESSION_KEY, evicted))
        else:
            session.seq, session.result, session.last_used = seq, result, index
            sessions.move_to_end(client)
        self._dirty.add((SESSION_KEY, client))

    def _run(self, index: int, cmd: _Command) -> tuple[dict[str, Any], list[WatchEvent]]:
        tx = _Txn(index)
        results: list[dict[str, Any]] = []
        try:
            succeeded = all(self._eval(c, (), None) for c in cmd.compare)
            for i, op in enumerate(cmd.then if succeeded else cmd.else_):
                try:
                    if op.cond is not None and not self._eval(op.cond, (), None):
                        raise _Abort(E_FAILED, f"'if' condition of {op.kind!r} is false")
                    results.append(_HANDLERS[op.kind](self, tx, op, i))
                except _Abort as a:
                    if a.op is None:
                        a.op = i
                    raise
            self._check_new_rules(tx)
            self._cascade(tx)
            # Encoded inside the transaction: a record that cannot be encoded fails this command here, the
            # same way on every replica, instead of failing the node's next storage write.
            encoded = {path: self._encode_node(path) for path in dict.fromkeys(tx.changed)}
        except _Abort as a:
            self._rollback(tx)
            return _error(a.code, a.message, index, a.op), []
        except (MemoryError, RecursionError):
            # Depends on the machine, not on the command: re-applying must be possible.
            self._rollback(tx)
            raise
        except Exception as e:  # a bug must not wedge the log: fail the command the same way everywhere
            self._rollback(tx)
            return _error(E_INTERNAL, f"internal error {type(e).__name__}", index), []
        self._encoded.update(encoded)
        return {"ok": True, "succeeded": succeeded, "results": results, "index": index}, tx.events

    # ------------------------------------------------------------------ mutation primitives (undoable)

    @staticmethod
    def _save(tx: _Txn, node: TreeNode) -> None:
        tx.undo.append(
            (_U_ATTRS, node, node.payload, node.pv, node.clv, node.mi, node.rule, node.next_seq, node.holds)
        )

    def _attach(self, tx: _Txn, parent: TreeNode, ppath: TreePath, name: str, child: TreeNode) -> None:
        self._save(tx, parent)
        parent.children[name] = child
        parent.clv += 1
        if _is_seq_name(name):
            _seq_add(parent, int(name))
        tx.undo.append((_U_ATTACH, parent, name))
        tx.changed.append(ppath)

    def _detach(self, tx: _Txn, parent: TreeNode, ppath: TreePath, name: str) -> None:
        self._save(tx, parent)
        child = parent.children.pop(name)
        parent.clv += 1
        if _is_seq_name(name):
            _seq_remove(parent, int(name))
        tx.undo.append((_U_DETACH, parent, name, child))
        tx.changed.append(ppath)

    def _watch_add(self, tx: _Txn, watched: TreePath, owner: TreePath) -> None:
        owners = self._watch.get(watched)
        if owners is None:
            owners = self._watch[watched] = set()
        if owner not in owners:
            owners.add(owner)
            tx.undo.append((_U_WATCH_ADD, watched, owner))

    def _watch_del(self, tx: _Txn, watched: TreePath, owner: TreePath) -> None:
        owners = self._watch.get(watched)
        if owners is not None and owner in owners:
            owners.discard(owner)
            if not owners:
                del self._watch[watched]
            tx.undo.append((_U_WATCH_DEL, watched, owner))

    def _rollback(self, tx: _Txn) -> None:
        watch = self._watch
        for entry in reversed(tx.undo):
            kind = entry[0]
            if kind == _U_ATTRS:
                node = entry[1]
                node.payload, node.pv, node.clv, node.mi, node.rule, node.next_seq, node.holds = entry[2:]
            elif kind == _U_ATTACH:
                parent, name = entry[1], entry[2]
                del parent.children[name]
                if _is_seq_name(name):
                    _seq_remove(parent, int(name))
            elif kind == _U_DETACH:
                parent, name = entry[1], entry[2]
                parent.children[name] = entry[3]
                if _is_seq_name(name):
                    _seq_add(parent, int(name))
            elif kind == _U_HELD:
                count = self._held.get(entry[1], 0) - entry[2]
                if count:
                    self._held[entry[1]] = count
                else:
                    del self._held[entry[1]]
            elif kind == _U_WATCH_ADD:
                owners = watch[entry[1]]
                owners.discard(entry[2])
                if not owners:
                    del watch[entry[1]]
            else:
                watch.setdefault(entry[1], set()).add(entry[2])
        tx.undo.clear()

    def _count_holds(self, tx: _Txn, paths: Iterable[TreePath], delta: int) -> None:
        held = self._held
        for path in paths:
            count = held.get(path, 0) + delta
            if count:
                held[path] = count
            else:
                del held[path]
                tx.released.append(path)
            tx.undo.append((_U_HELD, path, delta))

    def _set_holds(self, tx: _Txn, node: TreeNode, holds: tuple[TreePath, ...]) -> None:
        """Replace what ``node`` holds (saved by the caller); counts change only for the paths that differ."""
        old = node.holds
        if holds == old:
            return
        kept, had = set(holds), set(old)
        self._count_holds(tx, [p for p in old if p not in kept], -1)
        self._count_holds(tx, [p for p in holds if p not in had], 1)
        node.holds = holds

    def _set_rule(self, tx: _Txn, path: TreePath, node: TreeNode, rule: _Rule | None, op_index: int) -> None:
        old = node.rule
        if old is not None:
            for watched, _ in old.items:
                self._watch_del(tx, watched, path)
        self._save(tx, node)
        node.rule = rule
        if rule is not None:
            for watched, _ in rule.items:
                self._watch_add(tx, watched, path)
            tx.new_rules.append((path, op_index))

    def _ensure(self, tx: _Txn, path: TreePath) -> TreeNode:
        """The node at ``path``, creating missing ancestors (and itself) without payload."""
        node = self._root
        for depth, name in enumerate(path):
            child = node.children.get(name)
            if child is None:
                child = TreeNode(NO_PAYLOAD, tx.index)
                cpath = path[: depth + 1]
                self._attach(tx, node, path[:depth], name, child)
                self._created(tx, cpath, child)
            node = child
        return node

    def _created(self, tx: _Txn, path: TreePath, node: TreeNode) -> None:
        tx.created.add(path)
        tx.changed.append(path)
        tx.events.append(WatchEvent(tx.index, "create", path, node.props(), node.payload, node.holds))

    def _write(
        self,
        tx: _Txn,
        path: TreePath,
        node: TreeNode | None,
        payload: Any,
        holds: tuple[TreePath, ...] | None = None,
    ) -> tuple[TreeNode, bool]:
        """Create the node at ``path`` with ``payload`` or replace the payload of ``node``; ``holds``, unless
        None, replaces what it holds."""
        if node is None:
            parent = self._ensure(tx, path[:-1])
            node = TreeNode(payload, tx.index)
            if holds:
                self._set_holds(tx, node, holds)  # undone with the attach (the node is gone) and the counts
            self._attach(tx, parent, path[:-1], path[-1], node)
            self._created(tx, path, node)
            return node, True
        self._save(tx, node)
        node.payload = payload
        node.pv += 1
        node.mi = tx.index
        if holds is not None:
            self._set_holds(tx, node, holds)
        tx.changed.append(path)
        tx.events.append(WatchEvent(tx.index, "update", path, node.props(), payload, node.holds))
        return node, False

    def _delete(self, tx: _Txn, path: TreePath, node: TreeNode, parent: TreeNode) -> int:
        """Delete ``node`` and its subtree; events in post-order (children first), sorted."""
        index = tx.index
        count = 0
        stack: list[tuple[TreePath, TreeNode, bool]] = [(path, node, False)]
        while stack:
            p, n, expanded = stack.pop()
            if n.children and not expanded:
                stack.append((p, n, True))
                ch = n.children
                for name in sorted(ch, reverse=True):
                    stack.append(((*p, name), ch[name], False))
                continue
            if n.rule is not None:
                for watched, _ in n.rule.items:
                    self._watch_del(tx, watched, p)
            if n.holds:  # the detached node keeps them: undoing the detach gives them back with the counts
                self._count_holds(tx, n.holds, -1)
            tx.changed.append(p)
            tx.events.append(WatchEvent(index, "delete", p, n.props(), n.payload, n.holds))
            count += 1
        # Descendants stay linked to the detached node, so undo only has to re-attach it.
        self._detach(tx, parent, path[:-1], path[-1])
        return count

    # ------------------------------------------------------------------ op handlers

    def _op_put(self, tx: _Txn, op: _Op, i: int) -> dict[str, Any]:
        path = op.path
        payload = op.payload if op.seq_of is None else [self._next_number(op.seq_of), *op.payload]
        for held in op.holds or ():
            if self._lookup(held) is None:
                raise _Abort(E_MISSING, f"held path {_short(format_path(held))} does not exist")
        node = self._lookup(path)
        holds = op.holds
        if op.adds_holds and node is not None and holds is not None:
            holds = tuple(sorted({*node.holds, *holds}))
            if len(holds) > MAX_HOLDS:
                raise _Abort(E_HOLDS, f"{_short(format_path(path))} would hold more than {MAX_HOLDS} paths")
        node, created = self._write(tx, path, node, payload, holds)
        if op.rule is not _UNSET:
            self._set_rule(tx, path, node, op.rule, i)
        return {"created": created, "props": node.props().to_wire()}

    def _op_create(self, tx: _Txn, op: _Op, i: int) -> dict[str, Any]:
        if self._lookup(op.path) is not None:
            raise _Abort(E_EXISTS, f"{_short(format_path(op.path))} already exists")
        return self._op_put(tx, op, i)

    def _op_update(self, tx: _Txn, op: _Op, i: int) -> dict[str, Any]:
        node = self._lookup(op.path)
        if node is None:
            raise _Abort(E_MISSING, f"{_short(format_path(op.path))} does not exist")
        node, _ = self._write(tx, op.path, node, op.payload)
        return {"created": False, "props": node.props().to_wire()}

    def _op_cas(self, tx: _Txn, op: _Op, i: int) -> dict[str, Any]:
        node = self._lookup(op.path)
        current = 0 if node is None else node.pv
        if current != op.version:
            raise _Abort(
                E_VERSION,
                f"{_short(format_path(op.path))} has payload_version {current}, expected {op.version}",
            )
        node, created = self._write(tx, op.path, node, op.payload)
        return {"created": created, "props": node.props().to_wire()}

    def _op_delete(self, tx: _Txn, op: _Op, i: int) -> dict[str, Any]:
        path = op.path
        parent = self._lookup(path[:-1])
        node = None if parent is None else parent.children.get(path[-1])
        if node is None or parent is None:
            return {"deleted": False, "count": 0}
        return {"deleted": True, "count": self._delete(tx, path, node, parent)}

    def _op_delete_many(self, tx: _Txn, op: _Op, i: int) -> dict[str, Any]:
        assert op.pattern is not None
        count = 0
        for path, node in self._match(op.pattern):
            parent = self._lookup(path[:-1])
            # Sorted order puts ancestors first: skip nodes already removed with them.
            if parent is not None and parent.children.get(path[-1]) is node:
                count += self._delete(tx, path, node, parent)
        return {"deleted": count}

    def _next_number(self, ppath: TreePath) -> int:
        """The number the next append under ``ppath`` takes (skipping names a put took: never overwrite)."""
        parent = self._lookup(ppath)
        seq = 1 if parent is None else parent.next_seq
        while parent is not None and seq_name(seq) in parent.children:
            seq += 1
        return seq

    def _op_append(self, tx: _Txn, op: _Op, i: int) -> dict[str, Any]:
        ppath = op.path
        seq = self._next_number(ppath)
        parent = self._ensure(tx, ppath)
        if seq > MAX_SEQ:
            raise _Abort(E_SEQ, f"{_short(format_path(ppath))} has used every sequence number")
        self._save(tx, parent)
        parent.next_seq = seq + 1
        name = seq_name(seq)
        node = TreeNode(op.payload, tx.index)
        path = (*ppath, name)
        self._attach(tx, parent, ppath, name, node)
        self._created(tx, path, node)
        trimmed = 0
        if op.cap is not None:
            seqs = parent.seqs
            assert seqs is not None
            while len(seqs) > op.cap:
                oldest = seq_name(seqs.oldest())
                self._delete(tx, (*ppath, oldest), parent.children[oldest], parent)
                trimmed += 1
        return {"seq": seq, "path": list(path), "trimmed": trimmed, "props": node.props().to_wire()}

    def _op_get(self, tx: _Txn, op: _Op, i: int) -> dict[str, Any]:
        node = self._lookup(op.path)
        if node is None:
            return {"found": False}
        out: dict[str, Any] = {"found": True, "props": node.props().to_wire()}
        if node.payload is not NO_PAYLOAD:
            out["payload"] = node.payload
        return out

    def _op_get_many(self, tx: _Txn, op: _Op, i: int) -> dict[str, Any]:
        assert op.pattern is not None
        matches = self._match(op.pattern)
        truncated = op.cap is not None and len(matches) > op.cap
        if truncated:
            matches = matches[: op.cap]
        nodes = []
        for path, node in matches:
            item: dict[str, Any] = {"path": list(path), "props": node.props().to_wire()}
            if node.payload is not NO_PAYLOAD:
                item["payload"] = node.payload
            nodes.append(item)
        return {"nodes": nodes, "truncated": truncated}

    # ------------------------------------------------------------------ keep_while

    def _rule_holds(self, tx: _Txn, owner: TreePath, node: TreeNode) -> bool:
        assert node.rule is not None
        if owner in self._held:  # a held node is kept whatever its rule says, until the last hold ends
            return True
        fresh = owner in tx.created  # self-conditions are not evaluated on the first insert
        for watched, cond in node.rule.items:
            if fresh and watched == owner:
                continue
            if not self._eval(cond, watched, self._lookup(watched)):
                return False
        return True

    def _check_new_rules(self, tx: _Txn) -> None:
        # A rule that is already false when set is refused (rather than deleting the node at once).
        for owner, op_index in tx.new_rules:
            node = self._lookup(owner)
            if node is not None and node.rule is not None and not self._rule_holds(tx, owner, node):
                a = _Abort(E_KEEP, f"keep_while rule of {_short(format_path(owner))} does not hold")
                a.op = op_index
                raise a

    def _cascade(self, tx: _Txn) -> None:
        """Delete nodes whose keep_while rule became false, until nothing changes."""
        if not self._watch:
            return
        pos = released_pos = 0
        changed, released = tx.changed, tx.released
        while pos < len(changed) or released_pos < len(released):
            batch = changed[pos:]
            pos = len(changed)
            owners: set[TreePath] = set(released[released_pos:])  # no longer held: their rules count again
            released_pos = len(released)
            for path in batch:
                found = self._watch.get(path)
                if found:
                    owners.update(found)
            for owner in sorted(owners):
                parent = self._lookup(owner[:-1])
                node = None if parent is None else parent.children.get(owner[-1])
                if node is None or parent is None or node.rule is None:
                    continue
                if not self._rule_holds(tx, owner, node):
                    self._delete(tx, owner, node, parent)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Tree):
            return NotImplemented
        return self.dump() == other.dump()

    __hash__ = None  # type: ignore[assignment]  # mutable


_Handler: TypeAlias = Callable[[Tree, _Txn, _Op, int], dict[str, Any]]
_HANDLERS: Final[dict[str, _Handler]] = {
    "put": Tree._op_put,
    "create": Tree._op_create,
    "update": Tree._op_update,
    "cas": Tree._op_cas,
    "delete": Tree._op_delete,
    "delete_many": Tree._op_delete_many,
    "append": Tree._op_append,
    "get": Tree._op_get,
    "get_many": Tree._op_get_many,
}
