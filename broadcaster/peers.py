"""Presence, relayed events and room membership between broadcaster nodes.

All of it is ephemeral: it travels over the cluster connections as best-effort messages and never through
Raft. Each node also repeats its full membership every few seconds, so a lost message heals itself and a
node that goes silent has its clients dropped from the others' lists.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import trio

from protocol import ClientJoined, ClientLeft, ClientUpdated, EventRelayed

from .config import ANNOUNCE_INTERVAL, SILENCE_LIMIT
from .rooms import VIEWER_KIND, Room, encode_frame

if TYPE_CHECKING:
    from replication import Node

log = logging.getLogger("blendsync.peers")


class PeerRelay:
    def __init__(self, rooms: dict[str, Room], node: Node):
        self.rooms = rooms  # this node's rooms (shared, kept by the Hub)
        self.node = node
        # room -> node id -> client id -> client info (with presence)
        self.remote: dict[str, dict[int, dict[str, dict[str, Any]]]] = {}
        self.heard: dict[int, float] = {}  # node id -> when it last said anything (kept while it is silent)
        self._silent: set[int] = set()  # nodes whose members were dropped for silence
        node.on_app_message = self._on_message

    # ---- what other nodes' clients look like to ours ------------------------------------------------

    def members(self, room: str) -> list[dict[str, Any]]:
        return [info for clients in self.remote.get(room, {}).values() for info in clients.values()]

    def count(self, room: str) -> int:
        return sum(len(clients) for clients in self.remote.get(room, {}).values())

    # ---- our clients, told to the other nodes ----------------------------------------------------------

    def joined(self, room: str, info: dict[str, Any]) -> None:
        self.node.send_app_message({"t": "join", "room": room, "client": info})

    def left(self, room: str, client_id: str) -> None:
        self.node.send_app_message({"t": "leave", "room": room, "client": client_id})

    def presence(self, room: str, client_id: str, state: dict[str, Any]) -> None:
        self.node.send_app_message({"t": "presence", "room": room, "client": client_id, "state": state})

    def event(self, room: str, client_id: str, value: bytes, seq: int) -> None:
        self.node.send_app_message(
            {"t": "event", "room": room, "client": client_id, "value": value, "seq": seq}
        )

    async def run(self) -> None:
        """Repeat our membership and forget nodes that went silent."""
        while True:
            rooms = {
                name: [member.info() for member in room.members.values()]
                for name, room in self.rooms.items()
                if room.members
            }
            self.node.send_app_message({"t": "members", "rooms": rooms})
            now = trio.current_time()
            for node_id, last in list(self.heard.items()):
                if now - last > SILENCE_LIMIT and node_id not in self._silent:
                    self._silent.add(node_id)
                    self._replace(node_id, {})
            await trio.sleep(ANNOUNCE_INTERVAL)

    # ---- from other nodes -----------------------------------------------------------------------------

    def _on_message(self, node_id: int, message: Any) -> None:
        if not isinstance(message, dict):
            return
        self.heard[node_id] = trio.current_time()
        self._silent.discard(node_id)
        kind = message.get("t")
        room = message.get("room")
        if kind == "members":
            rooms = message.get("rooms")
            if isinstance(rooms, dict):
                self._replace(node_id, rooms)
        elif kind == "join" and isinstance(room, str) and isinstance(message.get("client"), dict):
            info = message["client"]
            if isinstance(info.get("id"), str):
                self.remote.setdefault(room, {}).setdefault(node_id, {})[info["id"]] = info
                self._tell(room, ClientJoined(room=room, client=info), about=info)
        elif kind == "leave" and isinstance(room, str) and isinstance(message.get("client"), str):
            info = self.remote.get(room, {}).get(node_id, {}).pop(message["client"], None)
            if info is not None:
                self._tell(room, ClientLeft(room=room, client_id=message["client"]), about=info)
        elif kind == "presence" and isinstance(room, str) and isinstance(message.get("state"), dict):
            client = message.get("client")
            info = self.remote.get(room, {}).get(node_id, {}).get(client)
            if info is not None:
                info.update(message["state"])
                self._tell(room, ClientUpdated(room=room, client_id=client, state=message["state"]))
        elif kind == "event" and isinstance(room, str) and isinstance(message.get("value"), bytes):
            client, seq = message.get("client"), message.get("seq")
            if isinstance(client, str) and isinstance(seq, int):
                self._tell(room, EventRelayed(room=room, client_id=client, value=message["value"], seq=seq))

    def _replace(self, node_id: int, rooms: dict[str, Any]) -> None:
        """Make node_id's members exactly ``rooms``, telling our clients what changed."""
        for room in set(self.remote) | set(rooms):
            before = self.remote.get(room, {}).get(node_id, {})
            after = {
                info["id"]: info
                for info in rooms.get(room, [])
                if isinstance(info, dict) and isinstance(info.get("id"), str)
            }
            for client_id in before.keys() - after.keys():
                self._tell(room, ClientLeft(room=room, client_id=client_id), about=before[client_id])
            for client_id in after.keys() - before.keys():
                self._tell(room, ClientJoined(room=room, client=after[client_id]), about=after[client_id])
            if after:
                self.remote.setdefault(room, {})[node_id] = after
            elif room in self.remote:
                self.remote[room].pop(node_id, None)
                if not self.remote[room]:
                    del self.remote[room]

    def _tell(self, room_name: str, event: Any, about: dict[str, Any] | None = None) -> None:
        """Send ``event`` to the room's members here; one ``about`` a viewer goes to no viewer (as on
        one node, hub.py: viewers are not told of each other)."""
        room = self.rooms.get(room_name)
        if room is None or not room.members:
            return
        frame = encode_frame(event)
        if about is not None and about.get("kind") == VIEWER_KIND:
            for member in list(room.members.values()):
                if member.kind != VIEWER_KIND:
                    member.send_frame(frame)
        else:
            room.send(frame)
