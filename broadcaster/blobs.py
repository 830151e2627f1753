"""Content-addressed blobs: stored once per server, shared by every room, collected when nothing holds them.

:class:`Blobs` answers blob requests, moves the holds of room keys inside their writes, keeps upload pins and
quotas, and mirrors this node's committed blobs, refs and tree edges. Where blobs live in the tree and the
commands that hold them: :mod:`.blob_layout`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple

import trio

from protocol import BlobDataEvent, BlobGet, BlobPut, BlobQuery, BlobStatus, BlobStored, ErrorCode
from protocol.limits import MAX_BLOB_CHILDREN, MAX_PUSHED_BLOBS, MAX_PUSHED_BYTES
from replication import Node, ReplicationError, TreeError, WatchEvent

from .blob_layout import (
    BLOBS,
    holder_path,
    key_hold_changes,
    pin_holder,
    put_blob_command,
    release_ops,
    stored_size,
    value_refs,
)
from .config import ServerConfig
from .errors import RequestError
from .metrics import Metrics
from .rooms import Room, encode_frame
from .roomstore import ROOMS
from .session import Session

log = logging.getLogger("blendsync.blobs")

RELEASE_BATCH = 1024  # holders released per command
_TOO_MANY_CHILDREN = f"tree node %s would hold more than {MAX_BLOB_CHILDREN} children in all"
PUSH_FRAME_MARGIN = 64 * 1024  # an applied's fields beside its ops and blobs, with room to spare


class BlobChanges(NamedTuple):
    """What a room write does to its keys' holds (``Blobs.write_changes``)."""

    compare: list[dict[str, Any]]
    then: list[dict[str, Any]]
    chained: list[tuple[str, str]]  # its keys, whose next write waits for it
    room: str
    pending_bytes: int  # what it adds to the room's quota until it ends


# ---- the store --------------------------------------------------------------------------------------------


