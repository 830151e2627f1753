"""Override notices through a real server: ``seen`` travels from the author's op to the others' ``applied``
(live fan-out and a resumed tail), and the trio client reports ``Overridden`` only to the artist whose
committed value was replaced by one made without seeing it."""

from __future__ import annotations

import trio
from support import ana_and_ben_in_a_room

from broadcaster.client import connect
from protocol import Applied, Overridden


async def next_of(client, kind):
    with trio.fail_after(10):
        while not isinstance(event := await client.receive(), kind):
            pass
    return event


def drain(client) -> list:
    out = []
    while True:
        try:
            out.append(client.events.receive_nowait())
        except trio.WouldBlock:
            return out


async def test_the_overridden_client_is_told_and_the_winner_is_not(server):
    async with ana_and_ben_in_a_room(server) as (ana, ben):
        before = ben.seq  # Ben's edit is made from here: he has not seen Ana's
        ours = await ana.set("obj/1/location", b"ana")
        _, waiter = await ben.send_ops([["set", "obj/1/location", b"ben"]], seen=before)
        theirs = await waiter.wait()
        assert theirs == ours + 1
        applied = await next_of(ana, Applied)
        assert (applied.seq, applied.client_id, applied.seen) == (theirs, ben.client_id, before)
        notice = await next_of(ana, Overridden)
        assert notice == Overridden("obj/1/location", ours, theirs, ben.client_id, applied.op_id, b"ben")
        # Ben's value won: Ana's applied reaches him while his op is in flight or before it; no notice.
        seen_by_ben = await next_of(ben, Applied)
        assert seen_by_ben.seq == ours and seen_by_ben.seen == 0
        await trio.sleep(0.05)
        assert not [e for e in drain(ben) if isinstance(e, Overridden)]

        # Turn-taking: Ana saw Ben's value before changing it again, and Ben after that: no notice.
        await wait_seq(ana, theirs)
        again = await ana.set("obj/1/location", b"ana2")
        await wait_seq(ben, again)
        await ben.set("obj/1/location", b"ben2")
        await next_of(ana, Applied)
        await trio.sleep(0.05)
        assert not [e for e in drain(ana) if isinstance(e, Overridden)]


async def test_seen_travels_in_a_resumed_tail(server):
    async with connect(*server, name="ana") as ana, connect(*server, name="ben") as ben:
        await ana.create_room("r", keep_open=True)
        await ana.join("r")
        await ana.set("k", b"1")
        await ben.join("r", since=0)
        await ana.send_ops([["set", "k", b"2"]], seen=0)
        applied = [await next_of(ben, Applied), await next_of(ben, Applied)]
        assert [(a.seq, a.seen) for a in applied] == [(1, 0), (2, 0)]


async def wait_seq(client, seq: int) -> None:
    with trio.fail_after(10):
        while client.seq < seq:
            await trio.sleep(0.005)
