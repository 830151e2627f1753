"""Room names and keys are data: a room called `*` or `**` is one room, never every room."""

from __future__ import annotations

import trio

from broadcaster.client import connect
from broadcaster.roomtransfer import export_room
from protocol import Applied

# Pattern characters of the tree, and the escapes of its display form.
NAMES = ["*", "**", "%", "%2F", "a/b"]


def own_keys(name: str) -> dict[str, bytes]:
    return {"*": name.encode(), f"own {name}": b"x" * len(name)}


async def fill(host: str, port: int) -> None:
    async with connect(host, port, name="ana") as ana:
        await ana.create_room("other", keep_open=True)
        await ana.join("other")
        await ana.set("*", b"other's star")
        await ana.set("o1", b"other's")
        await ana.leave()
        for name in NAMES:
            await ana.create_room(name, keep_open=True)
            await ana.join(name)
            for key, value in own_keys(name).items():
                await ana.set(key, value)
            await ana.leave()


async def check(host: str, port: int, locks: dict[str, int]) -> None:
    async with connect(host, port, name="root") as root, connect(host, port, name="ben") as ben:
        with trio.fail_after(10):  # after a restart, stale locks go in a commit of their own
            while True:
                rooms = {r["name"]: r for r in await root.admin("rooms")}
                if {name: room["locks"] for name, room in rooms.items() if room["locks"]} == locks:
                    break
                await trio.sleep(0.02)
        assert sorted(rooms) == sorted([*NAMES, "other"])
        for name in NAMES:
            expected = own_keys(name)
            assert rooms[name]["keys"] == 2 and rooms[name]["seq"] == 2, name
            assert rooms[name]["bytes"] == sum(len(v) for v in expected.values()), name

            await ben.join(name)
            assert ben.state == expected, name
            if not locks:
                assert ben.locks == {}, name  # none restored into this room from another
            await ben.leave()

            document = await export_room(root, name)
            assert document["room"] == name and dict(document["items"]) == expected, name

            # The held log of this room alone, in order.
            joined = await ben.join(name, since=0)
            assert joined.mode == "resume"
            logged = []
            with trio.fail_after(10):
                while len(logged) < 2:
                    event = await ben.receive()
                    if isinstance(event, Applied):
                        logged += [(event.seq, op[1]) for op in event.ops]
            assert logged == list(enumerate(expected, start=1)), name
            await ben.leave()


async def test_pattern_characters_in_room_names_and_keys_are_plain_names(server_process):
    host, port = server_process.start()
    await fill(host, port)
    async with connect(host, port, name="cy") as cy, connect(host, port, name="dee") as dee:
        await cy.join("other")
        await cy.lock(["o1"])
        await dee.join("**")
        await dee.lock(["*"])
        await check(host, port, locks={"other": 1, "**": 1})
        server_process.kill()  # the locks stay in the tree
    # A restart rebuilds every room's keys and locks from the tree, each from its own room, then releases
    # the locks of sessions from before it.
    host, port = server_process.start()
    await check(host, port, locks={})
