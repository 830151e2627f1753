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
import re
import secrets
from collections.abc import Callable

from . import arrays, ids, overrides, rna
from .arrays import Rows
from .index import index_all, iter_synced
from .kinds import BY_NAME, REGISTRY
from .serialise import read_context

PRECISION = 5


def rounded(value: object, rows: Callable[[Rows], object] = list) -> object:
    """Round every float to 1e-5 (and -0.0 to 0.0), recursively; a ``Rows`` (arrays.py) is rounded batch by
    batch and given to ``rows`` (by default made a list)."""
    if isinstance(value, bool) or value is None or isinstance(value, int | str):
        return value
    if isinstance(value, float):
        out = round(value, PRECISION)
        return 0.0 if out == 0 else out
    if isinstance(value, dict):
        return {str(k): rounded(v, rows) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [rounded(v, rows) for v in value]
    if isinstance(value, bytes):
        return hashlib.sha256(value).hexdigest()
    if isinstance(value, Rows):
        batches = value.batches
        return rows(Rows(lambda size: (rounded(batch) for batch in batches(size))))
    return rounded(rna.plain(value))


def scene_description(rows: Callable[[Rows], object] = list) -> dict:
    """The canonical description that :func:`scene_hash` hashes (useful to diff two replicas)."""
    index_all(assign=True)
    ctx = read_context(masked=False)
    out: dict[str, dict] = {kind.name: {} for kind in REGISTRY}
    for kind, id_data in iter_synced():
        description = overrides.with_override(BY_NAME[kind].describe(id_data, ctx), id_data, ctx)
        out[kind][ids.get_uuid(id_data)] = rounded(description, rows)
    return out


def _dumps(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def scene_hash() -> str:
    """sha256 (hex) of the canonical JSON of :func:`scene_description`.

    The long lists (a mesh's vertices, edges, faces: ``Rows``) are not made whole: each stands in the
    description as a unique placeholder string, and its JSON is hashed batch by batch where the
    placeholder is; the bytes hashed are the same."""
    token = secrets.token_hex(8)
    streams: list[Rows] = []

    def placeholder(rows: Rows) -> str:
        streams.append(rows)
        return f"\0{token}{len(streams) - 1}"

    text = _dumps(scene_description(placeholder))
    digest = hashlib.sha256()
    pieces = re.split(rf'"\\u0000{token}(\d+)"', text)
    for i, piece in enumerate(pieces):
        if i % 2 == 0:
            digest.update(piece.encode())
            continue
        digest.update(b"[")
        first = True
        for batch in streams[int(piece)].batches(arrays.BATCH_ROWS):
            if batch:
                digest.update((_dumps(batch)[1:-1] if first else "," + _dumps(batch)[1:-1]).encode())
                first = False
        digest.update(b"]")
    return digest.hexdigest()
