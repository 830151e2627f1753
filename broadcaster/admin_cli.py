"""``blendsync token ...`` (the tokens file) and ``blendsync admin ...`` (against a running server)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import trio

from .config import DEFAULT_PORT

DEFAULT_TOKENS_FILE = "tokens.toml"


def add_commands(commands: Any) -> None:
    token = commands.add_parser("token", help="manage users and their tokens (the tokens file)")
    token_commands = token.add_subparsers(dest="token_command", required=True)
    add = token_commands.add_parser("add", help="add a user (or give it a new token); prints the token once")
    add.add_argument("name")
    add.add_argument("--admin", action="store_true", help="give the user the admin role")
    remove = token_commands.add_parser("remove", help="remove a user: its token stops working")
    remove.add_argument("name")
    listing = token_commands.add_parser("list", help="list users and roles (tokens are not stored)")
    for sub in (add, remove, listing):
        sub.add_argument("--tokens-file", default=DEFAULT_TOKENS_FILE, help="default ./tokens.toml")
    token.set_defaults(func=_token)

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
    admin.set_defaults(func=_admin)


def _token(args: argparse.Namespace) -> int:
    from .auth import TokensFileError, add_user, read_users, remove_user

    path = Path(args.tokens_file)
    try:
        if args.token_command == "add":
            token = add_user(path, args.name, "admin" if args.admin else "user")
            print(token)
            print(
                f"added {args.name!r} ({'admin' if args.admin else 'user'}) to {path}; this token is shown"
                " only now (the file keeps its SHA-256)",
                file=sys.stderr,
            )
        elif args.token_command == "remove":
            if not remove_user(path, args.name):
                print(f"no user {args.name!r} in {path}", file=sys.stderr)
                return 1
        else:
            for user in read_users(path):
                print(f"{user['name']}\t{user['role']}")
    except TokensFileError as exc:
        print(f"blendsync: {exc}", file=sys.stderr)
        return 2
    return 0


def _admin(args: argparse.Namespace) -> int:
    from .client import ConnectionLost, ServerError
    from .roomfile import RoomFileError

    try:
        result = trio.run(_run_admin, args)
    except (ServerError, ConnectionLost, RoomFileError, OSError) as exc:
        print(f"blendsync admin: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result, indent=2, default=_jsonable))
    else:
        _print_human(args.action, result)
    return 0


async def _run_admin(args: argparse.Namespace) -> Any:
    from . import tls
    from .client import connect
    from .roomfile import read_room_file, write_room_file

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
        if args.action == "break-lock":
            return await client.admin("break_lock", room=args.room, keys=args.keys)
        if args.action == "export":
            exported = await client.export_room(args.room)
            write_room_file(args.file, exported)
            return {
                "room": args.room,
                "file": args.file,
                "keys": len(exported["items"]),
                "seq": exported["seq"],
            }
        assert document is not None
        return await client.import_room(document, name=args.name)


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
    else:
        print(json.dumps(result, default=_jsonable))
