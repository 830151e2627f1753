"""Canonical scene description and hash.

The description is each kind's ``describe``, read from Blender directly (not
from the key/value serialisation), keyed by kind and uuid, with floats
rounded to 1e-5 and every unordered relation sorted.  Two replicas that hold
the same scene give the same :func:`scene_hash`, whatever order their
datablocks were created in.
"""

from __future__ import annotations

import hashlib
import json

from . import ids, overrides, rna
from .index import index_all, iter_synced
from .kinds import BY_NAME, REGISTRY
from .serialise import read_context

PRECISION = 5


def rounded(value: object) -> object:
    """Round every float to 1e-5 (and -0.0 to 0.0), recursively."""
    if isinstance(value, bool) or value is None or isinstance(value, int | str):
        return value
    if isinstance(value, float):
        out = round(value, PRECISION)
        return 0.0 if out == 0 else out
    if isinstance(value, dict):
        return {str(k): rounded(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [rounded(v) for v in value]
    if isinstance(value, bytes):
        return hashlib.sha256(value).hexdigest()
    return rounded(rna.plain(value))


def scene_description() -> dict:
    """The canonical description that :func:`scene_hash` hashes (useful to diff two replicas)."""
    index_all(assign=True)
    ctx = read_context(masked=False)
    out: dict[str, dict] = {kind.name: {} for kind in REGISTRY}
    for kind, id_data in iter_synced():
        description = overrides.with_override(BY_NAME[kind].describe(id_data, ctx), id_data, ctx)
        out[kind][ids.get_uuid(id_data)] = rounded(description)
    return out


def scene_hash() -> str:
    """sha256 (hex) of the canonical JSON of :func:`scene_description`."""
    text = json.dumps(scene_description(), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()
