"""The ack-placement property, checked on the raw stream of frames one client received.

The convergence rule (docs/protocol.md, "Converging") needs every ``ack`` at its operation's place in the
author's stream: the stream of a room is ``joined``, then a snapshot ending at seq N (or a resumed tail
after seq S), then one frame per seq, N+1, N+2, ...: ``applied`` for others' operations, ``ack`` for the
client's own. So, after the join:

* every ``applied`` and ``ack`` carries exactly the next seq: no gap, no repeat, nothing out of order (an
  ``applied`` of a higher seq before the ack of a lower-seq own operation is such a reorder);
* every operation is acked at most once, and only operations the client sent are acked.

One answer lies outside the stream: a retry of an operation that committed at or before the seq the
stream starts from (``joined.seq``: inside the snapshot, or in the state the client resumed from) is acked
with that seq when the retry is answered; the client already has its effect. Such an ack is correct only
for a seq at or below ``joined.seq``, and only once per operation.

``check_stream`` returns the violations as sentences (empty when the stream is right). ``Recorder`` keeps
the frames a ``broadcaster.client.Client`` receives, in the order its reader sees them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from protocol import Ack, Applied, Event, Joined, SnapshotEnd


def check_stream(events: Iterable[Event], sent: Iterable[int] | None = None) -> list[str]:
    """Violations of the ack-placement property in one client's received frames (see the module doc).

    ``sent``: the op_ids the client sent, if known (an ack of anything else is then a violation).
    """
    sent_ids = set(sent) if sent is not None else None
    problems: list[str] = []
    position: int | None = None  # the seq the stream has reached; None before the first join
    start = 0  # the seq the current join's stream starts after (joined.seq)
    acked: dict[int, int] = {}  # op_id -> seq of its ack
    for index, event in enumerate(events):
        where = f"frame {index}"
        match event:
            case Joined(seq=seq):
                position = start = seq
            case SnapshotEnd(seq=seq):
                if position is not None and seq != position:
                    problems.append(f"{where}: snapshot_end at seq {seq} after joined at seq {position}")
                position = seq
            case Ack(op_id=op_id, seq=seq):
                if sent_ids is not None and op_id not in sent_ids:
                    problems.append(f"{where}: ack of op {op_id}, which this client never sent")
                if op_id in acked:
                    problems.append(f"{where}: second ack of op {op_id} (seq {seq}; first at {acked[op_id]})")
                    continue
                acked[op_id] = seq
                if position is None:
                    problems.append(f"{where}: ack of op {op_id} before any join")
                elif seq == position + 1:
                    position = seq
                elif seq <= start:
                    pass  # a retry of an op the client's snapshot (or resumed state) already holds
                else:
                    problems.append(
                        f"{where}: ack of op {op_id} at seq {seq} where the stream is at seq {position}"
                    )
            case Applied(seq=seq, op_id=op_id):
                if position is None:
                    problems.append(f"{where}: applied seq {seq} before any join")
                elif seq != position + 1:
                    problems.append(
                        f"{where}: applied (op {op_id}) at seq {seq} where the stream is at seq {position}"
                    )
                    position = max(position, seq)
                else:
                    position = seq
    return problems


class Recorder:
    """Records every frame a trio Client's reader handles (wraps its event handler)."""

    def __init__(self, client: Any):
        self.events: list[Event] = []
        handle = client._on_event

        async def recording(event: Event) -> None:
            self.events.append(event)
            await handle(event)

        client._on_event = recording

    def acks(self) -> dict[int, list[int]]:
        """op_id -> seqs of every ack received for it (more than one is a violation)."""
        out: dict[int, list[int]] = {}
        for event in self.events:
            if isinstance(event, Ack):
                out.setdefault(event.op_id, []).append(event.seq)
        return out
