"""The one task that writes the WebSocket viewers' gathered messages (WebSocketSession.send_frame).

A room's operation fanned out to hundreds of viewers would otherwise wake one writer task per viewer per
operation and make one system call per viewer per operation. Sessions add themselves here when they
gather their first message; this task runs once the step that fanned the messages out has yielded, and
writes each session's messages with one send.

Viewers come after artists. Hundreds of viewer sends take milliseconds, and the artists' copies of an
operation must not wait behind them: a room hands a frame for its viewers to this task (``defer``), which
queues it to each viewer only when it runs; it yields once more before that, so the artists' writer
tasks, woken by the same fan-out, send first (trio runs the tasks woken in one step in either order); and
it queues and writes SLICE sessions at a time, yielding between slices, so that an operation arriving
meanwhile is committed and reaches the artists without waiting for the rest of the viewers. Queueing a
frame to 500 viewers takes about 2 ms on its own: done whole in one step, it was a step of 2 to 3 ms
after every operation, which an operation arriving meanwhile waited out.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import takewhile
from typing import Protocol

import trio

SLICE = 64  # viewers queued to and written between yields: 1.5 to 3 ms of loopback sends here


class Gathering(Protocol):
    def write_pending(self) -> None:
        """Write the messages gathered since the last call, in order."""

    def send_frame(self, frame: bytes) -> None:
        """Queue one encoded frame to it."""


class _Deferred:
    """A frame for viewers, queued so far to the first ``done`` of its sessions and to those in ``early``
    (sessions that sent a frame of their own meanwhile)."""

    __slots__ = ("done", "early", "frame", "sessions")

    def __init__(self, frame: bytes, sessions: Sequence[Gathering]):
        self.frame, self.sessions, self.done = frame, sessions, 0
        self.early: set[int] = set()  # id() of sessions: a session need not be hashable

    def queued_early(self, session: Gathering) -> bool:
        return id(session) in self.early

    def queue_early(self, session: Gathering) -> None:
        session.send_frame(self.frame)
        self.early.add(id(session))


class DirectWrites:
    def __init__(self) -> None:
        self._sessions: list[Gathering] = []
        self._deferred: list[_Deferred] = []  # frames for viewers not yet queued to all of them
        self._queueing = False
        self._wakeup = trio.Event()

    def defer(self, frame: bytes, sessions: Sequence[Gathering]) -> None:
        """Queue ``frame`` to each of ``sessions`` when this task runs, after the artists' writers."""
        self._deferred.append(_Deferred(frame, sessions))
        self._wakeup.set()

    def queue_deferred(self, session: Gathering) -> None:
        """Queue to ``session`` now, in order, the deferred frames it is still to get. A session calls it
        before queueing a frame of its own (a pong), so that its frames keep the order in which they were
        sent. Only its own: queueing everything deferred to every viewer whenever one answered a ping was
        a step of a millisecond or two. (While a slice is queued, the frames before it are queued to
        every session already, and those after it to none.)"""
        if self._queueing or not self._deferred:
            return
        self._queueing = True
        try:
            for entry in self._deferred:
                if entry.queued_early(session):
                    continue
                try:
                    entry.sessions.index(session, entry.done)
                except ValueError:
                    continue  # not one of its sessions, or queued to it already
                entry.queue_early(session)
        finally:
            self._queueing = False

    def _queue_slice(self) -> None:
        """Queue the oldest deferred frame to its next SLICE sessions; with it the frames deferred after it
        to the same sessions (operations committed together), so that each session writes them at once."""
        head = self._deferred[0]
        together = list(
            takewhile(
                lambda entry: entry.sessions is head.sessions and entry.done == head.done, self._deferred
            )
        )
        end = head.done + SLICE
        self._queueing = True
        try:
            for session in head.sessions[head.done : end]:
                for entry in together:
                    if not entry.queued_early(session):
                        session.send_frame(entry.frame)
        finally:
            self._queueing = False
        if end >= len(head.sessions):
            del self._deferred[: len(together)]
        else:
            for entry in together:
                entry.done = end

    def add(self, session: Gathering) -> None:
        self._sessions.append(session)
        self._wakeup.set()

    async def run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup = trio.Event()
            await trio.sleep(0)  # after the writer tasks woken with it: artists before viewers
            while True:
                if self._deferred:
                    self._queue_slice()
                sessions, self._sessions = self._sessions[:SLICE], self._sessions[SLICE:]
                for session in sessions:
                    session.write_pending()
                if not (self._deferred or self._sessions):
                    break
                # twice: a task woken in the slice and this one may run in one batch, either first
                await trio.sleep(0)
                await trio.sleep(0)
