"""``blendsync invite``: a link that lets one artist into one room (no server needed, like ``token add``).

It adds a user to the tokens file whose token is scoped to the room and expires, and prints
``blendsync://HOST:PORT/ROOM?token=...&pin=sha256:...``, the pin being the server certificate's.
"""

from __future__ import annotations

import argparse
import secrets
import socket
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

from .init import CONFIG_NAME, DEFAULT_DIR


def add_commands(commands: Any) -> None:
    invite = commands.add_parser("invite", help="print an invite link for one artist and one room")
    invite.add_argument("--data-dir", default=DEFAULT_DIR, help=f"what init wrote (default ./{DEFAULT_DIR})")
    invite.add_argument("--config", help=f"the server's config (default DATA_DIR/{CONFIG_NAME})")
    invite.add_argument("--room", help="the one room the link opens (default: any room)")
    invite.add_argument("--role", default="editor", choices=["editor", "viewer"])
    invite.add_argument("--expires", default="7d", help="e.g. 12h, 7d, 2w, or never (default 7d)")
    invite.add_argument("--name", help="the artist's user name, shown to others (default guest-XXXXXX)")
    invite.add_argument("--address", help="HOST[:PORT] artists reach the server at (default from the config)")
    invite.set_defaults(func=_invite)


def _invite(args: argparse.Namespace) -> int:
    from ..auth import add_user, read_users
    from ..config import load_config
    from ..invite import Invite, InviteError, parse_expiry
    from ..tls import certificate_pin

    if args.role == "viewer":
        print(  # an invite is a Blender link for an artist; reviewers watch in a browser
            "blendsync invite: invites are for artists (--role editor). A viewer gets a share link, made"
            " while the server runs: blendsync admin share ROOM [--expires 2d]"
            ' (docs/operations.md, "Share links")',
            file=sys.stderr,
        )
        return 2
    config_path = Path(args.config) if args.config else Path(args.data_dir) / CONFIG_NAME
    try:
        config = load_config(config_path)
        config.check()
        expires_in = parse_expiry(args.expires)
        if config.tokens_file is None:
            raise InviteError(f"{config_path} has no tokens_file: invites need auth (see blendsync init)")
        name = args.name or f"guest-{secrets.token_hex(3)}"
        if any(user["name"] == name for user in read_users(config.tokens_file)):
            raise InviteError(
                f"user {name!r} exists: pick another --name, or `blendsync token remove {name}`"
            )
        host, port = _address(args.address, config.host, config.port)
        pin = certificate_pin(config.tls_cert) if config.tls_cert is not None else None
        expires_at = None if expires_in is None else int(time.time()) + expires_in
        token = add_user(config.tokens_file, name, "user", room=args.room, expires_at=expires_at)
    except (OSError, tomllib.TOMLDecodeError, ValueError) as exc:  # InviteError, TokensFileError, ConfigError
        print(f"blendsync invite: {exc}", file=sys.stderr)
        return 2
    if pin is None:
        print(
            "warning: this server has no TLS: the token in this link crosses the network in clear",
            file=sys.stderr,
        )
    until = (
        "never expires"
        if expires_at is None
        else time.strftime("expires %Y-%m-%d %H:%M UTC", time.gmtime(expires_at))
    )
    where = f"room {args.room!r}" if args.room is not None else "any room"
    print(
        f"invited {name!r} to {where}; {until}; revoke with `blendsync token remove {name}`", file=sys.stderr
    )
    print(Invite(host, port, args.room, token, pin).link())
    return 0


def _address(given: str | None, host: str, port: int) -> tuple[str, int]:
    from ..invite import InviteError

    if given is None:
        # A server listening everywhere is reached by the machine's name.
        return (socket.getfqdn() if host in ("", "0.0.0.0", "::") else host), port
    number: str | None = None
    if given.startswith("["):  # [v6] or [v6]:port
        name, _, rest = given[1:].partition("]")
        if rest:
            if not rest.startswith(":"):
                raise InviteError(f"--address is HOST or HOST:PORT (got {given!r})")
            number = rest[1:]
    elif given.count(":") == 1:
        name, number = given.split(":")
    else:
        name = given  # a name, or a bare IPv6 address
    if not name or (number is not None and not (number.isdigit() and 0 < int(number) < 65536)):
        raise InviteError(f"--address is HOST or HOST:PORT (got {given!r})")
    return name, int(number) if number is not None else port
