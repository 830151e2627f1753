"""What the sidebar's boxes share: the session of a joined room, and redrawing when a reply changed a view."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

import bpy

from . import session as session_module


def joined_session() -> Any:
    """The running session if it is in a room, else None (operators and panels of a room poll on it)."""
    session = session_module.current()
    return session if session is not None and session.room is not None else None


class InRoom:
    """Mixin for operators and panels that only make sense inside a room."""

    @classmethod
    def poll(cls, context) -> bool:
        return joined_session() is not None


def redraw_3d_views() -> None:
    for window in getattr(bpy.context.window_manager, "windows", []):
        for area in window.screen.areas:
            if area.type == "VIEW_3D":
                area.tag_redraw()


class RedrawOnRevision:
    """After-pump hook: redraw the sidebar when ``revision_of(session)`` changed (a reply arrived).

    Redrawing on every pump would cost the UI a draw of every box 20 times a second for nothing.
    """

    def __init__(self, revision_of: Callable[[Any], Hashable]):
        self.revision_of = revision_of
        self.seen: Hashable = object()

    def __call__(self, session: Any) -> None:
        revision = self.revision_of(session)
        if revision != self.seen:
            self.seen = revision
            redraw_3d_views()
