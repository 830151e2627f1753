"""``blendsync token ...``: users and their tokens in the tokens file (no server needed)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

DEFAULT_TOKENS_FILE = "tokens.toml"


def add_commands(commands: Any) -> None:
    token = commands.add_parser("token", help="manage users and their tokens (the tokens file)")
    token_commands = token.add_subparsers(dest="token_command", required=True)
    add = token_commands.add_parser("add", help="add a user (or give it a new token); prints the token once")
    add.add_argument("name")
    add.add_argument("--admin", action="store_true", help="give the user the admin role")
    remove = token_commands.add_parser("remove", help="remove a user: its token stops working")
    remove.add_argument("name")
    listing = token_commands.add_parser(
        "list", help="list users, roles, rooms, expiries (tokens are not stored)"
    )
    for sub in (add, remove, listing):
        sub.add_argument("--tokens-file", default=DEFAULT_TOKENS_FILE, help="default ./tokens.toml")
    token.set_defaults(func=_token)


def _token(args: argparse.Namespace) -> int:
    from ..auth import TokensFileError, add_user, read_users, remove_user

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
                # Invites (room-scoped, expiring tokens) show their room and expiry; others "*" and "never".
                expires_at = user.get("expires_at")
                expiry = (
                    "never"
                    if expires_at is None
                    else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires_at))
                )
                print(f"{user['name']}\t{user['role']}\t{user.get('room', '*')}\t{expiry}")
    except TokensFileError as exc:
        print(f"blendsync: {exc}", file=sys.stderr)
        return 2
    return 0
