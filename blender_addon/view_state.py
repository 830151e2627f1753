"""Each artist's own view: active camera, current frame, preview range and viewport shading.

The scene kind reads and applies them as ``scene/<u>/view/<item>`` keys (sync/kinds/scenes.py), so they
travel like any property, but they are not the shared scene. By default an artist neither sends nor applies
them: scrubbing, switching cameras or shading stay on their Blender. With "follow the shared camera and
frame" on (the room panel), they do both, so every follower sees the same view, and turning it on adopts
the room's current view at once.

Two exceptions keep a room's view whole: a view key the room does not hold yet is sent (the first upload of
a scene gives the room its starting view), and a view key heard of for the first time is applied (a joiner
starts from the room's view, a new scene arrives with its camera).
"""

from __future__ import annotations

from typing import Any

from . import sync

VIEW_PART = "view"


def is_view_key(key: str) -> bool:
    if not key.startswith("scene/"):  # every key of a join passes here: most are not parsed
        return False
    parsed = sync.split_key(key)
    return parsed is not None and parsed[0] == "scene" and parsed[2] == VIEW_PART


class ViewState:
    def __init__(self) -> None:
        self.following = False
        self.room: dict[str, bytes | None] = {}  # the room's latest value of each view key we know of

    def outgoing(self, ops: list[list[Any]]) -> list[list[Any]]:
        """Our scanned changes without the view keys we keep to ourselves."""
        out = []
        for op in ops:
            key = op[1]
            if is_view_key(key):
                if not self.following and key in self.room:
                    continue
                self.room[key] = op[2] if op[0] == "set" else None
            out.append(op)
        return out

    def incoming(self, changes: list[tuple[str, bytes | None]]) -> list[tuple[str, bytes | None]]:
        """The room's changes to apply here: view keys only while following, or when first heard of."""
        out = []
        for key, value in changes:
            if is_view_key(key):
                known = key in self.room
                self.room[key] = value
                if known and not self.following:
                    continue
            out.append((key, value))
        return out

    def follow(self, on: bool) -> list[tuple[str, bytes | None]]:
        """Start or stop following; starting returns the room's view to apply now."""
        self.following = on
        return list(self.room.items()) if on else []

    def reset(self) -> None:
        """We left the room: what it held is no longer known."""
        self.room.clear()
