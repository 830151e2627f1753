"""Share links in the replicated tree, so that a link made through any node opens on every node.

Tree layout:
    /shares/<name>    {"token_sha256": hex, "room": str, "expires_at": int, "created_by": str,
                       "created_at": int, "revoked_at": int | None, "revoked_by": str | None,
                       "incarnation": str | None}
                      "incarnation" is the room's (its meta's) when the link was made: the link opens
                      that room only, not one made again under its name after a deletion (absent or
                      None in links made before rooms had incarnations: those go by the name).

Only the SHA-256 of a link's token is stored (auth.py says why a fast hash is enough for tokens). Every node
keeps an index of the links by hash, fed by a subscription in commit order, so looking a token up at
``hello`` reads no disk and asks no other node. A token the index does not hold may be a link just made
through another node and not applied here yet: the node first catches up with the cluster (``caught_up``, a
read barrier through the leader, at most LOOKUP_TIMEOUT) and looks again before refusing it. A revoked link
keeps its record (the refusal can say so, at once) until it would have expired; records past their expiry
are dropped when a new link is made.

Made, listed and revoked by shares.py; the sessions of a link revoked on any node are closed by every node
as it applies the revocation (server.py), and those of a link that expires by expiry.py.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import trio

from replication import Node, ReplicationError, TreeError, WatchEvent

from .auth import TokensFileError, User, hash_token, read_users, remove_user
from .errors import RequestError
from .roomstore import fence

SHARES = "shares"
LOOKUP_TIMEOUT = 5.0  # a hello with a token unknown here waits at most this long for the node to catch up

log = logging.getLogger("blendsync.shares")


def share_path(name: str) -> tuple[str, ...]:
    return (SHARES, name)


def share_record(
    token_sha256: str,
    room: str,
    expires_at: int | None,
    created_by: str,
    created_at: int,
    incarnation: str | None = None,
) -> dict[str, Any]:
    return {
        "token_sha256": token_sha256,
        "room": room,
        "expires_at": expires_at,
        "created_by": created_by,
        "created_at": created_at,
        "revoked_at": None,
        "revoked_by": None,
        "incarnation": incarnation,
    }


def link_opens(linked: str | None, incarnation: str | None) -> bool:
    """Whether a link made for a room of incarnation ``linked`` opens the room of its name that has
    ``incarnation`` now: not a room made again under the name after a deletion (maybe by someone else)."""
    return linked is None or linked == incarnation


EMPTY_RECORD = share_record("", "", None, "", 0)


def create_share_command(name: str, record: dict[str, Any], drop: Sequence[str] = ()) -> dict[str, Any]:
    """Add a link (never over an existing name), dropping the records listed in ``drop`` (expired ones)."""
    path = list(share_path(name))
    then = [{"op": "delete", "path": list(share_path(old))} for old in drop]
    return {
        "compare": [{"not": {"exists": path}}],
        "then": [*then, {"op": "put", "path": path, "payload": record}],
    }


def revoke_share_command(name: str, record: dict[str, Any], revoked: dict[str, Any]) -> dict[str, Any]:
    """Mark a link revoked, if its record is still the one the caller read."""
    path = list(share_path(name))
    return {
        "compare": [{"payload_equals": [path, record]}],
        "then": [{"op": "put", "path": path, "payload": revoked}],
    }


class ShareStore:
    """This node's view of the share links: an index by token hash, kept in commit order."""

    def __init__(self, node: Node, on_closed: Callable[[str, str], None]):
        """``on_closed(name, reason)`` is called when a link stops working: revoked or deleted."""
        self.node = node
        self.on_closed = on_closed
        self._by_name: dict[str, dict[str, Any]] = {}
        self._by_hash: dict[str, str] = {}  # token_sha256 -> name
        # Read and subscribe with no await in between: every later change is seen once (Node.subscribe).
        for path, _, record in node.match_local((SHARES, "*")):
            self._note(path[-1], record)
        self._subscription = node.subscribe((SHARES, "*"), self._on_event)

    def _note(self, name: str, record: Any) -> None:
        old = self._by_name.pop(name, None)
        if old is not None and self._by_hash.get(old["token_sha256"]) == name:
            del self._by_hash[old["token_sha256"]]
        # Only this module writes the records; anything else under /shares/ is ignored, never fatal.
        if isinstance(record, dict) and isinstance(record.get("token_sha256"), str):
            self._by_name[name] = {**EMPTY_RECORD, **record}
            self._by_hash[record["token_sha256"]] = name

    def _on_event(self, event: WatchEvent) -> None:
        name = event.path[-1]
        record = None if event.action == "delete" else event.payload
        was_open = name in self._by_name and self._by_name[name].get("revoked_at") is None
        self._note(name, record)
        if was_open and (record is None or record.get("revoked_at") is not None):
            self.on_closed(name, "this share link was revoked")

    def records(self) -> list[tuple[str, dict[str, Any]]]:
        return sorted(self._by_name.items())

    def get(self, name: str) -> dict[str, Any] | None:
        return self._by_name.get(name)

    def knows(self, token: str) -> bool:
        """Whether a link with this token was applied here (open, revoked or expired)."""
        return hash_token(token) in self._by_hash

    async def caught_up(self) -> bool:
        """Wait until this node has applied everything committed before now (a ReadIndex round through the
        leader, docs/raft.md); False when that could not be learnt within LOOKUP_TIMEOUT (no quorum)."""
        with trio.move_on_after(LOOKUP_TIMEOUT):
            try:
                await fence(self.node)
            except RequestError:
                return False
            return True
        return False

    def authenticate(self, token: str, now: float) -> User | None:
        """The viewer user of a link's token; None when unknown, revoked or expired at ``now``."""
        name = self._by_hash.get(hash_token(token))
        if name is None:
            return None
        record = self._by_name[name]
        user = User(name, "viewer", record["room"], record["expires_at"], record.get("incarnation"))
        if record.get("revoked_at") is not None or user.expired(now):
            return None
        return user


def links_in_tokens_file(path: Path) -> list[dict[str, Any]]:
    """The viewer users of a tokens file: the share links made before links were replicated."""
    try:
        return [u for u in read_users(path) if u["role"] == "viewer"]
    except (OSError, TokensFileError) as exc:
        log.warning("share links in %s not imported: %s", path, exc)
        return []


def import_command(user: dict[str, Any], now: int) -> dict[str, Any]:
    record = share_record(user["token_sha256"], user["room"], user.get("expires_at"), "", now)
    return create_share_command(user["name"], record)


def forget_imported(path: Path, user: dict[str, Any], stored: dict[str, Any] | None) -> None:
    """Remove an imported link from the tokens file once the tree holds it with the same token."""
    if stored is None or stored["token_sha256"] != user["token_sha256"]:
        log.warning("share link %r of the tokens file not imported: that name is taken", user["name"])
        return
    try:
        remove_user(path, user["name"])
    except (OSError, TokensFileError) as exc:
        log.warning("share link %r imported but left in %s: %s", user["name"], path, exc)


async def import_tokens_file_links(node: Node, path: Path, links: ShareStore) -> None:
    """Move the tokens file's share links into the tree (retried until a leader commits them), so that
    links made before they were replicated open on every node; each leaves the file once stored."""
    for user in links_in_tokens_file(path):
        while True:
            try:
                await node.propose(import_command(user, int(time.time())))
                break
            except ReplicationError:
                await trio.sleep(0.5)  # no leader yet
            except TreeError as exc:
                log.warning("share link %r of the tokens file not imported: %s", user["name"], exc)
                return
        forget_imported(path, user, links.get(user["name"]))
