"""``blendsync serve``: run a broadcaster (one node, or a member of a cluster)."""

from __future__ import annotations

import argparse
import sys
import tomllib
from typing import Any

import trio

from ..config import DEFAULT_PORT, load_config


def add_commands(commands: Any) -> None:
    serve = commands.add_parser("serve", help="run a broadcaster")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help=f"port to listen on (default {DEFAULT_PORT})")
    serve.add_argument("--data-dir", help="where rooms are stored (default ./data)")
    serve.add_argument("--config", help="a TOML file with a [server] table")
    serve.add_argument("--tokens-file", help="users and their token hashes (enables auth; see token add)")
    serve.add_argument(
        "--allow-no-auth", action="store_true", help="listen on a non-loopback address without auth"
    )
    serve.add_argument("--tls-cert", help="PEM certificate chain: the client port then speaks TLS only")
    serve.add_argument("--tls-key", help="PEM private key of --tls-cert")
    serve.add_argument("--tls-client-ca", help="require client certificates signed by this CA")
    serve.add_argument("--http-host", help="address of the HTTP admin port (default 127.0.0.1)")
    serve.add_argument("--http-port", type=int, help="serve metrics, /status and a status page on this port")
    cluster = serve.add_argument_group("cluster (see docs/operations.md)")
    cluster.add_argument("--node-id", type=int, help="this node's id in the cluster (default 1)")
    cluster.add_argument("--peers", help="the other initial members: 2=host:raftport,3=host:raftport")
    cluster.add_argument("--raft-listen", help="host:port for cluster traffic")
    cluster.add_argument("--cluster-secret-file", help="a file with the secret every node shares")
    cluster.add_argument("--join", action="store_true", help="start as a new member (then: cluster add)")
    cluster.add_argument("--advertise", help="the client address other nodes give out for this one")
    serve.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    from ..app import serve_forever
    from ..auth import TokensFileError
    from ..config import ConfigError

    overrides = {
        "host": args.host,
        "port": args.port,
        "data_dir": args.data_dir,
        "tokens_file": args.tokens_file,
        "allow_no_auth": args.allow_no_auth or None,
        "tls_cert": args.tls_cert,
        "tls_key": args.tls_key,
        "tls_client_ca": args.tls_client_ca,
        "http_host": args.http_host,
        "http_port": args.http_port,
        "node_id": args.node_id,
        "peers": args.peers,
        "raft_listen": args.raft_listen,
        "cluster_secret_file": args.cluster_secret_file,
        "join": args.join or None,
        "advertise": args.advertise,
    }
    try:
        config = load_config(args.config, overrides)  # a bad file or value is a ValueError
        config.check()
    except (OSError, tomllib.TOMLDecodeError, ValueError) as exc:
        print(f"blendsync: refusing to start: {exc}", file=sys.stderr)
        return 2
    try:
        trio.run(serve_forever, config)
    except KeyboardInterrupt:
        pass
    except (ConfigError, TokensFileError, OSError) as exc:
        print(f"blendsync: refusing to start: {exc}", file=sys.stderr)
        return 2
    return 0
