"""What the session does with the network thread's queue (net.py): server events to ``session_events``,
connection changes (connecting, connected, lost, refused) to the session's state, and the resume that
follows a reconnection. Mixed into ``session.SyncSession``, whose state it shares.
"""

from __future__ import annotations

import queue
import time
from typing import Any

from .protocol_shim import protocol
from .session_events import CONNECTED, DISCONNECTED, STOPPED


class ConnectionMixin:
    # Provided by session.SyncSession.
    net: Any
    state: str
    generation: int
    status: str
    address: str
    revision: int
    live: bool
    room: str | None
    welcome: Any
    client_id: str
    client_session: Any
    chunks: Any
    leases: Any
    edit_mode: Any
    stats: dict[str, int]
    unacked: dict[int, list[list[Any]]]
    _requests: dict[int, tuple[str, dict[str, Any]]]
    _join: dict[str, Any] | None
    _presence_sent: dict[str, Any]
    _retry_at: float
    _on_event: Any
    _send: Any
    _send_with_chunks: Any
    log: Any

    def _drain_network(self) -> None:
        inbox = self.net.inbox
        while True:
            try:
                kind, generation, payload = inbox.get_nowait()
            except queue.Empty:
                return
            if self.state == STOPPED:
                continue
            if kind == "event":
                if generation == self.generation:
                    self._on_event(payload)
            elif kind == "connecting":
                self.status = f"connecting to {payload}"
                self.address = payload
                self.revision += 1
            elif kind == "connected":
                self._on_connected(generation, payload)
            elif kind == "disconnected":
                if generation == self.generation and self.state == CONNECTED:
                    self._connection_lost(payload)
                self.status = f"reconnecting ({payload})"
                self.revision += 1
            elif kind == "refused":  # the network thread gave up: no retry can help
                self.state = STOPPED
                self.live = False
                self.status = f"refused: {payload}"
                self.log(f"refused: {payload}")
            elif kind == "send_failed":
                event, reason = payload
                self.log(f"could not send {event.TYPE}: {reason}")

    def _connection_lost(self, reason: str) -> None:
        self.state = DISCONNECTED
        self.live = False
        self.chunks.connection_lost()
        self.leases.connection_lost()
        self.edit_mode.reset()  # the server releases this session's locks with the connection: lease again
        self.stats["reconnects"] += 1
        for ref in self.client_session.connection_lost(reason, time.monotonic()):
            self._requests.pop(ref, None)  # requests are not replayed; batches are (resume_plan)
        self.log(f"connection lost ({reason}); reconnecting")

    def _on_connected(self, generation: int, welcome) -> None:
        if self.state == CONNECTED:  # a successor without a loss reported in between
            self._connection_lost("replaced")
        self.generation = generation
        self.state = CONNECTED
        self.welcome = welcome
        self.client_id = welcome.client_id
        self.client_session.receive(welcome, time.monotonic())
        address = getattr(self.net, "connected_address", None)
        self.address = f"{address[0]}:{address[1]}" if address else ""
        self.status = f"connected to {self.address or 'server'}"
        self._presence_sent = {}
        self.revision += 1
        self._send(self.client_session.request(lambda ref: protocol.ListRooms(subscribe=True, ref=ref))[1])
        if self._join is not None:
            self._join = None  # its answer was lost with the connection
            if self.room is None:
                self.log("join interrupted by a connection loss; join again")
        # Resume: join again from the last seq seen, then re-send what was never acknowledged, behind the
        # chunks it references that were not confirmed stored; fetch again what waiting values need.
        for ops in list(self.unacked.values()):
            for event in self.chunks.uploads(ops):
                self._send(event)
        for event in [*self.client_session.resume_plan(), *self.chunks.retry_missing()]:
            self._send(event)
        self.live = self.room is not None  # ordered behind the join: new batches may follow at once

    def _send_retries(self) -> None:
        if not self.client_session.retrying or not self.live or time.monotonic() < self._retry_at:
            return
        for _, batch in self.client_session.retry_writes():
            self.stats["batches"] += 1
            self._send_with_chunks(batch)
