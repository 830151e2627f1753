"""``blendsync admin ...``: operate a running broadcaster (needs an admin token)."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
from pathlib import Path
from typing import Any

import trio

from ..client import ServerError
from ..config import DEFAULT_PORT


def add_commands(commands: Any) -> None:
    admin = commands.add_parser("admin", help="operate a running broadcaster (needs an admin token)")
    admin.add_argument("--host", default="127.0.0.1")
    admin.add_argument("--port", type=int, default=DEFAULT_PORT)
    admin.add_argument("--token", help="admin token (default: $BLENDSYNC_TOKEN; keeps it out of ps)")
    admin.add_argument("--tls", action="store_true", help="connect with TLS")
    admin.add_argument("--ca", help="with --tls: trust this CA file instead of the system's")
    admin.add_argument("--json", action="store_true", help="print results as JSON")
    actions = admin.add_subparsers(dest="action", required=True)
    actions.add_parser("rooms", help="list rooms")
    actions.add_parser("clients", help="list clients connected to this node")
    kick = actions.add_parser("kick", help="disconnect a client")
    kick.add_argument("client_id")
    kick.add_argument("--reason", default=None)
    delete = actions.add_parser("delete-room", help="delete a room, even with clients in it")
    delete.add_argument("room")
    break_lock = actions.add_parser("break-lock", help="release locks on keys of a room")
    break_lock.add_argument("room")
    break_lock.add_argument("keys", nargs="+")
    export = actions.add_parser("export", help="write a room's state to a file")
    export.add_argument("room")
    export.add_argument("file")
    do_import = actions.add_parser("import", help="create a room from an export file")
    do_import.add_argument("file")
    do_import.add_argument("--as", dest="name", help="room name (default: the exported room's)")
    history = actions.add_parser("history", help="who last changed each key of a room, and when")
    history.add_argument("room")
    history.add_argument("--key", default="", help="only keys starting with this (literal, not a pattern)")
    history.add_argument(
        "--since", help="only changes at or after: unix seconds or ISO 8601 (UTC if no zone)"
    )
    history.add_argument("--limit", type=int, default=1000)
    backup = actions.add_parser("backup", help="copy the whole store into DIR while the server serves")
    backup.add_argument("dir", help="a new or empty directory")
    checkpoints = actions.add_parser("checkpoints", help="list a room's checkpoints")
    checkpoints.add_argument("room")
    share = actions.add_parser("share", help="a read-only browser link to a room (its owner or an admin)")
    share.add_argument("room")
    share.add_argument("--expires", default="7d", help="lifetime: 90s, 30m, 12h, 7d, 2w (default 7d)")
    shares = actions.add_parser("shares", help="list share links (of one room, or all for an admin)")
    shares.add_argument("room", nargs="?")
    revoke = actions.add_parser("revoke-share", help="revoke a share link; its viewers are closed at once")
    revoke.add_argument("name", help="the link's name, as listed by shares")
    admin.set_defaults(func=_admin)


def _admin(args: argparse.Namespace) -> int:
    from replication import BackupError

    from ..client import ConnectionLost, ServerError
    from ..invite import InviteError
    from ..roomfile import RoomFileError

    try:
        result = trio.run(_run_admin, args)
    except (ServerError, ConnectionLost, RoomFileError, InviteError, BackupError, ValueError, OSError) as exc:
        print(f"blendsync admin: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result, indent=2, default=_jsonable))
    else:
        _print_human(args.action, result)
    return 0


async def _run_admin(args: argparse.Namespace) -> Any:
    from .. import tls
    from ..client import connect
    from ..invite import parse_expiry
    from ..roomfile import read_room_file, write_room_file
    from ..roomtransfer import export_room, import_room

    token = args.token or os.environ.get("BLENDSYNC_TOKEN")
    context = tls.client_context(ca=args.ca) if args.tls else None
    document = read_room_file(args.file) if args.action == "import" else None
    async with connect(
        args.host, args.port, name="blendsync-admin", kind="admin", token=token, ssl_context=context
    ) as client:
        if args.action in ("rooms", "clients"):
            return await client.admin(args.action)
        if args.action == "kick":
            extra = {"reason": args.reason} if args.reason else {}
            return await client.admin("kick", client_id=args.client_id, **extra)
        if args.action == "delete-room":
            return await client.admin("delete_room", room=args.room)
        if args.action == "share":
            expires_in = parse_expiry(args.expires)
            if expires_in is None:
                raise ValueError("a share link always expires: --expires 7d, 2w, ...")
            return await client.admin("share", room=args.room, expires_in=expires_in)
        if args.action == "shares":
            return await client.admin("shares", **({"room": args.room} if args.room is not None else {}))
        if args.action == "revoke-share":
            return await client.admin("revoke_share", name=args.name)
        if args.action == "break-lock":
            return await client.admin("break_lock", room=args.room, keys=args.keys)
        if args.action == "history":
            since = _parse_time(args.since) if args.since else None
            extra = {"since": since} if since is not None else {}
            return await client.admin("history", room=args.room, prefix=args.key, limit=args.limit, **extra)
        if args.action == "backup":
            from ..backup import download

            return await download(client, Path(args.dir))
        if args.action == "checkpoints":
            return await client.admin("checkpoints", room=args.room)
        if args.action == "export":
            exported = await export_room(client, args.room)
            write_room_file(args.file, exported)
            return {
                "room": args.room,
                "file": args.file,
                "keys": len(exported["items"]),
                "seq": exported["seq"],
                "blobs": len(exported["blobs"]),
                "blob_bytes": sum(len(blob[1]) for blob in exported["blobs"]),
            }
        assert document is not None
        return await import_room(client, document, name=args.name)


def _parse_time(text: str) -> int:
    """Unix seconds, or an ISO 8601 time (UTC when it names no zone)."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        when = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise ServerError("bad_message", f"--since {text!r} is neither unix seconds nor ISO 8601") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return max(0, int(when.timestamp()))


