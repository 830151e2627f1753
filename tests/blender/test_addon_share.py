"""Share links from the add-on's room panel, in real bpy against a real ``blendsync serve`` with users and
an HTTP port: the room's owner makes a link with an expiry, copies its URL, sees it listed and revokes it;
the link opens the room as a viewer until then; an editor is offered nothing and refused by the server."""

from __future__ import annotations

import time
import urllib.parse
from types import SimpleNamespace

import pytest

bpy = pytest.importorskip("bpy", reason="bpy (Blender as a Python module) is not installed")

import trio  # noqa: E402
from support import ServerProcess  # noqa: E402
from test_addon_ui import FakeLayout, addon  # noqa: E402,F401  (addon: a fixture)

from broadcaster.auth import add_user  # noqa: E402
from protocol import PROTOCOL_VERSION, Hello  # noqa: E402
from tools.wsclient import WSClient  # noqa: E402

pytestmark = [pytest.mark.blender, pytest.mark.timeout(120)]

ROOM = "shot/010 *?#%"  # pattern characters are data, in the room name and in the link


@pytest.fixture
def served(tmp_path, addon):  # noqa: F811
    tokens = tmp_path / "tokens.toml"
    issued = {name: add_user(tokens, name) for name in ("ana", "ben")}
    process = ServerProcess(tmp_path / "data", extra=["--tokens-file", str(tokens), "--http-port", "0"])
    host, port = process.start()
    try:
        yield f"{host}:{port}", issued
    finally:
        from blender_addon import session as session_module

        session_module.stop()
        process.kill()


def pump_until(predicate, timeout: float = 20.0):
    from blender_addon import session as session_module

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        session_module.pump()
        if predicate(session_module.current()):
            return session_module.current()
        time.sleep(0.01)
    session = session_module.current()
    raise AssertionError(f"timed out: status {session.status!r}, messages {session.messages}")


def panel() -> FakeLayout:
    from blender_addon import share_ui

    layout = FakeLayout([])
    share_ui.BLENDSYNC_PT_share.draw(SimpleNamespace(layout=layout), bpy.context)
    return layout


def open_link(url: str) -> dict:
    """What a browser's page gets for the link: the welcome (or the refusal) of its token."""
    parts = urllib.parse.urlsplit(url)
    token = urllib.parse.parse_qs(parts.query)["token"][0]

    async def hello() -> dict:
        ws = await WSClient.open(parts.netloc)
        await ws.send(
            Hello(protocol=PROTOCOL_VERSION, client_name="director", client_kind="web", token=token)
        )
        body = await ws.receive_body()
        await ws.aclose()
        return body

    return trio.run(hello)


def enter(address: str, token: str, name: str, *, create: bool):
    from blender_addon import session as session_module
    from blender_addon import share_links

    session_module.stop()
    session = session_module.start(address, name=name, token=token)
    pump_until(lambda s: s.connected)
    if create:
        session.create_room(ROOM, keep_open=True)
    else:
        session.join_room(ROOM)
    return pump_until(lambda s: s.room == ROOM and s.idle and share_links.view(s).role is not None)


def test_the_owner_shares_copies_lists_and_revokes_and_an_editor_cannot(served):
    from blender_addon import share_links, share_ui

    address, tokens = served
    context = bpy.context
    session = enter(address, tokens["ana"], "ana", create=True)
    assert share_links.view(session).role == "owner" and share_ui.BLENDSYNC_PT_share.poll(context)
    assert "blendsync.share_create" in panel().operators()

    context.window_manager.blendsync_share_expiry = "3600"
    before = time.time()
    assert bpy.ops.blendsync.share_create() == {"FINISHED"}
    shares = share_links.view(session)
    pump_until(lambda s: shares.made is not None and shares.links)
    made = shares.made
    assert before + 3600 - 5 <= made["expires_at"] <= time.time() + 3600
    parts = urllib.parse.urlsplit(made["url"])
    assert urllib.parse.unquote(parts.path) == "/view/" + ROOM and parts.scheme == "http"
    assert [(link["name"], link["expired"]) for link in shares.links] == [(made["name"], False)]
    texts = panel().texts()
    assert made["url"] in texts and any(made["name"] in text for text in texts)
    assert "blendsync.share_copy" in panel().operators()
    assert bpy.ops.blendsync.share_copy() == {"FINISHED"}
    assert "Copied to the clipboard" in panel().texts()
    if not bpy.app.background:  # Blender as a module has no window system: no clipboard to read back
        assert context.window_manager.clipboard == made["url"]
    welcome = open_link(made["url"])
    assert (welcome["type"], welcome["role"]) == ("welcome", "viewer")

    # A short link, listed as expired once it is; the refresh button lists them again.
    share_links.make_link(session, 1)
    pump_until(lambda s: len(shares.links) == 2)
    short = shares.made
    time.sleep(1.1)
    assert bpy.ops.blendsync.shares_refresh() == {"FINISHED"}
    pump_until(lambda s: any(link["expired"] for link in shares.links))
    assert any(text == f"{short['name']}: expired" for text in panel().texts())
    assert open_link(short["url"])["code"] == "auth_failed"

    # Revoke (the button's operator): gone from the list, and the link opens nothing any more.
    assert bpy.ops.blendsync.share_revoke(name=made["name"]) == {"FINISHED"}
    pump_until(lambda s: [link["name"] for link in shares.links] == [short["name"]])
    refused = open_link(made["url"])
    assert (refused["type"], refused["code"]) == ("error", "auth_failed")

    # An editor of the room is offered no share box, and the server refuses the action anyway.
    session = enter(address, tokens["ben"], "ben", create=False)
    assert share_links.view(session).role == "editor"
    assert not share_ui.BLENDSYNC_PT_share.poll(context)
    assert panel().calls == []
    with pytest.raises(RuntimeError):
        bpy.ops.blendsync.share_create()
    share_links.view(session).role = "owner"  # as if the add-on were fooled: the server decides
    share_links.make_link(session, 3600)
    pump_until(lambda s: share_links.view(s).error)
    assert share_links.view(session).error.startswith("forbidden:")
    assert share_links.view(session).made is None
