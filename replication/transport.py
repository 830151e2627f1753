"""Messages between replication nodes: msgpack frames over trio TCP (optionally TLS).

Every connection is one-way: node A sends everything for node B over the connection A dialed, and B
receives on connections it accepted. So each receiver only has to authenticate its incoming connections:

    listener -> dialer   ["challenge", nonce (32 random bytes), listener id]
    dialer   -> listener ["hello", dialer id, listener id, HMAC-SHA256(secret, DOMAIN | nonce | ids)]
    listener -> dialer   ["welcome"]            (or closes the connection)

A process without the cluster secret cannot complete the handshake, so it can neither join nor send Raft
messages. Frames are a 4-byte big-endian length and a msgpack body, with the length checked before the body
is buffered. A malformed frame from an authenticated peer is logged and closes that connection; the node
goes on.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import ssl
import struct
from collections import deque
from collections.abc import Callable
from functools import partial
from typing import Any

import msgpack
import trio

log = logging.getLogger("blendsync.transport")

_HEADER = struct.Struct(">I")
_IDS = struct.Struct(">QQ")
DOMAIN = b"blendsync-raft-v1"
DEFAULT_MAX_FRAME = 512 * 1024 * 1024  # a snapshot travels as one frame
HANDSHAKE_TIMEOUT = 5.0


class TransportError(Exception):
    pass


def handshake_mac(secret: bytes, nonce: bytes, dialer: int, listener: int) -> bytes:
    return hmac.new(secret, DOMAIN + nonce + _IDS.pack(dialer, listener), hashlib.sha256).digest()


def parse_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"address must be host:port, got {address!r}")
    return host.strip("[]"), int(port)


class FrameStream:
    """Length-prefixed msgpack frames on a trio stream."""

    def __init__(self, stream: trio.abc.Stream, max_frame: int = DEFAULT_MAX_FRAME):
        self.stream = stream
        self.max_frame = max_frame
        self._buffer = bytearray()
        self._start = 0  # consumed prefix; compacted lazily so many small frames stay linear

    async def send(self, obj: Any) -> None:
        await self.stream.send_all(encode(obj))

    async def receive(self) -> Any:
        while True:
            available = len(self._buffer) - self._start
            if available >= 4:
                (length,) = _HEADER.unpack_from(self._buffer, self._start)
                if length > self.max_frame:
                    raise TransportError(f"frame of {length} bytes over the limit")
                if available >= 4 + length:
                    begin = self._start + 4
                    self._start = begin + length
                    try:
                        return msgpack.unpackb(memoryview(self._buffer)[begin : self._start], raw=False)
                    except Exception as exc:
                        raise TransportError(f"frame is not msgpack: {exc}") from None
            if self._start:
                del self._buffer[: self._start]
                self._start = 0
            data = await self.stream.receive_some(1 << 20)
            if not data:
                raise TransportError("connection closed")
            self._buffer += data


def encode(obj: Any) -> bytes:
    body = msgpack.packb(obj, use_bin_type=True)
    return _HEADER.pack(len(body)) + body


class _Peer:
    """Outbound connection to one peer: a bounded queue and a sender task that reconnects."""

    def __init__(self, peer_id: int, address: str, max_queue_bytes: int):
        self.peer_id = peer_id
        self.address = address
        self.queue: deque[bytes] = deque()
        self.queued_bytes = 0
        self.max_queue_bytes = max_queue_bytes
        self.wakeup = trio.Event()
        self.connected = False
        self.cancel_scope = trio.CancelScope()

    def put(self, frame: bytes) -> bool:
        if self.queued_bytes + len(frame) > self.max_queue_bytes:
            return False
        self.queue.append(frame)
        self.queued_bytes += len(frame)
        self.wakeup.set()
        return True


class Transport:
    """Sends frames to peers by id and hands received frames to ``on_frame(peer_id, obj)``.

    ``on_unreachable(peer_id)`` is called when a send fails or a queue overflows (Raft then probes).
    """

    def __init__(
        self,
        node_id: int,
        secret: bytes,
        on_frame: Callable[[int, Any], None],
        on_unreachable: Callable[[int], None],
        *,
        server_ssl: ssl.SSLContext | None = None,
        client_ssl: ssl.SSLContext | None = None,
        max_frame: int = DEFAULT_MAX_FRAME,
        max_queue_bytes: int = 256 * 1024 * 1024,
    ):
        if not secret:
            raise ValueError("a cluster needs a non-empty secret")
        self.node_id = node_id
        self._secret = secret
        self._on_frame = on_frame
        self._on_unreachable = on_unreachable
        self._server_ssl = server_ssl
        self._client_ssl = client_ssl
        self._max_frame = max_frame
        self._max_queue_bytes = max_queue_bytes
        self._peers: dict[int, _Peer] = {}
        self._nursery: trio.Nursery | None = None
        self.listen_address: str | None = None
        self.rejected_connections = 0

    # ---- lifecycle ----------------------------------------------------------------------------------

    async def run(self, listen: str, task_status=trio.TASK_STATUS_IGNORED) -> None:
        host, port = parse_address(listen)
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            listeners = await nursery.start(partial(trio.serve_tcp, self._accept, port, host=host))
            sockname = listeners[0].socket.getsockname()
            self.listen_address = f"{sockname[0]}:{sockname[1]}"
            for peer in self._peers.values():
                nursery.start_soon(self._sender, peer)
            task_status.started(self.listen_address)

    def set_peer(self, peer_id: int, address: str) -> None:
        """Add a peer or change its address (the sender reconnects)."""
        peer = self._peers.get(peer_id)
        if peer is not None:
            if peer.address == address:
                return
            peer.cancel_scope.cancel()
        peer = _Peer(peer_id, address, self._max_queue_bytes)
        self._peers[peer_id] = peer
        if self._nursery is not None:
            self._nursery.start_soon(self._sender, peer)

    def remove_peer(self, peer_id: int) -> None:
        peer = self._peers.pop(peer_id, None)
        if peer is not None:
            peer.cancel_scope.cancel()

    def peers(self) -> dict[int, str]:
        return {peer_id: peer.address for peer_id, peer in self._peers.items()}

    def is_connected(self, peer_id: int) -> bool:
        peer = self._peers.get(peer_id)
        return peer is not None and peer.connected

    def send(self, peer_id: int, obj: Any) -> None:
        peer = self._peers.get(peer_id)
        if peer is None:
            self._on_unreachable(peer_id)
            return
        if not peer.put(encode(obj)):
            log.warning("queue to node %d is full; dropping a message", peer_id)
            self._on_unreachable(peer_id)

    # ---- outbound -----------------------------------------------------------------------------------

    async def _sender(self, peer: _Peer) -> None:
        backoff = 0.05
        with peer.cancel_scope:
            while True:
                try:
                    frames = await self._connect(peer)
                    backoff = 0.05
                    peer.connected = True
                    while True:
                        while not peer.queue:
                            peer.wakeup = trio.Event()
                            await peer.wakeup.wait()
                        batch = []
                        size = 0
                        while peer.queue and size < 1 << 20:
                            frame = peer.queue.popleft()
                            peer.queued_bytes -= len(frame)
                            batch.append(frame)
                            size += len(frame)
                        await frames.stream.send_all(b"".join(batch))
                except (
                    OSError,
                    trio.BrokenResourceError,
                    trio.ClosedResourceError,
                    trio.TooSlowError,  # e.g. a paused peer: the kernel accepts, nobody answers
                    TransportError,
                    ssl.SSLError,
                ) as exc:
                    if peer.connected:
                        log.info("lost connection to node %d: %s", peer.peer_id, exc)
                    peer.connected = False
                    # What was queued may be stale by the time we are back; Raft resends what matters.
                    peer.queue.clear()
                    peer.queued_bytes = 0
                    self._on_unreachable(peer.peer_id)
                    await trio.sleep(backoff)
                    backoff = min(backoff * 2, 1.0)

    async def _connect(self, peer: _Peer) -> FrameStream:
        host, port = parse_address(peer.address)
        with trio.fail_after(HANDSHAKE_TIMEOUT):
            stream: trio.abc.Stream = await trio.open_tcp_stream(host, port)
            try:
                if self._client_ssl is not None:
                    stream = trio.SSLStream(stream, self._client_ssl, server_hostname=host)
                    await stream.do_handshake()
                frames = FrameStream(stream, self._max_frame)
                challenge = await frames.receive()
                if not (isinstance(challenge, list) and len(challenge) == 3 and challenge[0] == "challenge"):
                    raise TransportError("unexpected handshake")
                _, nonce, listener_id = challenge
                if listener_id != peer.peer_id:
                    raise TransportError(f"{peer.address} is node {listener_id}, not {peer.peer_id}")
                mac = handshake_mac(self._secret, nonce, self.node_id, listener_id)
                await frames.send(["hello", self.node_id, listener_id, mac])
                if await frames.receive() != ["welcome"]:
                    raise TransportError("handshake refused")
                return frames
            except BaseException:
                await trio.aclose_forcefully(stream)
                raise

    # ---- inbound ------------------------------------------------------------------------------------

    async def _accept(self, stream: trio.SocketStream) -> None:
        peer_id = None
        try:
            connection: trio.abc.Stream = stream
            with trio.fail_after(HANDSHAKE_TIMEOUT):
                if self._server_ssl is not None:
                    connection = trio.SSLStream(stream, self._server_ssl, server_side=True)
                    await connection.do_handshake()
                frames = FrameStream(connection, max_frame=4096)  # nothing big before authentication
                nonce = secrets.token_bytes(32)
                await frames.send(["challenge", nonce, self.node_id])
                hello = await frames.receive()
                peer_id = self._check_hello(hello, nonce)
                await frames.send(["welcome"])
            frames.max_frame = self._max_frame
            while True:
                self._on_frame(peer_id, await frames.receive())
        except (trio.TooSlowError, TransportError, OSError, trio.BrokenResourceError, ssl.SSLError) as exc:
            if peer_id is None:
                self.rejected_connections += 1
                log.warning("rejected a connection: %s", exc)
            else:
                log.info("connection from node %d ended: %s", peer_id, exc)
        finally:
            await trio.aclose_forcefully(stream)

    def _check_hello(self, hello: Any, nonce: bytes) -> int:
        if not (isinstance(hello, list) and len(hello) == 4 and hello[0] == "hello"):
            raise TransportError("malformed hello")
        _, dialer, listener, mac = hello
        if not (isinstance(dialer, int) and isinstance(listener, int) and isinstance(mac, bytes)):
            raise TransportError("malformed hello")
        if listener != self.node_id or not 0 < dialer < 2**63 or dialer == self.node_id:
            raise TransportError("hello for another node")
        if not hmac.compare_digest(mac, handshake_mac(self._secret, nonce, dialer, listener)):
            raise TransportError(f"node {dialer} failed authentication (wrong cluster secret)")
        return dialer
