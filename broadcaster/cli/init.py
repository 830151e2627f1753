"""``blendsync init``: everything a studio server needs, in one directory, without questions.

It writes (each only if it does not exist yet, so running it again is safe and never replaces a secret):

    DIR/blendsync.toml      the config `blendsync serve --config` reads (with an HTTP port for the add-on)
    DIR/tokens.toml         the users, with an admin (0600; the admin token is printed once)
    DIR/tls/server.pem/.key a self-signed certificate and its key (0600); invite links pin it
    DIR/blendsync.service   a systemd unit running that config
    DIR/rooms/              the rooms (the server's data_dir)
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import shutil
import socket
import sys
from pathlib import Path
from typing import Any

from ..config import DEFAULT_PORT

DEFAULT_DIR = "blendsync-server"
DEFAULT_HTTP_PORT = 12880
CONFIG_NAME = "blendsync.toml"
ADMIN_NAME = "admin"


def add_commands(commands: Any) -> None:
    init = commands.add_parser("init", help="set up a server: config, admin token, certificate, systemd unit")
    init.add_argument("--data-dir", default=DEFAULT_DIR, help=f"where it all goes (default ./{DEFAULT_DIR})")
    init.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0: everywhere)")
    init.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"client port (default {DEFAULT_PORT})")
    init.add_argument(
        "--http-port",
        type=int,
        default=DEFAULT_HTTP_PORT,
        help=f"HTTP port: the add-on for artists, status page, metrics (default {DEFAULT_HTTP_PORT}, 0: off)",
    )
    init.add_argument("--tls-cert", help="use this PEM certificate instead of making a self-signed one")
    init.add_argument("--tls-key", help="the PEM private key of --tls-cert")
    init.set_defaults(func=_init)


def _init(args: argparse.Namespace) -> int:
    from ..auth import TokensFileError, add_user, read_users

    if (args.tls_cert is None) != (args.tls_key is None):
        print("blendsync init: --tls-cert and --tls-key go together", file=sys.stderr)
        return 2
    if not 0 < args.port < 65536:
        print(f"blendsync init: --port must be 1 to 65535 (got {args.port})", file=sys.stderr)
        return 2
    if not 0 <= args.http_port < 65536 or args.http_port == args.port:
        print(
            f"blendsync init: --http-port must be 0 to 65535, not --port (got {args.http_port})",
            file=sys.stderr,
        )
        return 2
    root = Path(args.data_dir).absolute()
    root.mkdir(parents=True, exist_ok=True)
    rooms = root / "rooms"
    rooms.mkdir(exist_ok=True)
    tokens = root / "tokens.toml"
    if args.tls_cert is not None:
        cert, key = Path(args.tls_cert).absolute(), Path(args.tls_key).absolute()
        for path in (cert, key):
            if not path.is_file():
                print(f"blendsync init: {path} does not exist", file=sys.stderr)
                return 2
    else:
        cert, key = root / "tls" / "server.pem", root / "tls" / "server.key"
    config = root / CONFIG_NAME
    unit = root / "blendsync.service"

    if config.exists():
        _say(f"kept {config} (edit it to change settings)")
    else:
        settings = {
            "host": args.host,
            "port": args.port,
            "data_dir": str(rooms),
            "tokens_file": str(tokens),
            "tls_cert": str(cert),
            "tls_key": str(key),
        }
        if args.http_port:  # artists download the add-on here; the rest of it needs the admin token
            settings.update(http_host=args.host, http_port=args.http_port)
        lines = ["# Written by `blendsync init`; docs/operations.md describes every setting.", "[server]"]
        lines += [f"{name} = {json.dumps(value, ensure_ascii=False)}" for name, value in settings.items()]
        _write_new(config, "\n".join(lines) + "\n", 0o644)
        _say(f"wrote {config}")

    admin_token = None
    try:
        if any(user["role"] == "admin" for user in read_users(tokens)):
            _say(f"kept {tokens} (it has an admin; `blendsync token add NAME --admin` makes another)")
        else:
            admin_token = add_user(tokens, ADMIN_NAME, "admin")
            _say(f"wrote {tokens} with the admin user {ADMIN_NAME!r}")
    except TokensFileError as exc:
        print(f"blendsync init: {exc}", file=sys.stderr)
        return 2

    if cert.exists() and key.exists():
        _say(f"kept {cert} and its key")
    elif cert.exists() or key.exists():
        # Half a pair: replacing either would break the other (or the links that pin it).
        print(f"blendsync init: only one of {cert} and {key} exists; restore or remove it", file=sys.stderr)
        return 2
    else:
        from ..tls import write_self_signed

        write_self_signed(cert, key, certificate_names(args.host))
        _say(f"wrote a self-signed certificate {cert} (key {key}, 0600)")

    if unit.exists():
        _say(f"kept {unit}")
    else:
        _write_new(unit, systemd_unit(config, root), 0o644)
        _say(f"wrote {unit}")

    if admin_token is not None:
        print(f"admin token (shown only now): {admin_token}")
    print("next:")
    print(f"  blendsync serve --config {_shell_quote(str(config))}")
    print(f"  blendsync invite --data-dir {_shell_quote(str(root))} --room ROOM   # a link for an artist")
    if args.http_port:
        host = args.host if args.host not in ("", "0.0.0.0", "::") else socket.getfqdn()
        shown = f"[{host}]" if ":" in host else host
        print(f"  (artists get the Blender add-on at http://{shown}:{args.http_port}/addon/blendsync.zip)")
    print(
        f"  (as a service: sudo cp {_shell_quote(str(unit))} /etc/systemd/system/ &&"
        " sudo systemctl enable --now blendsync)"
    )
    return 0


def certificate_names(host: str) -> list[str]:
    """The names a self-signed certificate lists: informative only, since invite links pin it."""
    names = [] if host in ("", "0.0.0.0", "::") else [host]
    names += [socket.getfqdn(), socket.gethostname(), "localhost", "127.0.0.1"]
    return [name for name in dict.fromkeys(names) if name]


def serve_command() -> list[str]:
    """How to start this installation's ``blendsync``: the installed script, else this interpreter."""
    script = shutil.which("blendsync")
    return [script] if script else [sys.executable, "-m", "broadcaster.cli"]


def systemd_unit(config: Path, root: Path) -> str:
    exec_start = " ".join(_unit_quote(part) for part in [*serve_command(), "serve", "--config", str(config)])
    return f"""[Unit]
Description=blendsync broadcaster
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
User={getpass.getuser()}
WorkingDirectory={_unit_path(root)}
ExecStart={exec_start}
Restart=on-failure
# SIGTERM stops the server cleanly (every acknowledged write is already on disk).
KillSignal=SIGTERM
NoNewPrivileges=true
PrivateTmp=true
ProtectSystem=full

[Install]
WantedBy=multi-user.target
"""


def _unit_quote(value: str) -> str:
    if value and not any(c in value for c in " \t\"'\\$%"):
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$")
    return f'"{escaped}"'


def _unit_path(path: Path) -> str:
    """Path settings take the rest of the line as it is: no quotes, only % escaped (a specifier)."""
    return str(path).replace("%", "%%")


def _shell_quote(value: str) -> str:
    import shlex

    return shlex.quote(value)


def _write_new(path: Path, text: str, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


def _say(message: str) -> None:
    print(message, file=sys.stderr)
