"""``blendsync doctor``: check a server from the outside, as an artist's machine reaches it."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import trio

from ..config import DEFAULT_PORT


def add_commands(commands: Any) -> None:
    doctor = commands.add_parser("doctor", help="check a server as an artist's machine sees it")
    doctor.add_argument("link", nargs="?", help="an invite link (blendsync://...); or --host and --port")
    doctor.add_argument("--host", default="127.0.0.1")
    doctor.add_argument("--port", type=int, default=DEFAULT_PORT)
    doctor.add_argument("--token", help="token (default: $BLENDSYNC_TOKEN; a link carries its own)")
    doctor.add_argument("--pin", help="sha256:... of the server certificate (TLS without a CA)")
    doctor.add_argument("--tls", action="store_true", help="TLS, verified against the system's CAs or --ca")
    doctor.add_argument("--ca", help="with --tls: trust this CA file")
    doctor.add_argument("--timeout", type=float, default=5.0, help="seconds per step (default 5)")
    doctor.set_defaults(func=_doctor)


def _doctor(args: argparse.Namespace) -> int:
    from protocol.invite import check_pin_format

    from ..doctor import Target, diagnose
    from ..invite import Invite, InviteError
    from ..tls import client_context

    try:
        if not 0 < args.timeout <= 600:
            raise ValueError("--timeout must be more than 0 and at most 600 seconds")
        if args.link is not None:
            invite = Invite.parse(args.link)
            target = Target(invite.host, invite.port, invite.token, invite.pin, room=invite.room)
        else:
            if not 0 < args.port < 65536:
                raise ValueError(f"--port must be 1 to 65535 (got {args.port})")
            token = args.token or os.environ.get("BLENDSYNC_TOKEN") or None
            pin = check_pin_format(args.pin) if args.pin else None
            context = client_context(ca=args.ca, check_hostname=True) if args.tls and pin is None else None
            target = Target(args.host, args.port, token, pin, context)
        target.timeout = args.timeout
    except (InviteError, ValueError, OSError) as exc:
        print(f"blendsync doctor: {exc}", file=sys.stderr)
        return 2
    report = trio.run(diagnose, target)
    return 0 if report.healthy else 1
