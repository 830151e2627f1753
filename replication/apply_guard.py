"""Applying a committed entry never stops a node.

Commands are validated before they are proposed, and :meth:`Tree.apply` turns every failure of a command,
its records' encoding included, into a result with the command rolled back. This module is the last line
for a bug that still escapes: the entry gets the result ``{"ok": False, "error": "internal", ...}``, no
watch events, and the node goes on applying (a node that stopped here would stop again at every restart,
replaying the same entry).

Every replica applies the same entries with the same code, so a failure happens on all of them at the same
index, and its result names only the exception's type (never its text, which could differ between
machines). MemoryError and RecursionError depend on the machine, not on the entry: they propagate, so the
entry is applied again after a restart rather than failed on one replica only.
"""

from __future__ import annotations

import logging
from typing import Any

from .blob_entries import entry_command
from .tree import E_INTERNAL, Tree, WatchEvent

log = logging.getLogger("blendsync.replication")


def internal_failure(index: int, exc: BaseException) -> dict[str, Any]:
    return {
        "ok": False,
        "error": E_INTERNAL,
        "message": f"internal error {type(exc).__name__}",
        "index": index,
    }


def apply_committed(
    tree: Tree, index: int, data: bytes, node_id: int
) -> tuple[dict[str, Any], list[WatchEvent], bool]:
    """Apply entry ``index``; return (result, watch events, whether it failed with an internal error).

    A blob the entry carries is already in the node's blob table (stored with the entry): the tree gets the
    command alone."""
    try:
        result, events = tree.apply(index, entry_command(data))
    except (MemoryError, RecursionError):
        raise
    except Exception as exc:
        # A command's own failures are rolled back inside Tree.apply; what escapes comes from around it
        # (decoding, compiling, session bookkeeping), where no node has changed unless the command itself
        # completed. The applied index must reach this entry either way.
        if tree.applied_index < index:
            tree.advance(index)
        log.exception("node %d: entry %d failed to apply; recorded as an internal error", node_id, index)
        return internal_failure(index, exc), [], True
    if result.get("error") == E_INTERNAL:
        log.error("node %d: entry %d failed to apply: %s", node_id, index, result.get("message"))
        return result, events, True
    return result, events, False
