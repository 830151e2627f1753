"""The add-on's network thread: one socket, the sans-IO protocol, two queues.

Blender's main thread must never wait on the network, and trio does not run
inside Blender, so the connection lives on a plain :class:`threading.Thread`:

* it connects, sends ``hello`` and waits for ``welcome``; the ``nodes`` list
  of the welcome is added to the addresses it fails over to, in the order of
  the protocol's ``Nodes`` (the next node after the one it leaves);
* it answers ``ping`` itself, pings a quiet server every
  ``heartbeat_interval`` seconds and treats a server silent for
  ``SILENT_HEARTBEATS`` intervals as dead;
* every other event goes to :attr:`NetThread.inbox` (a :class:`queue.Queue`)
  as ``("event", generation, event)``; connection changes go there as
  ``("connecting", generation, address)``, ``("connected", generation,
  welcome)`` and ``("disconnected", generation, reason)``;
* the main thread calls :meth:`NetThread.send` with the generation of the
  connection it means; events for an older connection are dropped, so
  nothing written for a lost connection reaches its successor before the
  session has re-joined its room;
* after a loss (or :meth:`NetThread.drop_connection`, which the session calls
  to leave a node that answers ``unavailable``) it connects to the next node
  with the same session id, with a growing pause, until :meth:`NetThread.stop`;
* with a ``pin`` (from an invite link) it speaks TLS and accepts exactly the
  certificate with that SHA-256, checked before ``hello`` (the token) goes
  out;
* another certificate, or a refused ``hello`` (``auth_failed``,
  ``version_mismatch``...), ends the thread with ``("refused", generation,
  why)``: no retry can help.

No bpy here: this module is pure Python and is tested as such.
"""

from __future__ import annotations

import contextlib
import itertools
import queue
import select
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field

from .protocol_shim import protocol

DEFAULT_PORT = 12800
CONNECT_TIMEOUT = 5.0
RECV_SIZE = 1 << 20
OUT_BYTES = 8 << 20  # encoded bytes waiting for the socket before more queued events are encoded
BACKOFF = (0.1, 0.25, 0.5, 1.0, 2.0)


def parse_addresses(text: str, default_port: int = DEFAULT_PORT) -> list[tuple[str, int]]:
    """``"a:1, b , [::1]:3"`` -> ``[("a", 1), ("b", 12800), ("::1", 3)]``; bad entries are skipped."""
    out: list[tuple[str, int]] = []
    for part in text.replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        host, port = part, default_port
        if part.startswith("["):
            end = part.find("]")
            if end < 0:
                continue
            host, rest = part[1:end], part[end + 1 :]
            if rest.startswith(":"):
                try:
                    port = int(rest[1:])
                except ValueError:
                    continue
        elif part.count(":") == 1:
            host, _, port_text = part.partition(":")
            try:
                port = int(port_text)
            except ValueError:
                continue
        if host and 0 < port < 65536 and (host, port) not in out:
            out.append((host, port))
    return out


@dataclass
class HelloInfo:
    name: str
    session: str
    token: str | None = None
    version: str = ""


@dataclass
class _Link:
    """One live socket and its protocol state (owned by the thread)."""

    sock: socket.socket
    conn: object
    generation: int
    heartbeat: float = 5.0
    last_received: float = field(default_factory=time.monotonic)
    last_sent: float = field(default_factory=time.monotonic)
    out: bytearray = field(default_factory=bytearray)


