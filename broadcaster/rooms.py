"""A room as seen by one node: its local members, its byte accounting and its fan-out.

What a room is in the replicated tree (paths, commands, reads) is broadcaster/roomstore.py.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from protocol import Ack, Applied, pack_body
from protocol.framing import frame_bytes
from protocol.limits import covering_prefixes
from protocol.versions import APPLIED_BLOBS_SINCE

VIEWER_KIND = "viewer"  # the kind the server gives a share link's sessions (server.py)


def encode_frame(event: Any) -> bytes:
    return frame_bytes(pack_body(event.to_body()))


def to_viewers(frame: bytes, viewers: Sequence[Member]) -> None:
    """Queue ``frame`` to these viewers. Hundreds of them cost a millisecond or more of queueing: a viewer
    that can defer it (a WebSocket session: ``defer_frame``) hands it to the server's viewers' writer,
    which queues it to each after the artists' writer tasks have sent (direct_writes.py)."""
    deferring = next((v for v in viewers if getattr(v, "defer_frame", None) is not None), None)
    if deferring is not None:
        deferring.defer_frame(frame, viewers)  # type: ignore[attr-defined]
        return
    for viewer in viewers:
        viewer.send_frame(frame)


class Member(Protocol):
    """What rooms are told of a member (a Session, which imports this module: it cannot be named here)."""

    name: str
    kind: str
    room: Room | None
    protocol: int  # the version it speaks: what it may be sent

    def info(self) -> dict[str, Any]:
        """What other members see of it."""
        ...

    def send_frame(self, frame: bytes) -> None:
        """Queue one encoded frame to it."""
        ...


class Members(dict[str, Member]):
    """client_id -> session, with the artists apart and the viewers as one tuple, kept as members come
    and go: an operation fanned out to a room of hundreds of viewers walks its artists only and hands
    the viewers on whole (to_viewers), so the artists' copies do not wait behind a walk of the viewers."""

    def __init__(self) -> None:
        super().__init__()
        self.artists: dict[str, Member] = {}
        self.viewers: tuple[Member, ...] = ()

    def __setitem__(self, client_id: str, member: Member) -> None:
        self.pop(client_id, None)
        super().__setitem__(client_id, member)
        if member.kind == VIEWER_KIND:
            self.viewers = (*self.viewers, member)
        else:
            self.artists[client_id] = member

    def __delitem__(self, client_id: str) -> None:
        self._forget(client_id, super().pop(client_id))

    def pop(self, client_id: str, *default: Any) -> Any:  # type: ignore[override]
        if client_id not in self:
            if default:
                return default[0]
            raise KeyError(client_id)
        member = super().pop(client_id)
        self._forget(client_id, member)
        return member

    def clear(self) -> None:
        super().clear()
        self.artists.clear()
        self.viewers = ()

    def _forget(self, client_id: str, member: Member) -> None:
        self.artists.pop(client_id, None)
        if member.kind == VIEWER_KIND:
            self.viewers = tuple(viewer for viewer in self.viewers if viewer is not member)

    def setdefault(self, *args: Any) -> Any:
        raise TypeError("members are set one by one")

    update = popitem = setdefault  # type: ignore[assignment]


