"""The network thread against a scripted server socket: failover, nodes, ping/pong, heartbeat, reconnect."""

from __future__ import annotations

import importlib.util
import queue
import socket
import time

import pytest

if importlib.util.find_spec("bpy") is None:  # found without importing it: this process needs no Blender
    pytest.skip("bpy (Blender as a Python module) is not installed", allow_module_level=True)

from blender_addon.net import HelloInfo, NetThread, parse_addresses
from blender_addon.protocol_shim import protocol as P

pytestmark = pytest.mark.blender


def test_parse_addresses():
    assert parse_addresses("a:1, b ,[::1]:3; c:x, a:1, d:70000") == [("a", 1), ("b", 12800), ("::1", 3)]
    assert parse_addresses("") == []


class ScriptedServer:
    """One accepted connection at a time, spoken to with the server side of the sans-IO protocol."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(10)
        self.port = self.listener.getsockname()[1]

    def accept(self):
        sock, _ = self.listener.accept()
        sock.settimeout(10)
        return sock, P.Connection(P.Role.SERVER)

    @staticmethod
    def receive(sock, conn, kind, timeout=5.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            event = conn.next_event()
            if event is P.NEED_DATA:
                conn.receive_data(sock.recv(65536))
                continue
            if event is P.CLOSED:
                return P.CLOSED
            if isinstance(event, kind):
                return event
        raise AssertionError(f"no {kind.__name__}")

    def close(self):
        self.listener.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def next_item(inbox, kind, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            item = inbox.get(timeout=max(0.01, end - time.monotonic()))
        except queue.Empty:
            break
        if item[0] == kind:
            return item
    raise AssertionError(f"no {kind!r} from the network thread")


def test_failover_ping_heartbeat_and_reconnect_with_the_same_session():
    server = ScriptedServer()
    dead = ("127.0.0.1", free_port())
    net = NetThread([dead, ("127.0.0.1", server.port)], HelloInfo(name="me", session="s" * 32)).start()
    try:
        # The first address refuses; the second one answers.
        assert next_item(net.inbox, "disconnected")[2].startswith("ConnectionRefusedError")
        sock, conn = server.accept()
        hello = server.receive(sock, conn, P.Hello)
        assert hello.session == "s" * 32 and hello.client_kind == "blender"
        extra = f"127.0.0.1:{free_port()}"
        sock.sendall(
            conn.send(
                P.Welcome(
                    protocol=1,
                    server_version="t",
                    session=hello.session,
                    client_id=hello.session,
                    nodes=[extra],
                    heartbeat_interval=0.5,
                )
            )
        )
        _, generation, welcome = next_item(net.inbox, "connected")
        assert welcome.client_id == "s" * 32
        assert parse_addresses(extra)[0] in net.addresses  # learned from welcome.nodes

        # The thread answers pings itself, and events flow both ways.
        sock.sendall(conn.send(P.Ping(nonce=77)))
        assert server.receive(sock, conn, P.Pong).nonce == 77
        net.send(generation, P.ListRooms(subscribe=True, ref=5))
        assert server.receive(sock, conn, P.ListRooms).ref == 5
        sock.sendall(conn.send(P.RoomList(rooms=[], ref=5)))
        assert next_item(net.inbox, "event")[2] == P.RoomList(rooms=[], ref=5)

        # Idle: it pings the server; a server silent for 3 heartbeat intervals is dead.
        started = time.monotonic()
        assert isinstance(server.receive(sock, conn, P.Ping), P.Ping)
        reason = next_item(net.inbox, "disconnected", timeout=5.0)[2]
        assert "silent" in reason and 1.0 < time.monotonic() - started < 4.0
        sock.close()

        # It reconnects on its own, with the same session; stale sends are not replayed.
        net.send(generation, P.ListRooms(ref=6))
        sock, conn = server.accept()
        again = server.receive(sock, conn, P.Hello)
        assert again.session == "s" * 32
        sock.sendall(
            conn.send(
                P.Welcome(
                    protocol=1,
                    server_version="t",
                    session=again.session,
                    client_id=again.session,
                    heartbeat_interval=5.0,
                )
            )
        )
        _, generation2, _ = next_item(net.inbox, "connected")
        assert generation2 > generation
        net.send(generation2, P.ListRooms(ref=7))
        assert server.receive(sock, conn, P.ListRooms).ref == 7

        # Leaving a node is asked for by connection: a request for a predecessor drops nothing.
        net.drop_connection(generation)
        net.send(generation2, P.ListRooms(ref=8))
        assert server.receive(sock, conn, P.ListRooms).ref == 8

        # A dropped connection (as in the tests' "drop") is noticed and reconnected.
        net.drop_connection()
        assert "dropped" in next_item(net.inbox, "disconnected")[2]
        sock.close()
    finally:
        net.stop()
        server.close()
    assert not net.alive
