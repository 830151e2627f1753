"""The partition proxy, against plain trio echo servers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import pytest
import trio

from tools.proxy import Links, open_links, open_proxy


async def _echo(stream: trio.SocketStream) -> None:
    async with stream:
        try:
            async for data in stream:
                await stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass


@asynccontextmanager
async def echo_server(tag: bytes = b"") -> AsyncIterator[tuple[str, int]]:
    """An echo server; with ``tag`` it first sends the tag, so a client can tell servers apart."""

    async def handler(stream: trio.SocketStream) -> None:
        if tag:
            await stream.send_all(tag)
        await _echo(stream)

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
        yield "127.0.0.1", listeners[0].socket.getsockname()[1]
        nursery.cancel_scope.cancel()


async def roundtrip(stream: trio.SocketStream, data: bytes, timeout: float = 5.0) -> bytes:
    await stream.send_all(data)
    received = b""
    with trio.fail_after(timeout):
        while len(received) < len(data):
            chunk = await stream.receive_some()
            if not chunk:
                break
            received += chunk
    return received


async def closed_by_peer(stream: trio.SocketStream, timeout: float = 5.0) -> bool:
    """True once the peer has closed (EOF or reset)."""
    with trio.move_on_after(timeout):
        try:
            while True:
                if await stream.receive_some() == b"":
                    return True
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return True
    return False


async def test_forwards_both_directions():
    async with echo_server() as target, open_proxy(target) as proxy:
        stream = await trio.open_tcp_stream(*proxy.address)
        async with stream:
            payload = bytes(range(256)) * 1000
            assert await roundtrip(stream, payload) == payload
        assert proxy.forwarded == 1
        assert proxy.bytes >= 2 * len(payload)


async def test_without_target_connections_are_closed():
    async with open_proxy() as proxy:
        stream = await trio.open_tcp_stream(*proxy.address)
        async with stream:
            assert await closed_by_peer(stream)


async def test_cut_closes_current_and_refuses_new_then_heal():
    async with echo_server() as target, open_proxy(target) as proxy:
        before = await trio.open_tcp_stream(*proxy.address)
        assert await roundtrip(before, b"hello") == b"hello"
        proxy.cut()
        assert await closed_by_peer(before)
        await before.aclose()
        assert proxy.active == 0

        refused = await trio.open_tcp_stream(*proxy.address)  # the proxy accepts, then hangs up
        async with refused:
            assert await closed_by_peer(refused)

        proxy.heal()
        after = await trio.open_tcp_stream(*proxy.address)
        async with after:
            assert await roundtrip(after, b"again") == b"again"


async def test_target_can_be_changed():
    async with echo_server(b"A") as a, echo_server(b"B") as b, open_proxy(a) as proxy:
        first = await trio.open_tcp_stream(*proxy.address)
        assert await roundtrip(first, b"x") in (b"A", b"Ax")
        proxy.set_target(*b)
        assert await closed_by_peer(first)  # connections to the old target are dropped
        await first.aclose()
        second = await trio.open_tcp_stream(*proxy.address)
        async with second:
            with trio.fail_after(5):
                assert (await second.receive_some())[:1] == b"B"


async def test_unreachable_target_closes_the_client():
    async with echo_server() as target:
        pass  # the server is gone; its port refuses connections
    async with open_proxy(target) as proxy:
        stream = await trio.open_tcp_stream(*proxy.address)
        async with stream:
            assert await closed_by_peer(stream)


async def test_delay_holds_each_chunk():
    async with echo_server() as target, open_proxy(target) as proxy:
        stream = await trio.open_tcp_stream(*proxy.address)
        async with stream:
            assert await roundtrip(stream, b"warm") == b"warm"
            proxy.delay(0.2)
            started = trio.current_time()
            assert await roundtrip(stream, b"slow") == b"slow"
            # one chunk each way, each held 0.2 s
            assert trio.current_time() - started >= 0.39
            proxy.delay(0)
            started = trio.current_time()
            assert await roundtrip(stream, b"fast") == b"fast"
            assert trio.current_time() - started < 0.3


async def test_hold_back_keeps_replies_until_released():
    received = []

    async def recording_echo(stream: trio.SocketStream) -> None:
        async with stream:
            async for data in stream:
                received.append(data)
                await stream.send_all(data)

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, recording_echo, 0, host="127.0.0.1"))
        async with open_proxy(("127.0.0.1", listeners[0].socket.getsockname()[1])) as proxy:
            stream = await trio.open_tcp_stream(*proxy.address)
            async with stream:
                assert await roundtrip(stream, b"warm") == b"warm"
                proxy.hold_back()
                await stream.send_all(b"held")
                with trio.fail_after(5):
                    while received[-1:] != [b"held"]:  # the request went through; its echo waits
                        await trio.sleep(0.01)
                with trio.move_on_after(0.2) as waited:
                    await stream.receive_some()
                assert waited.cancelled_caught
                proxy.release_back()
                with trio.fail_after(5):
                    assert await stream.receive_some() == b"held"
        nursery.cancel_scope.cancel()


async def test_closing_one_side_closes_the_other():
    async with echo_server() as target, open_proxy(target) as proxy:
        stream = await trio.open_tcp_stream(*proxy.address)
        assert await roundtrip(stream, b"x") == b"x"
        await stream.aclose()
        with trio.fail_after(5):
            while proxy.active:
                await trio.sleep(0.01)


@asynccontextmanager
async def three_servers() -> AsyncIterator[tuple[Links, dict[int, tuple[str, int]]]]:
    async with echo_server(b"1") as s1, echo_server(b"2") as s2, echo_server(b"3") as s3:
        async with open_links([1, 2, 3]) as links:
            servers = {1: s1, 2: s2, 3: s3}
            for node, (host, port) in servers.items():
                links.set_target(node, host, port)
            yield links, servers


async def reachable(links: Links, i: int, j: int) -> bool:
    """Whether node i can reach node j (the echo server of j greets with its id)."""
    stream = await trio.open_tcp_stream(*links.address(i, j))
    async with stream:
        with trio.move_on_after(2):
            try:
                data = await stream.receive_some()
            except trio.BrokenResourceError:
                return False
            if data:
                assert data[:1] == str(j).encode()
                return True
    return False


async def reachability(links: Links) -> set[tuple[int, int]]:
    result = set()
    for i, j in links.proxies:
        if await reachable(links, i, j):
            result.add((i, j))
    return result


ALL = {(i, j) for i in (1, 2, 3) for j in (1, 2, 3) if i != j}


async def test_links_route_every_ordered_pair():
    async with three_servers() as (links, _servers):
        assert len(links.proxies) == 6
        assert len({links.address(i, j) for i, j in ALL}) == 6
        assert await reachability(links) == ALL


async def test_isolate_partition_and_heal_all():
    async with three_servers() as (links, _servers):
        links.isolate(2)
        assert await reachability(links) == {(1, 3), (3, 1)}
        assert links.cut_links() == [(1, 2), (2, 1), (2, 3), (3, 2)]

        links.partition([[1, 2], [3]])
        assert await reachability(links) == {(1, 2), (2, 1)}

        links.partition([[1]])  # 2 and 3 are each on their own
        assert await reachability(links) == set()

        links.heal_all()
        assert await reachability(links) == ALL


async def test_directed_cut():
    async with three_servers() as (links, _servers):
        links.cut(1, 2, both=False)
        assert await reachability(links) == ALL - {(1, 2)}
        links.heal(1, 2)
        assert await reachability(links) == ALL


async def test_isolate_kills_live_connections():
    async with three_servers() as (links, _servers):
        streams = {pair: await trio.open_tcp_stream(*links.address(*pair)) for pair in sorted(ALL)}
        for (_i, j), stream in streams.items():
            with trio.fail_after(5):
                assert (await stream.receive_some())[:1] == str(j).encode()
        links.isolate(1)
        for pair, stream in streams.items():
            if 1 in pair:
                assert await closed_by_peer(stream), pair
            else:
                assert await roundtrip(stream, b"ok") == b"ok"
        for stream in streams.values():
            await stream.aclose()


async def test_unstarted_proxy_has_no_address():
    with pytest.raises(RuntimeError):
        _ = Links([1, 2]).address(1, 2)
