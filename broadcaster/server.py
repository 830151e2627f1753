"""The broadcaster: accepts connections, answers each session's requests, and wires the parts together.

Below it, each with one concern: hub.py (sessions, room membership, fan-out, the room list), joins.py,
writes.py, locks.py, admin.py, and roomstore.py (rooms in the replicated tree). Nothing below imports this
module (tests/broadcaster/test_layering.py).
"""

from __future__ import annotations

import logging
import secrets
import time
from functools import partial
from typing import Any

import trio

from protocol import (
    PROTOCOL_MIN,
    PROTOCOL_VERSION,
    Ack,
    Admin,
    Batch,
    BlobGet,
    BlobPut,
    BlobQuery,
    Checkpoint,
    CreateRoom,
    Delete,
    DeleteCheckpoint,
    DeleteRoom,
    ErrorCode,
    Event,
    Fork,
    Hello,
    History,
    JoinRoom,
    LeaveRoom,
    Left,
    ListCheckpoints,
    ListRooms,
    Lock,
    Ping,
    Pong,
    Presence,
    Replay,
    Restore,
    RoomCreated,
    RoomDeleted,
    RoomEvent,
    Set,
    SetRetention,
    Unlock,
    Welcome,
    mismatch_reason,
    negotiate,
)
from replication import Node, ReplicationError, WatchEvent

from . import __version__, passwords, tls
from .addon_download import AddonZip, download_url, version_advice
from .admin import AdminActions
from .auth import ANONYMOUS_ADMIN, TokenStore, User
from .backup import Backups
from .blobs import Blobs
from .checkpoints import HistoryMaintenance, RoomHistory
from .collector import CollectorStats
from .config import ServerConfig, is_loopback
from .direct_writes import DirectWrites
from .errors import RequestError
from .expiry import ExpiryTimer
from .health_history import HealthHistory
from .hub import Hub
from .joins import Joins
from .locks import Locks
from .metrics import Metrics
from .password_attempts import PasswordGuard
from .roles import check_request
from .rooms import VIEWER_KIND
from .roomstore import RoomStore, create_room_command, delete_room_command
from .session import Session
from .session_claims import SessionClaims
from .shares import ACTIONS as SHARE_ACTIONS
from .shares import Shares, public_http_address
from .sharestore import ShareStore, import_tokens_file_links
from .writes import Writes

MAX_REMEMBERED_SESSIONS = 100_000

log = logging.getLogger("blendsync.server")


