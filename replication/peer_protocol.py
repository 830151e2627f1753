"""The peer sub-protocol: the frames nodes exchange besides Raft's own messages.

``["r", message]`` a Raft message; ``["fwd", [[request, data], ...]]`` proposals forwarded to the leader;
``["fwd_ok", request, result, index]`` / ``["fwd_err", request, text]`` their answers; ``["app", message]``
best-effort messages of the application (e.g. presence).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import trio

from .core import RawNode, message_from_wire, message_to_wire
from .transport import Transport
from .tree import Tree

log = logging.getLogger("blendsync.replication")


class PeerProtocol:
    """Frames to and from peers (a part of :class:`~replication.node.Node`)."""

    # Provided by Node.
    node_id: int
    tree: Tree
    stats: dict[str, Any]
    on_app_message: Callable[[int, Any], None] | None
    _raw: RawNode
    _transport: Transport | None
    _wakeup: trio.Event
    # Provided by ProposalTracking.
    _on_forwarded: Callable[[int, list[tuple[int, bytes]]], None]
    _on_forward_ok: Callable[[Any], None]
    _on_forward_err: Callable[[Any], None]

    def send_app_message(self, message: Any, to: int | None = None) -> None:
        """Send a msgpack-able message to one peer or all: best effort (dropped if a peer is down)."""
        if self._transport is None:
            return
        for peer in [to] if to is not None else list(self._transport.peers()):
            if self._transport.is_connected(peer):
                self._transport.send(peer, ["app", message])

    def _send_heartbeats(self) -> None:
        """Send the core's heartbeats and answers now, even while a write of the log is in flight: they
        promise nothing unpersisted (``RawNode.take_heartbeats``), and a node silent for a long fsync
        looks dead to its peers."""
        messages = self._raw.take_heartbeats()
        if self._transport is None or not messages:
            return
        self.stats["messages_sent"] += len(messages)
        for message in messages:
            self._transport.send(message.dst, ["r", message_to_wire(message)])

    def _on_frame(self, peer: int, frame: Any) -> None:
        try:
            kind = frame[0]
            if kind == "r":
                self.stats["messages_received"] += 1
                message = message_from_wire(frame[1])
                if message.src != peer or message.dst != self.node_id:
                    raise ValueError(f"message from {message.src} to {message.dst} on node {peer}'s link")
                self._raw.step(message)
                self._send_heartbeats()
            elif kind == "fwd":
                self._on_forwarded(peer, [(int(request), bytes(data)) for request, data in frame[1]])
            elif kind == "app":
                if self.on_app_message is not None:
                    try:
                        self.on_app_message(peer, frame[1])
                    except Exception:
                        log.exception("node %d: a message from node %d was not handled", self.node_id, peer)
                return
            elif kind == "fwd_ok":
                self._on_forward_ok(frame)
            elif kind == "fwd_err":
                self._on_forward_err(frame)
            else:
                raise ValueError(f"unknown frame kind {kind!r}")
        except (ValueError, TypeError, IndexError, KeyError, AttributeError) as exc:
            log.warning("dropped a malformed frame from node %d: %s", peer, exc)
            return
        self._wakeup.set()

    def _on_unreachable(self, peer: int) -> None:
        try:
            self._raw.report_unreachable(peer)
        except Exception:  # an unknown peer: nothing to report
            pass
