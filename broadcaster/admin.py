"""Admin requests (the admin role): rooms and clients, kicking, deleting rooms, breaking locks, cluster
membership, and a room's export and import (docs/operations.md)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from protocol import Admin, AdminResult, Error, ErrorCode, ExportBlob, ExportItems
from protocol.events import check_key, check_room_name
from protocol.limits import KEY_AUTHORS, KEY_REFS, join_reason
from replication import Node, NotLeader, ReplicationError, TreeError

from . import history
from .backup import Backups
from .blob_layout import blob_path, key_hold_changes, pin_holder, release_ops, room_refs_path
from .blobs import Blobs
from .errors import RequestError
from .hub import Hub
from .rooms import encode_frame
from .roomstore import (
    RoomStore,
    abandon_import_command,
    break_locks_command,
    delete_room_command,
    import_command,
    new_incarnation,
)
from .session import Session

EXPORT_CHUNK_BYTES = 1024 * 1024
ROOM_META_FIELDS = ("keep_open", "password", "created_by")

log = logging.getLogger("blendsync.server")


class AdminActions:
    """One ``_admin_<action>`` method per admin action; ``handle`` checks the role and answers."""

    def __init__(
        self,
        store: RoomStore,
        hub: Hub,
        node: Node,
        client_addresses: Callable[[], list[str]],
        backups: Backups,
        blobs: Blobs,
        builder_mark: Callable[[], dict[str, Any]],
    ):
        self.store = store
        self.builder_mark = builder_mark  # names this process in a hidden import (history_parts.py)
        self.hub = hub
        self.node = node  # cluster membership and status
        self.client_addresses = client_addresses
        self.backups = backups
        self.blobs = blobs  # the tree edges an export follows

    async def handle(self, session: Session, request: Admin) -> None:
        if not session.user.is_admin:
            raise RequestError(ErrorCode.FORBIDDEN, f"{request.action} needs the admin role")
        args = request.args
        handler = getattr(self, f"_admin_{request.action}")
        result = await handler(session, args, request.ref)
        if result is not None:
            session.send(AdminResult(action=request.action, result=result, ref=request.ref))

    async def _admin_rooms(self, session: Session, args: dict[str, Any], ref: int | None) -> Any:
        rooms = []
        for name in sorted(self.hub.rooms):
            info = self.hub.room_info(name)
            if info is not None:
                room = self.hub.rooms[name]
                info["clients"] = [member.name for member in room.members.values()]
                info["locks"] = len(room.locks) + len(room.prefix_locks)
                rooms.append(info)
        return rooms

    async def _admin_status(self, session: Session, args: dict[str, Any], ref: int | None) -> Any:
        """This node's replication status and the cluster's client addresses."""
        return {**self.node.status(), "clients": self.client_addresses(), "sessions": len(self.hub.sessions)}

    async def _admin_add_member(self, session: Session, args: dict[str, Any], ref: int | None) -> Any:
        node_id, address = args.get("node_id"), args.get("raft")
        if type(node_id) is not int or not isinstance(address, str):
            raise RequestError(ErrorCode.BAD_MESSAGE, "add_member needs node_id (int) and raft (host:port)")
        await self._membership(self.node.add_member(node_id, address))
        return self.node.status()["members"]

    async def _admin_remove_member(self, session: Session, args: dict[str, Any], ref: int | None) -> Any:
        node_id = args.get("node_id")
        if type(node_id) is not int:
            raise RequestError(ErrorCode.BAD_MESSAGE, "remove_member needs node_id (int)")
        await self._membership(self.node.remove_member(node_id))
        return self.node.status()["members"]

    async def _membership(self, change: Any) -> None:
        try:
            await change
        except NotLeader as exc:
            leader = self.node.read_local(("cluster", "nodes", str(exc.leader))) if exc.leader else None
            where = f" ({leader[1].get('client')})" if leader else ""
            raise RequestError(ErrorCode.UNAVAILABLE, f"ask the leader, node {exc.leader}{where}") from None
        except ReplicationError as exc:
            raise RequestError(ErrorCode.UNAVAILABLE, str(exc)) from None

    async def _admin_clients(self, session: Session, args: dict[str, Any], ref: int | None) -> Any:
        return [s.describe() for _, s in sorted(self.hub.sessions.items())]

    async def _admin_kick(self, session: Session, args: dict[str, Any], ref: int | None) -> Any:
        client_id = _arg(args, "client_id", str)
        target = self.hub.sessions.get(client_id)
        if target is None:
            raise RequestError(ErrorCode.NO_SUCH_CLIENT, f"no client {client_id!r} on this node")
        reason = _arg(args, "reason", str, required=False) or "disconnected by an admin"
        log.info("admin %s kicks %s (%s): %s", session.name, client_id, target.name, reason)
        target.fail(ErrorCode.KICKED, reason)
        return {"client_id": client_id, "name": target.name}

    async def _admin_delete_room(self, session: Session, args: dict[str, Any], ref: int | None) -> Any:
        name = _room_arg(args)
        if self.store.find_meta(name) is None:
            raise RequestError(ErrorCode.NO_SUCH_ROOM, f"no room {name!r}")
        room = self.hub.rooms.get(name)
        members = len(room.members) if room is not None else 0
        result = await self.store.propose(delete_room_command(name))
        if not result.get("succeeded"):
            raise RequestError(ErrorCode.NO_SUCH_ROOM, f"no room {name!r}")
        log.info("admin %s deleted room %s (%d clients were in it)", session.name, name, members)
        return {"room": name, "clients": members}

    async def _admin_break_lock(self, session: Session, args: dict[str, Any], ref: int | None) -> Any:
        name = _room_arg(args)
        self.store.meta(name)
        keys = args.get("keys") or []
        prefixes = args.get("prefixes") or []
        if not keys and not prefixes:
            raise RequestError(
                ErrorCode.BAD_MESSAGE, "args.keys (or args.prefixes) must name a lock to break"
            )
        room = self.hub.rooms.get(name)
        held = sorted(k for k in set(keys) if room is not None and k in room.locks)
        held_prefixes = sorted(p for p in set(prefixes) if room is not None and p in room.prefix_locks)
        if held or held_prefixes:
            await self.store.propose(break_locks_command(name, held, held_prefixes))
        result: dict[str, Any] = {"room": name, "released": held}
        if prefixes:
            result["released_prefixes"] = held_prefixes
        return result

    async def _admin_export(self, session: Session, args: dict[str, Any], ref: int | None) -> Any:
        """Stream the room's keys (with the blobs each references and, with ``authors``, who last changed
        each) as export_items, then every blob they reference or hold through tree nodes as export_blob (a
        node with its children, after them), then its meta and seq in admin_result (one snapshot). Frames
        are made as the connection takes them: a blob is read when its frame is due, one at a time."""
        name = _room_arg(args)
        with_authors = _arg(args, "authors", bool, required=False) or False
        meta = self.store.meta(name)
        # No await from here on: the items, their refs, authors and the seq are one consistent state.
        seq = self.hub.current_seq(name)
        items = self.store.items(name)
        refs = {key: list(found) for key, _, found in self.node.list_local(room_refs_path(name))}
        authors: dict[str, list[Any]] = {}
        if with_authors:  # blame's rows: a key without a record is found in the retained log, if it is
            rows, _ = history.blame(self.node, name, meta.get("seq_base", 0), "", None, max(len(items), 1))
            # A row the client would refuse (whatever old server wrote it) is left out: its key is the
            # importer's, and the export goes through.
            authors = {row[0]: row for row in rows if KEY_AUTHORS.reason([row]) is None}
        blobs = self.blobs.trees({blob for found in refs.values() for blob in found})
        node = self.node

        def frames() -> Iterator[bytes]:
            chunk: list[list[Any]] = []
            chunk_refs: list[list[Any]] = []
            chunk_authors: list[list[Any]] = []
            size = 0

            def items_frame() -> bytes:
                found = chunk_authors if with_authors else None
                return encode_frame(
                    ExportItems(room=name, items=chunk, refs=chunk_refs, ref=ref, authors=found)
                )

            for key, value in items:
                chunk.append([key, value])
                size += len(key) + len(value) + 16
                if key in refs:
                    chunk_refs.append([key, refs[key]])
                    size += 32 * len(refs[key]) + 16
                if key in authors:
                    row = authors[key]
                    chunk_authors.append(row)
                    size += len(key) + len(row[2]) + len(row[3]) + 32
                if size >= EXPORT_CHUNK_BYTES:
                    yield items_frame()
                    chunk, chunk_refs, chunk_authors, size = [], [], [], 0
            if chunk:
                yield items_frame()
            blob_bytes = 0
            for blob, children in blobs:
                data = node.read_blob(blob)  # its bytes are beside the tree, not in it (storage layout 3)
                if data is None:
                    # Released since the snapshot: the key (or the tree) that held it changed meanwhile.
                    message = f"blob {blob.hex()} of room {name!r} went during the export: export again"
                    yield encode_frame(Error(code=ErrorCode.CONFLICT, message=message, ref=ref))
                    return
                blob_bytes += len(data)
                yield encode_frame(ExportBlob(hash=blob, data=data, ref=ref, children=children or None))
            result = {
                "room": name,
                "meta": {k: meta.get(k) for k in ROOM_META_FIELDS},
                "seq": seq,
                "key_count": len(items),
                "blob_count": len(blobs),
                "blob_bytes": blob_bytes,
            }
            yield encode_frame(AdminResult(action="export", result=result, ref=ref))

        session.send_stream(frames())
        return None

    async def _admin_history(self, session: Session, args: dict[str, Any], ref: int | None) -> Any:
        """Who last changed each key (with ``prefix``, at or after ``since``), as the history message."""
        name = _room_arg(args)
        await self.store.fence()
        meta = self.store.meta(name)
        prefix = _arg(args, "prefix", str, required=False) or ""
        since = _arg(args, "since", int, required=False)
        limit = _arg(args, "limit", int, required=False) or 1000
        rows, truncated = history.blame(self.node, name, meta.get("seq_base", 0), prefix, since, limit)
        return {"room": name, "keys": rows, "truncated": truncated}

    async def _admin_checkpoints(self, session: Session, args: dict[str, Any], ref: int | None) -> Any:
        name = _room_arg(args)
        await self.store.fence()
        self.store.meta(name)
        return {"room": name, "checkpoints": history.checkpoint_list(self.node, name)}

    async def _admin_backup(self, session: Session, args: dict[str, Any], ref: int | None) -> Any:
        """Stream a consistent copy of the whole store: backup_data chunks, then the manifest."""
        log.info("admin %s takes a backup", session.name)
        session.send_stream(await self.backups.frames(ref))
        return None

    async def _admin_import(self, session: Session, args: dict[str, Any], ref: int | None) -> Any:
        """Create a room from exported state. A large import comes in parts (``more``): the room stays
        hidden until the last part commits, so it appears complete or not at all."""
        name = _room_arg(args)
        items = _arg(args, "items", list)
        more = _arg(args, "more", bool, required=False) or False
        for item in items:
            if not (
                isinstance(item, list)
                and len(item) == 2
                and isinstance(item[0], str)
                and isinstance(item[1], bytes)
            ):
                raise RequestError(ErrorCode.BAD_MESSAGE, "args.items must be [key: str, value: bin] pairs")
            try:
                check_key(item[0])
            except ValueError as exc:
                raise RequestError(ErrorCode.INVALID_KEY, str(exc)) from None
        refs = _import_refs(args, items)
        rows = _import_authors(args, items)
        staged = session.imports.get(name)
        if staged is None:
            if self.store.find_meta(name) is not None:
                raise RequestError(ErrorCode.ROOM_EXISTS, f"room {name!r} already exists")
            self.hub.check_room_count()
            meta_in = _arg(args, "meta", dict, required=False) or {}
            seq = _arg(args, "seq", int, required=False) or 0
            password = meta_in.get("password")
            if password is not None and not (isinstance(password, dict) and password.get("kdf") == "scrypt"):
                raise RequestError(ErrorCode.BAD_MESSAGE, "meta.password must be a stored scrypt hash or nil")
            final = {
                "keep_open": bool(meta_in.get("keep_open", False)),
                "password": password,
                "created_by": str(meta_in.get("created_by") or session.name),
                "seq_base": max(0, seq),
                "incarnation": new_incarnation(),  # every part keeps it (import_command)
            }
            previous = None
            when = int(time.time())
        else:
            final, previous, when = staged
        # Hidden until the last part; the mark (node, process, time of this part) lets the leader remove it if
        # this server stops before the last part comes (history_parts.py), which the end of the connection
        # does otherwise.
        hidden = {"import": {**self.builder_mark(), "client": session.client_id}}
        current = {**final, "importing": hidden} if more else final
        seq_base = final["seq_base"]
        carried: dict[str, list[Any]] = {}
        for key, changed, client_id, by, at in rows:  # the file's: changes at or before the imported state
            if changed > seq_base:
                raise RequestError(
                    ErrorCode.BAD_MESSAGE,
                    f"args.authors: key {key!r} changed at seq {changed}, after {seq_base}",
                )
            carried[key] = [changed - seq_base, client_id, by, at]
        # A key the file names no author for is the importing admin's, at the import's seq and time.
        importer = [session.client_id, session.name, when]
        command = import_command(name, items, previous, current, importer, carried)
        for key, blobs in refs.items():  # the keys hold their blobs from this commit on, as after a set
            compare, then, gained = key_hold_changes(name, key, (), blobs)
            command["compare"] += compare
            command["then"] += then + release_ops(gained, pin_holder(session.client_id))
        result = await self.store.propose(command)
        if not result.get("ok"):
            await self.abandon_import_now(session, name)
            raise RequestError(ErrorCode.BAD_MESSAGE, result.get("message", "import refused"))
        if not result.get("succeeded"):
            missing = [
                b for found in refs.values() for b in found if self.node.read_local(blob_path(b)) is None
            ]
            if staged is not None or missing:
                await self.abandon_import_now(session, name)
            else:
                session.imports.pop(name, None)
            if missing:
                raise RequestError(
                    ErrorCode.NO_SUCH_BLOB,
                    f"blob {missing[0].hex()} is not on the server: upload the export's blobs first"
                    " (blendsync admin import does)",
                )
            if staged is not None:
                raise RequestError(ErrorCode.BAD_MESSAGE, f"the import of {name!r} changed meanwhile")
            raise RequestError(ErrorCode.ROOM_EXISTS, f"room {name!r} already exists")
        if more:
            session.imports[name] = (final, current, when)
        else:
            session.imports.pop(name, None)
            log.info("admin %s imported room %s", session.name, name)
        return {"room": name, "keys": self.store.key_count(name), "done": not more}

    async def abandon_import_now(self, session: Session, name: str) -> None:
        """Remove an unfinished import before answering: the next ``import`` of the name must not find it."""
        staged = session.imports.pop(name, None)
        if staged is None:
            return
        try:
            await self.store.propose(abandon_import_command(name, staged[1]))
        except RequestError as exc:
            log.warning("could not remove the unfinished import of %s: %s", name, exc)

    def abandon_import(self, session: Session, name: str) -> None:
        staged = session.imports.pop(name, None)
        if staged is None:
            return
        try:
            self.store.submit(abandon_import_command(name, staged[1]))
        except (ReplicationError, TreeError) as exc:
            log.warning("could not remove the unfinished import of %s: %s", name, exc)


def _import_refs(args: dict[str, Any], items: list[list[Any]]) -> dict[str, list[bytes]]:
    """An import part's ``refs``: [key, blobs] for keys of its own items, each once."""
    pairs = _arg(args, "refs", list, required=False) or []
    reason = KEY_REFS.reason(pairs)
    if reason is not None:
        raise RequestError(ErrorCode.BAD_MESSAGE, f"args.refs{join_reason(reason)}")
    keys = {item[0] for item in items}
    refs: dict[str, list[bytes]] = {}
    for key, blobs in pairs:
        if key not in keys or key in refs:
            raise RequestError(ErrorCode.BAD_MESSAGE, f"args.refs names key {key!r} twice or not in items")
        if blobs:
            refs[key] = blobs
    return refs


