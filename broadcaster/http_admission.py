"""Who the HTTP port serves at once, before a connection becomes a WebSocket session.

A connection is served (its requests read and answered, an upgrade parsed) while it holds one of
``MAX_CONNECTIONS`` places, at most ``PER_PEER`` of them from one address. One that finds none free waits
its turn, in order of arrival, until its deadline (the caller's: ``handshake_timeout`` after the accept),
rather than being turned away: the pages of a share link reconnect together after a restart, and each
holds its place only for the milliseconds of its upgrade. At most ``max_waiting`` connections wait; past
that a new one is closed at once. So a peer that opens connections and sends nothing delays others by at
most the deadline, and can take at most ``PER_PEER`` places while it does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

MAX_CONNECTIONS = 64  # served at once (status pages, scrapes, upgrades in progress)
PER_PEER = 16  # of those, from one address


class Admission:
    def __init__(self, max_waiting: int):
        self.max_waiting = max_waiting
        self.waiting = 0
        self._all = trio.CapacityLimiter(MAX_CONNECTIONS)
        self._peers: dict[str, trio.CapacityLimiter] = {}

    @property
    def served(self) -> int:
        return self._all.borrowed_tokens

    @asynccontextmanager
    async def place(self, peer: str, deadline: float) -> AsyncIterator[bool]:
        """Yields True once a place is held (until the block ends), False if the deadline came first or
        too many wait already."""
        mine = self._peers.get(peer)
        if mine is None:
            mine = self._peers[peer] = trio.CapacityLimiter(PER_PEER)
        held: list[trio.CapacityLimiter] = []
        try:
            for limiter in (mine, self._all):
                if limiter.available_tokens and not limiter.statistics().tasks_waiting:
                    limiter.acquire_nowait()
                elif self.waiting >= self.max_waiting:
                    break
                else:
                    self.waiting += 1
                    try:
                        with trio.move_on_at(deadline) as waited:
                            await limiter.acquire()
                    finally:
                        self.waiting -= 1
                    if waited.cancelled_caught:
                        break
                held.append(limiter)
            yield len(held) == 2
        finally:
            for limiter in reversed(held):
                limiter.release()
            if (
                self._peers.get(peer) is mine
                and not mine.borrowed_tokens
                and not mine.statistics().tasks_waiting
            ):
                del self._peers[peer]
