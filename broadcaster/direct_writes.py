"""The one task that writes the WebSocket viewers' gathered messages (WebSocketSession.send_frame).

A room's operation fanned out to hundreds of viewers would otherwise wake one writer task per viewer per
operation and make one system call per viewer per operation. Sessions add themselves here when they
gather their first message; this task runs once the step that fanned the messages out has yielded, and
writes each session's messages with one send.

Viewers come after artists. Hundreds of viewer sends take milliseconds, and the artists' copies of an
operation must not wait behind them: a room hands a frame for its viewers to this task (``defer``), which
queues it to each viewer only when it runs; it yields once more before that, so the artists' writer
tasks, woken by the same fan-out, send first (trio runs the tasks woken in one step in either order); and
it writes SLICE sessions at a time, yielding between slices, so that an operation arriving meanwhile is
committed and reaches the artists without waiting for the rest of the viewers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import trio

SLICE = 64  # viewer sends between yields: about a millisecond


class Gathering(Protocol):
    def write_pending(self) -> None:
        """Write the messages gathered since the last call, in order."""

    def send_frame(self, frame: bytes) -> None:
        """Queue one encoded frame to it."""


class DirectWrites:
    def __init__(self) -> None:
        self._sessions: list[Gathering] = []
        self._deferred: list[tuple[bytes, Sequence[Gathering]]] = []  # frames for viewers, not yet queued
        self._wakeup = trio.Event()

    def defer(self, frame: bytes, sessions: Sequence[Gathering]) -> None:
        """Queue ``frame`` to each of ``sessions`` when this task runs, after the artists' writers."""
        self._deferred.append((frame, sessions))
        self._wakeup.set()

    def queue_deferred(self) -> None:
        """Queue the deferred frames now, in order. A session calls it before queueing a frame of its
        own, so that its frames keep the order in which they were sent."""
        if not self._deferred:
            return
        deferred, self._deferred = self._deferred, []
        for frame, sessions in deferred:
            for session in sessions:
                session.send_frame(frame)

    def add(self, session: Gathering) -> None:
        self._sessions.append(session)
        self._wakeup.set()

    async def run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup = trio.Event()
            await trio.sleep(0)  # after the writer tasks woken with it: artists before viewers
            self.queue_deferred()
            sessions, self._sessions = self._sessions, []
            for start in range(0, len(sessions), SLICE):
                if start:  # twice: a task woken in the slice and this one may run in one batch, either first
                    await trio.sleep(0)
                    await trio.sleep(0)
                for session in sessions[start : start + SLICE]:
                    session.write_pending()