def _import_authors(args: dict[str, Any], items: list[list[Any]]) -> list[list[Any]]:
    """An import part's ``authors``: [key, seq, client_id, name, time] for keys of its items, each once."""
    rows = _arg(args, "authors", list, required=False) or []
    reason = KEY_AUTHORS.reason(rows)
    if reason is not None:
        raise RequestError(ErrorCode.BAD_MESSAGE, f"args.authors{join_reason(reason)}")
    keys = {item[0] for item in items}
    seen: set[str] = set()
    for row in rows:
        if row[0] not in keys or row[0] in seen:
            raise RequestError(
                ErrorCode.BAD_MESSAGE, f"args.authors names key {row[0]!r} twice or not in items"
            )
        seen.add(row[0])
    return rows


def _arg(args: dict[str, Any], name: str, kind: type, *, required: bool = True) -> Any:
    value = args.get(name)
    if value is None:
        if required:
            raise RequestError(ErrorCode.BAD_MESSAGE, f"args.{name} is missing")
        return None
    if type(value) is not kind:
        raise RequestError(ErrorCode.BAD_MESSAGE, f"args.{name} must be {kind.__name__}")
    return value


def _room_arg(args: dict[str, Any]) -> str:
    name = _arg(args, "room", str)
    try:
        check_room_name(name)
    except ValueError as exc:
        raise RequestError(ErrorCode.BAD_MESSAGE, str(exc)) from None
    return name
