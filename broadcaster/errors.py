"""The error a request handler raises to answer with an error frame (the connection goes on)."""

from __future__ import annotations

from protocol import ErrorCode


class RequestError(Exception):
    """A request that gets an error frame; the connection goes on.

    With ``pause``, the server then reads nothing more from this client for that many seconds: a refused
    password guess must not be retried at once on the same connection (docs/security.md).
    """

    def __init__(self, code: ErrorCode, message: str, *, pause: float = 0.0):
        super().__init__(message)
        self.code = code
        self.message = message
        self.pause = pause
