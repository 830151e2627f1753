"""Share links in a cluster of real OS processes: made on one node, open on every node, revoked anywhere."""

from __future__ import annotations

import signal
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import trio
from support import BroadcasterCluster

from broadcaster.auth import add_user, new_token
from broadcaster.client import ServerError, connect
from broadcaster.sharestore import LOOKUP_TIMEOUT
from protocol import PROTOCOL_VERSION, Hello
from tools.cluster import free_port
from tools.proxy import open_links
from tools.wsclient import WebSocketClosed, WSClient


class SharingCluster(BroadcasterCluster):
    """Every node with users (one tokens file each, the same admin) and an HTTP port for the viewer."""

    def __init__(self, root: Path, size: int = 3, links=None):
        self.http_ports: dict[int, int] = {}
        self.admin_token = ""
        super().__init__(root, size, links=links)

    def add_node(self, i: int):
        node = super().add_node(i)
        self.http_ports[i] = free_port()
        return node

    def command(self, i: int, join: bool = False, **options: Any) -> list[str]:
        tokens = self.nodes[i].root / "tokens.toml"
        if not tokens.exists():
            tokens.parent.mkdir(parents=True, exist_ok=True)
            self.admin_token = self.admin_token or add_user(tokens, "root", "admin")
            if i != min(self.ids):  # the same user on every node: copy the first node's file
                tokens.write_bytes((self.nodes[min(self.ids)].root / "tokens.toml").read_bytes())
        return [
            *super().command(i, join, **options),
            *("--tokens-file", str(tokens), "--http-port", str(self.http_ports[i])),
        ]

    async def status(self, i: int) -> dict[str, Any]:
        with trio.fail_after(5):
            async with connect(*self.address(i), name="status", token=self.admin_token) as client:
                return await client.admin("status")

    def http(self, i: int) -> str:
        return f"127.0.0.1:{self.http_ports[i]}"

    async def metric(self, i: int, name: str) -> float:
        """One sample of node ``i``'s /metrics (its HTTP port answers whatever its replication is doing)."""

        def scrape() -> str:
            url = f"http://{self.http(i)}/metrics?token={self.admin_token}"
            with urllib.request.urlopen(url, timeout=10) as response:
                return response.read().decode()

        for line in (await trio.to_thread.run_sync(scrape)).splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise AssertionError(f"node {i} exports no {name}")


async def open_viewer(http: str, token: str, room: str) -> tuple[WSClient, dict]:
    """A share link's page: hello with its token; joins the room if welcomed."""
    ws = await WSClient.open(http)
    await ws.send(Hello(protocol=PROTOCOL_VERSION, client_name="director", client_kind="web", token=token))
    answer = await ws.receive_body()
    if answer["type"] == "welcome":
        await ws.send_body({"type": "join_room", "room": room})
        await ws.receive_until("snapshot_end")
    return ws, answer


async def listed_on(cluster: SharingCluster, i: int, room: str) -> list[str]:
    async with connect(*cluster.address(i), name="root", token=cluster.admin_token) as root:
        return [s["name"] for s in await root.admin("shares", room=room)]


async def test_a_link_made_on_one_node_opens_on_all_is_revoked_on_all_and_survives_failover(tmp_path):
    async with SharingCluster(tmp_path / "cluster", 3) as cluster:
        await cluster.leader()
        async with connect(*cluster.address(1), name="root", token=cluster.admin_token) as one:
            await one.create_room("r", keep_open=True)
            first = await one.admin("share", room="r")
            kept = await one.admin("share", room="r")
        for i in (2, 3):  # each node learns of the links as it applies them
            with trio.fail_after(20):
                while {first["name"], kept["name"]} - set(await listed_on(cluster, i, "r")):
                    await trio.sleep(0.05)

        on_two, welcome = await open_viewer(cluster.http(2), first["token"], "r")
        assert welcome["type"] == "welcome" and welcome["role"] == "viewer", welcome
        on_three, welcome = await open_viewer(cluster.http(3), first["token"], "r")
        assert welcome["type"] == "welcome", welcome

        async with connect(*cluster.address(3), name="root", token=cluster.admin_token) as three:
            revoked = await three.admin("revoke_share", name=first["name"])
        assert revoked["closed"] == 1  # node 3's own viewer; node 2 closes its own as it applies it
        for ws in (on_two, on_three):
            with trio.fail_after(20):
                while (error := await ws.receive_body())["type"] != "error":
                    # Viewers are not told of each other, on one node or across nodes.
                    assert error["type"] != "client_joined" or error["client"]["kind"] != "viewer", error
            assert error["type"] == "error" and error["code"] == "auth_failed" and error["fatal"]
            assert "revoked" in error["message"]
            with trio.fail_after(20), pytest.raises(WebSocketClosed):
                await ws.receive_body()

        leader = await cluster.leader()
        cluster.signal(leader, signal.SIGKILL)
        survivors = [i for i in cluster.ids if i != leader]
        await cluster.leader(among=survivors)
        for i in survivors:
            ws, welcome = await open_viewer(cluster.http(i), kept["token"], "r")
            assert welcome["type"] == "welcome" and welcome["role"] == "viewer", (i, welcome)
            await ws.aclose()
            _, refused = await open_viewer(cluster.http(i), first["token"], "r")
            assert refused["type"] == "error" and refused["code"] == "auth_failed", (i, refused)


