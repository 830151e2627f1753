"""Replay: a room's key map as it was at a retained seq, read page by page (docs/protocol.md, "History").

Nothing here writes: a replay reads this node's copy (after the fence ``RoomHistory.handle`` waits for)
through ``history.state_at``, the same reconstruction a restore or a fork uses, so what a member replays
at a seq is what a restore to that seq would bring back. Values are sent as stored: one that references
blobs is fetched by the client as after a join.
"""

from __future__ import annotations

from typing import Any

from protocol import ReplayState

from . import history
from .roomstore import log_path


def replay_range(node: Any, room: str, seq_base: int, meta: dict[str, Any]) -> tuple[int, int]:
    """(first, last): the seqs a replay can show from first to last without a gap (last: the room's
    seq). Before ``first``, a checkpoint's seq (and seq 0 of a room that started empty) can still be
    asked for alone; the rest are ``not_retained``."""
    entries = node.read_local(log_path(room))
    last = (entries[0].next_seq - 1 if entries is not None else 0) + seq_base
    logged = node.list_local(log_path(room))
    oldest = int(logged[0][0]) + seq_base if logged else last + 1  # the first entry still retained
    if not seq_base and not meta.get("seeded") and oldest <= 1:
        return 0, last  # the whole log from the room's empty start
    for _, _, payload in node.list_local(history.checkpoints_path(room)):  # oldest first
        if oldest - 1 <= payload["seq"] <= last:  # the log from this checkpoint on is all retained
            return payload["seq"], last
    return last, last


def replay_page(
    node: Any,
    room: str,
    seq_base: int,
    meta: dict[str, Any],
    seq: int | None,
    after: str | None,
    page_bytes: int,
    ref: int | None,
) -> ReplayState:
    """The page of the map at ``seq`` (None: now) after key ``after``: at least one item when any is
    left, then items while they fit in ``page_bytes``."""
    first, last = replay_range(node, room, seq_base, meta)
    seq = last if seq is None else seq
    state, _ = history.state_at(node, room, seq, seq_base, meta)  # refuses a seq it cannot rebuild
    keys = sorted(state)
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
