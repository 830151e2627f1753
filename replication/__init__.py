"""The replicated store: what the broadcaster may use.

Open a node with :func:`open_node` (:class:`NodeConfig`), then ``propose`` / ``submit`` commands
(docs/tree.md), read with ``read_local`` / ``list_local`` (literal paths: user strings stay names) /
``match_local`` (patterns of constant shape) / ``read`` with a consistency, and follow applied changes with
``subscribe`` or ``watch`` (:class:`WatchEvent`). ``Node.backup`` copies the store while it serves;
``check_store`` and ``seed_store`` read and restore such a copy. Everything else in the package is its inside.
"""

from .backup import STORE_FILE, BackupError, StorePoint, StoreSummary, check_store, seed_store
from .config import NodeConfig
from .errors import NotLeader, OutcomeUnknown, ReplicationError
from .node import Node, open_node
from .proposals import Proposal
from .tree import NO_PAYLOAD, NodeProps, TreeError, TreePath, WatchEvent, format_path, parse_path
from .watches import Subscription

__all__ = [
    "NO_PAYLOAD",
    "STORE_FILE",
    "BackupError",
    "Node",
    "NodeConfig",
    "NodeProps",
    "NotLeader",
    "OutcomeUnknown",
    "Proposal",
    "ReplicationError",
    "StorePoint",
    "StoreSummary",
    "Subscription",
    "TreeError",
    "TreePath",
    "WatchEvent",
    "check_store",
    "format_path",
    "open_node",
    "parse_path",
    "seed_store",
]
