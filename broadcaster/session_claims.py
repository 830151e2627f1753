"""Which user a session id belongs to, known to every node of a cluster (docs/security.md).

With auth on, the first `hello` that uses a session id claims it for its user in the replicated tree
(``/sessions/<id>`` = ``{"user", "t"}``), in one guarded transaction: a `hello` with that id by another user,
on any node, is refused (``forbidden``). Room members see each other's session ids; without this, a user
could take another's id on another node and pass as them, unlock their keys or take their op_ids. A
claim is refreshed at most once a day by its user's hellos and dropped by the leader once ``CLAIM_SECONDS``
old: a session id is random, and by then no client still resumes it. Artists' sessions are claimed here; a
share link's (hundreds connect at once, and they write nothing) and an admin's (admins may kick anyone, and
their tools connect once a command, often to a node that must answer without a quorum) are remembered
by the node that saw them, while it runs.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import trio

from replication import ReplicationError, TreeError

from .roomstore import RoomStore

log = logging.getLogger("blendsync.sessions")

SESSIONS = "sessions"
CLAIM_SECONDS = 30 * 86400  # a claim no hello refreshed for this long is dropped
REFRESH_SECONDS = 86400  # a claim older than this is refreshed by its user's next hello
PRUNE_PERIOD = 3600.0  # seconds between the leader's passes


def claim_path(client_id: str) -> tuple[str, str]:
    return (SESSIONS, client_id)


def claim_command(client_id: str, user: str, now: int, old: Any = None) -> dict[str, Any]:
    """Claim ``client_id`` for ``user``: only if nobody has (``old`` None), else only if the claim is still
    ``old`` (a refresh)."""
    path = list(claim_path(client_id))
    compare = {"not": {"exists": path}} if old is None else {"payload_equals": [path, old]}
    return {"compare": [compare], "then": [{"op": "put", "path": path, "payload": {"user": user, "t": now}}]}


class SessionClaims:
    def __init__(self, store: RoomStore):
        self.store = store

    def owner(self, client_id: str) -> tuple[str | None, Any]:
        """(the user this node's copy says claimed ``client_id``, the claim as stored)."""
        found = self.store.node.read_local(claim_path(client_id))
        payload = found[1] if found is not None else None
        user = payload.get("user") if isinstance(payload, dict) else None
        return (user if isinstance(user, str) else None), payload

    async def claim(self, client_id: str, user: str) -> bool:
        """Whether ``client_id`` is ``user``'s: claimed now, or by them before. Raises RequestError
        (``unavailable``) when the claim cannot be committed."""
        for _ in range(2):
            owner, stored = self.owner(client_id)
            now = int(time.time())
            if owner is not None:
                if owner == user and now - int(stored.get("t", 0) or 0) > REFRESH_SECONDS:
                    try:  # best effort: a claim that was not refreshed is claimed again after it goes
                        self.store.submit(claim_command(client_id, user, now, stored))
                    except (ReplicationError, TreeError) as exc:
                        log.debug("could not refresh the claim of a session: %s", exc)
                return owner == user
            if (await self.store.propose(claim_command(client_id, user, now))).get("succeeded"):
                return True
            # Claimed meanwhile (through another node): read who did; this node has applied it now.
        return False

    async def prune_pump(self) -> None:
        """On the leader: drop the claims no hello refreshed for ``CLAIM_SECONDS``."""
        while True:
            await trio.sleep(PRUNE_PERIOD)
            if self.store.node.status().get("role") == "leader":
                await self.prune(time.time())

    async def prune(self, now: float) -> int:
        """Drop the claims older than ``CLAIM_SECONDS`` (each only if unchanged); how many went."""
        stale = []
        for path, _, payload in self.store.node.match_local((SESSIONS, "*")):
            if not isinstance(payload, dict) or now - float(payload.get("t", 0) or 0) > CLAIM_SECONDS:
                stale.append((path, payload))
        dropped = 0
        for path, payload in stale:  # one guarded command each: a claim refreshed meanwhile stays
            command = {
                "compare": [{"payload_equals": [list(path), payload]}],
                "then": [{"op": "delete", "path": list(path)}],
            }
            try:
                if (await self.store.node.propose(command)).get("succeeded"):
                    dropped += 1
            except (ReplicationError, TreeError) as exc:  # no quorum: the next pass tries again
                log.debug("could not drop a session claim: %s", exc)
                break
        return dropped
