"""Per-user tokens: refused without one, identity from the token, roles, and the start-up refusal."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import trio
from support import REPO, ServerProcess, running_broadcaster

from broadcaster.app import open_broadcaster
from broadcaster.auth import TokensFileError, add_user, hash_token, read_users, remove_user
from broadcaster.client import ServerError, connect
from broadcaster.config import ConfigError, ServerConfig
from broadcaster.session_claims import CLAIM_SECONDS
from protocol import ClientJoined, ClientUpdated


@pytest.fixture
def tokens(tmp_path):
    path = tmp_path / "tokens.toml"
    return path, {
        "admin": add_user(path, "root", "admin"),
        "ana": add_user(path, "ana"),
        "ben": add_user(path, "ben"),
    }


@pytest.fixture
async def auth_server(tmp_path, tokens):
    path, issued = tokens
    async with running_broadcaster(tmp_path / "data", tokens_file=path) as address:
        yield address, issued


@pytest.mark.parametrize("token", [None, "", "bst_not-a-real-token"])
async def test_missing_or_wrong_token_is_refused(auth_server, token):
    (host, port), _ = auth_server
    with pytest.raises(ServerError) as info:
        async with connect(host, port, name="mallory", token=token):
            pass
    assert info.value.code == "auth_failed" and info.value.fatal


async def test_the_displayed_name_is_the_authenticated_user(auth_server):
    (host, port), issued = auth_server
    async with (
        connect(host, port, name="I am root", token=issued["ana"]) as ana,
        connect(host, port, name="x", token=issued["ben"]) as ben,
    ):
        assert (ana.welcome.user, ana.welcome.role) == ("ana", "user")
        await ana.create_room("r", keep_open=True)
        await ana.join("r")
        joined = await ben.join("r")
        assert [c["name"] for c in joined.clients] == ["ana"]
        event = await ana.receive()
        while not isinstance(event, ClientJoined):
            event = await ana.receive()
        assert event.client["name"] == "ben"
        # Nor can presence name him otherwise: the field is dropped, what is left still goes on.
        await ben.presence(name="ana", mode="EDIT_MESH")
        event = await ana.receive()
        while not isinstance(event, ClientUpdated):
            event = await ana.receive()
        assert event.state == {"mode": "EDIT_MESH"}
        async with connect(host, port, name="x", token=issued["ana"]) as late:
            joined = await late.join("r")
            names = sorted((c["name"], c.get("mode")) for c in joined.clients)
            assert names == [("ana", None), ("ben", "EDIT_MESH")]


@pytest.mark.parametrize(
    ("action", "args"),
    [
        ("rooms", {}),
        ("clients", {}),
        ("kick", {"client_id": "someone-else-0001"}),
        ("delete_room", {"room": "r"}),
        ("break_lock", {"room": "r", "keys": ["k"]}),
        ("export", {"room": "r"}),
        ("import", {"room": "new", "items": []}),
    ],
)
async def test_admin_requests_are_refused_to_users(auth_server, action, args):
    (host, port), issued = auth_server
    async with connect(host, port, token=issued["ana"]) as ana:
        await ana.create_room("r", keep_open=True)
        with pytest.raises(ServerError) as info:
            await ana.admin(action, **args)
        assert info.value.code == "forbidden" and not info.value.fatal
        assert [r["name"] for r in await ana.list_rooms()] == ["r"]  # not fatal, and no effect
    async with connect(host, port, token=issued["admin"]) as root:
        assert [r["name"] for r in await root.admin("rooms")] == ["r"]


async def test_only_the_creator_or_an_admin_deletes_a_room(auth_server):
    (host, port), issued = auth_server
    async with (
        connect(host, port, token=issued["ana"]) as ana,
        connect(host, port, token=issued["ben"]) as ben,
    ):
        await ana.create_room("anas", keep_open=True)
        await ana.create_room("second", keep_open=True)
        with pytest.raises(ServerError) as info:
            await ben.delete_room("anas")
        assert info.value.code == "forbidden"
        await ana.delete_room("anas")
    async with connect(host, port, token=issued["admin"]) as root:
        await root.delete_room("second")
        assert await root.list_rooms() == []


async def test_tokens_are_stored_hashed_and_removal_takes_effect_without_restart(auth_server, tokens):
    (host, port), issued = auth_server
    path, _ = tokens
    text = path.read_text()
    assert issued["ana"] not in text and hash_token(issued["ana"]) in text
    assert {u["name"]: u["role"] for u in read_users(path)} == {"root": "admin", "ana": "user", "ben": "user"}
    async with connect(host, port, token=issued["ben"]):
        pass
    assert remove_user(path, "ben")
    with pytest.raises(ServerError) as info:
        async with connect(host, port, token=issued["ben"]):
            pass
    assert info.value.code == "auth_failed"
    new = add_user(path, "cleo", "admin")
    async with connect(host, port, token=new) as cleo:
        assert cleo.welcome.role == "admin"


def test_token_add_prints_the_token_once(tmp_path):
    path = tmp_path / "t.toml"
    command = [
        sys.executable,
        "-m",
        "broadcaster.cli",
        "token",
        "add",
        "dora",
        "--admin",
        "--tokens-file",
        str(path),
    ]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=30, check=True)
    token = done.stdout.strip()
    assert token.startswith("bst_") and len(token) > 40
    assert read_users(path) == [{"name": "dora", "role": "admin", "token_sha256": hash_token(token)}]
    assert token not in path.read_text()
    assert (path.stat().st_mode & 0o077) == 0  # readable by its owner only


def test_a_non_loopback_listener_refuses_to_start_without_auth(tmp_path):
    command = [sys.executable, "-m", "broadcaster.cli", "serve", "--host", "0.0.0.0", "--port", "0"]
    done = subprocess.run(
        [*command, "--data-dir", str(tmp_path / "d")], cwd=REPO, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2
    assert "without authentication" in done.stderr and "--allow-no-auth" in done.stderr
    config = ServerConfig(host="127.0.0.1", http_port=9, http_host="0.0.0.0")
    with pytest.raises(ConfigError):
        config.check()
    config.tokens_file = tmp_path / "t.toml"
    config.check()


async def test_allow_no_auth_starts_on_all_interfaces(tmp_path):
    process = ServerProcess(tmp_path / "d", extra=["--host", "0.0.0.0", "--allow-no-auth"])
    try:
        _, port = process.start()
        async with connect("127.0.0.1", port, name="lan") as client:
            assert client.welcome.user is None
            assert await client.list_rooms() == []
    finally:
        process.kill()
    await trio.sleep(0)


@pytest.mark.parametrize(
    "session", ["ana-session-0001", "*" * 8, "a/b*c%d..", "/" * 64, "~!@#$%^&*()_+{}|:<>?"]
)
async def test_a_user_cannot_take_over_another_users_session(auth_server, session):
    # Session ids are names in the replicated tree (their claims): pattern characters stay data.
    (host, port), issued = auth_server
    async with connect(host, port, token=issued["ana"], session=session) as ana:
        with pytest.raises(ServerError) as info:
            async with connect(host, port, token=issued["ben"], session=session):
                pass
        assert info.value.code == "forbidden" and info.value.fatal
        assert await ana.list_rooms() == []  # untouched
    async with connect(host, port, token=issued["ana"], session=session) as again:
        assert again.client_id == session  # its own user resumes it


async def test_a_session_id_stays_its_users_across_a_restart_until_its_claim_is_old(tmp_path, tokens):
    # The claim is in the replicated tree, not in the process: a restart (or another node) knows it.
    path, issued = tokens
    config = ServerConfig(host="127.0.0.1", port=0, data_dir=tmp_path / "d", tokens_file=path)
    session = "ana-session-0002"
    async with open_broadcaster(config) as b:
        host, port = b.listen_addresses[0].rsplit(":", 1)
        async with connect(host, int(port), token=issued["ana"], session=session):
            pass
    async with open_broadcaster(config) as b:
        host, port = b.listen_addresses[0].rsplit(":", 1)
        with pytest.raises(ServerError) as info:
            async with connect(host, int(port), token=issued["ben"], session=session):
                pass
        assert info.value.code == "forbidden" and info.value.fatal
        # Thirty days on, nobody resumes a random id: the leader drops the claim, and the id is free.
        assert await b.claims.prune(time.time() + CLAIM_SECONDS - 60) == 0
        assert await b.claims.prune(time.time() + CLAIM_SECONDS + 60) == 1
        b._session_owners.clear()  # (this process's own memory of it: a restart)
        async with connect(host, int(port), token=issued["ben"], session=session) as ben:
            assert ben.client_id == session


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("é" * 128, True),  # 256 bytes: the longest user name, which clients accept in welcome.user
        ("é" * 128 + "a", False),
        ("日" * 86, False),  # 86 characters, 258 bytes: the limit is in bytes
        ("\U0001f469\u200d\U0001f4bb", True),  # a joined emoji: not "printable" to Python, fine here
        ("a*/%", True),
        ("", False),
        (" ana", False),
        ("ana\u3000", False),
        ("a\x00b", False),
        ("a\x85b", False),
        ("a\ud800", False),
    ],
)
def test_user_names_follow_the_protocol_grammar(tmp_path, name, ok):
    path = tmp_path / "tokens.toml"
    if ok:
        add_user(path, name)
        assert [u["name"] for u in read_users(path)] == [name]
    else:
        with pytest.raises(TokensFileError, match="user name"):
            add_user(path, name)
