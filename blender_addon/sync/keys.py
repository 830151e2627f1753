"""Key names and the order in which operations on keys are applied.

A key is ``<kind>/<uuid>/<part>`` for a part held whole, or
``<kind>/<uuid>/<part>/<item segment>...`` for a part held as one key per
item (:class:`.kinds.base.Items`).  Item segments are user strings (node and
modifier names, socket identifiers), so ``%`` and ``/`` in them are
percent-escaped: a segment never splits and a key always parses back to the
same segments.
"""

from __future__ import annotations

from .codec import valid_uuid
from .items import Items
from .kinds import BY_NAME, PRIMARY_PART, REGISTRY

# Datablock kinds, in the order in which their creation is applied.
KINDS: tuple[str, ...] = tuple(kind.name for kind in REGISTRY)
KIND_ORDER = {kind: i for i, kind in enumerate(KINDS)}
# Parts of each kind, in the order in which they are applied; the first is PRIMARY_PART.
PARTS: dict[str, tuple[str, ...]] = {kind.name: tuple(kind.parts) for kind in REGISTRY}
PART_ORDER = {kind: {part: i for i, part in enumerate(parts)} for kind, parts in PARTS.items()}
# Parts applied before the other parts of every datablock of their kind: a node group's interface (with
# what makes the group), since group nodes in other groups name its sockets by position: applied after
# them, a socket inserted before others would take the values meant for the ones it pushed along.
LEADING_PARTS = frozenset({("ngroup", "meta"), ("ngroup", "name"), ("ngroup", "iface")})

__all__ = [
    "KINDS",
    "KIND_ORDER",
    "PARTS",
    "PRIMARY_PART",
    "escape_segment",
    "make_key",
    "op_order",
    "parse_key",
    "split_key",
    "unescape_segment",
]


def escape_segment(text: str) -> str:
    """An item segment as it appears in a key (``%`` and ``/`` escaped)."""
    return text.replace("%", "%25").replace("/", "%2F")


def unescape_segment(text: str) -> str:
    return text.replace("%2F", "/").replace("%25", "%")


def make_key(kind: str, uuid: str, part: str, *item: str) -> str:
    if not item:
        return f"{kind}/{uuid}/{part}"
    return "/".join((kind, uuid, part, *(escape_segment(seg) for seg in item)))


def split_key(key: str) -> tuple[str, str, str, tuple[str, ...]] | None:
    """``(kind, uuid, part, item segments)``; None for keys this layer does not own.

    A whole part has no item segments; an item part has exactly its ``depth``.
    """
    bits = key.split("/")
    if len(bits) < 3:
        return None
    kind, uuid, part = bits[:3]
    record = BY_NAME.get(kind)
    if record is None or not valid_uuid(uuid) or part not in record.parts:
        return None
    spec = record.parts[part]
    # Most segments hold no escape (a join parses tens of thousands of keys).
    item = tuple(unescape_segment(seg) for seg in bits[3:]) if "%" in key else tuple(bits[3:])
    if isinstance(spec, Items):
        if len(item) != spec.depth:
            return None
    elif item:
        return None
    return kind, uuid, part, item


def parse_key(key: str) -> tuple[str, str, str] | None:
    """``(kind, uuid, part)`` of ``kind/uuid/part[/item...]``; None for keys this layer does not own."""
    parsed = split_key(key)
    return None if parsed is None else parsed[:3]


def op_order(key: str) -> tuple[int, int, str, int]:
    """Sort key that puts datablocks before the datablocks that link to them, parts in their order.

    Each datablock's keys stay together (kind, then uuid, then part; a kind's ``LEADING_PARTS`` first), so
    that a slice of a large batch touches few datablocks (each touched one is read again at the end of the
    slice); links within a kind wait as pending links.
    """
    return order_of(parse_key(key))


def order_of(parsed: tuple[str, str, str] | None) -> tuple[int, int, str, int]:
    """:func:`op_order` of a key already parsed (:func:`parse_key`)."""
    if parsed is None:
        return (len(KINDS), 1, "", 0)
    kind, uuid, part = parsed
    return (KIND_ORDER[kind], 0 if (kind, part) in LEADING_PARTS else 1, uuid, PART_ORDER[kind][part])
