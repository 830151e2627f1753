"""A client written only from docs/protocol.md: plain sockets, struct and msgpack, no blendsync code.

It talks to a real `blendsync serve` process, so the spec and the server are checked against each other.
"""

from __future__ import annotations

import socket
import struct

import msgpack


class DocClient:
    def __init__(self, host: str, port: int):
        self.sock = socket.create_connection((host, port), timeout=10)
        self.buffer = b""

    def send(self, body: dict) -> None:
        payload = msgpack.packb(body, use_bin_type=True)
        self.sock.sendall(struct.pack(">I", len(payload)) + payload)

    def receive(self) -> dict:
        while True:
            if len(self.buffer) >= 4:
                (length,) = struct.unpack(">I", self.buffer[:4])
                if len(self.buffer) >= 4 + length:
                    body = msgpack.unpackb(self.buffer[4 : 4 + length], raw=False)
                    self.buffer = self.buffer[4 + length :]
                    if body["type"] == "ping":  # section 2: answer pings
                        self.send({"type": "pong", "nonce": body["nonce"]})
                        continue
                    return body
            chunk = self.sock.recv(65536)
            assert chunk, "server closed the connection"
            self.buffer += chunk

    def close(self) -> None:
        self.sock.close()


def test_client_from_the_spec(server_process):
    host, port = server_process.start()
    ana, ben = DocClient(host, port), DocClient(host, port)
    for client, name in ((ana, "ana"), (ben, "ben")):
        client.send({"type": "hello", "protocol": 1, "client_name": name, "session": f"{name}-session-0001"})
        welcome = client.receive()
        assert welcome["type"] == "welcome" and welcome["client_id"] == f"{name}-session-0001"

    ana.send({"type": "create_room", "room": "spec", "keep_open": True, "ref": 1})
    assert ana.receive() == {"type": "room_created", "room": "spec", "ref": 1}
    ana.send({"type": "join_room", "room": "spec", "ref": 2})
    joined = ana.receive()
    assert (joined["type"], joined["mode"], joined["seq"], joined["ref"]) == ("joined", "snapshot", 0, 2)
    assert ana.receive() == {"type": "snapshot_end", "room": "spec", "seq": 0}

    ana.send({"type": "set", "op_id": 7, "key": "obj/1/name", "value": b"Cube"})
    assert ana.receive() == {"type": "ack", "op_id": 7, "seq": 1}

    ben.send({"type": "join_room", "room": "spec", "ref": 1})
    assert ben.receive()["type"] == "joined"
    assert ben.receive() == {"type": "snapshot", "room": "spec", "items": [["obj/1/name", b"Cube"]]}
    assert ben.receive() == {"type": "snapshot_end", "room": "spec", "seq": 1}
    assert ana.receive()["type"] == "client_joined"

    ben.send({"type": "batch", "op_id": 1, "ops": [["set", "a", b"\x00"], ["delete", "obj/1/name"]]})
    assert ben.receive() == {"type": "ack", "op_id": 1, "seq": 2}
    assert ana.receive() == {
        "type": "applied",
        "room": "spec",
        "seq": 2,
        "client_id": "ben-session-0001",
        "op_id": 1,
        "ops": [["set", "a", b"\x00"], ["delete", "obj/1/name"]],
    }

    ben.send({"type": "set", "op_id": 2, "key": "", "value": b""})  # section 5: invalid key
    error = ben.receive()
    assert (error["type"], error["code"], error["ref"], error["fatal"]) == ("error", "bad_message", 2, False)

    ana.send({"type": "list_rooms", "ref": 3})
    (room,) = ana.receive()["rooms"]
    assert room == {
        "name": "spec",
        "users": 2,
        "keys": 1,
        "bytes": 1,
        "seq": 2,
        "keep_open": True,
        "locked": False,
    }
    ana.close()
    ben.close()
