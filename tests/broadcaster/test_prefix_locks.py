"""Prefix locks: one lock holds every key under a prefix (ending in /), keys written later too; checked at the
boundary, enforced in the write's transaction, released with the session (unlock, leave, drop)."""

from __future__ import annotations

import contextlib

import pytest
import trio
from support import ana_and_ben_in_a_room, wait_for
from test_grammar import raw_member

from broadcaster import history_client as hc
from broadcaster.app import open_broadcaster
from broadcaster.client import ServerError, connect
from broadcaster.config import SILENCE_LIMIT, ServerConfig
from broadcaster.history import restored_ops
from broadcaster.roomstore import create_room_command, lock_command, lock_payload, write_command
from protocol import PROTOCOL_VERSION, LocksChanged, encode_frame
from protocol.limits import covering_prefixes
from replication.tree.commands import encode_envelope
from replication.tree.machine import Tree

OBJ = "obj/" + "a" * 32 + "/"


async def next_of(client, kind, timeout=5.0):
    with trio.fail_after(timeout):
        while not isinstance(event := await client.receive(), kind):
            pass
    return event


async def refused(write) -> str:
    with pytest.raises(ServerError) as info:
        await write
    assert not info.value.fatal
    return info.value.code


def test_covering_prefixes_cut_at_every_slash():
    assert covering_prefixes("obj/1/mod/Smooth") == ["obj/", "obj/1/", "obj/1/mod/"]
    assert covering_prefixes("obj/1/") == ["obj/", "obj/1/"]
    assert covering_prefixes("plain") == [] and covering_prefixes("/") == ["/"]
    assert covering_prefixes("a//b") == ["a/", "a//"]
    assert covering_prefixes("*/**/%2F") == ["*/", "*/**/"]  # pattern characters are data


async def test_a_prefix_lock_holds_every_key_under_it_new_ones_too(server):
    async with ana_and_ben_in_a_room(server) as (ana, ben):
        await ben.set(OBJ + "location", b"0")
        assert await ana.lock_prefixes([], [OBJ]) == ([], [OBJ])
        changed = await next_of(ben, LocksChanged)
        assert changed.prefixes == {OBJ: ana.client_id} and changed.locked == {}
        for write in (
            ben.set(OBJ + "location", b"b"),  # an existing key
            ben.set(OBJ + "mod/Smooth", b"b"),  # a key made after the lock
            ben.delete(OBJ + "location"),
            ben.batch([["set", "free", b"b"], ["set", OBJ + "name", b"b"]]),  # the whole batch
        ):
            assert await refused(write) == "locked"
        assert ben.state == {OBJ + "location": b"0"}
        # Keys beside it are free: a sibling uuid sharing the prefix's text, the prefix without its slash.
        await ben.set(OBJ[:-1] + "b/location", b"b")
        await ben.set(OBJ[:-1], b"b")
        await ana.set(OBJ + "location", b"a")  # the holder writes
        # Overlapping locks are refused, all or nothing: a key under it, the prefix itself, a wider and a
        # narrower prefix.
        for keys, prefixes in (([OBJ + "x"], []), ([], [OBJ]), ([], ["obj/"]), ([], [OBJ + "mod/"])):
            assert await refused(ben.lock_prefixes(keys, prefixes)) == "locked"
        assert await refused(ben.lock_prefixes(["free"], [OBJ])) == "locked"
        assert "free" not in ben.locks
        assert await ana.unlock(prefixes=[OBJ]) == [OBJ]
        await wait_for(lambda: not ben.prefix_locks)
        await ben.set(OBJ + "location", b"b")


async def test_a_narrower_lock_held_by_another_blocks_a_wider_prefix(server):
    async with ana_and_ben_in_a_room(server) as (ana, ben):
        await ana.lock([OBJ + "name"])
        assert await refused(ben.lock_prefixes([], [OBJ])) == "locked"
        await ana.lock_prefixes([], [OBJ + "mod/"])
        await ana.unlock([OBJ + "name"])
        assert await refused(ben.lock_prefixes([], ["obj/"])) == "locked"
        assert await ben.lock_prefixes([], [OBJ + "set/"]) == ([], [OBJ + "set/"])  # disjoint: fine
        assert await refused(ana.lock_prefixes([], [OBJ])) == "locked"  # Ben's is inside it
        await ben.unlock()
        assert await ana.lock_prefixes([], [OBJ]) == ([], [OBJ])  # her own narrower one does not stop her
        assert await refused(ben.set(OBJ + "mod/x", b"b")) == "locked"


