"""The one task that writes the WebSocket viewers' gathered messages (WebSocketSession.send_frame).

A room's operation fanned out to hundreds of viewers would otherwise wake one writer task per viewer per
operation and make one system call per viewer per operation. Sessions add themselves here when they
gather their first message; this task runs once the step that fanned the messages out has yielded, and
writes each session's messages with one send.
"""

from __future__ import annotations

from typing import Protocol

import trio


class Gathering(Protocol):
    def write_pending(self) -> None:
        """Write the messages gathered since the last call, in order."""


class DirectWrites:
    def __init__(self) -> None:
        self._sessions: list[Gathering] = []
        self._wakeup = trio.Event()

    def add(self, session: Gathering) -> None:
        self._sessions.append(session)
        self._wakeup.set()

    async def run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup = trio.Event()
            sessions, self._sessions = self._sessions, []
            for session in sessions:
                session.write_pending()
