"""Closing the sessions of share links as their links expire: one timer for the whole server.

A link is checked at ``hello``; a viewer that opened it before its expiry would otherwise keep watching
after it. Each viewer session with an expiry is noted here when it says hello; one task sleeps until the
earliest expiry among them and closes every session due then with ``auth_failed`` (the page says the link
has expired). No session polls. Sessions that close before their link expires are dropped from the heap
lazily, and the heap is rebuilt when they outnumber the live ones.
"""

from __future__ import annotations

import heapq
import itertools
import math
import time
from collections.abc import Callable
from typing import Protocol

import trio

from protocol import ErrorCode

from .auth import User

EXPIRED_MESSAGE = "this share link has expired"


class Expiring(Protocol):
    user: User
    closing: bool

    def fail(self, code: ErrorCode, message: str, ref: int | None = None) -> None: ...


class ExpiryTimer:
    def __init__(self, clock: Callable[[], float] = time.time):
        self.clock = clock  # Unix seconds, as expires_at
        self._heap: list[tuple[int, int, Expiring]] = []
        self._live: set[Expiring] = set()
        self._order = itertools.count()  # ties never compare sessions
        self._changed = trio.Event()

    def add(self, session: Expiring) -> None:
        expires_at = session.user.expires_at
        if expires_at is None or not session.user.is_viewer:
            return
        earliest = self._heap[0][0] if self._heap else math.inf
        heapq.heappush(self._heap, (expires_at, next(self._order), session))
        self._live.add(session)
        if expires_at < earliest:
            self._changed.set()  # the timer sleeps until a later time: wake it to sleep less

    def discard(self, session: Expiring) -> None:
        self._live.discard(session)
        if len(self._heap) > 64 and len(self._heap) > 2 * len(self._live):
            self._heap = [entry for entry in self._heap if entry[2] in self._live]
            heapq.heapify(self._heap)

    def __len__(self) -> int:
        return len(self._live)

    def expire_due(self) -> int:
        """Close every session whose link has expired by now; return how many were closed."""
        now = self.clock()
        closed = 0
        while self._heap and self._heap[0][0] <= now:
            _, _, session = heapq.heappop(self._heap)
            if session in self._live:
                self._live.discard(session)
                if not session.closing:
                    session.fail(ErrorCode.AUTH_FAILED, EXPIRED_MESSAGE)
                    closed += 1
        return closed

    async def run(self) -> None:
        while True:
            self.expire_due()
            self._changed = trio.Event()
            delay = self._heap[0][0] - self.clock() if self._heap else math.inf
            with trio.move_on_after(max(delay, 0.0)):
                await self._changed.wait()
