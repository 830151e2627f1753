"""A minimal protocol client over the HTTP port's WebSocket (``/ws``), for tests and benchmarks.

It speaks as a browser does: each message a binary WebSocket message holding one frame's body. Raw access
(``send_raw``, ``ws``) is there to send what a browser never would.
"""

from __future__ import annotations

from typing import Any

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Message,
    RejectConnection,
    RejectData,
    Request,
)

from protocol.events import Event, Sender, event_from_body
from protocol.framing import pack_body, unpack_body


class WebSocketClosed(Exception):
    def __init__(self, code: int | None, reason: str | None = None):
        super().__init__(f"closed: {code} {reason or ''}")
        self.code = code


class WSClient:
    def __init__(self, stream: trio.SocketStream, ws: WSConnection):
        self.stream = stream
        self.ws = ws
        self._messages: list[bytes] = []
        self._partial: list[bytes] = []
        self.closed: int | None = None
        self._sending = trio.Lock()  # a keep-alive task and a reply may send at once

    @classmethod
    async def open(cls, host_port: str, path: str = "/ws") -> WSClient:
        host, _, port = host_port.rpartition(":")
        stream = await trio.open_tcp_stream(host.strip("[]"), int(port))
        return await cls.upgrade(stream, host_port, path)

    @classmethod
    async def upgrade(cls, stream: trio.SocketStream, host_port: str, path: str = "/ws") -> WSClient:
        """The WebSocket upgrade on a connection already open."""
        ws = WSConnection(ConnectionType.CLIENT)
        await stream.send_all(ws.send(Request(host=host_port, target=path)))
        client = cls(stream, ws)
        while True:
            data = await stream.receive_some(65536)
            ws.receive_data(data or None)
            for event in ws.events():
                if isinstance(event, AcceptConnection):
                    return client
                if isinstance(event, RejectConnection | RejectData):
                    raise WebSocketClosed(getattr(event, "status_code", None), "rejected")
            if not data:
                raise WebSocketClosed(None, "no answer to the upgrade")

    async def send(self, event: Event) -> None:
        await self.send_body(event.to_body())

    async def send_body(self, body: dict[str, Any]) -> None:
        await self.send_raw(self.ws.send(Message(data=pack_body(body))))

    async def send_raw(self, data: bytes) -> None:
        async with self._sending:
            await self.stream.send_all(data)

    async def receive_body(self) -> dict[str, Any]:
        while not self._messages:
            if self.closed is not None:
                raise WebSocketClosed(self.closed)
            data = await self.stream.receive_some(65536)
            self.ws.receive_data(data or None)
            for event in self.ws.events():
                if isinstance(event, BytesMessage):
                    self._partial.append(bytes(event.data))
                    if event.message_finished:
                        self._messages.append(b"".join(self._partial))
                        self._partial = []
                elif isinstance(event, CloseConnection):
                    self.closed = event.code
            if not data and self.closed is None:
                self.closed = 1006
        return unpack_body(self._messages.pop(0))

    async def receive(self) -> Event:
        return event_from_body(await self.receive_body(), from_role=Sender.SERVER)

    async def receive_until(self, type_name: str) -> list[Event]:
        """Every event up to and including the first of ``type_name``."""
        seen = []
        while True:
            event = await self.receive()
            seen.append(event)
            if type_name == event.TYPE:
                return seen

    async def aclose(self) -> None:
        with trio.move_on_after(1):
            try:
                await self.stream.send_all(self.ws.send(CloseConnection(code=1000)))
            except Exception:
                pass
        await self.stream.aclose()
