"""Replay: a room's key map as it was at a retained seq, read page by page (docs/protocol.md, "History").

Nothing here writes: a replay reads this node's copy (after the fence ``RoomHistory.handle`` waits for)
through ``history.state_at``, the same reconstruction a restore or a fork uses, so what a member replays
at a seq is what a restore to that seq would bring back. Values are sent as stored: one that references
blobs is fetched by the client as after a join.

Rebuilding the map costs a checkpoint plus the log after it, so it is built once per replay: on its first
page (``after`` nil, which also re-checks that the seq is retained), then kept in a ``ReplayCache`` for the
pages that follow. The map at a seq never changes, so a later page read from the cache is the same as one
rebuilt; a page whose map was evicted is rebuilt.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from protocol import ReplayState

from . import history
from .roomstore import log_path, meta_path

CACHE_BYTES = 64 * 1024 * 1024  # keys and values of the maps kept (the newest is kept whatever its size)
CACHE_MAPS = 16
CACHE_IDLE_SECONDS = 300.0  # a map no page has read for this long goes at the next replay


@dataclass
class _Map:
    keys: list[str]  # sorted
    state: dict[str, bytes]
    size: int
    used: float


class ReplayCache:
    """Maps at (room, incarnation, seq) that replays are reading, least recently used first. A room deleted
    and made again under the same name is another incarnation (its meta node's created index)."""

    def __init__(
        self, max_bytes: int = CACHE_BYTES, max_maps: int = CACHE_MAPS, idle: float = CACHE_IDLE_SECONDS
    ):
        self.max_bytes = max_bytes
        self.max_maps = max_maps
        self.idle = idle
        self._maps: OrderedDict[tuple[str, int, int], _Map] = OrderedDict()
        self._bytes = 0

    def map_at(
        self, node: Any, room: str, seq: int, seq_base: int, meta: dict[str, Any], fresh: bool
    ) -> tuple[list[str], dict[str, bytes]]:
        """(sorted keys, map) of the room at ``seq``; ``fresh``: rebuild it even if kept."""
        found = node.read_local(meta_path(room))
        key = (room, found[0].created_index if found is not None else -1, seq)
        now = time.monotonic()
        kept = None if fresh else self._maps.get(key)
        if kept is None:
            state, _ = history.state_at(node, room, seq, seq_base, meta)  # refuses a seq it cannot rebuild
            size = sum(len(k) + len(v) for k, v in state.items())
            kept = _Map(sorted(state), state, size, now)
            self._drop(key)
            self._maps[key] = kept
            self._bytes += size
        kept.used = now
        self._maps.move_to_end(key)
        self._evict(now)
        return kept.keys, kept.state

    def _drop(self, key: tuple[str, int, int]) -> None:
        gone = self._maps.pop(key, None)
        if gone is not None:
            self._bytes -= gone.size

    def _evict(self, now: float) -> None:
        while len(self._maps) > 1:
            oldest_key, oldest = next(iter(self._maps.items()))
            if (
                len(self._maps) > self.max_maps
                or self._bytes > self.max_bytes
                or now - oldest.used > self.idle
            ):
                self._drop(oldest_key)
            else:
                break


def replay_range(node: Any, room: str, seq_base: int, meta: dict[str, Any]) -> tuple[int, int]:
    """(first, last): the seqs a replay can show from first to last without a gap (last: the room's
    seq). Before ``first``, a checkpoint's seq (and seq 0 of a room that started empty) can still be
    asked for alone; the rest are ``not_retained``."""
    entries = node.read_local(log_path(room))
    last = (entries[0].next_seq - 1 if entries is not None else 0) + seq_base
    logged = node.seq_children_local(log_path(room), limit=1)
    oldest = logged[0][0] + seq_base if logged else last + 1  # the first entry still retained
    if not seq_base and not meta.get("seeded") and oldest <= 1:
        return 0, last  # the whole log from the room's empty start
    # The earliest checkpoint the retained log goes on from (ids need not be in seq order: a restore in
    # parts checkpoints its target, an older seq, after newer checkpoints).
    found = [p["seq"] for _, p in history.checkpoint_records(node, room) if oldest - 1 <= p["seq"] <= last]
    return (min(found), last) if found else (last, last)


def replay_page(
    node: Any,
    room: str,
    seq_base: int,
    meta: dict[str, Any],
    seq: int | None,
    after: str | None,
    page_bytes: int,
    ref: int | None,
    cache: ReplayCache,
) -> ReplayState:
    """The page of the map at ``seq`` (None: now) after key ``after``: at least one item when any is
    left, then items while they fit in ``page_bytes``."""
    first, last = replay_range(node, room, seq_base, meta)
    seq = last if seq is None else seq
    keys, state = cache.map_at(node, room, seq, seq_base, meta, fresh=after is None)
    start = 0
    if after is not None:
        start = _first_after(keys, after)
    items: list[list[Any]] = []
    size = 0
    for key in keys[start:]:
        cost = len(key.encode()) + len(state[key]) + 16
        if items and size + cost > page_bytes:
            break
        items.append([key, state[key]])
        size += cost
    more = start + len(items) < len(keys)
    return ReplayState(
        room=room,
        seq=seq,
        first=first,
        last=last,
        key_count=len(keys),
        items=items,
        more=more,
        ref=ref,
    )


def _first_after(keys: list[str], after: str) -> int:
    """Index of the first key sorting after ``after`` (by code point, as ``sorted`` orders them)."""
    low, high = 0, len(keys)
    while low < high:
        middle = (low + high) // 2
        if keys[middle] <= after:
            low = middle + 1
        else:
            high = middle
    return low
