"""``blendsync restore DIR``: check a backup, or bring it back as a new store (docs/operations.md,
"Backups"). Taking one is ``blendsync admin backup DIR`` (admin.py), since it asks a running server."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def add_commands(commands: Any) -> None:
    restore = commands.add_parser("restore", help="check a backup, or restore it into a fresh data directory")
    restore.add_argument("dir", help="a directory written by `blendsync admin backup`")
    target = restore.add_mutually_exclusive_group(required=True)
    target.add_argument("--data-dir", help="the new server's data directory (must hold no store)")
    target.add_argument("--check", action="store_true", help="only verify the backup")
    restore.add_argument("--node-id", type=int, default=1, help="the restored node's id (default 1)")
    restore.set_defaults(func=_restore)


def _restore(args: argparse.Namespace) -> int:
    from replication import BackupError, seed_store

    from ..backup import check

    source = Path(args.dir)
    try:
        manifest = check(source)
        if args.check:
            print(json.dumps(manifest, indent=2))
            print(f"ok: {source} is a whole backup at index {manifest['applied']}", file=sys.stderr)
            return 0
        if args.node_id < 1:
            raise BackupError("--node-id must be 1 or more")
        summary = seed_store(source, Path(args.data_dir) / "replication", args.node_id)
    except (BackupError, OSError) as exc:
        print(f"blendsync restore: {exc}", file=sys.stderr)
        return 1
    print(
        f"restored {source} into {args.data_dir} (index {summary.applied}) as node {args.node_id} of a"
        " one-node cluster: start it with `blendsync serve --data-dir`, add nodes with `cluster add`",
        file=sys.stderr,
    )
    return 0
