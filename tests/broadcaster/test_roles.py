"""Roles in a room and share links: a viewer reads its one room and can do nothing else, whatever it sends."""

from __future__ import annotations

import time
import urllib.parse
from contextlib import asynccontextmanager

import pytest
import trio
from support import blendsync_cli

from broadcaster.app import open_broadcaster
from broadcaster.auth import add_user, read_users
from broadcaster.client import ServerError, connect
from broadcaster.config import ServerConfig
from protocol import PROTOCOL_VERSION, Hello
from tools.wsclient import WebSocketClosed, WSClient


@asynccontextmanager
async def studio(tmp_path):
    tokens = tmp_path / "tokens.toml"
    admin_token = add_user(tokens, "root", "admin")
    ana_token, ben_token = add_user(tokens, "ana"), add_user(tokens, "ben")
    config = ServerConfig(host="127.0.0.1", port=0, data_dir=tmp_path / "d", http_port=0, tokens_file=tokens)
    async with open_broadcaster(config) as b:
        host, port = b.listen_addresses[0].rsplit(":", 1)
        yield b, (host, int(port)), {"root": admin_token, "ana": ana_token, "ben": ben_token}, tokens


async def viewer(http: str, token: str) -> tuple[WSClient, dict]:
    ws = await WSClient.open(http)
    await ws.send(Hello(protocol=PROTOCOL_VERSION, client_name="director", client_kind="web", token=token))
    return ws, await ws.receive_body()


ROOM = "shot/010 *?#%"  # pattern characters are data, in the room name and in the link


async def test_a_share_link_reads_its_room_live_and_is_refused_everything_else(tmp_path):
    async with studio(tmp_path) as (b, (host, port), tokens, _):
        async with connect(host, port, name="ana", token=tokens["ana"]) as ana:
            await ana.create_room(ROOM, keep_open=True, password="pw")
            await ana.create_room("other", keep_open=True)
            await ana.join("other")
            await ana.set("secret", b"other room's data")
            await ana.leave()
            await ana.join(ROOM, password="pw")
            await ana.set("obj/1/name", b"Cube")
            await ana.presence(name="ana", frame=12)
            share = await ana.admin("share", room=ROOM, expires_in=3600)  # the creator owns the room
            assert share["room"] == ROOM and share["name"].startswith("share-")
            url = urllib.parse.urlsplit(share["url"])
            assert url.netloc == b.http_addresses[0]
            assert urllib.parse.unquote(url.path) == "/view/" + ROOM and "/" not in url.path[len("/view/") :]
            assert urllib.parse.parse_qs(url.query) == {"token": [share["token"]]}

            ws, welcome = await viewer(b.http_addresses[0], share["token"])
            assert welcome["type"] == "welcome" and welcome["role"] == "viewer"
            ref = 0

            async def refused(body: dict) -> dict:
                nonlocal ref
                ref += 1
                if "op_id" not in body and body["type"] != "presence":
                    body["ref"] = ref
                await ws.send_body(body)
                error = await ws.receive_body()
                assert error["type"] == "error" and error["code"] == "forbidden" and not error["fatal"], (
                    body,
                    error,
                )
                return error

            # Before joining: no room list, no other room, no room of its own making.
            await refused({"type": "list_rooms"})
            await refused({"type": "join_room", "room": "other"})
            await refused({"type": "create_room", "room": "mine"})
            await refused({"type": "delete_room", "room": ROOM})
            # Joining its room needs no password: the owner made the link.
            await ws.send_body({"type": "join_room", "room": ROOM, "ref": 100})
            events = await ws.receive_until("snapshot_end")
            assert events[0].TYPE == "joined" and events[0].role == "viewer"
            assert [c["name"] for c in events[0].clients] == ["ana"] and events[0].clients[0]["frame"] == 12
            assert [i for e in events if e.TYPE == "snapshot" for i in e.items] == [["obj/1/name", b"Cube"]]
            for body in (
                {"type": "set", "op_id": 1, "key": "obj/1/name", "value": b"Hacked"},
                {"type": "delete", "op_id": 2, "key": "obj/1/name"},
                {"type": "batch", "op_id": 3, "ops": [["set", "k", b"v"]]},
                {"type": "event", "op_id": 4, "value": b"x"},
                {"type": "lock", "keys": ["obj/1/name"]},
                {"type": "unlock", "keys": []},
                {"type": "admin", "action": "rooms"},
                {"type": "admin", "action": "export", "args": {"room": "other"}},
                {"type": "admin", "action": "share", "args": {"room": ROOM}},
                {"type": "admin", "action": "shares", "args": {"room": ROOM}},
                {"type": "admin", "action": "revoke_share", "args": {"name": share["name"]}},
                {"type": "admin", "action": "kick", "args": {"client_id": ana.client_id}},
                {"type": "presence", "state": {"name": "ana", "selection": ["obj/1"]}},
            ):
                await refused(body)
            # Nothing it sent reached the room: the members saw it join, and only that.
            await ana.set("obj/1/name", b"Sphere")
            applied = [e for e in await ws.receive_until("applied") if e.TYPE == "applied"]
            assert applied[0].ops == [["set", "obj/1/name", b"Sphere"]] and applied[0].seq == 2
            joined = await ana.receive()
            assert joined.TYPE == "client_joined" and joined.client["kind"] == "viewer"
            with trio.move_on_after(0.5):
                extra = await ana.receive()
                pytest.fail(f"a viewer's request reached a member: {extra}")
            await ana.presence(frame=13)
            updated = await ws.receive()
            assert updated.TYPE == "client_updated" and updated.state == {"frame": 13}
            await ws.aclose()


