"""Replay against a real ``blendsync serve``: the room's map at a retained seq is what a member saw at that
seq, page by page; what is not retained, or not a seq, is refused; a share link cannot replay."""

from __future__ import annotations

import pytest
from test_roles import studio, viewer

from broadcaster import history_client as hc
from broadcaster.client import ServerError, connect
from protocol import Replay

BIG = 700 * 1024  # two of these do not fit one page (about 1 MiB): the map comes in several


async def _room(client, name="shot"):
    await client.create_room(name, keep_open=True)
    await client.join(name)


async def test_the_map_at_each_seq_is_what_a_member_saw_then(server_process):
    host, port = server_process.start()
    async with connect(host, port, name="ana") as ana, connect(host, port, name="ben") as ben:
        await _room(ana)
        await ben.join("shot")
        seen = {0: {}}
        for ops in (
            [["set", "obj/1/transform", b"a"], ["set", "obj/*/**", b"pattern"]],
            [["set", "big/1", b"1" * BIG], ["set", "big/2", b"2" * BIG], ["set", "big/3", b"3" * BIG]],
            [["delete", "obj/1/transform"], ["set", "z", b""]],
            [["set", "big/2", b"two"]],
        ):
            seq = await ana.batch(ops)
            seen[seq] = dict(ana.state)
        made = await hc.checkpoint(ana, "midway")
        for ops in ([["set", "after", b"x"]], [["delete", "big/1"], ["set", "z", b"zz"]]):
            seq = await ana.batch(ops)
            seen[seq] = dict(ana.state)
        last = seq
        assert made["seq"] in seen
        for at, wanted in seen.items():
            got_seq, items, span = await hc.replay(ben, at)  # not the author: any member
            assert (got_seq, span) == (at, (0, last))
            assert items == wanted, at
        assert await hc.replay(ben) == (last, dict(ana.state), (0, last))
        # Reading changed nothing: the room is where it was and goes on.
        assert ben.seq == last and await ben.set("k", b"v") == last + 1


async def test_replay_refuses_a_seq_it_cannot_show_and_bad_input(server_process):
    host, port = server_process.start()
    async with connect(host, port, name="ana") as ana:
        with pytest.raises(ServerError) as info:
            await hc.replay(ana, 0)
        assert info.value.code == "not_in_room"
        await _room(ana)
        await hc.set_retention(ana, ops=3)  # the log keeps the last 3 operations
        await ana.set("k", b"start")
        early = await hc.checkpoint(ana, "early")
        for n in range(6):
            last = await ana.set("k", str(n).encode())
        # The log no longer continues from the early checkpoint: only now, and that checkpoint alone.
        assert (await hc.replay(ana))[2] == (last, last)
        assert (await hc.replay(ana, early["seq"]))[1] == {"k": b"start"}
        made = await hc.checkpoint(ana, "here")
        await ana.set("j", b"1")
        last = await ana.set("k", b"after")
        assert (await hc.replay(ana, made["seq"]))[1:] == ({"k": b"5"}, (made["seq"], last))
        assert (await hc.replay(ana, 0))[1] == {}  # a room that started empty was empty at 0
        for seq, code, words in [
            (made["seq"] - 1, "not_retained", "no longer retained"),
            (last + 1, "not_retained", f"({0} to {last})"),
            (2**63 - 1, "not_retained", "is not in room"),
            (2**63, "bad_message", "replay.seq"),
            (-1, "bad_message", "replay.seq"),
            (True, "bad_message", "replay.seq"),
        ]:
            with pytest.raises(ServerError) as info:
                await hc._ask(ana, lambda ref, s=seq: Replay(seq=s, ref=ref))
            assert info.value.code == code and words in info.value.message, (seq, info.value.message)
        for after in ["", "k\x00", "k" * 1025]:
            with pytest.raises(ServerError) as info:
                await hc._ask(ana, lambda ref, a=after: Replay(after=a, ref=ref))
            assert info.value.code == "bad_message" and "replay.after" in info.value.message
        # The longest key, and pattern characters, are keys to page after like any other.
        page = await hc._ask(ana, lambda ref: Replay(after="k" * 1024, ref=ref))
        assert page.items == [] and not page.more and page.key_count == 2
        page = await hc._ask(ana, lambda ref: Replay(after="*", ref=ref))
        assert [key for key, _ in page.items] == ["j", "k"]
        assert await ana.set("k", b"v") == last + 1  # the connection went on


async def test_members_replay_and_a_share_link_cannot(tmp_path):
    async with studio(tmp_path) as (b, (host, port), tokens, _):
        async with (
            connect(host, port, name="ana", token=tokens["ana"]) as ana,
            connect(host, port, name="ben", token=tokens["ben"]) as ben,
        ):
            await _room(ana, "r")
            first = await ana.set("k", b"1")
            await ana.set("k", b"2")
            await ben.join("r")  # an editor, not the owner
            assert (await hc.replay(ben, first))[1] == {"k": b"1"}
            share = await ana.admin("share", room="r")
            ws, _ = await viewer(b.http_addresses[0], share["token"])
            await ws.send_body({"type": "join_room", "room": "r", "ref": 1})
            await ws.receive_until("snapshot_end")
            await ws.send_body({"type": "replay", "seq": first, "ref": 2})
            error = await ws.receive_body()
            assert (error["type"], error["code"], error["fatal"]) == ("error", "forbidden", False)
            await ws.aclose()


async def test_a_forked_room_replays_from_its_first_checkpoint(server_process):
    host, port = server_process.start()
    async with connect(host, port, name="ana") as ana:
        await _room(ana)
        await ana.set("k", b"1")
        await hc.fork(ana, "try", keep_open=True)
        await ana.leave()
        await ana.join("try")
        await ana.set("k", b"2")
        last = await ana.set("j", b"3")
        # Its seq 0 is the source's map, not an empty room: with no checkpoint, only now can be shown.
        assert await hc.replay(ana) == (last, {"k": b"2", "j": b"3"}, (last, last))
        with pytest.raises(ServerError) as info:
            await hc.replay(ana, 0)
        assert info.value.code == "not_retained"
