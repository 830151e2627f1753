"""The ``blendsync`` command: one module per command group.

``init`` (init.py), ``invite`` (invite.py), ``doctor`` (doctor.py), ``serve`` (serve.py), ``token``
(token.py), ``admin`` (admin.py), ``restore`` (backup.py), ``cluster`` and ``dev-cluster`` (cluster.py),
``addon build`` (addon.py).
Benchmarks are developer tools (``python -m tools.bench``), not part of the installed command.
"""

from __future__ import annotations

import argparse
import sys

from . import addon, admin, backup, cluster, doctor, init, invite, serve, token


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="blendsync", description="Collaborative Blender broadcaster")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    parser.add_argument(
        "--log-format", default="text", choices=["text", "json"], help="json: one object a line"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for group in (init, invite, serve, token, admin, backup, cluster, addon, doctor):
        group.add_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from ..logs import configure

    configure(args.log_level, args.log_format)
    return args.func(args)
