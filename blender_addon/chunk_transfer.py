"""Chunks between the add-on and the server (docs/protocol.md section 3a): uploads before the operations
that reference them, and fetches before the values that need them are applied. No bpy, no I/O: the sync
loop (session.py) sends what this returns and hands it what the server answers.

- **Up.** A set whose value names chunk trees carries their roots as its ``refs``; each chunk and list node
  the server is not known to hold (``ChunkCache.on_server``) goes up as a ``blob_put`` right before the
  batch, on the same connection, children before their node (a node names its ``children``), so the
  server orders them first. A node known to be there stands for its whole subtree: an edit walks one path.
  After a reconnect, the blobs of unacknowledged batches that were never confirmed (``blob_stored``) go up
  again before the resume plan: an interrupted upload goes on where it stopped.
- **Pushed.** The blobs another member's write made new come with its ``applied`` (protocol 3, their hashes
  checked by the decoder): they go into the cache before its values reach the gate, so an edit of a large
  value applies with no ``blob_get`` at all (``pushed``).
- **Down.** Remote values pass through a gate: a value whose trees are all cached goes to the applier at
  once, unless an earlier value of the same key is still waiting; otherwise what it lacks is fetched
  (``blob_get``, each hash once) level by level (a node's children are known once it is here), and it
  waits until all is here. Light values (objects, transforms,
  materials, small meshes) therefore apply while heavy chunks stream in behind them (a progressive join);
  each key's values still apply in order, and the applier's own pending links cover references between
  datablocks. A chunk the server no longer holds belongs to a value a later operation replaced: that value
  is skipped.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from .protocol_shim import protocol
from .sync import chunks

MAX_GET = 64  # protocol.limits.MAX_BLOB_GET
MAX_BATCH_BYTES = 8 * 1024 * 1024  # one batch of ours, estimated (``split_batches``)

Change = tuple[str, "bytes | None"]


class ChunkTransfer:
    def __init__(self, store: chunks.ChunkCache | None = None):
        self.store = store if store is not None else chunks.cache
        self.sent: set[bytes] = set()  # put on this connection, not confirmed yet
        self.requested: set[bytes] = set()  # asked for on this connection, not arrived yet
        self._waiting: deque[tuple[str, bytes | None, set[bytes]]] = deque()
        self._waiting_keys: dict[str, int] = {}  # key -> values of it waiting
        self.skipped: list[str] = []  # keys whose value could not be completed (replaced meanwhile)
        self.stats = {
            "put": 0,
            "put_bytes": 0,
            "fetched": 0,
            "fetched_bytes": 0,
            "pushed": 0,
            "pushed_bytes": 0,
        }
        self._gets: list[bytes] = []  # found to be wanted while blobs arrived: take_gets sends them

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def waiting_uuids(self) -> set[str]:
        """The datablocks (uuids) of the keys whose values wait here for chunks."""
        return {bits[1] for bits in (key.split("/", 2) for key in self._waiting_keys) if len(bits) == 3}

    def reset(self) -> None:
        """Left the room: values waiting for chunks are dropped (the chunks stay cached)."""
        self._waiting.clear()
        self._waiting_keys.clear()

    def connection_lost(self) -> None:
        self.sent.clear()
        self.requested.clear()

    # ---- up --------------------------------------------------------------------------------------------

    def with_refs(self, ops: list[list[Any]]) -> list[list[Any]]:
        """The ops with each set's chunk hashes as its fourth element (sets without chunks unchanged)."""
        out = []
        for op in ops:
            refs = chunks.refs_of(op[2]) if op[0] == "set" else []
            out.append([*op[:3], refs] if refs else op)
        return out

    def uploads(self, ops: list[list[Any]]) -> list[Any]:
        """``blob_put`` events for the blobs of ``ops`` the server may not hold, each once per connection,
        children first."""
        events = []

        def known(blob: bytes) -> bool:
            return blob in self.store.on_server or blob in self.sent

        for op in ops:
            if op[0] != "set" or len(op) < 4:
                continue
            for blob, children in chunks.uploads(op[2], known, self.store):
                data = self.store.get(blob)
                if data is None:
                    continue  # evicted: the server answers no_such_blob, and the next scan sends it anew
                self.sent.add(blob)
                self.stats["put"] += 1
                self.stats["put_bytes"] += len(data)
                events.append(protocol.BlobPut(hash=blob, data=data, children=children))
        return events

    def stored(self, blob: bytes) -> None:
        self.sent.discard(blob)
        self.store.on_server.add(blob)

    def forget_stored(self, ops: list[list[Any]]) -> None:
        """The server refused an op for a missing chunk: none of its chunks is taken as stored any more."""
        for op in ops:
            if op[0] == "set" and len(op) == 4:
                blobs = chunks.tree_blobs(op[2], self.store)
                self.store.on_server.difference_update(blobs)
                self.sent.difference_update(blobs)

    # ---- down ------------------------------------------------------------------------------------------

    def pushed(self, blobs: list[list[bytes]] | None) -> None:
        """An ``applied``'s blobs ([hash, data], checked against their hashes when it was decoded): cached
        before its values reach ``incoming``. One a waiting value asked for still settles when its
        ``blob_data`` comes."""
        for blob, data in blobs or ():
            self.store.put(blob, data)
            self.store.on_server.add(blob)
            self.stats["pushed"] += 1
            self.stats["pushed_bytes"] += len(data)

    def incoming(self, changes: list[Change]) -> tuple[list[Change], list[Any]]:
        """Remote values in arrival order -> (those ready to apply now, blob_get events to send)."""
        ready: list[Change] = []
        wanted: list[bytes] = []
        for key, value in changes:
            order: list[bytes] = []
            if value is not None and chunks.holds_chunks(value):  # a search: nearly every value names none
                try:
                    self.store.on_server.update(chunks.refs_of(value))  # a live key holds them (and trees)
                    order = chunks.wanted(value, self.store)
                except ValueError:  # malformed: the applier refuses it like any undecodable value
                    order = []
            if not order and key not in self._waiting_keys:
                ready.append((key, value))
                continue
            self._waiting.append((key, value, set(order)))
            self._waiting_keys[key] = self._waiting_keys.get(key, 0) + 1
            for blob in order:
                if blob not in self.requested:
                    self.requested.add(blob)
                    wanted.append(blob)
        gets = [protocol.BlobGet(hashes=wanted[i : i + MAX_GET]) for i in range(0, len(wanted), MAX_GET)]
        return ready, gets

    def arrived(self, blob: bytes, data: bytes | None) -> list[Change]:
        """A ``blob_data``: cache it; returns the values now ready, in order."""
        self.requested.discard(blob)
        if data is not None:
            self.store.put(blob, data)
            self.store.on_server.add(blob)
            self.stats["fetched"] += 1
            self.stats["fetched_bytes"] += len(data)
        for _, value, need in self._waiting:
            if blob in need:
                need.discard(blob)
                if not need and data is not None:  # a level is here: the next one is known now
                    need.update(self._wanted(value))
        ready: list[Change] = []
        blocked: set[str] = set()  # keys with an earlier value still waiting
        still: deque[tuple[str, bytes | None, set[bytes]]] = deque()
        for key, value, need in self._waiting:
            if need or key in blocked:
                blocked.add(key)
                still.append((key, value, need))
                continue
            self._waiting_keys[key] -= 1
            if not self._waiting_keys[key]:
                del self._waiting_keys[key]
            if self._lacks(value):
                self.skipped.append(key)  # a blob the server had dropped: a later value replaces it
                continue
            ready.append((key, value))
        self._waiting = still
        return ready

    def _wanted(self, value: bytes | None) -> set[bytes]:
        try:
            need = chunks.wanted(value, self.store)
        except ValueError:
            return set()
        for blob in need:  # in the value's order: a joiner fills arrays front to back
            if blob not in self.requested:
                self.requested.add(blob)
                self._gets.append(blob)
        return set(need)

    def _lacks(self, value: bytes | None) -> bool:
        try:
            return bool(chunks.wanted(value, self.store))
        except ValueError:
            return False

    def take_gets(self) -> list[Any]:
        """``blob_get`` events for what ``arrived`` found to be wanted next (a tree's next level)."""
        wanted, self._gets = self._gets, []
        return [protocol.BlobGet(hashes=wanted[i : i + MAX_GET]) for i in range(0, len(wanted), MAX_GET)]

    def retry_missing(self) -> list[Any]:
        """After a reconnect: fetch again what waiting values still need."""
        wanted = sorted({blob for _, _, need in self._waiting for blob in need} - self.requested)
        self.requested.update(wanted)
        return [protocol.BlobGet(hashes=wanted[i : i + MAX_GET]) for i in range(0, len(wanted), MAX_GET)]


def split_batches(ops: list[list[Any]], limit: int = MAX_BATCH_BYTES) -> list[list[list[Any]]]:
    """``ops`` in batches of about ``limit`` bytes at most (a ref counts its hash and framing)."""
    batches: list[list[list[Any]]] = [[]]  # not ``chunks``: that is the chunking module here
    size = 0
    for op in ops:
        op_size = (
            len(op[1]) + (len(op[2]) if len(op) > 2 else 0) + 34 * (len(op[3]) if len(op) > 3 else 0) + 16
        )
        if batches[-1] and size + op_size > limit:
            batches.append([])
            size = 0
        batches[-1].append(op)
        size += op_size
    return [batch for batch in batches if batch]
