"""A bare replication node with a tiny key/value service: for fault tests and the Raft benchmarks.

    python -m tools.replica --id 1 --data-dir D --raft-listen 127.0.0.1:0 --kv-listen 127.0.0.1:0 \\
        --peer 2=127.0.0.1:7002 --peer 3=127.0.0.1:7003 --cluster-secret-file secret

Once listening it prints one line: ``ready id=N raft=HOST:PORT kv=HOST:PORT``.

KV protocol (one request per frame: 4-byte big-endian length + msgpack map; answers may come out of order):
  {"id", "op": "put"|"get"|"cas"|"delete"|"status", "key", "value", "expect", "consistency", "client", "seq"}
  -> {"id", "ok", "value", "index", "error", "leader", "leader_kv", ...status fields}
Keys live at /kv/<key> in the tree. put/cas/delete with (client, seq) apply once however often retried.
Any node accepts writes (followers forward them to the leader) and linearizable reads (ReadIndex).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import trio

from replication.node import Node, NodeConfig, OutcomeUnknown, Proposal, ReplicationError, open_node
from replication.transport import FrameStream, TransportError, parse_address
from replication.tree import TreeError

log = logging.getLogger("blendsync.replica")
KV = "kv"


def _command(request: dict[str, Any]) -> dict[str, Any]:
    path = [KV, request["key"]]
    op = request["op"]
    if op == "put":
        return {"then": [{"op": "put", "path": path, "payload": request["value"]}]}
    if op == "delete":
        return {"then": [{"op": "delete", "path": path}]}
    expect = request.get("expect")
    compare = {"not": {"exists": path}} if expect is None else {"payload_equals": [path, expect]}
    return {
        "compare": [compare],
        "then": [{"op": "put", "path": path, "payload": request["value"]}],
        "else": [{"op": "get", "path": path}],
    }


def start_request(node: Node, request: dict[str, Any]) -> Proposal | None:
    """Submit a write at once, in arrival order (a session's writes must reach the log in seq order)."""
    if request.get("op") not in ("put", "delete", "cas"):
        return None
    return node.submit(_command(request), client=request.get("client"), seq=request.get("seq"))


async def handle_request(
    node: Node, request: dict[str, Any], timeout: float, proposal: Proposal | None = None
) -> dict[str, Any]:
    reply: dict[str, Any] = {"id": request.get("id"), "ok": False, "error": None, "value": None}
    op = request.get("op")
    try:
        with trio.fail_after(timeout):
            if op == "status":
                status = node.status()
                status["node_id"] = status.pop("id")  # "id" belongs to the request
                reply.update(status, ok=True)
            elif op == "get":
                found = await node.read((KV, request["key"]), consistency=request.get("consistency", "local"))
                reply.update(
                    ok=True, value=None if found is None else found[1], index=node.tree.applied_index
                )
            elif op in ("put", "delete", "cas"):
                if proposal is None:
                    proposal = start_request(node, request)
                assert proposal is not None
                result = await proposal.wait()
                if not result.get("ok"):
                    reply.update(error=result.get("error"), message=result.get("message"))
                else:
                    reply["index"] = result["index"]
                    reply["ok"] = bool(result.get("succeeded", True))
                    if op == "cas" and not reply["ok"]:
                        current = result["results"][0] if result.get("results") else None
                        reply["value"] = current.get("payload") if isinstance(current, dict) else None
            else:
                reply["error"] = "bad_request"
    except (KeyError, TypeError, TreeError) as exc:
        reply.update(error="bad_request", message=str(exc))
    except trio.TooSlowError:
        reply["error"] = "timeout"
    except OutcomeUnknown as exc:
        reply.update(error="timeout", message=str(exc))
    except ReplicationError as exc:
        reply.update(error="unavailable", message=str(exc))
    reply.setdefault("leader", node.leader)  # a status says whom the core follows right now
    return reply


async def serve_kv(node: Node, listen: str, timeout: float, task_status=trio.TASK_STATUS_IGNORED) -> None:
    async def connection(stream: trio.SocketStream) -> None:
        frames = FrameStream(stream, max_frame=64 * 1024 * 1024)
        send_lock = trio.Lock()

        async def answer(request: dict[str, Any], proposal: Proposal | None) -> None:
            reply = await handle_request(node, request, timeout, proposal)
            async with send_lock:
                try:
                    await frames.send(reply)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass

        async with trio.open_nursery() as nursery:
            while True:
                try:
                    request = await frames.receive()
                except (TransportError, trio.BrokenResourceError, trio.ClosedResourceError):
                    break  # the client went away; its requests in flight still finish
                if not isinstance(request, dict):
                    break
                try:
                    proposal = start_request(node, request)
                except (KeyError, TypeError, TreeError, ReplicationError):
                    proposal = None  # answer() reports it
                nursery.start_soon(answer, request, proposal)

    host, port = parse_address(listen)
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, connection, port, host=host))
        sockname = listeners[0].socket.getsockname()
        task_status.started(f"{sockname[0]}:{sockname[1]}")


def stall_writes(node: Node, stall_file: Path) -> None:
    """While ``stall_file`` exists, each durable write of ``node`` first waits the seconds it holds: a
    stalled disk, for fault tests (the wait is on the storage thread, as a slow fsync is)."""
    commit = node._storage.commit

    def stalled_commit(batch: Any) -> None:
        try:
            seconds = float(stall_file.read_text())
        except (OSError, ValueError):
            seconds = 0.0
        if seconds > 0:  # not NaN, not negative
            time.sleep(seconds)
        commit(batch)

    node._storage.commit = stalled_commit


async def main_async(args: argparse.Namespace) -> None:
    peers = {}
    for spec in args.peer:
        peer_id, _, address = spec.partition("=")
        peers[int(peer_id)] = address
    secret = Path(args.cluster_secret_file).read_bytes().strip() if args.cluster_secret_file else None
    config = NodeConfig(
        data_dir=Path(args.data_dir),
        node_id=args.id,
        peers=peers,
        raft_listen=args.raft_listen,
        join=args.join,
        cluster_secret=secret,
        tick_interval=args.tick_ms / 1000,
        election_ticks=args.election_ticks,
        request_timeout=args.timeout,
    )
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with open_node(config) as node, trio.open_nursery() as nursery:
            if args.stall_file:
                stall_writes(node, Path(args.stall_file))
            kv = await nursery.start(serve_kv, node, args.kv_listen, args.timeout)
            print(f"ready id={args.id} raft={node.raft_address or '-'} kv={kv}", flush=True)
            async for _ in signals:
                nursery.cancel_scope.cancel()
                break


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.replica", description=__doc__.split("\n")[0])
    parser.add_argument("--id", type=int, required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--raft-listen", default=None)
    parser.add_argument("--kv-listen", default="127.0.0.1:0")
    parser.add_argument("--peer", action="append", default=[], help="ID=HOST:PORT, once per other voter")
    parser.add_argument("--join", action="store_true", help="start as a non-voter waiting to be added")
    parser.add_argument("--cluster-secret-file")
    parser.add_argument("--tick-ms", type=float, default=50)
    parser.add_argument("--election-ticks", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=2.0, help="per request, seconds")
    parser.add_argument("--log-level", default="warning")
    parser.add_argument("--stall-file", help="while this file exists, each durable write waits its seconds")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        stream=sys.stderr,
        format=f"%(asctime)s node{args.id} %(levelname)s %(name)s: %(message)s",
    )
    try:
        trio.run(main_async, args)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
