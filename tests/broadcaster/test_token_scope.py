"""Tokens with an expiry and a room: refused once expired, and kept to their room."""

from __future__ import annotations

import time

import pytest
from support import blendsync_cli, running_broadcaster

from broadcaster.auth import (
    MAX_EXPIRES_AT,
    TokensFileError,
    TokenStore,
    User,
    add_user,
    read_users,
    write_users,
)
from broadcaster.client import ServerError, connect
from protocol.limits import MAX_ROOM_NAME_BYTES


@pytest.fixture
def tokens(tmp_path):
    path = tmp_path / "tokens.toml"
    return path, {
        "admin": add_user(path, "root", "admin"),
        "a": add_user(path, "ana", room="room-a", expires_at=MAX_EXPIRES_AT),
        "expired": add_user(path, "old", room="room-a", expires_at=int(time.time()) - 1),
    }


@pytest.fixture
async def scoped_server(tmp_path, tokens):
    path, issued = tokens
    async with running_broadcaster(tmp_path / "data", tokens_file=path) as address:
        yield address, issued


async def test_an_expired_token_is_refused_with_auth_failed(scoped_server):
    (host, port), issued = scoped_server
    with pytest.raises(ServerError) as info:
        async with connect(host, port, token=issued["expired"]):
            pass
    assert info.value.code == "auth_failed" and info.value.fatal
    assert "expired" in info.value.message


async def test_a_room_token_enters_its_room_only(scoped_server):
    (host, port), issued = scoped_server
    async with connect(host, port, token=issued["admin"]) as admin:
        await admin.create_room("room-b", keep_open=True)
    async with connect(host, port, token=issued["a"]) as ana:
        await ana.create_room("room-a", keep_open=True)  # the first to use an invite makes its room
        await ana.join("room-a")
        await ana.leave()
        for attempt in (ana.join("room-b"), ana.create_room("room-c"), ana.delete_room("room-b")):
            with pytest.raises(ServerError) as info:
                await attempt
            assert info.value.code == "forbidden" and not info.value.fatal
        assert (await ana.join("room-a")).room == "room-a"  # the connection goes on
    async with connect(host, port, token=issued["admin"]) as admin:
        assert {r["name"] for r in await admin.list_rooms()} == {"room-a", "room-b"}


def test_expiry_is_checked_at_the_given_time(tokens):
    path, issued = tokens
    store = TokenStore(path)
    user = store.authenticate(issued["a"], now=MAX_EXPIRES_AT - 1)
    assert user is not None and (user.room, user.expires_at) == ("room-a", MAX_EXPIRES_AT)
    assert store.authenticate(issued["a"], now=MAX_EXPIRES_AT) is None
    assert store.authenticate(issued["admin"], now=MAX_EXPIRES_AT * 2) is not None  # no expiry: never


def test_scope_survives_a_rewrite_of_the_file(tokens):
    path, _ = tokens
    users = read_users(path)
    write_users(path, users)
    assert read_users(path) == users
    assert {u["name"]: u.get("room") for u in users} == {"root": None, "ana": "room-a", "old": "room-a"}


@pytest.mark.parametrize(
    ("room", "ok"),
    [
        ("", False),
        ("a" * MAX_ROOM_NAME_BYTES, True),
        ("a" * (MAX_ROOM_NAME_BYTES + 1), False),
        ("a\x00b", False),
        ("\udc80", False),
        ("x/*", True),
        ("**", True),
        (5, False),
    ],
)
def test_token_rooms_follow_the_room_name_grammar(tmp_path, room, ok):
    path = tmp_path / "t.toml"
    if ok:
        add_user(path, "ana", room=room)
        assert read_users(path)[0]["room"] == room
    else:
        with pytest.raises(TokensFileError, match="room"):
            add_user(path, "ana", room=room)


def test_a_room_scope_is_a_name_not_a_pattern():
    user = User("ana", "user", room="x/*")
    assert user.may_use_room("x/*")
    assert not user.may_use_room("x/y") and not user.may_use_room("x/")
    assert User("root", "admin").may_use_room("anything")


@pytest.mark.parametrize(
    ("expires_at", "ok"),
    [
        (0, True),
        (MAX_EXPIRES_AT, True),
        (MAX_EXPIRES_AT + 1, False),
        (-1, False),
        (2**63, False),
        (True, False),
        (1.5, False),
        ("1", False),
    ],
)
def test_expiry_values(tmp_path, expires_at, ok):
    path = tmp_path / "t.toml"
    if ok:
        add_user(path, "ana", expires_at=expires_at)
        assert read_users(path)[0]["expires_at"] == expires_at
    else:
        with pytest.raises(TokensFileError, match="expires_at"):
            add_user(path, "ana", expires_at=expires_at)


def test_a_tokens_file_with_an_unknown_field_is_refused(tmp_path):
    path = tmp_path / "t.toml"
    path.write_text(
        '[[users]]\nname = "a"\nrole = "user"\ntoken_sha256 = "' + "0" * 64 + '"\nroom_glob = "*"\n'
    )
    with pytest.raises(TokensFileError, match="may have room and expires_at"):
        read_users(path)


def test_token_list_shows_rooms_and_expiries(tokens):
    path, _ = tokens
    done = blendsync_cli("token", "list", "--tokens-file", str(path))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[:2] == ["root\tadmin\t*\tnever", "ana\tuser\troom-a\t9999-12-31T23:59:59Z"]
