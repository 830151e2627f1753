"""A client's outgoing frames: bounded in bytes, with room snapshots streamed lazily."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

import trio


class OutQueue:
    """FIFO of encoded frames. ``put`` never blocks: past ``limit`` bytes it refuses (slow consumer).

    A snapshot is queued as an iterator of frames so that joining a large room neither copies the room nor
    counts against the limit; frames queued after it wait behind it.
    """

    def __init__(self, limit: int):
        self.limit = limit
        self.queued_bytes = 0
        self._items: deque[bytes | Iterator[bytes]] = deque()
        self._ready = trio.Event()
        self.closed = False

    def put(self, frame: bytes) -> bool:
        if self.closed:
            return True  # the session is ending; nothing more will be sent
        if self.queued_bytes + len(frame) > self.limit:
            return False
        self._items.append(frame)
        self.queued_bytes += len(frame)
        self._ready.set()
        return True

    def put_stream(self, frames: Iterator[bytes]) -> None:
        if not self.closed:
            self._items.append(frames)
            self._ready.set()

    def replace_with(self, frame: bytes) -> None:
        """Drop everything queued, send only ``frame``, then stop (used to close with an error)."""
        self._items.clear()
        self._items.append(frame)
        self.queued_bytes = len(frame)
        self.closed = True
        self._ready.set()

    def __len__(self) -> int:
        return len(self._items)

    async def get_batch(self, max_bytes: int, timeout: float) -> list[bytes] | None:
        """Up to ``max_bytes`` of frames (at least one); None if nothing came within ``timeout``."""
        with trio.move_on_after(timeout):
            while not self._items:
                self._ready = trio.Event()
                await self._ready.wait()
        if not self._items:
            return None
        batch: list[bytes] = []
        size = 0
        while self._items and size < max_bytes:
            head = self._items[0]
            if isinstance(head, bytes):
                self._items.popleft()
                self.queued_bytes -= len(head)
                batch.append(head)
                size += len(head)
            else:
                frame = next(head, None)
                if frame is None:
                    self._items.popleft()
                else:
                    batch.append(frame)
                    size += len(frame)
        return batch
