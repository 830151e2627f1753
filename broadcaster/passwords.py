"""Room passwords, hashed with scrypt (a standard memory-hard KDF) off the event loop."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

import trio

# 16 MiB of memory per hash: costly to brute-force, about 50 ms here.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
# One hash at a time: a burst of joins or creates may use one core, never all of them (docs/decisions/0002).
_limiter = trio.CapacityLimiter(1)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=64 * 1024 * 1024, dklen=32)


async def hash_password(password: str) -> dict[str, Any]:
    salt = secrets.token_bytes(16)
    digest = await trio.to_thread.run_sync(
        _scrypt, password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P, limiter=_limiter
    )
    return {"kdf": "scrypt", "n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P, "salt": salt, "hash": digest}


async def verify_password(password: str, stored: dict[str, Any]) -> bool:
    try:
        salt, n, r, p, expected = stored["salt"], stored["n"], stored["r"], stored["p"], stored["hash"]
    except (KeyError, TypeError):
        return False
    digest = await trio.to_thread.run_sync(_scrypt, password, salt, n, r, p, limiter=_limiter)
    return hmac.compare_digest(digest, expected)