async def test_the_longest_prefix_and_edge_prefixes(server):
    async with ana_and_ben_in_a_room(server) as (ana, ben):
        longest = "\U0001f511" * 255 + "abc/"  # 1024 bytes
        weird = ["/", "*/", "**/", "%2F/", "\x01\x7f\x85 /", "\u200d/"]
        await ana.lock_prefixes([], [longest, *weird])
        changed = await next_of(ben, LocksChanged)
        assert set(changed.prefixes) == {longest, *weird}
        assert await refused(ben.set(longest, b"b")) == "locked"  # the longest key: the prefix itself
        assert await refused(ben.set("*/x", b"b")) == "locked"
        assert await refused(ben.set("/x", b"b")) == "locked"  # "/" holds every key starting with it
        await ben.set("x/*", b"b")  # "*/" is text, not a pattern
        await ben.set("**x", b"b")
        assert sorted(await ana.unlock()) == sorted([longest, *weird])  # nothing named: everything


async def test_bad_prefixes_are_refused_at_the_boundary_and_the_connection_goes_on(server):
    host, port = server
    async with connect(host, port, name="owner") as owner:
        await owner.create_room("r", keep_open=True)
        await owner.join("r")
        raw = await raw_member(host, port, "r")
        for body, says in (
            (
                {"prefixes": ["obj/1"]},
                "lock.prefixes[0] must be 1 to 1024 bytes of UTF-8 without NUL, ending in /",
            ),
            ({"prefixes": [""]}, "lock.prefixes[0] must be"),
            ({"prefixes": ["a\x00/"]}, "lock.prefixes[0] must be"),
            ({"prefixes": ["k" * 1024 + "/"]}, "lock.prefixes[0] must be"),
            ({"prefixes": ["p/"] * 1025}, "lock.prefixes must have 0 to 1024 items"),
            ({"keys": ["k"] * 600, "prefixes": ["p/"] * 600}, "lock.keys and prefixes must be at most 1024"),
            ({"keys": [], "prefixes": []}, "lock.keys must name at least one key or prefix"),
            ({"prefixes": "obj/1/"}, "lock.prefixes must be"),
            ({"prefixes": [1]}, "lock.prefixes[0] must be"),
        ):
            reply = await raw.request({"type": "lock", **body, "ref": 7})
            assert reply["type"] == "error" and reply["code"] == "bad_message", reply
            assert reply["message"].startswith(says) and not reply["fatal"] and reply["ref"] == 7, reply
        bad_utf8 = b"\x83\xa4type\xa4lock\xa8prefixes\x91\xa2\xff/\xa3ref\x08"
        reply = await raw.request(len(bad_utf8).to_bytes(4, "big") + bad_utf8)
        assert reply["code"] == "bad_message" and "not valid UTF-8" in reply["message"], reply
        reply = await raw.request({"type": "lock", "prefixes": ["k" * 1023 + "/"], "ref": 9})  # the longest
        assert reply["type"] == "lock_granted" and reply["prefixes"] == ["k" * 1023 + "/"], reply
        with pytest.raises(ServerError) as info:
            await owner.set("k" * 1023 + "/", b"o")
        assert info.value.code == "locked"
        await raw.stream.aclose()


async def test_a_joiner_sees_the_locks_already_held_however_its_answer_arrives(server):
    """The locks a joiner is told of right after its answer (an empty room: in the same read) are kept
    by the client library, not cleared once the join returns."""
    host, port = server
    async with connect(host, port, name="ana") as ana:
        await ana.create_room("r", keep_open=True)
        await ana.join("r")
        await ana.lock(["k"], [OBJ])
        for _ in range(5):
            async with connect(host, port, name="ben") as ben:
                await ben.join("r")
                await wait_for(lambda: ben.locks == {"k": ana.client_id})
                assert ben.prefix_locks == {OBJ: ana.client_id}