async def test_a_revoked_or_expired_link_is_refused_and_a_revoke_closes_it_at_once(tmp_path):
    async with studio(tmp_path) as (b, (host, port), tokens, _):
        async with (
            connect(host, port, name="ana", token=tokens["ana"]) as ana,
            connect(host, port, name="ben", token=tokens["ben"]) as ben,
        ):
            await ana.create_room("r", keep_open=True)
            # Only the room's owner (its creator, or an admin) shares it; nobody shares a missing room.
            with pytest.raises(ServerError, match="forbidden"):
                await ben.admin("share", room="r")
            with pytest.raises(ServerError, match="no_such_room"):
                await ana.admin("share", room="nope")
            share = await ana.admin("share", room="r")
            assert 7 * 86400 - 60 < share["expires_at"] - time.time() <= 7 * 86400  # the default
            listed = await ana.admin("shares", room="r")
            assert [s["name"] for s in listed] == [share["name"]] and not listed[0]["expired"]
            # Another room's link and a name no link has get the same answer: names are not probed.
            refusals = []
            for name in (share["name"], "share-0123456789ab"):
                with pytest.raises(ServerError) as info:
                    await ben.admin("revoke_share", name=name)
                refusals.append((info.value.code, info.value.message.replace(name, "NAME")))
            assert refusals == [("forbidden", "no share link named 'NAME' in a room you own")] * 2

            ws, _ = await viewer(b.http_addresses[0], share["token"])
            await ws.send_body({"type": "join_room", "room": "r"})
            await ws.receive_until("snapshot_end")
            revoked = await ana.admin("revoke_share", name=share["name"])
            assert revoked == {"name": share["name"], "room": "r", "closed": 1}
            error = await ws.receive_body()
            assert error["code"] == "auth_failed" and error["fatal"] and "revoked" in error["message"]
            with pytest.raises(WebSocketClosed):
                await ws.receive_body()
            assert await ana.admin("shares", room="r") == []
            _, refused = await viewer(b.http_addresses[0], share["token"])
            assert refused["type"] == "error" and refused["code"] == "auth_failed"

            # Gone from the list, the record keeps saying why it is refused; revoking twice finds nothing.
            with pytest.raises(ServerError, match="no share link"):
                await ana.admin("revoke_share", name=share["name"])