async def hello_on(http: str, token: str) -> WSClient:
    ws = await WSClient.open(http)
    await ws.send(Hello(protocol=PROTOCOL_VERSION, client_name="director", client_kind="web", token=token))
    return ws


async def test_a_link_opened_at_once_on_a_node_that_has_not_applied_it_opens_once_that_node_caught_up(
    tmp_path,
):
    async with open_links([1, 2, 3]) as links, SharingCluster(tmp_path / "cluster", 3, links) as cluster:
        leader = await cluster.leader()
        behind = next(i for i in cluster.ids if i != leader)
        async with connect(*cluster.address(leader), name="root", token=cluster.admin_token) as root:
            await root.create_room("r", keep_open=True)
            with trio.fail_after(20):
                while True:  # the follower has the room (its links can be listed)
                    try:
                        await listed_on(cluster, behind, "r")
                        break
                    except ServerError:
                        await trio.sleep(0.05)
            # The leader's messages to one follower stop: the other two commit the link, it learns nothing.
            links.proxy(leader, behind).cut()
            link = await root.admin("share", room="r")
        assert link["name"] not in await listed_on(cluster, behind, "r")

        # The link is opened there: the node does not know its token, so it catches up before answering.
        ws = await hello_on(cluster.http(behind), link["token"])
        answers: list[dict] = []
        async with trio.open_nursery() as nursery:

            async def answer() -> None:
                answers.append(await ws.receive_body())

            nursery.start_soon(answer)
            with trio.fail_after(20):
                while not answers and await cluster.metric(behind, "blendsync_token_rechecks_total") < 1:
                    await trio.sleep(0.02)
            assert not answers, answers  # answered before the node could know the link
            links.proxy(leader, behind).heal()  # ... which it can now, within the lookup's deadline
            with trio.fail_after(LOOKUP_TIMEOUT):
                while not answers:
                    await trio.sleep(0.02)
        assert answers[0]["type"] == "welcome" and answers[0]["role"] == "viewer", answers
        await ws.send_body({"type": "join_room", "room": "r"})
        with trio.fail_after(20):
            await ws.receive_until("snapshot_end")
        await ws.aclose()
        assert link["name"] in await listed_on(cluster, behind, "r")

        # A token no node knows is still refused, after the same catching up, well within its deadline.
        rechecks = await cluster.metric(behind, "blendsync_token_rechecks_total")
        ws = await hello_on(cluster.http(behind), new_token())
        with trio.fail_after(LOOKUP_TIMEOUT):
            refused = await ws.receive_body()
        assert refused["type"] == "error" and refused["code"] == "auth_failed" and refused["fatal"], refused
        assert await cluster.metric(behind, "blendsync_token_rechecks_total") == rechecks + 1
        await ws.aclose()

        # Cut off from the others, the node cannot tell: it says so once the deadline passes (the page
        # tries again), rather than calling a link it may not have applied yet expired or revoked.
        links.isolate(behind)
        ws = await hello_on(cluster.http(behind), new_token())
        with trio.fail_after(LOOKUP_TIMEOUT + 5):
            refused = await ws.receive_body()
        assert refused["type"] == "error" and refused["code"] == "unavailable" and refused["fatal"], refused
        await ws.aclose()
        links.heal_all()
