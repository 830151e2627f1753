"""Key locks: granting, releasing (on request, on leaving, after a restart) and telling a room's members.

A lock is /rooms/<room>/locks/<key> = {"owner": client_id, "user": name, "node": node id}; a prefix lock,
/rooms/<room>/plocks/<prefix> with the same payload, holds every key starting with the prefix (ending in /),
keys written later too. Writes by others are refused at submit (from the local copy) and, while a room has
locks, also by a condition in the write's own transaction (broadcaster/writes.py), so a write can never
land after a lock on its key, or on a prefix covering it, was granted.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from typing import Any

import trio

from protocol import ErrorCode, Lock, LockGranted, LocksChanged, Unlock, Unlocked
from replication import Proposal, ReplicationError, TreeError

from .errors import RequestError
from .hub import Hub
from .rooms import Room, encode_frame
from .roomstore import (
    RoomStore,
    adopt_locks_command,
    lock_command,
    lock_payload,
    release_locks_command,
    unlock_command,
)
from .session import Session

log = logging.getLogger("blendsync.server")
RELEASE_BATCH = 256  # locks released or taken over per command (each op with its own condition)


def batches(held: list[Any]) -> Iterator[list[Any]]:
    """``held`` in parts of RELEASE_BATCH: a command each."""
    return (held[start : start + RELEASE_BATCH] for start in range(0, len(held), RELEASE_BATCH))


def refuse_locked(room: Room, keys: Iterable[str], client_id: str) -> None:
    """Raise ``locked`` for the first of ``keys`` someone other than ``client_id`` holds, itself or by a
    prefix (a write's, a restore's and a lock's check from this node's copy)."""
    for key in keys:
        owner = room.lock_holder(key, client_id)
        if owner is not None:
            raise RequestError(ErrorCode.LOCKED, f"key {key!r} is locked by {owner}")


class Locks:
    def __init__(self, store: RoomStore, hub: Hub):
        self.store = store
        self.hub = hub
        # room -> (locked, unlocked, prefixes locked, prefixes unlocked), coalesced until the pump runs
        self._lock_changes: dict[str, tuple[dict[str, str], set[str], dict[str, str], set[str]]] = {}
        self._locks_dirty = trio.Event()

    def payload(self, session: Session) -> dict[str, Any]:
        """The lock payload of ``session`` (also the write guard's: its own locks do not stop its writes)."""
        return lock_payload(session.client_id, session.name, self.store.node_id)

    async def lock(self, session: Session, request: Lock) -> None:
        room = session.room
        if room is None:
            raise RequestError(ErrorCode.NOT_IN_ROOM, "join a room before locking keys")
        keys = sorted(set(request.keys))
        prefixes = sorted(set(request.prefixes))
        refuse_locked(room, keys, session.client_id)
        for prefix in prefixes:
            owner = room.prefix_holder(prefix, session.client_id)
            if owner is not None:
                raise RequestError(ErrorCode.LOCKED, f"keys under {prefix!r} are locked by {owner}")
        payload = self.payload(session)
        # The session's room as of now (its deletion would have taken the session out): a lock that commits
        # after the room was deleted and created again under its name would be held in the new room by a
        # session that is not in it, and never released.
        meta = self.store.find_meta(room.name)
        if meta is None:
            raise RequestError(ErrorCode.NO_SUCH_ROOM, "the room no longer exists")
        room.locks_pending += 1
        try:
            result = await self.store.propose(lock_command(room.name, keys, payload, prefixes, meta))
        finally:
            room.locks_pending -= 1
        if not result.get("ok"):
            raise RequestError(ErrorCode.BAD_MESSAGE, result.get("message", "lock refused"))
        if not result.get("succeeded"):
            if self.hub.rooms.get(room.name) is not room:
                raise RequestError(ErrorCode.NO_SUCH_ROOM, "the room no longer exists")
            taken = [k for k in keys if room.lock_holder(k, session.client_id) is not None]
            taken += [p for p in prefixes if room.prefix_holder(p, session.client_id) is not None]
            raise RequestError(
                ErrorCode.LOCKED, f"locked by another client: {', '.join(taken) or (keys or prefixes)[0]}"
            )
        session.send(LockGranted(room=room.name, keys=keys, prefixes=prefixes, ref=request.ref))

    async def unlock(self, session: Session, request: Unlock) -> None:
        room = session.room
        if room is None:
            raise RequestError(ErrorCode.NOT_IN_ROOM, "not in a room")
        mine = {k for k, owner in room.locks.items() if owner == session.client_id}
        my_prefixes = {p for p, owner in room.prefix_locks.items() if owner == session.client_id}
        if request.keys or request.prefixes:
            keys, prefixes = sorted(mine & set(request.keys)), sorted(my_prefixes & set(request.prefixes))
        else:  # nothing named: every lock this session holds
            keys, prefixes = sorted(mine), sorted(my_prefixes)
        proposals = self._submit_unlocks(room.name, keys, prefixes, self.payload(session))
        for proposal in proposals:
            try:
                await proposal.wait()
            except ReplicationError as exc:
                raise RequestError(ErrorCode.UNAVAILABLE, str(exc)) from None
        session.send(Unlocked(room=room.name, keys=keys, prefixes=prefixes, ref=request.ref))

    def _submit_unlocks(
        self, room: str, keys: list[str], prefixes: list[str], payload: dict[str, Any]
    ) -> list[Proposal]:
        """Delete each lock if it is still this owner's (one small command per key or prefix)."""
        proposals = []
        for name, prefix in [*((k, False) for k in keys), *((p, True) for p in prefixes)]:
            try:
                proposals.append(self.store.submit(unlock_command(room, name, payload, prefix=prefix)))
            except (ReplicationError, TreeError) as exc:
                log.warning("could not release the lock on %r in %s: %s", name, room, exc)
        return proposals

    def release(self, session: Session, room: Room) -> None:
        """Release a departing session's locks (it left, was closed or its connection dropped)."""
        keys = sorted(k for k, owner in room.locks.items() if owner == session.client_id)
        prefixes = sorted(p for p, owner in room.prefix_locks.items() if owner == session.client_id)
        if keys or prefixes:
            self._submit_unlocks(room.name, keys, prefixes, self.payload(session))

    def adopt(self, session: Session) -> None:
        """The session joined its room here holding locks recorded under another node (it resumed here: its
        node died or it moved): they become this node's, so that its writes and unlocks pass their guards,
        its old node's end of the session does not release them, and nor does the leader's release of a
        dead node's. Submitted before any later request of the session, so ordered before them."""
        room = session.room
        if room is None or session.client_id not in {*room.locks.values(), *room.prefix_locks.values()}:
            return
        payload = self.payload(session)
        held = [
            (path, old) for path, old in self.store.locks_of(room.name, session.client_id) if old != payload
        ]
        for part in batches(held):
            try:
                self.store.submit(adopt_locks_command(part, payload))
            except (ReplicationError, TreeError) as exc:
                log.warning("could not take over the locks of a resumed session: %s", exc)

    def release_if_orphaned(self, room: str, key: str, payload: Any, *, prefix: bool) -> None:
        """A lock of this node's session that committed once the session was out of the room (it left, was
        closed or replaced by a reconnect while the lock was proposed): releasing the session's locks
        then did not see it, and nothing else would."""
        if not isinstance(payload, dict) or payload.get("node") != self.store.node_id:
            return
        session = self.hub.sessions.get(payload.get("owner"))
        if session is None or session.room is None or session.room.name != room:
            self._submit_unlocks(room, [] if prefix else [key], [key] if prefix else [], payload)

    def release_stale(self) -> None:
        """Locks held by this node's sessions before a restart: those sessions are gone."""
        stale = self.store.locks_by_node().get(self.store.node_id, [])
        if stale:
            # This node's copy may be behind: a lock it still shows may have gone (released by the leader
            # while the node was down) and been taken again by someone else, so each goes only if unchanged.
            log.info("releasing %d locks held by sessions from before a restart", len(stale))
            for part in batches(stale):
                try:
                    self.store.submit(release_locks_command(part))
                except (ReplicationError, TreeError) as exc:
                    log.warning("could not release stale locks: %s", exc)

    def _silent(
        self,
        node_id: Any,
        *,
        last_heard: Callable[[int], float | None],
        since: float,
        now: float,
        timeout: float,
    ) -> bool:
        """Another node, not heard from for ``timeout`` seconds (counting from ``since`` at the earliest)."""
        heard = last_heard(node_id) if isinstance(node_id, int) else None
        return node_id != self.store.node_id and now - max(heard or 0.0, since) > timeout

    async def dead_node_pump(self, last_heard: Callable[[int], float | None], timeout: float) -> None:
        """On the leader: release the locks of the sessions of a node not heard from for ``timeout`` seconds.

        It is down (its sessions are gone; were it to start again it would release them itself, but it may
        never), or cut off from the majority, where its sessions cannot write anyway and learn of the release
        (``locks_changed``) once it is back. A new leader counts from its election: it has not heard anyone
        before. A lock that changed meanwhile stays.
        """
        leader_since: float | None = None
        scanned = -math.inf  # when every lock was last looked at
        while True:
            await trio.sleep(min(5.0, timeout / 4))
            status = self.store.node.status()
            if status.get("role") != "leader":
                leader_since = None
                continue
            now = trio.current_time()
            leader_since = now if leader_since is None else leader_since
            silent = partial(
                self._silent, last_heard=last_heard, since=leader_since, now=now, timeout=timeout
            )
            # Every lock is read while a member is silent, and once a timeout for a node that is no member
            # any more: a leader hearing all its members does not walk every room's locks each pass.
            if not any(map(silent, status.get("members") or ())) and now - scanned < timeout:
                continue
            scanned = now
            for node_id, held in self.store.locks_by_node().items():
                if not silent(node_id):
                    continue
                log.warning(
                    "releasing %d locks of node %s: not heard from for %.0f s", len(held), node_id, timeout
                )
                for part in batches(held):
                    try:
                        await self.store.node.propose(release_locks_command(part))
                    except (ReplicationError, TreeError) as exc:  # no quorum now: the next pass tries again
                        log.warning("could not release the locks of node %s: %s", node_id, exc)
                        break

    # ---- committed lock changes -> the room's members ------------------------------------------------------

    def lock_event(self, room: Room, key: str, payload: Any, *, prefix: bool = False) -> None:
        changes = self._lock_changes.setdefault(room.name, ({}, set(), {}, set()))
        held, (locked, unlocked) = (room.prefix_locks, changes[2:]) if prefix else (room.locks, changes[:2])
        if payload is None:
            held.pop(key, None)
            locked.pop(key, None)
            unlocked.add(key)
        else:
            held[key] = payload["owner"]
            locked[key] = payload["owner"]
            unlocked.discard(key)
        self._locks_dirty.set()

    def forget(self, room: str) -> None:
        """The room is gone: its pending lock changes go with it."""
        self._lock_changes.pop(room, None)

    async def locks_pump(self) -> None:
        """Tell each room's members about lock changes, coalesced per scheduling round."""
        while True:
            await self._locks_dirty.wait()
            self._locks_dirty = trio.Event()
            await trio.sleep(0)  # let the rest of a committed batch apply first
            changes, self._lock_changes = self._lock_changes, {}
            for name, (locked, unlocked, plocked, punlocked) in sorted(changes.items()):
                room = self.hub.rooms.get(name)
                if room is not None and room.members:
                    message = LocksChanged(
                        room=name,
                        locked=locked,
                        unlocked=sorted(unlocked),
                        prefixes=plocked,
                        unlocked_prefixes=sorted(punlocked),
                    )
                    room.send(encode_frame(message))