async def test_prefix_locks_go_with_leave_and_a_dropped_connection(server):
    host, port = server
    async with connect(host, port, name="ben") as ben:
        await ben.create_room("r", keep_open=True)
        await ben.join("r")
        async with connect(host, port, name="ana") as ana:
            await ana.join("r")
            await ana.lock_prefixes([], [OBJ])
            await wait_for(lambda: OBJ in ben.prefix_locks)
            await ana.leave()
        await wait_for(lambda: not ben.prefix_locks)
        await ben.set(OBJ + "k", b"1")
        stream = await trio.open_tcp_stream(host, port)
        await stream.send_all(
            encode_frame({"type": "hello", "protocol": PROTOCOL_VERSION, "client_name": "dropper"})
            + encode_frame({"type": "join_room", "room": "r", "ref": 1})
            + encode_frame({"type": "lock", "prefixes": [OBJ], "ref": 2})
        )
        await wait_for(lambda: OBJ in ben.prefix_locks)
        await stream.aclose()
        await wait_for(lambda: not ben.prefix_locks)
        await ben.set(OBJ + "k", b"2")
        async with connect(host, port, name="cleo") as cleo:  # a late joiner learns the held ones
            await ben.lock_prefixes([], [OBJ])
            await cleo.join("r")
            changed = await next_of(cleo, LocksChanged)
            assert changed.prefixes == {OBJ: ben.client_id}


ANA, BEN = lock_payload("a" * 32, "ana", 1), lock_payload("b" * 32, "ben", 1)


def room_with_anas_prefix_lock():
    """A tree alone (no server checking from its copy first) with room r, Ana holding the prefix OBJ; the
    function that applies the next command and returns its result."""
    tree, index = Tree(), 0

    def run(command) -> dict:
        nonlocal index
        index += 1
        return tree.apply(index, encode_envelope(command))[0]

    assert run(create_room_command("r", {"keep_open": True}))["succeeded"]
    assert run(lock_command("r", [], ANA, [OBJ]))["succeeded"]
    return run


def test_the_transaction_itself_refuses_writes_under_another_owners_prefix():
    """The condition inside the write's own transaction, without the server's check from its copy (a lock
    granted on another node in the moment before the write commits)."""
    run = room_with_anas_prefix_lock()
    ana, ben = ANA, BEN
    guard = ("r", ben)
    for ops in ([["set", OBJ + "new", b"b"]], [["set", "free", b"b"], ["delete", OBJ + "x"]]):
        assert not run(write_command("r", "b" * 32, 1, ops, 100, guard))["succeeded"]
    assert run(write_command("r", "b" * 32, 2, [["set", OBJ[:-1], b"b"]], 100, guard))["succeeded"]
    assert run(write_command("r", "a" * 32, 1, [["set", OBJ + "new", b"a"]], 100, ("r", ana)))["succeeded"]
    assert not run(lock_command("r", [OBJ + "k"], ben))["succeeded"]  # a key under her prefix
    assert not run(lock_command("r", [], ben, [OBJ + "mod/"]))["succeeded"]  # a narrower prefix
    assert run(lock_command("r", [], ana, [OBJ + "mod/"]))["succeeded"]  # hers: fine


def test_the_restores_transaction_refuses_a_key_under_another_owners_prefix():
    """A restore's own condition, as a write's: a key under a prefix someone else locked stays as it is."""
    run = room_with_anas_prefix_lock()
    entry = {"c": "b" * 32, "u": "ben", "t": 0, "o": 1, "r": {"seq": 0}}
    for owner, succeeds in ((BEN, False), (ANA, True)):
        compare, then = restored_ops("r", [["set", OBJ + "location", b"old"]], {}, entry, 100, owner)
        assert run({"compare": compare, "then": then})["succeeded"] is succeeds


