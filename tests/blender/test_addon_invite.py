"""An invite link pasted into the add-on, in real bpy, against a server set up by ``blendsync init`` and run
by ``blendsync serve --config``: the add-on connects over TLS pinned to the link's certificate and joins the
link's room (creating it with its scene); a wrong pin, an expired and a revoked token are refused with a
plain message in the sidebar.
"""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

bpy = pytest.importorskip("bpy", reason="bpy (Blender as a Python module) is not installed")

import addon_utils  # noqa: E402
import trio  # noqa: E402
from support import ServerProcess, blendsync_cli, init_server  # noqa: E402
from test_addon_ui import FakeLayout  # noqa: E402

from broadcaster.auth import read_users, write_users  # noqa: E402
from broadcaster.invite import Invite, connect_invite  # noqa: E402

pytestmark = [pytest.mark.blender, pytest.mark.timeout(120)]

OTHER_PIN = "sha256:" + "ab" * 32


@pytest.fixture(scope="module")
def addon():
    module = addon_utils.enable("blender_addon", default_set=True, handle_error=_raise)
    assert module is not None
    yield module
    addon_utils.disable("blender_addon", default_set=True)


def _raise(exc):
    raise exc


@pytest.fixture
def served(tmp_path, addon):
    root, port = init_server(tmp_path / "srv")
    process = ServerProcess(root / "rooms", port, ["--config", str(root / "blendsync.toml")])
    process.start()
    try:
        yield root
    finally:
        from blender_addon import session as session_module

        session_module.stop()
        process.stop()


def invite(root, *args: str) -> str:
    done = blendsync_cli("invite", "--data-dir", str(root), *args)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


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


def invite_panel() -> list[str]:
    from blender_addon import invite as invite_module

    layout = FakeLayout([])
    invite_module.BLENDSYNC_PT_invite.draw(SimpleNamespace(layout=layout), bpy.context)
    return layout.texts()


def room_state(link: str, room: str) -> dict[str, bytes]:
    async def read() -> dict[str, bytes]:
        async with connect_invite(link, name="reader") as reader:
            await reader.join(room)
            return dict(reader.state)

    return trio.run(read)


def test_an_invite_connects_over_pinned_tls_and_joins_its_room_with_the_scene(served):
    link = invite(served, "--room", "shot/010 *", "--name", "ana")
    bpy.ops.mesh.primitive_cube_add()
    assert bpy.ops.blendsync.connect_invite(link=link) == {"FINISHED"}
    session = pump_until(lambda s: s.room == "shot/010 *" and s.idle and not s.unacked)
    assert session.net.pin == Invite.parse(link).pin
    assert session.welcome.user == "ana"
    assert session.status.startswith("connected to 127.0.0.1:")
    # The room did not exist: the add-on created it with this file's scene, which another artist now gets.
    pump_until(lambda s: s.idle and s.stats["batches"] > 0)
    state = room_state(invite(served, "--room", "shot/010 *", "--name", "ben"), "shot/010 *")
    assert any(key.startswith("obj/") for key in state), sorted(state)[:10]
    assert not [text for text in invite_panel() if text]  # nothing to complain about


def test_a_wrong_pin_is_refused_before_the_token_goes_out(served):
    link = invite(served, "--room", "r", "--name", "ana")
    wrong = link.replace(Invite.parse(link).pin, OTHER_PIN)
    assert bpy.ops.blendsync.connect_invite(link=wrong) == {"FINISHED"}
    session = pump_until(lambda s: s.status.startswith("refused"))
    assert session.status.startswith("refused: the server's certificate is not the pinned one")
    assert f"pinned {OTHER_PIN}" in session.status
    assert not session.connected and session.welcome is None
    assert "The server's certificate does not match the link: ask for a new link" in invite_panel()


def expire(root, name: str) -> None:
    users = read_users(root / "tokens.toml")
    for user in users:
        if user["name"] == name:
            user["expires_at"] = int(time.time()) - 1
    write_users(root / "tokens.toml", users)


def revoke(root, name: str) -> None:
    done = blendsync_cli("token", "remove", name, "--tokens-file", str(root / "tokens.toml"))
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("spoil", [expire, revoke])
def test_an_expired_or_revoked_invite_is_refused_with_a_clear_message(served, spoil):
    link = invite(served, "--room", "r", "--name", "ana")
    spoil(served, "ana")
    assert bpy.ops.blendsync.connect_invite(link=link) == {"FINISHED"}
    session = pump_until(lambda s: s.status.startswith("refused"))
    assert session.status == "refused: auth_failed: missing, unknown or expired token"
    assert not session.net.alive  # no more attempts with a token that cannot work
    assert "The link's token is unknown, revoked or expired: ask for a new link" in invite_panel()


@pytest.mark.parametrize(
    "link",
    ["", "http://h:1/r?token=t", "blendsync://h/r?token=t", "blendsync://h:1/r?token=t&pin=sha256:00"],
)
def test_a_malformed_link_is_refused_in_the_sidebar(addon, link):
    with pytest.raises(RuntimeError):
        bpy.ops.blendsync.connect_invite(link=link)
    error = bpy.context.window_manager.blendsync_invite_error
    assert error.startswith("Not an invite link: ")
    assert error in invite_panel()