def _utc(seconds: int) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _jsonable(value: Any) -> Any:
    return value.hex() if isinstance(value, bytes) else repr(value)


def _print_human(action: str, result: Any) -> None:
    if action == "rooms":
        print("room\tclients\tkeys\tbytes\tseq\tkeep_open\tpassword\tlocks")
        for r in result:
            print(
                f"{r['name']}\t{r['users']}\t{r['keys']}\t{r['bytes']}\t{r['seq']}\t{r['keep_open']}"
                f"\t{r['locked']}\t{r.get('locks', 0)}"
            )
    elif action == "clients":
        print("id\tname\trole\tpeer\troom\tconnected_s\toperations\tqueued_bytes")
        for c in result:
            print(
                f"{c['id']}\t{c['name']}\t{c['role']}\t{c['peer']}\t{c['room'] or '-'}"
                f"\t{c['connected_seconds']}\t{c['operations']}\t{c['queued_bytes']}"
            )
    elif action == "history":
        print("key\tseq\tby\tclient_id\ttime")
        for key, seq, client_id, name, when in result["keys"]:
            print(f"{key!r}\t{seq}\t{name}\t{client_id}\t{_utc(when)}")
        if result["truncated"]:
            print("(more keys: narrow with --key or raise --limit)")
    elif action == "checkpoints":
        print("id\tname\tby\ttime\tseq\tauto\tkeys")
        for c in result["checkpoints"]:
            print(
                f"{c['id']}\t{c['name']}\t{c['by']}\t{_utc(c['time'])}\t{c['seq']}\t{c['auto']}\t{c['keys']}"
            )
    elif action == "share":
        print(result["url"] or f"token {result['token']} (the server has no HTTP port: set http_port)")
        print(f"name {result['name']}, expires {_utc(result['expires_at'])}", file=sys.stderr)
    elif action == "shares":
        print("name\troom\texpires (UTC)")
        for s in result:
            print(f"{s['name']}\t{s['room']}\t{_utc(s['expires_at'])}{' (expired)' if s['expired'] else ''}")
    else:
        print(json.dumps(result, default=_jsonable))


def _utc(seconds: int | None) -> str:
    import datetime

    if seconds is None:
        return "never"
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%d %H:%M")