@dataclass(eq=False)
class Room:
    """A room as seen by this node: its local members, and byte accounting for the room list."""

    name: str
    members: Members = field(default_factory=Members)  # client_id -> session
    key_sizes: dict[str, int] = field(default_factory=dict)
    total_bytes: int = 0
    seq_base: int = 0  # an imported room's seq before its first operation here
    # The log index that made its meta: writes require it, so that a write built here before this node
    # learnt of the room's deletion never lands in a room made again under its name (0: not known).
    created_index: int = 0
    locks: dict[str, str] = field(default_factory=dict)  # key -> owner client_id (committed)
    prefix_locks: dict[str, str] = field(default_factory=dict)  # prefix -> owner: every key under it
    locks_pending: int = 0  # lock requests from this node not yet committed
    pending_keys: int = 0  # keys and bytes added by this node's uncommitted writes (for the room limits)
    pending_bytes: int = 0

    @property
    def has_locks(self) -> bool:
        return bool(self.locks or self.prefix_locks)

    def lock_holder(self, key: str, client_id: str) -> str | None:
        """Who other than ``client_id`` holds ``key`` (its own lock or a prefix covering it), if anyone."""
        owner = self.locks.get(key)
        if owner is not None and owner != client_id:
            return owner
        if self.prefix_locks:
            for prefix in covering_prefixes(key):
                owner = self.prefix_locks.get(prefix)
                if owner is not None and owner != client_id:
                    return owner
        return None

    def prefix_holder(self, prefix: str, client_id: str) -> str | None:
        """Who other than ``client_id`` holds a lock that a lock on ``prefix`` would overlap."""
        for covering in covering_prefixes(prefix):
            owner = self.prefix_locks.get(covering)
            if owner is not None and owner != client_id:
                return owner
        for held in (self.locks, self.prefix_locks):
            for key, owner in held.items():
                if owner != client_id and key.startswith(prefix):
                    return owner
        return None

    def note_key(self, key: str, size: int | None) -> None:
        self.total_bytes -= self.key_sizes.pop(key, 0)
        if size is not None:
            self.key_sizes[key] = size
            self.total_bytes += size

    def send(self, frame: bytes, exclude: Member | None = None) -> None:
        """Queue one frame to every local member but ``exclude``: artists now, viewers after them."""
        for member in list(self.members.artists.values()):  # a copy: a slow consumer may be removed
            if member is not exclude:
                member.send_frame(frame)
        viewers = self.members.viewers
        if exclude is not None and exclude.kind == VIEWER_KIND:
            viewers = tuple(viewer for viewer in viewers if viewer is not exclude)
        if viewers:
            to_viewers(frame, viewers)

    def fan_out(
        self,
        seq: int,
        entry: dict[str, Any],
        pushed: Callable[[dict[str, Any]], list[list[bytes]] | None] | None = None,
    ) -> None:
        """Send one committed operation to every local member: an ack to its author, the op to the rest.

        The author's ack is queued at the op's place in the stream, so each client sees acks and others'
        operations in one seq order (the convergence rule depends on it). Members that speak protocol 3
        get the blobs the write made new with it (``pushed`` reads them; docs/protocol.md section 3a).
        """
        author = entry["c"]
        frames: dict[bool, bytes] = {}  # with the pushed blobs or not -> the frame, made once

        def frame_for(protocol: int) -> bytes:
            with_blobs = pushed is not None and "p" in entry and protocol >= APPLIED_BLOBS_SINCE
            if with_blobs not in frames:
                blobs = pushed(entry) if with_blobs and pushed is not None else None
                if with_blobs and not blobs:
                    frames[True] = frame_for(0)  # none to push after all: the plain frame
                else:
                    frames[with_blobs] = encode_frame(self._applied(seq, entry, blobs))
            return frames[with_blobs]

        for client_id, session in list(self.members.artists.items()):  # a slow consumer may be removed
            if client_id == author and "r" not in entry:  # a restore's author learns its ops like everyone
                session.send_frame(encode_frame(Ack(op_id=entry["o"], seq=seq)))
            else:
                session.send_frame(frame_for(session.protocol))
        viewers = self.members.viewers  # viewers are never authors
        if viewers and (pushed is None or "p" not in entry):
            to_viewers(frame_for(0), viewers)  # one frame for all: not a walk of the viewers
        elif viewers:
            newer = tuple(viewer for viewer in viewers if viewer.protocol >= APPLIED_BLOBS_SINCE)
            older = tuple(viewer for viewer in viewers if viewer.protocol < APPLIED_BLOBS_SINCE)
            for members in (newer, older):
                if members:
                    to_viewers(frame_for(members[0].protocol), members)

    def _applied(self, seq: int, entry: dict[str, Any], blobs: list[list[bytes]] | None = None) -> Applied:
        return Applied(
            room=self.name,
            seq=seq,
            client_id=entry["c"],
            op_id=entry["o"],
            ops=entry["ops"],
            seen=entry.get("s"),
            blobs=blobs,
        )
