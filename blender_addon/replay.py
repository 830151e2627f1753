"""Replay: the scene shows the room as it was at a retained seq, read-only; the live room is untouched.

Entering replay flushes the artist's last edits, then the session stops scanning, sending presence,
leasing and publishing (``SyncSession.pump`` skips them while ``session.replay`` is set) and stops
applying the live room's operations (``_feed`` drops them): nothing done in Blender while replaying
reaches the room. Each seq shown is read with the ``replay`` request (docs/protocol.md, "History"), page
by page; the scene gets only the keys that differ from what it shows, fetched and applied like any remote
value (chunked values too). The artist's own view keys (camera, frame, shading) are left alone.

*Back to live* leaves the room and joins it again: a fresh snapshot replaces whatever the scene holds
(the replayed past and any edit made meanwhile), exactly as a first join does.

The UI is replay_ui.py; replies arrive through the session's event listeners.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .protocol_shim import protocol
from .view_state import is_view_key


@dataclass
class Replay:
    room: str
    shown: dict[str, bytes]  # the key map the scene shows (the live one when replay began)
    first: int = 0  # the range the slider covers (replay_state.first and .last)
    last: int = 0
    seq: int | None = None  # the seq the scene shows (None: the first one is still loading)
    loading: int | None = None  # the seq being read
    pages: dict[str, bytes] = field(default_factory=dict)  # its map so far
    ref: int | None = None  # the page request in flight
    queued: int | None = None  # asked for while another loaded (a slider drag): read next
    error: str = ""
    revision: int = 0  # bumped on every change, for the UI


def active(session: Any) -> Replay | None:
    return getattr(session, "replay", None) if session is not None else None


def can_enter(session: Any) -> bool:
    """Joined, live, and nothing half-applied (the scene is the room's, so the first diff is right)."""
    return (
        session is not None
        and session.room is not None
        and session.live
        and not session.busy
        and active(session) is None
    )


def enter(session: Any) -> bool:
    """Start replaying the joined room at its current seq (then ``show`` another)."""
    if not can_enter(session):
        return False
    session._scan_local()  # what the artist did before entering still goes out
    session.replay = Replay(room=session.room, shown=dict(session.tracker.values))
    session.log("replay: the scene shows the room's history; your edits stay here until you go back")
    _ask(session, None)
    return True


def show(session: Any, seq: int) -> None:
    """Show the room at ``seq`` (after the page being read, if any)."""
    replay = active(session)
    if replay is None:
        return
    if replay.loading is not None and replay.ref in session._requests:
        replay.queued = seq
        return
    # (A request lost with the connection is forgotten by the session: ask again.)
    if seq != replay.seq:
        _ask(session, seq)


def show_fraction(session: Any, fraction: float) -> None:
    """The slider: 0 is the first seq of the range, 1 the last."""
    replay = active(session)
    if replay is not None:
        show(session, seq_at(replay, fraction))


def seq_at(replay: Replay, fraction: float) -> int:
    fraction = min(max(fraction, 0.0), 1.0)
    return replay.first + round(fraction * (replay.last - replay.first))


def back_to_live(session: Any) -> None:
    """Leave the past: join the room again, from a fresh snapshot."""
    replay = active(session)
    if replay is None:
        return
    password = session.room_password
    room = session.room or replay.room
    session.leave_room()  # clears session.replay too
    session.join_room(room, password=password)


def _ask(session: Any, seq: int | None, after: str | None = None) -> None:
    replay = session.replay
    replay.loading = seq if seq is not None else -1  # -1: the current seq, whatever it is
    if after is None:
        replay.pages = {}
    replay.ref = session._request(
        "replay", lambda ref: protocol.Replay(seq=seq, after=after, ref=ref), seq=seq
    )
    replay.revision += 1


def on_event(session: Any, event: Any) -> None:
    """A session event listener: the pages of the seq being read, or its refusal."""
    replay = active(session)
    ref = getattr(event, "ref", None)
    if replay is None or ref is None or ref != replay.ref:
        return
    session._requests.pop(ref, None)
    replay.ref = None
    if isinstance(event, protocol.Error):  # the session has logged it
        replay.error = f"{event.code}: {event.message}"
        replay.loading = None
        replay.revision += 1
        _next(session, replay)
        return
    if not isinstance(event, protocol.ReplayState):
        return
    replay.pages.update((key, value) for key, value in event.items)
    if event.more and event.items:
        _ask(session, event.seq, event.items[-1][0])
        return
    replay.first, replay.last = event.first, event.last
    _show_map(session, replay, replay.pages)
    replay.seq, replay.loading, replay.pages, replay.error = event.seq, None, {}, ""
    replay.revision += 1
    _next(session, replay)


def _next(session: Any, replay: Replay) -> None:
    queued, replay.queued = replay.queued, None
    if queued is not None and queued != replay.seq:
        _ask(session, queued)


def _show_map(session: Any, replay: Replay, target: dict[str, bytes]) -> None:
    """Feed the scene the keys that differ between what it shows and ``target`` (not the view keys)."""
    changes: list[tuple[str, bytes | None]] = [
        (key, None) for key in replay.shown if key not in target and not is_view_key(key)
    ]
    changes += [
        (key, value)
        for key, value in sorted(target.items())
        if replay.shown.get(key) != value and not is_view_key(key)
    ]
    replay.shown = {key: value for key, value in target.items() if not is_view_key(key)} | {
        key: value for key, value in replay.shown.items() if is_view_key(key)
    }
    if changes:
        session.feed_scene(changes)
