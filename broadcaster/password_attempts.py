"""Slowing room-password guessing: wrong passwords counted per client address and per room.

Past a free allowance of failures, each further wrong password locks the address (or the room) out for a
time that doubles, up to a cap; while locked out, a join is refused with ``rate_limited`` before any
password is hashed, right or wrong, so a lockout costs the server nothing and tells a guesser nothing.
Password checks run one at a time (scrypt is costly by design), so a crowd of guesses can use at most one
core and every guess sees the lockouts earlier ones caused. The rules and numbers are in docs/security.md.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import random
from collections import OrderedDict
from typing import Any

import trio

from protocol import ErrorCode

from . import passwords
from .config import ServerConfig
from .errors import RequestError
from .metrics import Metrics

log = logging.getLogger("blendsync.passwords")

FORGET_AFTER = 15 * 60.0  # seconds after its last failure that a record is dropped (its count restarts)
ADMITTED_FOR = 24 * 3600.0  # an address that joined a room with its password passes that room's lockout
MAX_RECORDS = 10_000  # per table; past it the least recently used record is dropped
MAX_WAITING_PER_ADDRESS = 4  # checks queued or running from one address; more are refused at once
MAX_WAITING = 64  # checks queued or running in all


def address_key(peer: str) -> str:
    """The unit counted for a client: its IPv4 address, or its IPv6 /64 (one host usually has a whole /64)."""
    host = peer.rsplit(":", 1)[0].strip("[]")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def _spread(seconds: float) -> float:
    """How long to stop reading from a refused connection: the retry time and up to half as much again, so
    that connections refused together do not all come back in the same instant."""
    return seconds * random.uniform(1.0, 1.5)


class Failures:
    """Wrong passwords per key; past ``free`` of them, a lockout of ``first`` seconds that doubles per failure
    up to ``longest``. ``free`` = 0: no limit. At most ``capacity`` keys are kept (least recently failed
    dropped first)."""

    def __init__(self, free: int, first: float, longest: float, capacity: int = MAX_RECORDS):
        self.free = free
        self.first = first
        self.longest = longest
        self.capacity = capacity
        self._records: OrderedDict[str, tuple[int, float, float]] = OrderedDict()  # failures, last, until

    def __len__(self) -> int:
        return len(self._records)

    def locked_for(self, key: str, now: float) -> float:
        """Seconds until ``key`` may try again (0: now)."""
        record = self._records.get(key)
        if record is None:
            return 0.0
        _, last, until = record
        if now - last >= FORGET_AFTER:
            del self._records[key]
            return 0.0
        return max(0.0, until - now)

    def failed(self, key: str, now: float) -> float:
        """Count a wrong password; return the lockout it starts (0: none)."""
        if self.free <= 0:
            return 0.0
        count, last, _ = self._records.pop(key, (0, now, now))
        if now - last >= FORGET_AFTER:
            count = 0
        count += 1
        until = now
        if count >= self.free:
            until = now + min(self.first * 2.0 ** min(count - self.free, 64), self.longest)
        self._records[key] = (count, now, until)
        while len(self._records) > self.capacity:
            self._records.popitem(last=False)
        return until - now


class PasswordGuard:
    def __init__(self, config: ServerConfig, metrics: Metrics):
        first, longest = config.password_lockout, config.password_lockout_max
        self.by_address = Failures(config.password_failures_per_address, first, longest)
        self.by_room = Failures(config.password_failures_per_room, first, longest)
        self._admitted: OrderedDict[tuple[str, str], float] = OrderedDict()  # (room, address) -> when
        self._waiting: dict[str, int] = {}  # address -> checks queued or running
        self._check_slot = trio.Lock()  # fair: checks run in arrival order
        self._metrics = metrics

    def refuse_early(self, peer: str, room: str) -> None:
        """Raise RequestError(rate_limited) if a guess at ``room`` from ``peer`` would be refused now.

        Called before any other work for the join (even the cluster read fence), so that a refused guess
        costs the server next to nothing.
        """
        address = address_key(peer)
        self._refuse_while_locked(address, room)
        if (
            self._waiting.get(address, 0) >= MAX_WAITING_PER_ADDRESS
            or sum(self._waiting.values()) >= MAX_WAITING
        ):
            self._metrics.limit("password_checks_waiting")
            raise RequestError(
                ErrorCode.RATE_LIMITED,
                "too many password checks waiting; retry after 1.0 s",
                pause=_spread(1.0),
            )

    async def check(self, peer: str, room: str, password: str | None, stored: dict[str, Any]) -> None:
        """Return if ``password`` opens ``room``; raise RequestError (wrong_password or rate_limited)."""
        if password is None:  # not a guess: nothing to count
            raise RequestError(ErrorCode.WRONG_PASSWORD, f"room {room!r} needs a password")
        self.refuse_early(peer, room)
        address = address_key(peer)
        self._waiting[address] = self._waiting.get(address, 0) + 1
        try:
            async with self._check_slot:
                # Checked again: the guesses queued ahead of this one may have caused a lockout.
                self._refuse_while_locked(address, room)
                right = await passwords.verify_password(password, stored)
        finally:
            self._waiting[address] -= 1
            if not self._waiting[address]:
                del self._waiting[address]
        now = trio.current_time()
        if right:
            self._admitted[(room, address)] = now
            self._admitted.move_to_end((room, address))
            while len(self._admitted) > MAX_RECORDS:
                self._admitted.popitem(last=False)
            return
        for kind, key, table in (("address", address, self.by_address), ("room", room, self.by_room)):
            lockout = table.failed(key, now)
            if lockout:  # an audit trail of guessing (one line per wrong password past the allowance)
                log.warning(
                    "wrong password for room %r from %s: %s %r locked out of password joins for %g s",
                    room,
                    peer,
                    kind,
                    key,
                    lockout,
                    extra={"peer": peer, "code": "password_lockout"},
                )
        raise RequestError(ErrorCode.WRONG_PASSWORD, f"wrong password for room {room!r}")

    def _refuse_while_locked(self, address: str, room: str) -> None:
        now = trio.current_time()
        wait, whose = self.by_address.locked_for(address, now), "from this address"
        admitted = self._admitted.get((room, address))
        if admitted is not None and now - admitted >= ADMITTED_FOR:
            del self._admitted[(room, address)]
            admitted = None
        if admitted is None:
            room_wait = self.by_room.locked_for(room, now)
            if room_wait > wait:
                wait, whose = room_wait, f"for room {room!r}"
        if wait > 0:
            self._metrics.limit("password_lockout")
            retry = math.ceil(wait * 10) / 10
            raise RequestError(
                ErrorCode.RATE_LIMITED,
                f"too many wrong passwords {whose}; retry after {retry:.1f} s",
                pause=_spread(wait),
            )