class NetThread:
    """The connection to a broadcaster, run on its own thread (see the module docstring)."""

    def __init__(
        self,
        addresses: list[tuple[str, int]],
        hello: HelloInfo,
        *,
        name: str = "blendsync-net",
        pin: str | None = None,
    ):
        if not addresses:
            raise ValueError("no server address")
        self.pin = protocol.invite.check_pin_format(pin) if pin else None  # TLS, this certificate only
        self.nodes = protocol.Nodes(addresses)
        self.hello = hello
        self.inbox: queue.Queue = queue.Queue()
        self._outbox: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._drop = threading.Event()
        self._drop_generation: int | None = None  # the connection to drop (None: whichever is open)
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._generation = 0
        self._nonces = itertools.count(1)
        self.connected_address: tuple[str, int] | None = None
        # Bytes written to and read from the socket, over every connection (read for figures, not locked).
        self.bytes_sent = 0
        self.bytes_received = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    @property
    def addresses(self) -> list[tuple[str, int]]:
        return self.nodes.known

    # ---- main-thread API ------------------------------------------------------------------------------

    def start(self) -> NetThread:
        self._thread.start()
        return self

    def send(self, generation: int, event) -> None:
        """Queue an event for the connection ``generation`` (dropped if that connection is gone)."""
        self._outbox.put((generation, event))
        self._wake()

    def drop_connection(self, generation: int | None = None) -> None:
        """Close the socket (of connection ``generation`` only, if given: not a successor) as if the network
        failed; the thread connects to the next node and the session resumes."""
        self._drop_generation = generation
        self._drop.set()
        self._wake()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)
        for sock in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                sock.close()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")

    # ---- thread ---------------------------------------------------------------------------------------

    def _post(self, kind: str, generation: int, payload) -> None:
        self.inbox.put((kind, generation, payload))

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            address = self.nodes.current or self.nodes.advance()
            self._generation += 1
            generation = self._generation
            self._post("connecting", generation, f"{address[0]}:{address[1]}")
            reason = "closed"
            welcomed = False
            try:
                link = self._open(address, generation)
                try:
                    welcomed = self._serve(link)
                finally:
                    with contextlib.suppress(OSError):
                        link.sock.close()
            except _Refused as exc:
                self.connected_address = None
                self._post("refused", generation, str(exc))
                return
            except _Lost as exc:
                reason = str(exc)
                welcomed = exc.welcomed
            except OSError as exc:
                reason = f"{type(exc).__name__}: {exc}"
            self.connected_address = None
            self._post("disconnected", generation, reason)
            if self._stop.is_set():
                break
            if welcomed:
                failures = 0
            else:
                failures += 1
            self.nodes.advance()
            # Once every address failed once, pause; a quick first retry covers a dropped socket.
            pause = (
                0.05 if welcomed else BACKOFF[min(failures // max(1, len(self.addresses)), len(BACKOFF) - 1)]
            )
            self._stop.wait(pause)

    def _open(self, address: tuple[str, int], generation: int) -> _Link:
        sock = socket.create_connection(address, timeout=CONNECT_TIMEOUT)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.pin is not None:
            sock = _pinned_tls(sock, self.pin)
        sock.setblocking(False)
        conn = protocol.Connection(protocol.Role.CLIENT)
        link = _Link(sock=sock, conn=conn, generation=generation)
        hello = protocol.Hello(
            protocol=protocol.PROTOCOL_VERSION,
            protocol_min=protocol.PROTOCOL_MIN,
            client_name=protocol.fit_name(self.hello.name),
            client_kind="blender",
            client_version=protocol.fit_name(self.hello.version, protocol.limits.MAX_LABEL_BYTES),
            session=self.hello.session,
            token=self.hello.token or None,
        )
        link.out += conn.send(hello)
        # Anything the main thread queued for an older connection is stale.
        self._discard_stale(generation)
        self._drop.clear()
        return link

    def _discard_stale(self, generation: int) -> None:
        kept = []
        while True:
            try:
                item = self._outbox.get_nowait()
            except queue.Empty:
                break
            if item[0] == generation:
                kept.append(item)
        for item in kept:
            self._outbox.put(item)

    def _serve(self, link: _Link) -> bool:
        """Run one connection until it is lost; returns whether it got as far as ``welcome``."""
        welcomed = False
        handshake_deadline = time.monotonic() + CONNECT_TIMEOUT * 2
        while True:
            if self._stop.is_set():
                with contextlib.suppress(OSError, _Lost):
                    if welcomed:
                        self._take_outgoing(link, None)
                    self._flush(link)
                return welcomed
            if self._drop.is_set():
                self._drop.clear()
                if self._drop_generation in (None, link.generation):
                    raise _Lost("connection dropped on request", welcomed)
            if welcomed:
                self._take_outgoing(link)
            now = time.monotonic()
            if not welcomed and now > handshake_deadline:
                raise _Lost("no welcome from the server", welcomed)
            if welcomed and now - link.last_received > protocol.SILENT_HEARTBEATS * link.heartbeat:
                raise _Lost(f"server silent for {protocol.SILENT_HEARTBEATS} heartbeat intervals", welcomed)
            if welcomed and now - link.last_sent > link.heartbeat and not link.out:
                link.out += link.conn.send(protocol.Ping(nonce=next(self._nonces)))
            timeout = min(0.5, link.heartbeat / 2)
            writers = [link.sock] if link.out else []
            readable, writable, _ = select.select([link.sock, self._wake_r], writers, [], timeout)
            if self._wake_r in readable:
                with contextlib.suppress(OSError):
                    while self._wake_r.recv(4096):
                        pass
            if link.sock in writable:
                self._flush(link)
            if link.sock in readable:
                try:
                    data = _receive(link.sock)
                except (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                    continue
                except OSError as exc:
                    raise _Lost(f"{type(exc).__name__}: {exc}", welcomed) from None
                link.last_received = time.monotonic()
                self.bytes_received += len(data)
                link.conn.receive_data(data)
                welcomed = self._drain(link, welcomed)
                if not data:
                    raise _Lost("the server closed the connection", welcomed)

    def _drain(self, link: _Link, welcomed: bool) -> bool:
        while True:
            try:
                event = link.conn.next_event()
            except protocol.RemoteProtocolError as exc:
                if exc.fatal:
                    raise _Lost(f"bad data from the server: {exc}", welcomed) from None
                continue
            if event is protocol.NEED_DATA or event is protocol.CLOSED:
                return welcomed
            if isinstance(event, protocol.Ping):
                link.out += link.conn.send(protocol.Pong(nonce=event.nonce))
                continue
            if isinstance(event, protocol.Pong):
                continue
            if isinstance(event, protocol.Welcome):
                welcomed = True
                link.heartbeat = max(0.5, float(event.heartbeat_interval or 5.0))
                self.nodes.learn(event.nodes)
                self.connected_address = self.nodes.current
                self._post("connected", link.generation, event)
                continue
            refused = isinstance(event, protocol.Error) and event.fatal and not welcomed
            if refused and event.code in protocol.client_session.GIVE_UP_CODES:  # e.g. an expired token
                raise _Refused(f"{event.code}: {event.message}")
            self._post("event", link.generation, event)
            if isinstance(event, protocol.Error) and event.fatal:
                raise _Lost(f"{event.code}: {event.message}", welcomed)

    def _take_outgoing(self, link: _Link, limit: int | None = OUT_BYTES) -> None:
        """Encode queued events onto the socket's buffer while it holds less than ``limit`` bytes: the
        rest wait as events (a scene's chunks are the cache's bytes), not as a second, encoded copy."""
        while limit is None or len(link.out) < limit:
            try:
                generation, event = self._outbox.get_nowait()
            except queue.Empty:
                return
            if generation != link.generation:
                continue
            try:
                link.out += link.conn.send(event)
            except protocol.LocalProtocolError as exc:
                self._post("send_failed", link.generation, (event, str(exc)))

    def _flush(self, link: _Link) -> None:
        while link.out:
            try:
                sent = link.sock.send(link.out)
            except (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                return
            except OSError as exc:
                raise _Lost(f"{type(exc).__name__}: {exc}", True) from None
            del link.out[:sent]
            self.bytes_sent += sent
            link.last_sent = time.monotonic()


class _Lost(Exception):
    def __init__(self, reason: str, welcomed: bool):
        super().__init__(reason)
        self.welcomed = welcomed


class _Refused(Exception):
    """Reconnecting cannot help: another certificate than the pinned one, or the hello was refused."""


def _pinned_tls(sock: socket.socket, pin: str) -> ssl.SSLSocket:
    """TLS 1.2+ over ``sock`` (still blocking, with its timeout), accepting only the pinned certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # no CA: the pin below is the check
    try:
        tls = context.wrap_socket(sock)
    except (ssl.SSLError, OSError) as exc:
        sock.close()
        raise _Lost(f"TLS handshake failed: {exc}", False) from None
    problem = protocol.invite.pin_problem(tls.getpeercert(binary_form=True), pin)
    if problem is not None:
        tls.close()
        raise _Refused(problem)
    return tls


def _receive(sock: socket.socket) -> bytes:
    """What the socket has; for TLS, every record already decrypted too (select() cannot see those)."""
    data = sock.recv(RECV_SIZE)
    if isinstance(sock, ssl.SSLSocket) and data:
        parts = [data]
        while sock.pending():
            parts.append(sock.recv(RECV_SIZE))
        data = b"".join(parts)
    return data
