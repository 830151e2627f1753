"""The ``blendsync`` command."""

from __future__ import annotations

import argparse
import logging
import sys

import trio

from .config import DEFAULT_PORT, load_config


def _serve(args: argparse.Namespace) -> int:
    from .app import serve_forever

    config = load_config(args.config, {"host": args.host, "port": args.port, "data_dir": args.data_dir})
    try:
        trio.run(serve_forever, config)
    except KeyboardInterrupt:
        pass
    return 0


def _bench(args: argparse.Namespace) -> int:
    from . import bench

    return bench.main(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="blendsync", description="Collaborative Blender broadcaster")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run a broadcaster")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help=f"port to listen on (default {DEFAULT_PORT})")
    serve.add_argument("--data-dir", help="where rooms are stored (default ./data)")
    serve.add_argument("--config", help="a TOML file with a [server] table")
    serve.set_defaults(func=_serve)

    bench = commands.add_parser("bench", help="measure a running broadcaster")
    from . import bench as bench_module

    bench_module.add_arguments(bench)
    bench.set_defaults(func=_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
