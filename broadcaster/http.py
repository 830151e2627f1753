"""The HTTP admin port: Prometheus metrics, a /status JSON document and a live status page.

HTTP/1.1 is parsed by h11 (sans-IO, like protocol/), driven here by trio; docs/decisions/0003 says why.

    GET /          the status page (status_page.py: tables polling /status, charts of /history)
    GET /status    JSON: version, listeners, rooms, clients, this node's replication status, cluster nodes
    GET /history   JSON: this node's last ten minutes, one sample a second (health_history.py)
    GET /metrics   Prometheus text format
    GET /healthz   "ok" (never needs a token)
    GET /addon/blendsync.zip  the add-on built for this server (addon_download.py; never needs a token)
    GET /vendor/…  browser libraries from the npm registry (webassets.py; never need a token)
    GET /ws        the protocol over a WebSocket (websocket.py; the token goes in hello, as on the TCP port)
    GET /view/…    the browser viewer of a share link, its modules under /viewer/ (viewpage.py; no token:
                   the page's own share token goes in its hello)

With auth configured, every path but /healthz needs an admin token: ``Authorization: Bearer <token>`` or
``?token=<token>`` (the page passes its own query string on to /status).
"""

from __future__ import annotations

import gc
import json
import logging
import time
from functools import partial
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import h11
import trio

from protocol import ADDON_PATH

from . import __version__
from .collector import CollectorStats
from .http_admission import Admission
from .metrics import Exposition
from .status_page import STATUS_PAGE
from .viewpage import FILES_PREFIX as VIEWER_FILES_PREFIX
from .viewpage import VIEW_PREFIX, ViewerPage
from .webassets import PREFIX as VENDOR_PREFIX
from .webassets import WebAssets, default_root
from .websocket import PATH as WEBSOCKET_PATH
from .websocket import serve_websocket

if TYPE_CHECKING:
    from .server import Broadcaster

log = logging.getLogger("blendsync.http")

MAX_REQUEST_BYTES = 16 * 1024
ASSETS = WebAssets(default_root())
VIEWER = ViewerPage()


async def serve_http(broadcaster: Broadcaster, host: str, port: int, task_status=trio.TASK_STATUS_IGNORED):
    admission = Admission(max_waiting=broadcaster.config.max_clients)

    async def handler(stream: trio.SocketStream) -> None:
        accepted_at = trio.current_time()
        # The first request (an upgrade among them) is due within handshake_timeout of the accept, as a
        # hello on the client port is; waiting for a place counts.
        deadline = accepted_at + broadcaster.config.handshake_timeout
        try:
            async with admission.place(_peer_host(stream), deadline) as admitted:
                if not admitted:
                    await stream.aclose()
                    return
                upgrade = await _serve_connection(broadcaster, stream, deadline)
            if upgrade is not None:
                # A WebSocket is a client session (bounded by max_clients), not an admin connection.
                await serve_websocket(broadcaster, stream, _peer(stream), *upgrade, accepted_at)
        except Exception:
            # A server bug met by one connection's bytes costs that connection, not the server.
            log.exception("HTTP connection from %s failed", _peer(stream))
            await stream.aclose()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, handler, port, host=host))
        addresses = [listener.socket.getsockname() for listener in listeners]
        broadcaster.http_addresses = [f"{a[0]}:{a[1]}" for a in addresses]
        log.info("HTTP admin port on %s", ", ".join(broadcaster.http_addresses))
        task_status.started(listeners)