class Blobs:
    """Blob requests, the holds of room keys on blobs (inside room writes), upload pins and quotas."""

    def __init__(self, config: ServerConfig, node: Node, metrics: Metrics, sessions: dict[str, Any]):
        self.config = config
        self.node = node
        self.metrics = metrics
        self.sessions = sessions  # client_id -> live session (the hub's registry)
        self.sizes: dict[bytes, int] = {}  # stored blobs (this node's committed copy)
        self.total_bytes = 0
        self.key_refs: dict[tuple[str, str], tuple[bytes, ...]] = {}  # committed refs of room keys
        self.children: dict[bytes, set[bytes]] = {}  # tree node -> the blobs it holds (committed)
        self.parents: dict[bytes, set[bytes]] = {}  # the same edges, child -> the tree nodes holding it
        self.key_bytes: dict[tuple[str, str], int] = {}  # what each key counts against its room's quota
        self.room_bytes: dict[str, int] = {}  # bytes of blobs referenced by each room's keys (per key)
        self.room_blobs: dict[str, dict[bytes, int]] = {}  # room -> blob -> its keys referencing it
        self.uploading: dict[bytes, int] = {}  # blob -> size, uploads submitted here and not committed
        # (room, key) -> writes submitted here that change the key's holds and are not committed yet; a
        # later write of that key waits for them, so it diffs against committed refs (docs/architecture.md)
        self.pending_keys: dict[tuple[str, str], int] = {}
        # room -> bytes its writes submitted here add to its quota, not committed yet (counted against it)
        self.pending_room_bytes: dict[str, int] = {}
        self.node_puts: dict[bytes, trio.Event] = {}  # tree nodes with a put naming children in flight here
        self._puts_answered: dict[str, trio.Event] = {}  # client_id -> set once its puts here are answered
        self._settled: dict[tuple[str, str], trio.Event] = {}
        self.pins: dict[str, set[bytes]] = {}  # client_id -> blobs its uploads pinned
        self.pinning: dict[str, dict[bytes, int]] = {}  # client_id -> its uploads in flight here, counted
        # client_id -> its uploads through this node that none of its writes referenced yet, each with the
        # children it was put with: what a write of it makes new, pushed to the room with it (``push_list``)
        self.fresh: dict[str, dict[bytes, list[bytes]]] = {}
        self.orphaned: dict[str, float] = {}  # client_id -> when its pins are released (session gone)
        self._load()
        self._subscription = node.subscribe((BLOBS, "*"), self._on_blob_event)
        self._edges = node.subscribe((BLOBS, "*", "refs", {"name_matches": "n:.*"}), self._on_edge_event)

    def _load(self) -> None:
        for path, _, payload in self.node.match_local((BLOBS, "*")):
            self._note_blob(bytes.fromhex(path[1]), stored_size(payload))
            self._note_holds(bytes.fromhex(path[1]), self.node.holds_local(path))
        for path, _, _ in self.node.match_local((BLOBS, "*", "refs", {"name_matches": "n:.*"})):
            self._note_edge(bytes.fromhex(path[3][2:]), bytes.fromhex(path[1]), True)
        for path, _, payload in self.node.match_local((ROOMS, "*", "refs", "*")):
            self.note_key_refs(path[1], path[3], payload)
        # Pins of sessions of this node from before a restart: released after the grace, unless they return.
        deadline = trio.current_time() + self.config.pin_grace
        node_id = self.node.node_id
        for path, _, payload in self.node.match_local((BLOBS, "*", "refs", {"name_matches": "p:.*"})):
            if isinstance(payload, dict) and payload.get("node") == node_id:
                client_id = path[3][2:]
                self.pins.setdefault(client_id, set()).add(bytes.fromhex(path[1]))
                self.orphaned[client_id] = deadline

    # ---- this node's copy, kept in step with commits --------------------------------------------------

    def _on_blob_event(self, event: WatchEvent) -> None:
        stored = event.action != "delete"
        blob = bytes.fromhex(event.path[1])
        self._note_blob(blob, stored_size(event.payload) if stored else None)
        if stored:
            self._note_holds(blob, event.holds)
        else:  # a deleted node holds nothing (the ``n:`` records of older stores go with it)
            for child in list(self.children.get(blob, ())):
                self._note_edge(blob, child, False)

    def _note_holds(self, blob: bytes, holds: Iterable[tuple[str, ...]]) -> None:
        """The children a stored tree node holds: its holds only grow (``add_holds``)."""
        for path in holds:
            if len(path) == 2 and path[0] == BLOBS:
                self._note_edge(blob, bytes.fromhex(path[1]), True)

    def _on_edge_event(self, event: WatchEvent) -> None:
        self._note_edge(
            bytes.fromhex(event.path[3][2:]), bytes.fromhex(event.path[1]), event.action != "delete"
        )

    def _note_edge(self, parent: bytes, child: bytes, held: bool) -> None:
        for edges, start, end in ((self.children, parent, child), (self.parents, child, parent)):
            if held:
                edges.setdefault(start, set()).add(end)
            elif (ends := edges.get(start)) is not None:
                ends.discard(end)
                if not ends:
                    del edges[start]

    def _note_blob(self, blob: bytes, size: int | None) -> None:
        self.total_bytes -= self.sizes.pop(blob, 0)
        if size is not None:
            self.sizes[blob] = size
            self.total_bytes += size

    def note_key_refs(self, room: str, key: str, refs: list[bytes] | None) -> None:
        """A committed change of /rooms/<room>/refs/<key> (None: deleted)."""
        old = self.key_refs.pop((room, key), ())
        new = tuple(refs or ())
        if new:
            self.key_refs[(room, key)] = new
        counts = self.room_blobs.setdefault(room, {})
        for blob in old:
            counts[blob] -= 1
            if not counts[blob]:
                del counts[blob]
        for blob in new:
            counts[blob] = counts.get(blob, 0) + 1
        if not counts:
            del self.room_blobs[room]
        # What the key counted when set is what it stops counting (its trees may be gone by now).
        delta = -self.key_bytes.pop((room, key), 0)
        if new:
            self.key_bytes[(room, key)] = self._bytes(new)
            delta += self.key_bytes[(room, key)]
        self.room_bytes[room] = self.room_bytes.get(room, 0) + delta
        if not self.room_bytes[room]:
            del self.room_bytes[room]

    def _bytes(self, blobs: Iterable[bytes]) -> int:
        """The bytes of these blobs and of every blob their trees hold (each counted once)."""
        seen: set[bytes] = set()
        todo = list(blobs)
        total = 0
        while todo:
            blob = todo.pop()
            if blob in seen:
                continue
            seen.add(blob)
            total += self.sizes.get(blob, 0) or self.uploading.get(blob, 0)
            todo.extend(self.children.get(blob, ()))
        return total

    def trees(self, roots: Iterable[bytes]) -> list[tuple[bytes, list[bytes]]]:
        """Every blob reachable from ``roots`` (themselves included), once each, with the children it holds
        as a tree node (sorted; [] for a leaf): children before their parents, roots in hash order. The
        committed edges of this node, read without an await (one consistent state)."""
        order: list[tuple[bytes, list[bytes]]] = []
        seen: set[bytes] = set()
        for root in sorted(roots):
            if root in seen:
                continue
            seen.add(root)
            stack = [(root, sorted(self.children.get(root, ())), 0)]
            while stack:  # depth first: a node is listed once every child below it is
                blob, children, next_child = stack.pop()
                if next_child == len(children):
                    order.append((blob, children))
                    continue
                stack.append((blob, children, next_child + 1))
                child = children[next_child]
                if child not in seen:
                    seen.add(child)
                    stack.append((child, sorted(self.children.get(child, ())), 0))
        return order

    def has(self, blob: bytes) -> bool:
        """Stored, or uploaded through this node and ordered before anything submitted after now."""
        return blob in self.sizes or blob in self.uploading

    # ---- requests -------------------------------------------------------------------------------------

    async def handle(self, session: Session, event: BlobQuery | BlobPut | BlobGet) -> None:
        """Answered in order with the session's puts in flight (a put is answered once durable): a query
        or a get after a put sees the blob, and a refused put is answered after those before it."""
        match event:
            case BlobQuery(hashes=hashes, ref=ref):
                await self._after_own_puts(session)
                session.send(BlobStatus(missing=[h for h in hashes if h not in self.sizes], ref=ref))
            case BlobPut():
                try:
                    await self.put(session, event)
                except RequestError:
                    await self._after_own_puts(session)
                    raise
            case BlobGet(hashes=hashes, ref=ref):
                await self._after_own_puts(session)
                readable = None
                if session.user.is_viewer:  # its room's blobs only (roles.py)
                    roots = self.room_blobs.get(session.room.name, {}) if session.room is not None else {}
                    readable = lambda blob: self._reachable(blob, roots)  # noqa: E731
                session.send_stream(self._blob_frames(list(hashes), ref, readable))

    async def _after_own_puts(self, session: Session) -> None:
        """Once every put this session has in flight here is answered (its reader waits: nothing new)."""
        while self.pinning.get(session.client_id):
            await self._puts_answered.setdefault(session.client_id, trio.Event()).wait()

    def _reachable(self, blob: bytes, roots: dict[bytes, int]) -> bool:
        """Whether ``blob`` is one of ``roots`` or held, through tree nodes, by one of them."""
        seen: set[bytes] = set()
        todo = [blob]
        while todo:
            here = todo.pop()
            if here in roots:
                return True
            if here not in seen:
                seen.add(here)
                todo.extend(self.parents.get(here, ()))
        return False

    def _blob_frames(
        self, blobs: list[bytes], ref: int | None, readable: Callable[[bytes], bool] | None
    ) -> Iterator[bytes]:
        """Read when sent, like a snapshot: a joiner's fetches do not fill its send queue. A blob not
        ``readable`` (when given) is answered as not held: a viewer learns nothing of other rooms."""
        for blob in blobs:
            if readable is not None and not readable(blob):
                yield encode_frame(BlobDataEvent(hash=blob, data=None, ref=ref))
                continue
            data = self.node.read_blob(blob)
            self.metrics.blob_bytes_sent += len(data or b"")
            yield encode_frame(BlobDataEvent(hash=blob, data=data, ref=ref))

    async def put(self, session: Session, request: BlobPut) -> None:
        blob, size, children = request.hash, len(request.data), request.children or []
        for child in children:
            if not self.has(child):
                raise RequestError(ErrorCode.NO_SUCH_BLOB, f"child blob {child.hex()} is not on the server")
        while children and (busy := self.node_puts.get(blob)) is not None:
            await busy.wait()  # one put of a node at a time here: the next one reads what it holds
        held = self.children.get(blob)
        if children and held is not None and len(held.union(children)) > MAX_BLOB_CHILDREN:
            # Put again naming other children (each listed in its bytes), the node would hold them all.
            raise RequestError(ErrorCode.LIMIT_EXCEEDED, _TOO_MANY_CHILDREN % blob.hex())
        pins = self.pins.setdefault(session.client_id, set())
        if (
            not children  # a node is put again: it may not have held its children before
            and blob in pins
            and self.node.read_local(holder_path(blob, pin_holder(session.client_id))) is not None
        ):
            session.send(BlobStored(hash=blob, ref=request.ref))
            return
        if children:
            self.node_puts[blob] = trio.Event()
        try:
            proposal = await self._submit_put(session, blob, request.data, children)
        except BaseException:
            if children:
                self.node_puts.pop(blob).set()
            raise
        pins.add(blob)
        pinning = self.pinning.setdefault(session.client_id, {})
        pinning[blob] = pinning.get(blob, 0) + 1
        self.fresh.setdefault(session.client_id, {})[blob] = children
        fresh = blob not in self.uploading
        self.uploading[blob] = size if fresh else self.uploading[blob]
        self.metrics.blob_bytes_received += size

        def done(proposal: Any) -> None:
            session.inflight.release()
            if children:
                self.node_puts.pop(blob).set()
            left = pinning.pop(blob) - 1
            if left:
                pinning[blob] = left
            elif not pinning:
                self.pinning.pop(session.client_id, None)
                answered = self._puts_answered.pop(session.client_id, None)
                if answered is not None:
                    answered.set()  # its waiter runs once this callback has queued the answer below
            if fresh:
                self.uploading.pop(blob, None)
            ok = proposal.error is None and proposal.result.get("ok")
            if ok:
                session.send(BlobStored(hash=blob, ref=request.ref))
            else:
                pins.discard(blob)
                self.fresh.get(session.client_id, {}).pop(blob, None)
                gone = [child for child in children if child not in self.sizes]
                if proposal.error is None and gone:  # collected between the check and the commit
                    message = f"child blob {gone[0].hex()} is not on the server"
                    session.reply_error(ErrorCode.NO_SUCH_BLOB, message, request.ref)
                    return
                message = str(proposal.error) if proposal.error else proposal.result.get("message", "")
                session.reply_error(ErrorCode.UNAVAILABLE, f"the blob was not stored: {message}", request.ref)

        proposal.add_done_callback(done)

    async def _submit_put(self, session: Session, blob: bytes, data: bytes, children: list[bytes]) -> Any:
        size = len(data)
        limit = self.config.max_blob_bytes
        if limit and not self.has(blob) and self.total_bytes + sum(self.uploading.values()) + size > limit:
            self.metrics.limit("max_blob_bytes")
            raise RequestError(ErrorCode.LIMIT_EXCEEDED, f"max_blob_bytes ({limit}) reached on this server")
        await session.inflight.acquire()  # backpressure, shared with writes
        pinned = self._pinned(session.client_id, children)
        command = put_blob_command(blob, size, session.client_id, self.node.node_id, children, pinned)
        try:
            return self.node.submit(command, blob=(blob, data))
        except (ReplicationError, TreeError) as exc:
            session.inflight.release()
            raise RequestError(ErrorCode.UNAVAILABLE, f"cannot store the blob: {exc}") from None

    def _pinned(self, client_id: str, blobs: Iterable[bytes]) -> list[bytes]:
        """Those of ``blobs`` this session pins, or will once its uploads in flight commit (ordered before
        anything submitted now). ``pins`` keeps every blob the session ever pinned, for its end."""
        pinning = self.pinning.get(client_id, {})
        holder = pin_holder(client_id)
        return [b for b in blobs if b in pinning or self.node.read_local(holder_path(b, holder)) is not None]

    # ---- room writes ----------------------------------------------------------------------------------

    async def settle(self, room: str, ops: list[list[Any]]) -> None:
        """Wait until no write of these keys that changes their holds is still in flight from this node."""
        pending = self.pending_keys
        if not pending:
            return
        for op in ops:
            room_key = (room, op[1])
            while room_key in pending:
                await self._settled.setdefault(room_key, trio.Event()).wait()

    def write_changes(self, session: Session, room: Room, ops: list[list[Any]]) -> BlobChanges | None:
        """The conditions and ops that move a write's keys' holds from their old refs to their new ones.

        Returns them, or None when the write touches no referencing key; ``write_done`` them when the write
        ends. Raises no_such_blob for a reference to a blob this node has not got, limit_exceeded past the
        room quota (writes still in flight counted, as max_room_bytes counts them).
        """
        compare: list[dict[str, Any]] = []
        then: list[dict[str, Any]] = []
        bases: dict[str, tuple[bytes, ...]] = {}
        for op in ops:  # a key written twice in one batch ends with its last value's refs
            bases[op[1]] = value_refs(op)
        added_bytes = 0
        for key, new in bases.items():
            old = self.key_refs.get((room.name, key), ())
            if not old and not new:
                continue
            key_compare, key_then, gained = key_hold_changes(room.name, key, old, new)
            for blob in gained:
                if not self.has(blob):
                    raise RequestError(
                        ErrorCode.NO_SUCH_BLOB, f"blob {blob.hex()} is not on the server: blob_put it first"
                    )
            compare += key_compare
            then += key_then
            pins = self.pins.get(session.client_id)
            if pins:  # (kept in ``pins``: the write may still fail; a release at the end is a no-op then)
                then += release_ops([blob for blob in gained if blob in pins], pin_holder(session.client_id))
            added_bytes += self._bytes(new) - self.key_bytes.get((room.name, key), 0)
        if not then:
            return None
        limit = self.config.max_room_blob_bytes
        pending = self.pending_room_bytes.get(room.name, 0)
        if limit and added_bytes > 0 and self.room_bytes.get(room.name, 0) + pending + added_bytes > limit:
            self.metrics.limit("max_room_blob_bytes")
            raise RequestError(
                ErrorCode.LIMIT_EXCEEDED, f"max_room_blob_bytes ({limit}) reached in room {room.name!r}"
            )
        added_bytes = max(added_bytes, 0)
        if added_bytes:
            self.pending_room_bytes[room.name] = pending + added_bytes
        chained = [(room.name, key) for key in bases]
        for room_key in chained:
            self.pending_keys[room_key] = self.pending_keys.get(room_key, 0) + 1
        return BlobChanges(compare, then, chained, room.name, added_bytes)

    def write_done(self, changes: BlobChanges) -> None:
        if changes.pending_bytes:
            left = self.pending_room_bytes[changes.room] - changes.pending_bytes
            if left:
                self.pending_room_bytes[changes.room] = left
            else:
                del self.pending_room_bytes[changes.room]
        for room_key in changes.chained:
            self.pending_keys[room_key] -= 1
            if not self.pending_keys[room_key]:
                del self.pending_keys[room_key]
                settled = self._settled.pop(room_key, None)
                if settled is not None:
                    settled.set()

    def refusal(self, room: Room, ops: list[list[Any]]) -> RequestError | None:
        """Why a write's blob conditions failed (read after the failed commit), or None if a lock did."""
        for op in ops:
            for blob in value_refs(op):
                if blob not in self.sizes:
                    return RequestError(
                        ErrorCode.NO_SUCH_BLOB, f"blob {blob.hex()} is not on the server: blob_put it first"
                    )
        if room.locks:
            return None
        # The refs the write diffed against were not the committed ones: a write of the same key through
        # another node of a cluster came first.
        return RequestError(ErrorCode.CONFLICT, "a key's blob references changed meanwhile: send it again")

    # ---- blobs that travel with a write (docs/protocol.md section 3a) ------------------------------------

    def push_list(self, client_id: str, ops: list[list[Any]]) -> tuple[list[bytes], dict[bytes, list[bytes]]]:
        """The blobs a write makes new, to record in its log entry: those its refs reach through this
        session's uploads that no write of it referenced yet, top level first, as many as fit
        MAX_PUSHED_BLOBS and MAX_PUSHED_BYTES (the first one that does not fit ends the list: a tree's upper
        levels come whole, so a member fetches what is left in one round). Returns them and every upload the
        walk took (``give_back`` them if the write fails)."""
        fresh = self.fresh.get(client_id)
        if not fresh:
            return [], {}
        taken: dict[bytes, list[bytes]] = {}
        pushed: list[bytes] = []
        total, full = 0, False
        level = [blob for op in ops for blob in value_refs(op)]
        while level:
            below = []
            for blob in level:
                children = fresh.pop(blob, None)
                if children is None:  # not ours, referenced before, or reached twice
                    continue
                taken[blob] = children
                below += children
                size = self.sizes.get(blob) or self.uploading.get(blob, 0)
                if full or not size:
                    continue
                if len(pushed) < MAX_PUSHED_BLOBS and total + size <= MAX_PUSHED_BYTES:
                    pushed.append(blob)
                    total += size
                else:
                    full = True
            level = below
        return pushed, taken

    def give_back(self, client_id: str, taken: dict[bytes, list[bytes]]) -> None:
        """A write that did not commit: its new blobs are new for the next one."""
        if taken and client_id in self.sessions:
            self.fresh.setdefault(client_id, {}).update(taken)

    def pushed(self, entry: dict[str, Any]) -> list[list[bytes]] | None:
        """The [hash, data] of a committed log entry's pushed blobs, read from this node's blob table, for
        its ``applied``; None when it has none or they would not fit one frame beside its ops."""
        hashes = entry.get("p")
        if not hashes:
            return None
        room = self.config.max_frame_size - PUSH_FRAME_MARGIN
        for op in entry["ops"]:
            room -= 16 + 4 * len(op[1])  # a key: at most 4 bytes of UTF-8 a character
            if op[0] == "set":
                room -= len(op[2]) + (40 * len(op[3]) if len(op) == 4 else 0)
        out: list[list[bytes]] = []
        for blob in hashes:
            data = self.node.read_blob(blob)
            if data is None:  # not in this node's table: the member fetches it as usual
                continue
            room -= len(data) + 40
            if room < 0:
                return None
            out.append([blob, data])
        return out or None

    # ---- pins of sessions that are gone ---------------------------------------------------------------

    def session_gone(self, client_id: str) -> None:
        self.fresh.pop(client_id, None)  # a write after it comes back is fetched, not pushed
        if self.pins.get(client_id):
            self.orphaned[client_id] = trio.current_time() + self.config.pin_grace

    def session_back(self, client_id: str) -> None:
        self.orphaned.pop(client_id, None)

    async def release_pump(self) -> None:
        """Release the pins of sessions gone for ``pin_grace`` seconds (a resumed session keeps them)."""
        while True:
            await trio.sleep(min(self.config.pin_grace, 5.0))
            now = trio.current_time()
            for client_id in [c for c, deadline in self.orphaned.items() if deadline <= now]:
                if client_id in self.sessions:
                    del self.orphaned[client_id]
                    continue
                if await self.release_pins(client_id):
                    del self.orphaned[client_id]

    async def release_pins(self, client_id: str) -> bool:
        blobs = sorted(self.pins.get(client_id, ()))
        try:
            for start in range(0, len(blobs), RELEASE_BATCH):
                part = blobs[start : start + RELEASE_BATCH]
                await self.node.propose({"then": release_ops(part, pin_holder(client_id))})
        except ReplicationError as exc:
            log.info("releasing the pins of %s failed (%s); retrying later", client_id, exc)
            return False
        self.pins.pop(client_id, None)
        return True
