"""Each configured limit refuses with its error code and names itself; nothing else is affected."""

from __future__ import annotations

import pytest
import trio
from support import outcomes, running_broadcaster

from broadcaster.client import ServerError, connect
from protocol import Error


@pytest.fixture
def limited(tmp_path):
    """A broadcaster with some limits and a bystander writing in its own room throughout."""

    def start(**limits):
        return _Limited(tmp_path, limits)

    return start


class _Limited:
    def __init__(self, tmp_path, limits):
        self.context = running_broadcaster(tmp_path / "d", **limits)

    async def __aenter__(self):
        self.host, self.port = await self.context.__aenter__()
        self._bystander = connect(self.host, self.port, name="bystander")
        self.bystander = await self._bystander.__aenter__()
        await self.bystander.create_room("quiet", keep_open=True)
        await self.bystander.join("quiet")
        await self.bystander.set("before", b"1")
        return self

    async def __aexit__(self, *exc):
        try:
            if exc[0] is None:
                # The bystander was not disturbed: it still writes, and its room is intact.
                assert await self.bystander.set("after", b"2") >= 2
                assert self.bystander.state == {"before": b"1", "after": b"2"}
        finally:
            await self._bystander.__aexit__(*exc)
            await self.context.__aexit__(*exc)


async def refused(call, code: str, limit: str) -> None:
    with pytest.raises(ServerError) as info:
        await call
    assert info.value.code == code and limit in info.value.message and not info.value.fatal


async def test_max_rooms(limited):
    async with limited(max_rooms=3) as s, connect(s.host, s.port) as c:
        await c.create_room("a", keep_open=True)
        await c.create_room("b", keep_open=True)  # with the bystander's: 3
        await refused(c.create_room("c"), "limit_exceeded", "max_rooms")
        await c.delete_room("a")
        await c.create_room("c", keep_open=True)


async def test_max_clients(limited):
    async with limited(max_clients=2) as s, connect(s.host, s.port, name="second") as second:
        with pytest.raises(ServerError) as info:
            async with connect(s.host, s.port, name="third"):
                pass
        assert info.value.code == "limit_exceeded" and "max_clients" in info.value.message
        assert info.value.fatal  # there is no session to go on with
        assert await second.list_rooms()


async def test_max_room_keys(limited):
    async with limited(max_room_keys=3) as s, connect(s.host, s.port) as c:
        await c.create_room("r", keep_open=True)
        await c.join("r")
        await c.batch([["set", "k1", b"x"], ["set", "k2", b"x"]])
        await c.set("k3", b"x")
        await refused(c.set("k4", b"x"), "limit_exceeded", "max_room_keys")
        await refused(c.batch([["set", "k1", b"y"], ["set", "k5", b"x"]]), "limit_exceeded", "max_room_keys")
        assert c.state == {"k1": b"x", "k2": b"x", "k3": b"x"}  # the refused batch had no effect
        await c.set("k1", b"overwrite is fine")
        await c.batch([["delete", "k2"], ["set", "k4", b"x"]])  # a batch that frees a key first
        assert set(c.state) == {"k1", "k3", "k4"}


async def test_max_room_bytes(limited):
    async with limited(max_room_bytes=1000) as s, connect(s.host, s.port) as c:
        await c.create_room("r", keep_open=True)
        await c.join("r")
        await c.set("a", b"x" * 600)
        await refused(c.set("b", b"x" * 600), "limit_exceeded", "max_room_bytes")
        await c.set("a", b"x" * 100)  # shrinking
        await c.set("b", b"x" * 800)
        rooms = {r["name"]: r for r in await c.list_rooms()}
        assert rooms["r"]["bytes"] == 900


async def test_max_room_keys_counts_writes_still_in_flight(limited):
    async with limited(max_room_keys=10) as s, connect(s.host, s.port) as c:
        await c.create_room("r", keep_open=True)
        await c.join("r")
        waiters = [(await c.send_ops([["set", f"k{i}", b"x"]]))[1] for i in range(25)]
        codes = await outcomes(waiters, "max_room_keys")
        assert codes.count("ok") == 10 and codes.count("limit_exceeded") == 15
        assert len(c.state) == 10


async def test_max_ops_per_second(limited):
    async with limited(max_ops_per_second=5) as s, connect(s.host, s.port) as c:
        await c.create_room("r", keep_open=True)
        await c.join("r")
        waiters = [(await c.send_ops([["set", f"k{i}", b"x"]]))[1] for i in range(20)]
        codes = await outcomes(waiters, "max_ops_per_second")
        assert 5 <= codes.count("ok") <= 7 and codes.count("rate_limited") >= 13
        await trio.sleep(1.0)
        await c.set("later", b"fine")  # the bucket refills
        with pytest.raises(ServerError) as info:
            for _ in range(10):
                await c.event(b"ping")  # events count as operations too
        assert info.value.code == "rate_limited"


async def test_max_presence_per_second(limited):
    async with limited(max_presence_per_second=5) as s, connect(s.host, s.port) as c:
        await c.create_room("r", keep_open=True)
        await c.join("r")
        for frame in range(40):
            await c.presence(frame=frame)
        await c.list_rooms()  # a round trip: every presence before it was handled
        errors = []
        while True:
            try:
                event = c.events.receive_nowait()
            except trio.WouldBlock:
                break
            if isinstance(event, Error):
                errors.append(event)
        # Dropped presence is reported, at most once a second, and the connection goes on.
        assert len(errors) == 1 and errors[0].code == "rate_limited"
        assert "max_presence_per_second" in errors[0].message
        await c.set("still", b"writing")


async def test_max_frame_size_names_the_limit(limited):
    async with limited(max_frame_size=4096) as s, connect(s.host, s.port) as c:
        with pytest.raises(ServerError) as info:
            await c.create_room("x" * 10, password="p" * 8000)
        assert info.value.code == "frame_too_large" and "max_frame_size (4096)" in info.value.message
        assert info.value.fatal
