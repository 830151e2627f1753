"""Per-user tokens: a TOML file of users, each with a role and the SHA-256 of its token.

    [[users]]
    name = "ana"
    role = "admin"            # or "user", or "viewer" (read-only, a share link: always with a room)
    token_sha256 = "9f86d0..."
    room = "shot-010"         # optional: the token enters this room only (an invite)
    expires_at = 1767225600   # optional: Unix time after which the token is refused

Tokens are 256 random bits, so a fast hash is enough to store them (docs/security.md says why passwords,
which people choose, need a KDF and tokens do not). The file is re-read when it changes, so adding or
removing a user takes effect for the next connection without a restart.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

from protocol import limits

ROLES = ("viewer", "user", "admin")
TOKEN_PREFIX = "bst_"
REQUIRED_FIELDS = ("name", "role", "token_sha256")
OPTIONAL_FIELDS = ("room", "expires_at")
# Unix seconds: the year 9999, far enough for "never" and within what every clock and datetime can show.
MAX_EXPIRES_AT = 253_402_300_799


class TokensFileError(ValueError):
    pass


@dataclass(frozen=True)
class User:
    name: str
    role: str
    room: str | None = None  # set: this user may create, join and delete only this room
    expires_at: int | None = None
    # A share link's room as it was when the link was made (its meta's "incarnation"): a room deleted and
    # made again under the name is another room, which the link does not open. None: a link made before
    # rooms had incarnations, bound to the name alone.
    incarnation: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def is_viewer(self) -> bool:
        """Read-only in its one room (docs/security.md, "Roles in a room")."""
        return self.role == "viewer"

    def may_use_room(self, room: str) -> bool:
        return self.room is None or self.room == room

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at


# The identity every client has on a server without auth: it trusts whoever can reach it.
ANONYMOUS_ADMIN = User(name="", role="admin")


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def check_user_name(name: str) -> None:
    """User names follow the protocol's grammar: clients check the names they are shown."""
    try:
        limits.check_user_name(name)
    except ValueError as exc:
        raise TokensFileError(str(exc)) from None


def read_users(path: Path) -> list[dict[str, str]]:
    """The users in a tokens file, checked (a missing file has none)."""
    try:
        with open(path, "rb") as f:
            document = tomllib.load(f)
    except FileNotFoundError:
        return []
    except tomllib.TOMLDecodeError as exc:
        raise TokensFileError(f"{path}: {exc}") from None
    users = document.get("users", [])
    if not isinstance(users, list):
        raise TokensFileError(f"{path}: 'users' must be an array of tables ([[users]])")
    seen: set[str] = set()
    for user in users:
        if (
            not isinstance(user, dict)
            or not set(REQUIRED_FIELDS) <= set(user)
            or set(user) - {*REQUIRED_FIELDS, *OPTIONAL_FIELDS}
        ):
            raise TokensFileError(
                f"{path}: each [[users]] has name, role and token_sha256, and may have room and expires_at"
            )
        check_user_name(user["name"])
        if user["role"] not in ROLES:
            raise TokensFileError(f"{path}: role of {user['name']!r} must be one of {ROLES}")
        digest = user["token_sha256"]
        if not isinstance(digest, str) or len(digest) != 64 or set(digest) - set("0123456789abcdef"):
            raise TokensFileError(f"{path}: token_sha256 of {user['name']!r} is not a SHA-256 hex digest")
        check_scope(user.get("room"), user.get("expires_at"), f"{path}: user {user['name']!r}: ")
        if user["role"] == "viewer" and user.get("room") is None:
            raise TokensFileError(f"{path}: viewer {user['name']!r} needs a room")
        if user["name"] in seen:
            raise TokensFileError(f"{path}: user {user['name']!r} appears twice")
        seen.add(user["name"])
    return users


def check_scope(room: object, expires_at: object, where: str = "") -> None:
    """A token's optional room (a room name) and expiry (Unix seconds, 0 to MAX_EXPIRES_AT)."""
    if room is not None:
        if not isinstance(room, str):
            raise TokensFileError(f"{where}room must be a string")
        try:
            limits.check_room_name(room)
        except ValueError as exc:
            raise TokensFileError(f"{where}{exc}") from None
    if expires_at is not None and (type(expires_at) is not int or not 0 <= expires_at <= MAX_EXPIRES_AT):
        raise TokensFileError(f"{where}expires_at must be Unix seconds from 0 to {MAX_EXPIRES_AT}")


def write_users(path: Path, users: list[dict[str, str]]) -> None:
    """Replace the tokens file atomically, readable by its owner only."""
    lines = [
        "# blendsync users. Only a SHA-256 of each token is stored: a lost token cannot be recovered,",
        "# make a new one with `blendsync token add NAME`.",
    ]
    for user in users:
        lines += ["", "[[users]]"]
        # Not ASCII-escaped: JSON escapes characters beyond U+FFFF as surrogate pairs, which TOML refuses.
        lines += [
            f"{field} = {json.dumps(user[field], ensure_ascii=False)}"
            for field in (*REQUIRED_FIELDS, *OPTIONAL_FIELDS)
            if user.get(field) is not None
        ]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def add_user(
    path: Path,
    name: str,
    role: str = "user",
    *,
    room: str | None = None,
    expires_at: int | None = None,
) -> str:
    """Add ``name`` (or give it a new token if it exists); return the token, which is stored only hashed.

    With ``room`` the token enters only that room; with ``expires_at`` (Unix seconds) it stops working then.
    """
    check_user_name(name)
    if role not in ROLES:
        raise TokensFileError(f"role must be one of {ROLES}")
    check_scope(room, expires_at)
    if role == "viewer" and room is None:
        raise TokensFileError("a viewer token is for one room")
    users = [u for u in read_users(path) if u["name"] != name]
    token = new_token()
    user: dict = {"name": name, "role": role, "token_sha256": hash_token(token)}
    if room is not None:
        user["room"] = room
    if expires_at is not None:
        user["expires_at"] = expires_at
    users.append(user)
    write_users(path, users)
    return token


def remove_user(path: Path, name: str) -> bool:
    users = read_users(path)
    kept = [u for u in users if u["name"] != name]
    if len(kept) == len(users):
        return False
    write_users(path, kept)
    return True


class TokenStore:
    """Looks tokens up by their hash; reloads the file when its modification time or size changes."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._stamp: tuple[int, int] | None = None
        self._by_hash: dict[str, User] = {}
        self.reload()

    def reload(self) -> None:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            raise TokensFileError(
                f"tokens file {self.path} does not exist (create it with `blendsync token add NAME"
                f" --tokens-file {self.path}`)"
            ) from None
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp == self._stamp:
            return
        users = read_users(self.path)
        self._by_hash = {
            u["token_sha256"]: User(u["name"], u["role"], u.get("room"), u.get("expires_at")) for u in users
        }
        self._stamp = stamp

    def __len__(self) -> int:
        return len(self._by_hash)

    def authenticate(self, token: str | None, now: float | None = None) -> User | None:
        """The user of ``token``; None when it is unknown or expired (at ``now``, default the clock's)."""
        if not token:
            return None
        try:
            self.reload()
        except (OSError, TokensFileError):
            pass  # keep serving with the users loaded last; a broken edit does not lock everyone out
        # The lookup key is a hash of the presented token, so lookup timing tells nothing about stored
        # tokens (an attacker controls the input, not the hash's bits).
        user = self._by_hash.get(hash_token(token))
        if user is not None and user.expired(time.time() if now is None else now):
            return None
        return user
