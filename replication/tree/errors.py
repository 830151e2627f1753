"""Errors of the tree: :class:`TreeError` and the codes commands fail with (docs/tree.md)."""

from __future__ import annotations

from typing import Final

# Error codes. Validation errors (raised by validate_command, returned by apply):
E_ENVELOPE: Final = "invalid_envelope"
E_COMMAND: Final = "invalid_command"
E_OP: Final = "unknown_op"
E_PATH: Final = "invalid_path"
E_PATTERN: Final = "invalid_pattern"
E_COND: Final = "invalid_condition"
E_REGEX: Final = "invalid_regex"
E_PAYLOAD: Final = "invalid_payload"
E_DEEP: Final = "too_deep"
# Semantic failures (returned by apply, the command changes nothing):
E_EXISTS: Final = "exists"
E_MISSING: Final = "missing"
E_VERSION: Final = "version_mismatch"
E_FAILED: Final = "condition_failed"
E_KEEP: Final = "keep_while_unmet"
E_SEQ: Final = "seq_overflow"
E_HOLDS: Final = "too_many_holds"
E_STALE: Final = "stale_session"
E_INTERNAL: Final = "internal"
# Caller bugs, raised (never produced by a command):
E_INDEX: Final = "invalid_index"
E_SNAPSHOT: Final = "invalid_snapshot"


class TreeError(Exception):
    """A malformed command, path, pattern, snapshot or record."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
