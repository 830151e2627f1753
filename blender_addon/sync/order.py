"""What an order key asks of a stack of named items: modifiers, constraints, NLA tracks, line sets.

An order key lists names; the stack here may differ from it. A listed name no
item has yet is left out (its own key has not arrived: the caller waits for it
and applies the order again), and the items the list does not name follow the
listed ones, sorted by name, so that every replica stacks them alike.

Applying the order is the caller's: a stack Blender can move within is put in
place one move at a time (``Order.move_each``); one it cannot is made again
from the first misplaced item on (``Order.first``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Order:
    present: list[str]  # the items' names as they stand here
    wanted: list[str]  # the same names, in the order to be
    missing: bool  # the key lists a name no item here has

    @property
    def first(self) -> int | None:
        """The position of the first misplaced item; None when every item is in its place."""
        pairs = enumerate(zip(self.present, self.wanted, strict=True))
        return next((i for i, (have, want) in pairs if have != want), None)

    def move_each(self, names: Callable[[], list[str]], move: Callable[[int, int], None]) -> None:
        """Move the items one by one into their wanted place: ``names()`` lists them as they stand after
        the moves made so far, ``move(current, target)`` moves one."""
        for target, name in enumerate(self.wanted):
            current = names().index(name)
            if current != target:
                move(current, target)


def plan(present: list[str], listed: list[str]) -> Order:
    """The order of the items named ``present`` (as they stand) that the order key ``listed`` asks for."""
    kept = [n for n in listed if n in present]
    named = set(kept)
    wanted = kept + sorted(n for n in present if n not in named)
    return Order(present=present, wanted=wanted, missing=len(kept) < len(listed))