async def test_a_link_expiring_while_open_closes_its_viewers_and_is_refused_after(tmp_path):
    async with studio(tmp_path) as (b, (host, port), tokens, _):
        async with connect(host, port, name="ana", token=tokens["ana"]) as ana:
            await ana.create_room("r", keep_open=True)
            await ana.join("r")
            # A link of a few seconds: its viewer is open before it expires (the protocol counts whole
            # seconds), and the close is an event the test waits for, not a time it guesses.
            late = await ana.admin("share", room="r", expires_in=3)
            lasting = await ana.admin("share", room="r", expires_in=3600)
            ws, welcome = await viewer(b.http_addresses[0], late["token"])
            assert welcome["type"] == "welcome", welcome
            other, _ = await viewer(b.http_addresses[0], lasting["token"])
            for client in (ws, other):
                await client.send_body({"type": "join_room", "room": "r"})
                await client.receive_until("snapshot_end")
            with trio.fail_after(30):
                while True:
                    body = await ws.receive_body()
                    if body["type"] == "error":
                        break
            assert body["code"] == "auth_failed" and body["fatal"] and "expired" in body["message"]
            assert time.time() >= late["expires_at"]  # not before its time
            with pytest.raises(WebSocketClosed):
                await ws.receive_body()
            [listed] = [s for s in await ana.admin("shares", room="r") if s["name"] == late["name"]]
            assert listed["expired"]
            _, refused = await viewer(b.http_addresses[0], late["token"])
            assert refused["type"] == "error" and refused["code"] == "auth_failed"
            # The other link's viewer is untouched: it still gets the room's operations.
            await ana.set("k", b"v")
            assert (await other.receive_until("applied"))[-1].TYPE == "applied"
            await other.aclose()


async def test_links_in_the_tokens_file_are_imported_and_keep_working(tmp_path):
    tokens = tmp_path / "tokens.toml"
    admin_token = add_user(tokens, "root", "admin")
    old = add_user(tokens, "share-0123456789ab", "viewer", room="r", expires_at=int(time.time()) + 3600)
    config = ServerConfig(host="127.0.0.1", port=0, data_dir=tmp_path / "d", http_port=0, tokens_file=tokens)
    async with open_broadcaster(config) as b:
        host, port = b.listen_addresses[0].rsplit(":", 1)
        async with connect(host, int(port), name="root", token=admin_token) as root:
            await root.create_room("r", keep_open=True)
            with trio.fail_after(20):
                while [u["name"] for u in read_users(tokens)] != ["root"]:
                    await trio.sleep(0.05)  # the import runs beside the serving; the file says when
            [listed] = await root.admin("shares", room="r")
            assert listed["name"] == "share-0123456789ab" and not listed["expired"]
            ws, welcome = await viewer(b.http_addresses[0], old)
            assert welcome["type"] == "welcome" and welcome["role"] == "viewer"
            await ws.send_body({"type": "join_room", "room": "r"})
            await ws.receive_until("snapshot_end")
            await root.admin("revoke_share", name="share-0123456789ab")
            error = await ws.receive_body()
            assert error["code"] == "auth_failed" and "revoked" in error["message"]
    # Restarted: the link is still known (revoked), and the file is not read for it again.
    async with open_broadcaster(config) as b:
        _, refused = await viewer(b.http_addresses[0], old)
        assert refused["type"] == "error" and refused["code"] == "auth_failed"


async def test_roles_in_a_room(tmp_path):
    async with studio(tmp_path) as (_, (host, port), tokens, _):
        async with (
            connect(host, port, name="ana", token=tokens["ana"]) as ana,
            connect(host, port, name="ben", token=tokens["ben"]) as ben,
            connect(host, port, name="root", token=tokens["root"]) as root,
        ):
            await ana.create_room("r", keep_open=True)
            roles = [(await client.join("r")).role for client in (ana, ben, root)]
            assert roles == ["owner", "editor", "owner"]
            with pytest.raises(ServerError, match="forbidden"):
                await ben.delete_room("r")


