"""When the reader of a client connection gives up: every limit is a deadline, never reset by a trickle.

- Before ``hello``: the connection must have sent a complete ``hello`` (after the TLS handshake, if any)
  within ``handshake_timeout`` of the accept, however its bytes trickle in.
- After ``hello``: a client silent for ``heartbeat_timeout`` is gone; and a frame, from its first byte on,
  must be complete within ``heartbeat_timeout + length / min_frame_bytes_per_second`` seconds of the server
  waiting for it (time the server holds back reading from the client, e.g. under backpressure, does not
  count: the client could not send then).

Pure bookkeeping: the session passes the clock in and applies the deadline with ``trio.move_on_at``.
"""

from __future__ import annotations

from .config import ServerConfig


class ReceiveDeadlines:
    def __init__(self, config: ServerConfig, accepted_at: float):
        self._handshake_timeout = config.handshake_timeout
        self._handshake_deadline = accepted_at + config.handshake_timeout
        self._idle = config.heartbeat_timeout
        self._rate = config.min_frame_bytes_per_second
        self._frame_waited: float | None = None  # seconds spent waiting for the unfinished frame

    def frame_allowance(self, size: int | None) -> float:
        """Seconds of waiting a frame of ``size`` bytes may take (``None``: its header is not in yet)."""
        return self._idle + (size or 0) / self._rate

    def next(self, now: float, *, hello_done: bool, frame_size: int | None) -> tuple[float, str]:
        """The deadline for the next receive, and what the error says if it passes."""
        if not hello_done:
            return (
                self._handshake_deadline,
                f"no hello within handshake_timeout ({self._handshake_timeout:g} s) of connecting",
            )
        deadline = now + self._idle
        reason = f"nothing received for heartbeat_timeout ({self._idle:g} s)"
        if self._frame_waited is not None:
            allowance = self.frame_allowance(frame_size)
            frame_deadline = now + allowance - self._frame_waited
            if frame_deadline < deadline:
                what = f"a frame of {frame_size} bytes" if frame_size is not None else "a frame header"
                reason = (
                    f"{what} not complete within {allowance:.3g} s"
                    f" (heartbeat_timeout + length / min_frame_bytes_per_second ({self._rate}))"
                )
                deadline = frame_deadline
        return deadline, reason

    def waited(self, seconds: float) -> None:
        """The reader waited this long for the client."""
        if self._frame_waited is not None:
            self._frame_waited += seconds

    def received(self, *, frames_completed: bool, frame_in_progress: bool) -> None:
        """After handling what one receive brought: a new frame's clock starts, a finished one's stops."""
        if not frame_in_progress:
            self._frame_waited = None
        elif frames_completed or self._frame_waited is None:
            self._frame_waited = 0.0
