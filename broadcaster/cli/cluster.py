"""``blendsync dev-cluster`` and ``blendsync cluster status|add|remove``."""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import trio


def add_commands(commands: Any) -> None:
    dev = commands.add_parser("dev-cluster", help="run a local cluster of broadcasters to try things out")
    dev.add_argument("--nodes", type=int, default=3, choices=[1, 3, 5])
    dev.add_argument("--base-port", type=int, default=12800, help="client ports base, base+1, ...")
    dev.add_argument("--raft-base-port", type=int, default=12900, help="cluster ports")
    dev.add_argument("--data-dir", default="data/dev-cluster")
    dev.set_defaults(func=_dev_cluster)

    cluster = commands.add_parser("cluster", help="inspect or change a running cluster")
    actions = cluster.add_subparsers(dest="cluster_action", required=True)
    for name, text in (
        ("status", "each node's role, term, leader, commit/applied index and lag"),
        ("add", "add a node started with --join (one at a time)"),
        ("remove", "remove a node (one at a time)"),
    ):
        action = actions.add_parser(name, help=text)
        action.add_argument("--nodes", required=True, help="client addresses host:port[,host:port...]")
        action.add_argument("--token", help="admin token (default: $BLENDSYNC_TOKEN)")
        action.add_argument("--json", action="store_true")
        if name in ("add", "remove"):
            action.add_argument("--node-id", type=int, required=True)
        if name == "add":
            action.add_argument("--raft", required=True, help="the new node's cluster address host:port")
        action.set_defaults(func=_cluster)


def _addresses(text: str) -> list[tuple[str, int]]:
    out = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        host, _, port = item.rpartition(":")
        out.append((host.strip("[]"), int(port)))
    return out


async def _ask(address: tuple[str, int], token: str | None, action: str, **args: Any) -> Any:
    from ..client import connect

    with trio.fail_after(10):
        async with connect(*address, name="blendsync-cluster", kind="admin", token=token) as client:
            return await client.admin(action, **args)


async def _status(addresses: list[tuple[str, int]], token: str | None) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = [{} for _ in addresses]

    async def one(index: int, address: tuple[str, int]) -> None:
        try:
            rows[index] = {"address": f"{address[0]}:{address[1]}", **await _ask(address, token, "status")}
        except Exception as exc:  # a node that is down is a row, not a failure of the command
            rows[index] = {"address": f"{address[0]}:{address[1]}", "error": str(exc) or type(exc).__name__}

    async with trio.open_nursery() as nursery:
        for index, address in enumerate(addresses):
            nursery.start_soon(one, index, address)
    return rows


async def _change(args: argparse.Namespace, token: str | None) -> Any:
    errors = []
    for address in _addresses(args.nodes):  # any node may be the leader: try them in turn
        try:
            if args.cluster_action == "add":
                return await _ask(address, token, "add_member", node_id=args.node_id, raft=args.raft)
            return await _ask(address, token, "remove_member", node_id=args.node_id)
        except Exception as exc:
            errors.append(f"{address[0]}:{address[1]}: {exc}")
    raise RuntimeError("; ".join(errors))


def _cluster(args: argparse.Namespace) -> int:
    token = args.token or os.environ.get("BLENDSYNC_TOKEN")
    try:
        if args.cluster_action == "status":
            result: Any = trio.run(_status, _addresses(args.nodes), token)
        else:
            result = trio.run(_change, args, token)
    except Exception as exc:
        print(f"blendsync cluster: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    elif args.cluster_action == "status":
        print(
            f"{'address':<22}{'id':>4} {'role':<10}{'term':>6}{'leader':>8}{'commit':>10}{'applied':>10}  lag"
        )
        for row in result:
            if "error" in row:
                print(f"{row['address']:<22}  down: {row['error']}")
                continue
            lag = ", ".join(f"{peer}:{behind}" for peer, behind in sorted(row.get("lag", {}).items())) or "-"
            leader = row["leader"] or "-"
            print(
                f"{row['address']:<22}{row['id']:>4} {row['role']:<10}{row['term']:>6}{leader:>8}"
                f"{row['commit']:>10}{row['applied']:>10}  {lag}"
            )
    else:
        print(f"members: {', '.join(map(str, result))}")
    return 0


def _dev_cluster(args: argparse.Namespace) -> int:
    """N ``blendsync serve`` processes on 127.0.0.1 sharing a fresh secret; stops them all on Ctrl-C."""
    root = Path(args.data_dir)
    root.mkdir(parents=True, exist_ok=True)
    secret = root / "cluster-secret"
    if not secret.exists():
        secret.write_text(secrets.token_hex(32))
        secret.chmod(0o600)
    ids = range(1, args.nodes + 1)
    raft = {i: f"127.0.0.1:{args.raft_base_port + i - 1}" for i in ids}
    procs = []
    for i in ids:
        peers = ",".join(f"{j}={raft[j]}" for j in ids if j != i)
        command = [
            sys.executable,
            "-m",
            "broadcaster.cli",
            "serve",
            "--port",
            str(args.base_port + i - 1),
            "--data-dir",
            str(root / f"node{i}"),
            "--node-id",
            str(i),
            "--raft-listen",
            raft[i],
            "--cluster-secret-file",
            str(secret),
        ]
        if peers:
            command += ["--peers", peers]
        procs.append(subprocess.Popen(command, stdout=subprocess.DEVNULL))
    addresses = ",".join(f"127.0.0.1:{args.base_port + i - 1}" for i in ids)
    print(f"cluster of {args.nodes} running; clients connect to any of: {addresses}", flush=True)
    print(f"status: blendsync cluster status --nodes {addresses}", flush=True)
    stop = {"now": False}

    def on_signal(signum: int, frame: Any) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, on_signal)
    try:
        while not stop["now"] and all(p.poll() is None for p in procs):
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
    return 0