async def test_blendsync_admin_share_lists_and_revokes(tmp_path):
    async with studio(tmp_path) as (b, (host, port), tokens, _):
        async with connect(host, port, name="ana", token=tokens["ana"]) as ana:
            await ana.create_room("a/b c", keep_open=True)

        def cli(*args: str) -> str:
            token = tokens["ana"]
            done = blendsync_cli("admin", "--host", host, "--port", str(port), "--token", token, *args)
            assert done.returncode == 0, done.stderr
            return done.stdout

        url = (await trio.to_thread.run_sync(cli, "share", "a/b c", "--expires", "2h")).strip()
        assert url.startswith(f"http://{b.http_addresses[0]}/view/a%2Fb%20c?token=bst_")
        [name] = [s["name"] for s in await ana_shares(host, port, tokens["ana"], "a/b c")]
        listing = await trio.to_thread.run_sync(cli, "shares", "a/b c")
        assert name in listing and "a/b c" in listing
        await trio.to_thread.run_sync(cli, "revoke-share", name)
        assert await ana_shares(host, port, tokens["ana"], "a/b c") == []


async def ana_shares(host: str, port: int, token: str, room: str) -> list[dict]:
    async with connect(host, port, name="ana", token=token) as ana:
        return await ana.admin("shares", room=room)


async def test_viewers_are_announced_to_artists_and_not_to_each_other(tmp_path):
    # Artists count the viewers (display meshes, docs/addon.md); viewers need not hear of each other,
    # which would cost n^2 messages for n reviewers.
    async with studio(tmp_path) as (b, (host, port), tokens, _):
        async with connect(host, port, name="ana", token=tokens["ana"]) as ana:
            await ana.create_room("r", keep_open=True)
            await ana.join("r")
            share = await ana.admin("share", room="r")
            first, _ = await viewer(b.http_addresses[0], share["token"])
            await first.send_body({"type": "join_room", "room": "r"})
            await first.receive_until("snapshot_end")
            second, _ = await viewer(b.http_addresses[0], share["token"])
            await second.send_body({"type": "join_room", "room": "r"})
            events = await second.receive_until("snapshot_end")
            assert [c["name"] for c in events[0].clients] == ["ana"]
            for _ in range(2):
                joined = await ana.receive()
                assert joined.TYPE == "client_joined" and joined.client["kind"] == "viewer"
            await second.aclose()
            left = await ana.receive()
            assert left.TYPE == "client_left"
            await ana.set("k", b"v")  # the first viewer's next message is this, not the other's comings
            assert (await first.receive()).TYPE == "applied"
            await first.aclose()


