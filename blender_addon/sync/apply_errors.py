"""What this Blender could not apply, one line per key, bounded (the sidebar's *Not applied here*)."""

from __future__ import annotations

MAX_KEYS = 200  # a room of broken values must not grow the add-on's memory without end


class NotApplied(list[tuple[str, str]]):
    """``(key, message)`` of the values that failed here, oldest first.

    A key is listed once, with its latest message; a later value of the key that applies takes it off the
    list, so the count in the sidebar is what is wrong now, not everything that ever went wrong. Past
    ``MAX_KEYS`` the oldest lines go.
    """

    def report(self, key: str, message: str) -> None:
        self.settled(key)
        self.append((key, message))
        if len(self) > MAX_KEYS:
            del self[: len(self) - MAX_KEYS]

    def settled(self, key: str) -> None:
        for index, (listed, _) in enumerate(self):
            if listed == key:
                del self[index]
                return