class Broadcaster:
    def __init__(self, config: ServerConfig, node: Node):
        self.config = config
        self.node = node
        self.version = __version__
        self.listen_addresses: list[str] = []
        self.http_addresses: list[str] = []
        self.http_port: int | None = None  # the HTTP port's own, once it listens
        self.addon: AddonZip | None = None  # the add-on zip the HTTP port offers (app.py builds it)
        self.metrics = Metrics()
        self.password_guard = PasswordGuard(config, self.metrics)
        node.on_fsync = self.metrics.observe_fsync
        self.health = HealthHistory()  # the status page's charts
        self.started = time.time()
        self.connections = 0  # open client connections, with or without a completed hello
        self.collector: CollectorStats | None = None  # the process's collections, under blendsync serve
        config.check()
        self.tokens = TokenStore(config.tokens_file) if config.tokens_file is not None else None
        self.ssl_context = (
            tls.server_context(config.tls_cert, config.tls_key, client_ca=config.tls_client_ca)
            if config.tls_cert is not None and config.tls_key is not None
            else None
        )
        self._session_owners: dict[str, str] = {}  # session id -> user name (with auth)
        self.store = RoomStore(node)
        self.hub = Hub(config, self.store, self.metrics)
        self.rooms = self.hub.rooms  # the same dict and registry, for the status page and metrics
        self.sessions = self.hub.sessions
        self.peers = self.hub.peers
        self.locks = Locks(self.store, self.hub)
        self.claims = SessionClaims(self.store)
        self.joins = Joins(config, self.store, self.hub, self.password_guard)
        self.blobs = Blobs(config, node, self.metrics, self.hub.sessions)
        self.writes = Writes(config, self.store, self.hub, self.metrics, self.blobs)
        self.history = RoomHistory(config, self.store, self.hub)
        backups = Backups(config.data_dir, node, self.version)
        self.admin = AdminActions(
            self.store, self.hub, node, self.client_addresses, backups, self.blobs, self.history.mark
        )
        self.share_links = ShareStore(node, self._close_link)
        self.expiry = ExpiryTimer()
        self.direct_writes = DirectWrites()  # the WebSocket viewers' fan-out (websocket.py)
        self.shares = Shares(
            config.tokens_file is not None,
            self.store,
            self.share_links,
            self.sessions,
            lambda: public_http_address(self.http_addresses, config.advertise),
        )
        self.hub.load_rooms()
        self._subscription = self.store.subscribe(self._on_tree_event)

    # ---- serving ------------------------------------------------------------------------------------

    async def serve(self, task_status=trio.TASK_STATUS_IGNORED) -> None:
        self.locks.release_stale()
        async with trio.open_nursery() as nursery:
            if self.ssl_context is not None:
                serve = partial(
                    trio.serve_ssl_over_tcp,
                    self._handle_connection,
                    self.config.port,
                    self.ssl_context,
                    host=self.config.host,
                )
            else:
                serve = partial(
                    trio.serve_tcp, self._handle_connection, self.config.port, host=self.config.host
                )
            listeners = await nursery.start(serve)
            self.listen_addresses = [
                _format_address(_socket(listener).getsockname()) for listener in listeners
            ]
            nursery.start_soon(self.hub.room_list_pump)
            nursery.start_soon(self.locks.locks_pump)
            nursery.start_soon(self.blobs.release_pump)
            nursery.start_soon(self.peers.run)
            nursery.start_soon(self._register_node)
            nursery.start_soon(self.expiry.run)
            nursery.start_soon(self.claims.prune_pump)
            nursery.start_soon(self.locks.dead_node_pump, self.peers.heard.get, self.config.dead_node_timeout)
            nursery.start_soon(self.direct_writes.run)
            if self.config.tokens_file is not None:  # links made before links were replicated
                links = self.share_links
                nursery.start_soon(import_tokens_file_links, self.node, self.config.tokens_file, links)
            nursery.start_soon(self._metrics_sampler)
            nursery.start_soon(HistoryMaintenance(self.config, self.history).run)
            log.info(
                "listening on %s (%s, %s)",
                ", ".join(self.listen_addresses),
                "TLS" if self.ssl_context is not None else "plain TCP",
                f"{len(self.tokens)} users" if self.tokens is not None else "no auth",
            )
            if self.tokens is not None and self.ssl_context is None and not is_loopback(self.config.host):
                log.warning("tokens and scenes cross the network in clear: configure tls_cert and tls_key")
            task_status.started(listeners)

    async def _handle_connection(self, stream: trio.abc.Stream) -> None:
        try:
            peer = _format_address(_socket(stream).getpeername())
        except OSError:
            peer = "?"
        self.connections += 1
        self.metrics.connections_total += 1
        try:
            await Session(self, stream, peer).run()
        finally:
            self.connections -= 1

    async def _metrics_sampler(self) -> None:
        while True:
            self.metrics.sample(trio.current_time())
            self.health.sample(time.time(), self.metrics, len(self.sessions), self.node.status())
            await trio.sleep(1.0)

    def activity(self) -> int:
        """A number that changes whenever this node works: a write committed or replicated, a byte received
        from or sent to a client (a viewer's keep-alive too), a connection (the garbage collection policy
        waits for it to rest: collector.py)."""
        m = self.metrics
        return self.node.tree.applied_index + m.received_bytes + m.sent_bytes + m.connections_total

    def room_info(self, name: str) -> dict[str, Any] | None:
        return self.hub.room_info(name)

    async def claim_session(self, client_id: str, user: User) -> bool:
        """With auth, a session id stays with the first user that used it: an artist's on every node
        (session_claims; a node that cannot commit the claim refuses the hello, as it would the join),
        an admin's or a share link's on this node while this process runs."""
        if self.tokens is None:
            return True
        owner = self._session_owners.get(client_id)
        if owner is not None:
            return owner == user.name
        if not (user.is_viewer or user.is_admin) and not await self.claims.claim(client_id, user.name):
            return False
        if len(self._session_owners) >= MAX_REMEMBERED_SESSIONS:
            for stale in list(self._session_owners)[: MAX_REMEMBERED_SESSIONS // 10]:
                if stale not in self.sessions:
                    del self._session_owners[stale]
        self._session_owners[client_id] = user.name
        return True

    def authenticate(self, token: str | None) -> User | None:
        """The user a token names, as this node knows it now (the HTTP port's admin check)."""
        user = self._user_of(token)
        if user is None:
            self.metrics.auth_failures += 1
        return user

    def _user_of(self, token: str | None) -> User | None:
        """Without auth configured, everyone is a trusted admin."""
        if self.tokens is None:
            return ANONYMOUS_ADMIN
        user = self.tokens.authenticate(token)
        if user is None and token:
            user = self.share_links.authenticate(token, time.time())
        return user

    async def _hello_user(self, session: Session, token: str | None) -> User | None:
        """The user a hello's token names. A token this node does not know may be a share link made
        through another node a moment ago: the node catches up with the cluster, then looks again
        (sharestore.py). None: the session was failed (auth_failed; unavailable when the cluster could
        not be asked)."""
        user = self._user_of(token)
        if user is None and token and self.tokens is not None and not self.share_links.knows(token):
            self.metrics.token_rechecks += 1
            if not await self.share_links.caught_up():
                session.fail(
                    ErrorCode.UNAVAILABLE,
                    "this node cannot reach the cluster to check the token (no quorum): try again",
                )
                return None
            user = self._user_of(token)
        if user is None:
            self.metrics.auth_failures += 1
            session.fail(
                ErrorCode.AUTH_FAILED,
                "missing, unknown or expired token" if token else "a token is required",
            )
        return user

    def client_addresses(self) -> list[str]:
        """Where clients can reach the cluster: this node first, then the others (from the registry)."""
        own = self.config.advertise or (self.listen_addresses[0] if self.listen_addresses else None)
        others = [
            payload["client"]
            for path, _, payload in self.node.match_local(("cluster", "nodes", "*"))
            if isinstance(payload, dict)
            and payload.get("client") not in (None, own)
            and int(path[-1]) in self.node.voters
        ]
        return ([own] if own else []) + others

    async def _register_node(self) -> None:
        """Record this node's client address in the replicated registry (retried until it commits)."""
        own = self.config.advertise or self.listen_addresses[0]
        record = {"client": own, "raft": self.node.raft_address}
        path = ["cluster", "nodes", str(self.node.node_id)]
        while True:
            found = self.node.read_local(tuple(path))
            if found is not None and found[1] == record:
                return
            try:
                await self.node.propose({"then": [{"op": "put", "path": path, "payload": record}]})
            except ReplicationError:
                await trio.sleep(0.5)  # no leader yet

    # ---- requests -------------------------------------------------------------------------------------

    async def handle(self, session: Session, event: Event) -> None:
        """Answer one request of ``session`` (a RequestError becomes an error frame)."""
        check_request(session.user, event)  # a viewer reads its room and does nothing else
        match event:
            case Hello():
                await self._hello(session, event)
            case Ping(nonce=nonce):
                session.send(Pong(nonce=nonce))
            case Pong():
                pass
            case ListRooms(subscribe=subscribe, ref=ref):
                self.hub.list_rooms(session, subscribe, ref)
            case CreateRoom() | JoinRoom() | DeleteRoom() if not session.user.may_use_room(event.room):
                # A room-scoped token (an invite) enters its room only (docs/security.md).
                raise RequestError(ErrorCode.FORBIDDEN, "this token is for another room")
            case CreateRoom():
                await self.create_room(session, event)
            case JoinRoom():
                await self.joins.join_room(session, event)
                self.locks.adopt(session)
            case LeaveRoom(ref=ref):
                await self.leave_room(session, ref)
            case DeleteRoom():
                await self.delete_room(session, event)
            case Set(op_id=op_id, key=key, value=value, seen=seen):
                await self.writes.write(session, op_id, [["set", key, value]], seen)
            case Delete(op_id=op_id, key=key, seen=seen):
                await self.writes.write(session, op_id, [["delete", key]], seen)
            case Batch(op_id=op_id, ops=ops, seen=seen):
                await self.writes.write(session, op_id, ops, seen)
            case BlobQuery() | BlobPut() | BlobGet():
                await self.blobs.handle(session, event)
            case RoomEvent(op_id=op_id, value=value):
                session.check_op_rate()
                self.metrics.events += 1
                self.hub.relay_event(session, op_id, value)
            case Presence(state=state):
                session.update_presence(state)
            case Lock():
                await self.locks.lock(session, event)
            case Unlock():
                await self.locks.unlock(session, event)
            case Admin(action=action) if action in SHARE_ACTIONS:
                await self.shares.handle(session, event)  # a room's owner may share it, not only admins
            case Admin():
                await self.admin.handle(session, event)
            case (
                History()
                | Checkpoint()
                | ListCheckpoints()
                | DeleteCheckpoint()
                | Restore()
                | Fork()
                | Replay()
                | SetRetention()
            ):
                await self.history.handle(session, event)
            case _:
                raise RequestError(ErrorCode.UNKNOWN_TYPE, f"{event.TYPE} is not a request")

    async def _hello(self, session: Session, hello: Hello) -> None:
        client_min, client_max = hello.versions
        version = negotiate(client_min, client_max, PROTOCOL_MIN, PROTOCOL_VERSION)
        if version is None:
            # Before the token: an old add-on learns where to get a new one whoever runs it.
            session.fail(ErrorCode.VERSION_MISMATCH, self._version_advice(session, client_min, client_max))
            return
        user = await self._hello_user(session, hello.token)
        if user is None:
            return
        client_id = hello.session or secrets.token_hex(16)
        try:
            claimed = await self.claim_session(client_id, user)
        except RequestError as exc:  # no quorum here to record the claim: the client tries another node
            session.fail(exc.code, f"cannot start the session now: {exc.message}")
            return
        if not claimed:
            # Session ids are visible to other members; one user must not take over another's session.
            session.fail(ErrorCode.FORBIDDEN, "this session id belongs to another user")
            return
        limit = self.config.max_clients
        if limit and len(self.sessions) >= limit and client_id not in self.sessions:
            self.metrics.limit("max_clients")
            session.fail(ErrorCode.LIMIT_EXCEEDED, f"max_clients ({limit}) reached: try again later")
            return
        session.user = user
        session.client_id = client_id
        session.protocol = version
        # With auth, others see the authenticated user, not a name the client chose.
        session.name = user.name or hello.client_name
        # "viewer" is what members count to know someone watches (docs/values.md): the role says it.
        kind = "client" if hello.client_kind == VIEWER_KIND else hello.client_kind
        session.kind = VIEWER_KIND if user.is_viewer else kind
        self.hub.register(session)
        self.expiry.add(session)  # a share link's session closes when its link expires
        self.blobs.session_back(client_id)
        session.send(
            Welcome(
                protocol=version,
                server_version=self.version,
                session=session.client_id,
                client_id=session.client_id,
                nodes=self.client_addresses(),
                max_frame_size=self.config.max_frame_size,
                heartbeat_interval=self.config.heartbeat_interval,
                user=user.name or None,
                role=user.role if self.tokens is not None else None,
                protocol_min=PROTOCOL_MIN,
                protocol_max=PROTOCOL_VERSION,
                addon_version=self.addon.version if self.addon is not None else None,
                addon_port=self.http_port if self.addon is not None else None,
                addon_sha256=self.addon.sha256 if self.addon is not None else None,
            )
        )

    def _version_advice(self, session: Session, client_min: int, client_max: int) -> str:
        url = None
        if self.addon is not None and self.http_port is not None:
            try:
                url = download_url(_socket(session.stream).getsockname()[0], self.http_port)
            except OSError:
                url = None
        return version_advice(
            mismatch_reason(client_min, client_max, PROTOCOL_MIN, PROTOCOL_VERSION),
            client_older=client_max < PROTOCOL_MIN,
            addon=self.addon,
            url=url,
            server_version=self.version,
        )

    def detach(self, session: Session) -> None:
        """Take a session out of its room and every registry (it is closing)."""
        self.hub.list_subscribers.discard(session)
        if session.room is not None:
            self.locks.release(session, session.room)
            self.hub.remove_member(session)
        for room in list(session.imports):
            self.admin.abandon_import(session, room)
        self.hub.unregister(session)
        self.expiry.discard(session)
        if session.client_id and session.client_id not in self.sessions:
            self.blobs.session_gone(session.client_id)

    def relay_presence(self, session: Session, state: dict[str, Any]) -> None:
        self.hub.relay_presence(session, state)

    def _close_link(self, name: str, reason: str) -> None:
        """A share link was revoked (through any node): close its sessions here."""
        for session in list(self.sessions.values()):
            if session.user.name == name and session.user.is_viewer:
                session.fail(ErrorCode.AUTH_FAILED, reason)

    # ---- room lifecycle -----------------------------------------------------------------------------

    async def create_room(self, session: Session, request: CreateRoom) -> None:
        self.hub.check_room_count()
        password = None
        if request.password is not None:
            password = await passwords.hash_password(request.password)
        meta = {"keep_open": request.keep_open, "password": password, "created_by": session.name}
        result = await self.store.propose(create_room_command(request.room, meta))
        if not result.get("succeeded"):
            raise RequestError(ErrorCode.ROOM_EXISTS, f"room {request.room!r} already exists")
        session.send(RoomCreated(room=request.room, ref=request.ref))

    async def leave_room(self, session: Session, ref: int | None) -> None:
        room = session.room
        if room is None:
            raise RequestError(ErrorCode.NOT_IN_ROOM, "not in a room")
        self.locks.release(session, room)
        self.hub.remove_member(session)
        session.left = (room, session.last_op_id)
        session.send(Left(room=room.name, ref=ref))
        meta = self.store.find_meta(room.name)
        everyone_left = not room.members and not self.peers.count(room.name)
        if everyone_left and meta is not None and not meta.get("keep_open"):
            # The last member left on purpose: a room that is not kept open goes (a dropped connection
            # does not count as leaving, so a crash never deletes work). This room only: not one created
            # again under its name before the delete commits.
            await self.store.propose(delete_room_command(room.name, meta))

    async def delete_room(self, session: Session, request: DeleteRoom) -> None:
        meta = self.store.meta(request.room)
        if not session.user.is_admin and meta.get("created_by") != session.user.name:
            raise RequestError(
                ErrorCode.FORBIDDEN, f"only its creator or an admin may delete room {request.room!r}"
            )
        in_use = self.hub.in_use(request.room)
        if in_use:
            raise RequestError(ErrorCode.ROOM_IN_USE, f"room {request.room!r} has {in_use} clients")
        # The room whose creator was checked: not one created again under its name before this commits.
        result = await self.store.propose(delete_room_command(request.room, meta))
        if not result.get("succeeded"):
            raise RequestError(ErrorCode.NO_SUCH_ROOM, f"no room {request.room!r}: it was deleted meanwhile")
        session.send(RoomDeleted(room=request.room, ref=request.ref))

    # ---- replicated state -> this node ------------------------------------------------------------------

    def _on_tree_event(self, event: WatchEvent) -> None:
        """Called in commit order for every change under /rooms (on every node of a cluster)."""
        path = event.path
        if len(path) < 2:
            return
        name = path[1]
        if len(path) == 2 or path[2] == "meta":
            if event.action == "delete":
                if self.hub.room_gone(name):
                    self.locks.forget(name)
            elif len(path) == 3:
                self.hub.note_meta(name, event.payload, event.props.created_index)
            return
        if path[2] == "refs" and len(path) == 4:
            self.blobs.note_key_refs(name, path[3], None if event.action == "delete" else event.payload)
            return
        if len(path) == 4 and path[2] in ("locks", "plocks") and event.action != "delete":
            self.locks.release_if_orphaned(name, path[3], event.payload, prefix=path[2] == "plocks")
        room = self.rooms.get(name)
        if room is None or len(path) != 4:
            return
        if path[2] == "keys":
            room.note_key(path[3], None if event.action == "delete" else len(event.payload))
            self.hub.room_changed(name)
        elif path[2] == "log" and event.action == "create":
            seq = int(path[3]) + room.seq_base
            room.fan_out(seq, event.payload, self.blobs.pushed)
            author = self.hub.sessions.get(event.payload["c"])
            if author is not None and author.left is not None:
                left_room, last_op_id = author.left
                if left_room is room and event.payload["o"] <= last_op_id:
                    # Sent before its author left the room (e.g. pipelined with leave_room): it committed
                    # all the same, so it is answered, after `left`, outside any room stream.
                    author.send(Ack(op_id=event.payload["o"], seq=seq))
        elif path[2] in ("locks", "plocks"):
            payload = None if event.action == "delete" else event.payload
            self.locks.lock_event(room, path[3], payload, prefix=path[2] == "plocks")


def _socket(thing: Any) -> Any:
    """The socket under a listener or stream, plain or TLS."""
    while not hasattr(thing, "socket"):
        thing = thing.transport_listener if hasattr(thing, "transport_listener") else thing.transport_stream
    return thing.socket


def _format_address(sockname: Any) -> str:
    host, port = sockname[0], sockname[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