async def _serve_connection(
    broadcaster: Broadcaster, stream: trio.SocketStream, first_deadline: float
) -> tuple[h11.Request, bytes] | None:
    """Answer requests until the peer is done; a WebSocket upgrade is returned (with the bytes after it)
    for the caller to serve, with the stream left open. The first request is due by ``first_deadline``,
    each later one within ``handshake_timeout`` of the answer before it (an idle connection gives its
    place up)."""
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_REQUEST_BYTES)
    upgrade = None
    deadline = first_deadline
    try:
        while True:
            request = await _next_request(conn, stream, deadline)
            if request is None:
                return None
            path = urlsplit(request.target.decode("ascii", "replace")).path
            if path == WEBSOCKET_PATH and request.method == b"GET":
                upgrade = (request, conn.trailing_data[0])
                return upgrade
            try:
                status, content_type, body = _respond(broadcaster, request)
            except Exception:
                log.exception("HTTP %s failed", request.target)
                status, content_type, body = 500, "text/plain; charset=utf-8", b"internal error\n"
            headers = [
                ("content-type", content_type),
                ("content-length", str(len(body))),
                ("cache-control", "no-store"),
                ("x-content-type-options", "nosniff"),
            ]
            if status == 401:
                headers.append(("www-authenticate", 'Bearer realm="blendsync"'))
            await stream.send_all(conn.send(h11.Response(status_code=status, headers=headers)))
            if request.method != b"HEAD":
                await stream.send_all(conn.send(h11.Data(data=body)))
            await stream.send_all(conn.send(h11.EndOfMessage()))
            if conn.our_state is h11.MUST_CLOSE:
                return
            conn.start_next_cycle()
            deadline = trio.current_time() + broadcaster.config.handshake_timeout
    except h11.RemoteProtocolError as exc:
        await _refuse(stream, exc.error_status_hint)  # 431 for a head past MAX_REQUEST_BYTES, else 400
        return None
    except (h11.ProtocolError, trio.BrokenResourceError, trio.ClosedResourceError):
        return None
    finally:
        if upgrade is None:
            with trio.move_on_after(1) as scope:
                scope.shield = True
                await stream.aclose()


async def _refuse(stream: trio.SocketStream, status: int) -> None:
    """Answer a request that cannot be read, then close without a reset: what the client is still sending
    is read and dropped for up to a second, so that its side reads the answer before the close."""
    with trio.move_on_after(1):
        try:
            phrase = HTTPStatus(status).phrase.encode()
            await stream.send_all(
                b"HTTP/1.1 %d %s\r\nconnection: close\r\ncontent-length: 0\r\n\r\n" % (status, phrase)
            )
            await stream.send_eof()
            while await stream.receive_some(65536):
                pass
        except (ValueError, trio.BrokenResourceError, trio.ClosedResourceError):
            pass


def _peer_host(stream: trio.SocketStream) -> str:
    try:
        return str(stream.socket.getpeername()[0])
    except OSError:
        return "?"


def _peer(stream: trio.SocketStream) -> str:
    try:
        host, port = stream.socket.getpeername()[:2]
    except OSError:
        return "?"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def _next_request(
    conn: h11.Connection, stream: trio.SocketStream, deadline: float
) -> h11.Request | None:
    """The next complete request (its body, if any, is read and ignored); None when the peer is done or
    the request is not complete by ``deadline``."""
    request = None
    with trio.move_on_at(deadline):
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await stream.receive_some(65536)
                conn.receive_data(data)
                continue
            if isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.EndOfMessage):
                return request
            elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                return None
    return None


def _respond(broadcaster: Broadcaster, request: h11.Request) -> tuple[int, str, bytes]:
    if request.method not in (b"GET", b"HEAD"):
        return 405, "text/plain; charset=utf-8", b"only GET\n"
    url = urlsplit(request.target.decode("ascii", "replace"))
    path = url.path
    if path == "/healthz":
        return 200, "text/plain; charset=utf-8", b"ok\n"
    if path == ADDON_PATH:
        # The add-on is the same for everyone and holds no secret: no token, like /healthz.
        if broadcaster.addon is None:
            return 404, "text/plain; charset=utf-8", b"this server does not offer the add-on\n"
        return 200, "application/zip", broadcaster.addon.body
    if path.startswith(VENDOR_PREFIX):
        asset = ASSETS.get(path)
        if asset is None:
            if not ASSETS.installed:
                return 503, "text/plain; charset=utf-8", b"browser libraries missing: run scripts/bootstrap\n"
            return 404, "text/plain; charset=utf-8", b"not found\n"
        return 200, asset[0], asset[1]
    if path.startswith((VIEW_PREFIX, VIEWER_FILES_PREFIX)):
        page = VIEWER.get(path)
        return (200, *page) if page is not None else (404, "text/plain; charset=utf-8", b"not found\n")
    if path not in ("/", "/status", "/history", "/metrics"):
        return 404, "text/plain; charset=utf-8", b"not found\n"
    if broadcaster.tokens is not None and not _authorised(broadcaster, request, url.query):
        return 401, "text/plain; charset=utf-8", b"an admin token is required\n"
    if path == "/status":
        document = status_document(broadcaster)
        return 200, "application/json", json.dumps(document, default=_plain).encode()
    if path == "/history":
        history = broadcaster.health.document(broadcaster.config.node_id)
        return 200, "application/json", json.dumps(history).encode()
    if path == "/metrics":
        return 200, "text/plain; version=0.0.4; charset=utf-8", metrics_text(broadcaster).encode()
    return 200, "text/html; charset=utf-8", STATUS_PAGE.encode()


