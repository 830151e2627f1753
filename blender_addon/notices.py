"""Short notices for the sidebar: whose edit replaced ours ("ben set Pillar location after you").

The protocol's client session decides when a value of ours was overridden (protocol/convergence.py
``Overrides``: someone else's edit of the same key, ordered after ours, made without having seen it). This
turns each one into a line for people, with the datablock's name and a readable property name, and keeps the
last few in a history list. Nothing modal: the panel shows the newest lines.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from . import sync
from .sync.index import find
from .sync.node_trees import nodes_by_id, tree_of

MAX_NOTICES = 20  # the history list keeps this many, newest last

# Whole parts and the first segment of item parts, as people say them.
_PARTS = {
    "meta": "data",
    "name": "name",
    "parent": "parent",
    "location": "location",
    "rotation": "rotation",
    "scale": "scale",
    "delta": "delta transform",
    "in": "collections",
    "slot": "material slot",
    "mod": "modifier",
    "modorder": "modifier order",
    "anim": "animation",
    "frame": "current frame",
    "geometry": "geometry",
    "shapes": "shape keys",
    "iface": "interface",
    "node": "node",
    "at": "node location",
    "link": "link",
    "gpstyle": "grease pencil style",
    "bones": "bones",
    "splines": "splines",
    "text": "text",
    "body": "text",
    "elements": "elements",
    "points": "points",
    "strokes": "strokes",
}


# Item parts of a node tree named by their node's id.
_NODE_PARTS = {"node": "node", "at": "node location", "items": "items"}


@dataclass(frozen=True, slots=True)
class Notice:
    text: str
    key: str
    seq: int
    client_id: str
    at: float  # time.time() when it arrived


def _words(identifier: str) -> str:
    return identifier.replace("_", " ")


def datablock_name(kind: str, uuid: str) -> str | None:
    found = find(kind, uuid)
    return None if found is None else found.name


def _node_name(kind: str, uuid: str, node_id: str) -> str:
    tree = tree_of(find(kind, uuid))
    node = nodes_by_id(tree, assign=False).get(node_id) if tree is not None else None
    return node_id if node is None else node.name


def property_name(kind: str, uuid: str, part: str, item: tuple[str, ...]) -> str:
    """A readable name of what a key holds: ``location``, ``roughness``, ``Principled BSDF Base Color``."""
    if part == "set" and item:
        return _words(item[0])
    if part in ("in", "out") and len(item) == 2:  # a node socket's value
        return f"{_node_name(kind, uuid, item[0])} {item[1]}"
    if part in _NODE_PARTS and item:
        return f"{_node_name(kind, uuid, item[0])} {_NODE_PARTS[part]}"
    if part == "mod" and item:
        return f"modifier {item[0]}"
    if part == "modset" and len(item) == 2:
        return f"{item[0]} {_words(item[1])}"
    if part == "modin" and len(item) == 2:
        return f"{item[0]} input {item[1].lstrip('#')}"
    if part == "pose" and item:
        return f"pose of {item[0]}"
    if part == "fcurve" and len(item) == 3:
        return f"keys of {item[1]}[{item[2]}]"
    return _PARTS.get(part, _words(part))


def describe_key(key: str) -> tuple[str, str]:
    """(datablock name, property name) of a key, for people; the key itself when it is not the layer's."""
    parsed = sync.split_key(key)
    if parsed is None:
        return key, ""
    kind, uuid, part, item = parsed
    return datablock_name(kind, uuid) or key, property_name(kind, uuid, part, item)


def override_text(who: str, key: str, deleted: bool) -> str:
    name, prop = describe_key(key)
    what = f"{name} {prop}".strip()
    return f"{who} {'removed' if deleted else 'set'} {what} after you"


class Notices:
    """The history list of override notices, newest last (at most ``MAX_NOTICES``)."""

    def __init__(self) -> None:
        self.items: list[Notice] = []

    def overridden(self, overrides: list[Any], users: dict[str, dict[str, Any]]) -> list[Notice]:
        """Notices for ``protocol.Overridden`` records, one per datablock and property (a batch that
        replaced several keys of one property, e.g. node sockets, says it once)."""
        added: list[Notice] = []
        seen: set[str] = set()
        for item in overrides:
            who = str(users.get(item.client_id, {}).get("name") or item.client_id[:8])
            text = override_text(who, item.key, item.value is None)
            if text in seen:
                continue
            seen.add(text)
            added.append(Notice(text, item.key, item.seq, item.client_id, time.time()))
        self.items += added
        del self.items[:-MAX_NOTICES]
        return added

    def add(self, text: str, key: str, client_id: str, seq: int = 0) -> Notice:
        notice = Notice(text, key, seq, client_id, time.time())
        self.items.append(notice)
        del self.items[:-MAX_NOTICES]
        return notice

    def clear(self) -> None:
        self.items.clear()


def draw_notices(layout, session, show_all: bool, owner) -> None:
    """The newest notices in a box (all of them when ``show_all``: ``owner.show_notices`` toggles it)."""
    items = session.notices.items
    if not items:
        return
    box = layout.box()
    row = box.row()
    row.label(text=f"Changed after you ({len(items)})", icon="INFO")
    row.prop(owner, "show_notices", text="", icon="DOWNARROW_HLT" if show_all else "RIGHTARROW")
    for notice in reversed(items if show_all else items[-3:]):
        box.label(text=f"{time.strftime('%H:%M:%S', time.localtime(notice.at))} {notice.text}")
