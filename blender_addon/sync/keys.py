"""Key names: ``<kind>/<uuid>/<part>``, and the order in which operations on keys are applied."""

from __future__ import annotations

from .codec import valid_uuid
from .kinds import BY_NAME, PRIMARY_PART, REGISTRY

# Datablock kinds, in the order in which their creation is applied.
KINDS: tuple[str, ...] = tuple(kind.name for kind in REGISTRY)
KIND_ORDER = {kind: i for i, kind in enumerate(KINDS)}
# Parts of each kind, in the order in which they are applied; the first is PRIMARY_PART.
PARTS: dict[str, tuple[str, ...]] = {kind.name: tuple(kind.parts) for kind in REGISTRY}

__all__ = ["KINDS", "KIND_ORDER", "PARTS", "PRIMARY_PART", "make_key", "op_order", "parse_key"]


def make_key(kind: str, uuid: str, part: str) -> str:
    return f"{kind}/{uuid}/{part}"


def parse_key(key: str) -> tuple[str, str, str] | None:
    """Split ``kind/uuid/part``; return None for keys this layer does not own."""
    bits = key.split("/")
    if len(bits) != 3:
        return None
    kind, uuid, part = bits
    if kind not in BY_NAME or part not in BY_NAME[kind].parts or not valid_uuid(uuid):
        return None
    return kind, uuid, part


def op_order(key: str) -> tuple[int, int]:
    """Sort key that puts datablocks before the datablocks that link to them."""
    parsed = parse_key(key)
    if parsed is None:
        return (len(KINDS), 0)
    kind, _uuid, part = parsed
    return (KIND_ORDER[kind], PARTS[kind].index(part))
