"""A room's history from the trio client library: blame, checkpoints, restore, fork, retention.

Each call is one request of docs/protocol.md ("History") on a joined ``Client``; a refusal raises
``ServerError`` like every other request.
"""

from __future__ import annotations

from typing import Any

from protocol import (
    Checkpoint,
    DeleteCheckpoint,
    Fork,
    History,
    ListCheckpoints,
    Replay,
    Restore,
    SetRetention,
)

from .client import Client


async def _ask(client: Client, build: Any) -> Any:
    return await client._request(*client.session.request(build))


async def blame(
    client: Client, prefix: str = "", *, since: int | None = None, limit: int = 1000
) -> tuple[list[list[Any]], bool]:
    """[key, seq, client_id, name, time] for each key with ``prefix``, and whether ``limit`` cut it."""
    reply = await _ask(client, lambda ref: History(prefix=prefix, since=since, limit=limit, ref=ref))
    return reply.keys, reply.truncated


async def checkpoint(client: Client, name: str) -> dict[str, Any]:
    return (await _ask(client, lambda ref: Checkpoint(name=name, ref=ref))).checkpoint


async def checkpoints(client: Client) -> list[dict[str, Any]]:
    return (await _ask(client, lambda ref: ListCheckpoints(ref=ref))).checkpoints


async def delete_checkpoint(client: Client, number: int) -> None:
    await _ask(client, lambda ref: DeleteCheckpoint(checkpoint=number, ref=ref))


async def restore(
    client: Client, *, checkpoint: int | None = None, seq: int | None = None
) -> tuple[int, int | None]:
    """Restore the joined room; returns (the restore's seq, the checkpoint that undoes it)."""
    reply = await _ask(client, lambda ref: Restore(checkpoint=checkpoint, seq=seq, ref=ref))
    return reply.seq, reply.undo


async def fork(
    client: Client,
    room: str,
    *,
    checkpoint: int | None = None,
    seq: int | None = None,
    keep_open: bool = False,
) -> int:
    """A new room from the joined one; returns the source seq it holds."""
    reply = await _ask(
        client, lambda ref: Fork(room=room, checkpoint=checkpoint, seq=seq, keep_open=keep_open, ref=ref)
    )
    return reply.seq


async def replay(client: Client, seq: int | None = None) -> tuple[int, dict[str, bytes], tuple[int, int]]:
    """The joined room's map at ``seq`` (None: now), read page by page: (its seq, the map, (first,
    last) of the range a replay can show)."""
    items: dict[str, bytes] = {}
    after = None
    while True:
        page = await _ask(client, lambda ref, s=seq, a=after: Replay(seq=s, after=a, ref=ref))
        items.update((key, value) for key, value in page.items)
        seq = page.seq  # the later pages read the same seq, even if the room moved on meanwhile
        if not page.more:
            return page.seq, items, (page.first, page.last)
        after = page.items[-1][0]


async def set_retention(client: Client, *, days: int | None = None, ops: int | None = None) -> None:
    await _ask(client, lambda ref: SetRetention(days=days, ops=ops, ref=ref))