async def test_a_viewer_fetches_the_blobs_its_room_references_and_no_other(tmp_path):
    # Blobs are stored once per server and fetched by hash: a viewer must not read another room's
    # (nor one only uploaded), and must not learn that the server holds it.
    async with studio(tmp_path) as (b, (host, port), tokens, _):
        async with connect(host, port, name="ana", token=tokens["ana"]) as ana:
            await ana.create_room("other", keep_open=True)
            await ana.join("other")
            theirs = await ana.put_blob(b"the other room's texture")
            await ana.batch([["set", "tex", b"v", [theirs]]])
            await ana.leave()
            await ana.create_room(ROOM, keep_open=True)
            await ana.join(ROOM)
            ours, released = await ana.put_blob(b"our texture"), await ana.put_blob(b"an old texture")
            uploaded = await ana.put_blob(b"uploaded, referenced by nothing")
            await ana.batch([["set", "mat/1/tex", b"v", [ours]], ["set", "mat/2/tex", b"v", [released]]])
            await ana.set("mat/2/tex", b"no texture now")
            await ana.put_blob(b"an old texture")  # held again by an upload: stored, not the room's
            share = await ana.admin("share", room=ROOM)
            ws, _ = await viewer(b.http_addresses[0], share["token"])

            async def fetch(hashes: list[bytes]) -> list:
                await ws.send_body({"type": "blob_get", "hashes": hashes, "ref": 7})
                answers = []
                while len(answers) < len(hashes):
                    event = await ws.receive()
                    if event.TYPE == "blob_data":
                        answers.append((event.hash, event.data))
                return answers

            assert await fetch([ours]) == [(ours, None)]  # not in its room before it joins
            await ws.send_body({"type": "join_room", "room": ROOM, "ref": 1})
            await ws.receive_until("snapshot_end")
            nothing = bytes(32)
            assert await fetch([ours, theirs, released, uploaded, nothing]) == [
                (ours, b"our texture"),
                (theirs, None),
                (released, None),
                (uploaded, None),
                (nothing, None),
            ]
            assert await ana.get_blob(theirs) == b"the other room's texture"  # an artist reads by hash
            # A key that lets go of the blob takes the viewer's access with it.
            await ana.delete("mat/1/tex")
            await ws.receive_until("applied")
            assert await fetch([ours]) == [(ours, None)]
            await ws.aclose()


async def test_a_record_under_shares_not_written_by_the_server_is_ignored(tmp_path):
    # Nothing committed crashes a node: whatever reaches /shares/ in the tree, links go on working.
    async with studio(tmp_path) as (b, (host, port), tokens, _):
        for payload in ("not a record", {"room": "r"}, {"token_sha256": 7}, None):
            await b.node.propose({"then": [{"op": "put", "path": ["shares", "junk"], "payload": payload}]})
        async with connect(host, port, name="ana", token=tokens["ana"]) as ana:
            await ana.create_room("r", keep_open=True)
            share = await ana.admin("share", room="r")
            assert [s["name"] for s in await ana.admin("shares", room="r")] == [share["name"]]
            _, welcome = await viewer(b.http_addresses[0], share["token"])
            assert welcome["type"] == "welcome" and welcome["role"] == "viewer"


async def test_a_link_does_not_open_a_room_made_again_under_its_rooms_name(tmp_path):
    # Ana's room is deleted and Ben makes one of the same name: Ana's link is of the room that was deleted,
    # so it opens nothing of Ben's, and Ben neither sees nor revokes it; his own link opens his room.
    async with studio(tmp_path) as (b, (host, port), tokens, _):
        async with (
            connect(host, port, name="ana", token=tokens["ana"]) as ana,
            connect(host, port, name="ben", token=tokens["ben"]) as ben,
        ):
            await ana.create_room("r", keep_open=True)
            old = await ana.admin("share", room="r")
            await ana.delete_room("r")
            await ben.create_room("r", keep_open=True)
            await ben.join("r")
            await ben.set("secret", b"ben's scene")
            ws, welcome = await viewer(b.http_addresses[0], old["token"])
            assert welcome["type"] == "welcome"  # the token is valid; the room it was made for is gone
            await ws.send_body({"type": "join_room", "room": "r", "ref": 1})
            refused = await ws.receive_body()
            assert refused["type"] == "error" and refused["code"] == "no_such_room", refused
            assert "was deleted" in refused["message"]
            await ws.aclose()
            assert await ben.admin("shares", room="r") == []
            with pytest.raises(ServerError, match="forbidden"):
                await ben.admin("revoke_share", name=old["name"])
            mine = await ben.admin("share", room="r")
            assert [s["name"] for s in await ben.admin("shares", room="r")] == [mine["name"]]
            ws, _ = await viewer(b.http_addresses[0], mine["token"])
            await ws.send_body({"type": "join_room", "room": "r"})
            events = await ws.receive_until("snapshot_end")
            items = [i for e in events if e.TYPE == "snapshot" for i in e.items]
            assert items == [["secret", b"ben's scene"]]
            await ws.aclose()