async def test_a_restore_does_not_change_a_key_under_another_sessions_prefix_lock(server):
    # The edit-mode and selection leases are prefix locks: a restore went past them (only key locks
    # were looked at) and put a locked object back under its holder.
    async with ana_and_ben_in_a_room(server) as (ana, ben):
        await ben.set(OBJ + "location", b"old")
        mark = await hc.checkpoint(ben, "before")
        await ben.set(OBJ + "location", b"new")
        await ana.lock([], prefixes=[OBJ])
        with pytest.raises(ServerError) as info:
            await hc.restore(ben, checkpoint=mark["id"])
        assert info.value.code == "locked" and OBJ + "location" in info.value.message
        await ana.set(OBJ + "location", b"hers")
        await wait_for(lambda: ben.state.get(OBJ + "location") == b"hers")
        await ana.unlock([], prefixes=[OBJ])
        await hc.restore(ben, checkpoint=mark["id"])  # free again: restored
        await wait_for(lambda: ana.state.get(OBJ + "location") == b"old")


async def test_a_lock_committed_after_its_session_was_replaced_is_released(tmp_path):
    # Ana's lock is on its way to the commit while she reconnects (a network blip: a new connection with
    # her session id, which closes the old one). Releasing the old session's locks did not see one still
    # being proposed: it committed after, held by nobody, and refused Ben's writes for good.
    config = ServerConfig(host="127.0.0.1", port=0, data_dir=tmp_path / "d")
    async with open_broadcaster(config) as b, trio.open_nursery() as raft:
        host, port = b.listen_addresses[0].rsplit(":", 1)
        held, go, lock_committed = trio.Event(), trio.Event(), trio.Event()
        store = b.locks.store

        class InFlight:
            """The lock's command goes on to its commit, whatever happens to the session that sent it."""

            def __getattr__(self, name):
                return getattr(store, name)

            async def propose(self, command):
                result: list = []
                committed = trio.Event()

                async def deliver() -> None:
                    held.set()
                    await go.wait()
                    result.append(await store.propose(command))
                    committed.set()
                    lock_committed.set()

                raft.start_soon(deliver)
                await committed.wait()
                return result[0]

        b.locks.store = InFlight()
        async with connect(host, int(port), name="ana") as ana, connect(host, int(port), name="ben") as ben:
            await ana.create_room("r", keep_open=True)
            await ana.join("r")
            await ben.join("r")
            async with trio.open_nursery() as nursery:

                async def lock() -> None:
                    with contextlib.suppress(Exception):  # her old connection goes meanwhile
                        await ana.lock([OBJ + "geometry"], prefixes=[OBJ + "mod/"])

                nursery.start_soon(lock)
                with trio.fail_after(10):
                    await held.wait()
                async with connect(host, int(port), name="ana", session=ana.client_id):
                    with trio.fail_after(10):
                        while b.hub.sessions[ana.client_id].room is not None:
                            await trio.sleep(0.01)  # the old connection is closed, out of the room
                    go.set()
                    with trio.fail_after(10):
                        await lock_committed.wait()
                    room = b.hub.rooms["r"]
                    await wait_for(lambda: not room.locks and not room.prefix_locks)
            await ben.set(OBJ + "geometry", b"ben's")


async def test_a_lock_naming_a_node_that_is_no_member_is_released_after_the_timeout(tmp_path):
    """A lock of a node removed from the cluster (or of an imported store) is nobody's: the leader, hearing
    from no such node, releases it within two timeouts; its own node's sessions' locks stay."""
    timeout = SILENCE_LIMIT  # the shortest the config takes
    config = ServerConfig(host="127.0.0.1", port=0, data_dir=tmp_path / "d", dead_node_timeout=timeout)
    async with open_broadcaster(config) as b:
        host, port = b.listen_addresses[0].rsplit(":", 1)
        async with ana_and_ben_in_a_room((host, int(port))) as (ana, ben):
            await ana.lock(["k"], [OBJ])
            gone = lock_payload("s" * 32, "cy", 99)
            meta = b.store.find_meta("r")
            result = await b.store.propose(lock_command("r", ["other"], gone, ["obj/gone/"], meta))
            assert result["succeeded"]
            await wait_for(lambda: "other" in ben.locks and "obj/gone/" in ben.prefix_locks)
            await wait_for(
                lambda: "other" not in ben.locks and not {"obj/gone/"} & set(ben.prefix_locks), 3 * timeout
            )
            await trio.sleep(timeout / 2)  # two more of the leader's passes
            assert ben.locks == {"k": ana.client_id} and ben.prefix_locks == {OBJ: ana.client_id}