def _authorised(broadcaster: Broadcaster, request: h11.Request, query: str) -> bool:
    token = None
    for name, value in request.headers:
        if name == b"authorization" and value[:7].lower() == b"bearer ":
            token = value[7:].decode("ascii", "replace").strip()
    if token is None:
        token = (parse_qs(query).get("token") or [None])[0]
    user = broadcaster.authenticate(token)
    return user is not None and user.is_admin


def _plain(value: Any) -> Any:
    return value.hex() if isinstance(value, bytes) else str(value)


# ---- documents ---------------------------------------------------------------------------------------


def status_document(b: Broadcaster) -> dict[str, Any]:
    node = b.node.status()
    rooms = []
    for name in sorted(b.rooms):
        info = b.room_info(name)
        if info is not None:
            info["locks"] = len(b.rooms[name].locks) + len(b.rooms[name].prefix_locks)
            rooms.append(info)
    clients = [s.describe() for _, s in sorted(b.sessions.items())]
    return {
        "version": __version__,
        "uptime_seconds": round(time.time() - b.started, 1),
        "listen": b.listen_addresses,
        "tls": b.ssl_context is not None,
        "auth": b.tokens is not None,
        "connections": b.connections,
        "room_count": len(rooms),
        "client_count": len(clients),
        "rooms": rooms,
        "clients": clients,
        "rates": b.metrics.rates(),
        "node": node,
        "cluster": cluster_nodes(node),
        "addon": (
            {"version": b.addon.version, "path": ADDON_PATH, "sha256": b.addon.sha256}
            if b.addon is not None
            else None
        ),
    }


def cluster_nodes(status: dict[str, Any]) -> list[dict[str, Any]]:
    """Every member as this node sees it: role (its own, or leader/follower) and replication lag."""
    me, leader = status.get("id"), status.get("leader")
    addresses = status.get("addresses") or {}
    lag = status.get("lag") or {}
    connected = status.get("connected") or {}
    nodes = []
    for member in status.get("members") or [me]:
        role = status.get("role") if member == me else "leader" if member == leader else "follower"
        nodes.append(
            {
                "id": member,
                "self": member == me,
                "role": role,
                "address": addresses.get(str(member)),
                "lag": lag.get(str(member), lag.get(member, 0)) if member != me else 0,
                "connected": connected.get(str(member), True) if member != me else True,
            }
        )
    return nodes


def metrics_text(b: Broadcaster) -> str:
    m = b.metrics
    out = Exposition()
    out.one("blendsync_up", "gauge", "1 while the broadcaster serves.", 1)
    out.one("blendsync_connections", "gauge", "Open client connections.", b.connections)
    out.one("blendsync_connections_total", "counter", "Client connections accepted.", m.connections_total)
    out.one("blendsync_clients", "gauge", "Clients past hello on this node.", len(b.sessions))
    rooms = [info for name in sorted(b.rooms) if (info := b.room_info(name)) is not None]
    out.one("blendsync_rooms", "gauge", "Rooms.", len(rooms))
    out.one("blendsync_room_keys", "gauge", "Live keys over all rooms.", sum(r["keys"] for r in rooms))
    out.one(
        "blendsync_room_bytes", "gauge", "Bytes of values over all rooms.", sum(r["bytes"] for r in rooms)
    )
    out.one(
        "blendsync_locks",
        "gauge",
        "Key locks held.",
        sum(len(r.locks) + len(r.prefix_locks) for r in b.rooms.values()),
    )
    out.one("blendsync_blobs", "gauge", "Blobs stored (once per server).", len(b.blobs.sizes))
    out.one("blendsync_blob_bytes", "gauge", "Bytes of the stored blobs.", b.blobs.total_bytes)
    out.one("blendsync_blob_received_bytes_total", "counter", "blob_put bytes.", m.blob_bytes_received)
    out.one("blendsync_blob_sent_bytes_total", "counter", "blob_data sent.", m.blob_bytes_sent)
    out.one(
        "blendsync_operations_total",
        "counter",
        "Writes accepted from clients (rate() = ops/s).",
        m.operations,
    )
    out.one("blendsync_events_total", "counter", "Room events relayed.", m.events)
    out.one("blendsync_presence_updates_total", "counter", "Presence messages received.", m.presence)
    out.one("blendsync_received_bytes_total", "counter", "Bytes received from clients.", m.received_bytes)
    out.one("blendsync_sent_bytes_total", "counter", "Bytes sent to clients.", m.sent_bytes)
    queued = [s.out.queued_bytes for s in b.sessions.values()]
    out.one("blendsync_send_queue_bytes", "gauge", "Bytes queued to clients, all together.", sum(queued))
    out.one(
        "blendsync_send_queue_bytes_max",
        "gauge",
        "Bytes queued to the most behind client.",
        max(queued, default=0),
    )
    out.one(
        "blendsync_auth_failures_total",
        "counter",
        "Hellos refused for a missing, unknown or expired token.",
        m.auth_failures,
    )
    out.one(
        "blendsync_token_rechecks_total",
        "counter",
        "Hellos whose token this node did not know, looked up again once it had caught up with the cluster.",
        m.token_rechecks,
    )
    out.family(
        "blendsync_errors_total",
        "counter",
        "Error frames sent, by code.",
        [({"code": code}, n) for code, n in sorted(m.errors.items())],
    )
    out.family(
        "blendsync_limit_refusals_total",
        "counter",
        "Requests refused by a configured limit.",
        [({"limit": name}, n) for name, n in sorted(m.limits.items())],
    )
    out.histogram("blendsync_fsync_seconds", "Time to write and fsync one batch of the log.", m.fsync)
    out.histogram(
        "blendsync_write_seconds",
        "Time from a client write's arrival to its commit and fan-out to the room's members here.",
        m.writes,
    )
    _node_metrics(out, b.node.status())
    _collector_metrics(out, b.collector)
    return out.text()


