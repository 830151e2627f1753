"""The requests a session sends for the UI (room list, create, join, leave, delete): each one a protocol
request with a ref that ``session_events`` matches with its reply. Mixed into ``session.SyncSession``, whose
state it shares.
"""

from __future__ import annotations

from typing import Any

from .protocol_shim import protocol


class RoomRequestsMixin:
    # Provided by session.SyncSession.
    room: str | None
    live: bool
    net: Any
    generation: int
    client_session: Any
    _requests: dict[int, tuple[str, dict[str, Any]]]
    _join: dict[str, Any] | None
    connected: bool
    log: Any
    _left_room: Any

    def _send(self, event) -> bool:
        if not self.connected:
            return False
        self.net.send(self.generation, event)
        return True

    def _request(self, kind: str, event_factory, **info: Any) -> int:
        ref, event = self.client_session.request(event_factory)
        self._requests[ref] = (kind, info)
        if not self._send(event):
            self._requests.pop(ref, None)
            self.client_session.forget(ref)
            self.log(f"{kind}: not connected")
        return ref

    def list_rooms(self) -> None:
        self._request("list_rooms", lambda ref: protocol.ListRooms(subscribe=True, ref=ref))

    def create_room(
        self,
        room: str,
        *,
        keep_open: bool = False,
        password: str | None = None,
        send_scene: bool = False,
        join: bool = True,
        or_join: bool = False,  # the room exists already (someone created it meanwhile): join it
    ) -> int:
        password = password or None
        return self._request(
            "create_room",
            lambda ref: protocol.CreateRoom(room=room, keep_open=keep_open, password=password, ref=ref),
            room=room,
            password=password,
            send_scene=send_scene,
            join=join,
            or_join=or_join,
        )

    def join_room(
        self, room: str, *, password: str | None = None, send_scene: bool = False, create: bool = False
    ) -> int:
        """Join ``room``; with ``create``, a room that does not exist yet is created (kept open) first."""
        if self.room is not None:
            self.log(f"already in room {self.room!r}")
            return 0
        ref, event = self.client_session.join(room, password=password or None)
        self._join = {"room": room, "send_scene": send_scene, "ref": ref}
        self._requests[ref] = ("join", {"room": room, "create": create, "send_scene": send_scene})
        if not self._send(event):
            self._requests.pop(ref, None)
            self.client_session.forget(ref)
            self._join = None
            self.log("join: not connected")
        return ref

    def leave_room(self) -> None:
        if self.room is None:
            return
        if self.live:
            ref, event = self.client_session.leave()
            self._requests[ref] = ("leave", {})
            self._send(event)
        self._left_room(f"left room {self.room!r}")

    def delete_room(self, room: str) -> int:
        return self._request("delete", lambda ref: protocol.DeleteRoom(room=room, ref=ref), room=room)
