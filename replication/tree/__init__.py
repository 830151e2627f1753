"""Deterministic Khepri-style tree state machine, one module per concern.

- :mod:`.errors`: :class:`TreeError` and the error codes
- :mod:`.paths`: path elements, the ``/a/b`` form, sequential names
- :mod:`.payloads`: what a node may hold, canonical payload bytes
- :mod:`.patterns`: conditions and path patterns
- :mod:`.commands`: commands (transactions of ops) and their log envelope
- :mod:`.state`: tree nodes, their props, watch events, client sessions
- :mod:`.reads`: the reads of a :class:`Tree`, condition evaluation
- :mod:`.machine`: :class:`Tree`: apply, rollback, keep_while, sessions
- :mod:`.snapshot`: dirty records, whole records, snapshots

See ``docs/tree.md`` for the exact command reference.
"""

from .commands import decode_envelope, encode_envelope, validate_command
from .errors import E_INTERNAL, TreeError
from .machine import Tree
from .paths import MAX_NAME_BYTES, MAX_PATH_LEN, TreePath, format_path, parse_path, seq_name
from .patterns import MAX_REGEX_LEN, Pattern, compile_pattern, match_pattern
from .payloads import MAX_DEPTH, NO_PAYLOAD
from .state import DEFAULT_MAX_SESSIONS, SESSION_KEY, NodeProps, TreeNode, WatchEvent

__all__ = [
    "DEFAULT_MAX_SESSIONS",
    "E_INTERNAL",
    "MAX_DEPTH",
    "MAX_NAME_BYTES",
    "MAX_PATH_LEN",
    "MAX_REGEX_LEN",
    "NO_PAYLOAD",
    "SESSION_KEY",
    "NodeProps",
    "Pattern",
    "Tree",
    "TreeError",
    "TreeNode",
    "TreePath",
    "WatchEvent",
    "compile_pattern",
    "decode_envelope",
    "encode_envelope",
    "format_path",
    "match_pattern",
    "parse_path",
    "seq_name",
    "validate_command",
]