def _collector_metrics(out: Exposition, timed: CollectorStats | None) -> None:
    """The process's garbage collections by generation; their time where blendsync serve times them."""
    generations = list(enumerate(gc.get_stats()))
    out.family(
        "blendsync_gc_collections_total",
        "counter",
        "Garbage collections of this process, by generation (2: full, walking every object).",
        [({"generation": g}, stats["collections"]) for g, stats in generations],
    )
    if timed is None:
        return
    out.family(
        "blendsync_gc_seconds_total",
        "counter",
        "Time this process spent in garbage collections, by generation: every client waits meanwhile.",
        [({"generation": g}, timed.seconds[g]) for g, _ in generations],
    )
    out.family(
        "blendsync_gc_longest_seconds",
        "gauge",
        "The longest garbage collection of this process, by generation.",
        [({"generation": g}, timed.longest[g]) for g, _ in generations],
    )
    out.one(
        "blendsync_gc_scheduled_total",
        "counter",
        "Full collections run by the server's policy: when idle, or after 10 minutes without one.",
        timed.scheduled,
    )


_NODE_COUNTERS = ("proposals", "batches", "fsyncs", "fsync_seconds", "apply_failures")


def _node_metrics(out: Exposition, status: dict[str, Any]) -> None:
    """Everything node.status() offers: numbers as gauges, the role as a labelled 1, maps by peer."""
    role = status.get("role")
    if role is not None:
        out.family(
            "blendsync_node_role",
            "gauge",
            "This node's Raft role (1 for the current one).",
            [({"role": r}, int(r == role)) for r in ("leader", "follower", "candidate", "pre_candidate")],
        )
    commit, applied = status.get("commit"), status.get("applied")
    if isinstance(commit, int) and isinstance(applied, int):
        out.one(
            "blendsync_node_apply_lag", "gauge", "Committed entries not yet applied here.", commit - applied
        )
    for name, value in sorted(status.items()):
        metric = "blendsync_node_" + "".join(c if c.isalnum() else "_" for c in name)
        if isinstance(value, bool):
            out.one(metric, "gauge", f"node.status()['{name}'].", int(value))
        elif isinstance(value, int | float) and name != "id":
            kind = "counter" if name in _NODE_COUNTERS else "gauge"
            out.one(
                metric + ("_total" if kind == "counter" else ""), kind, f"node.status()['{name}'].", value
            )
        elif (
            isinstance(value, dict)
            and value
            and all(isinstance(v, int | float | bool) for v in value.values())
        ):
            out.family(
                metric,
                "gauge",
                f"node.status()['{name}'] by peer.",
                [({"peer": k}, v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))],
            )
        elif isinstance(value, list) and name == "members":
            out.one("blendsync_node_members", "gauge", "Voting members of the cluster.", len(value))
    if "leader" in status:
        leader = status.get("leader")
        out.one(
            "blendsync_node_has_leader", "gauge", "1 when this node knows a leader.", int(leader is not None)
        )
