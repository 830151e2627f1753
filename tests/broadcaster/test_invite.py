"""Invite links: their grammar, ``blendsync invite``, and joining a real server through one.

The end-to-end test is the self-hoster's path: ``blendsync init``, ``blendsync serve --config`` (a real
process), ``blendsync invite``, then the client library joins through the printed link.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from support import ServerProcess, blendsync_cli, init_server

from broadcaster.auth import read_users, write_users
from broadcaster.client import ConnectionLost, ServerError
from broadcaster.invite import MAX_LINK_CHARS, Invite, InviteError, connect_invite, parse_expiry
from broadcaster.tls import PinMismatch, certificate_pin
from protocol.limits import MAX_ROOM_NAME_BYTES

PIN = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    "room", [None, "a", "é" * (MAX_ROOM_NAME_BYTES // 2), "shot/010", "*", "**", "a?b#c%d&token=x", "🎬 r"]
)
def test_links_carry_any_room_name_exactly(room):
    invite = Invite("studio.lan", 12800, room, "bst_abc-_", PIN)
    assert Invite.parse(invite.link()) == invite
    assert invite.link().startswith("blendsync://studio.lan:12800/")
    assert "&pin=sha256:" in invite.link()


def test_ipv6_hosts_are_bracketed():
    invite = Invite("::1", 1, "r", "t", None)
    assert invite.link() == "blendsync://[::1]:1/r?token=t"
    assert Invite.parse(invite.link()) == invite


@pytest.mark.parametrize(
    "link",
    [
        "",
        "x" * (MAX_LINK_CHARS + 1),
        "https://h:1/r?token=t",
        "blendsync://h/r?token=t",  # no port
        "blendsync://h:0/r?token=t",
        "blendsync://h:65536/r?token=t",
        "blendsync://:1/r?token=t",
        "blendsync://h:1/r",  # no token
        "blendsync://h:1/r?token=",
        "blendsync://h:1/r?token=a&token=b",
        "blendsync://h:1/r?token=t&room=x",
        "blendsync://h:1/r?token=t&pin=sha256:abc",
        "blendsync://h:1/r?token=t&pin=md5:" + "ab" * 32,
        "blendsync://h:1/r%00?token=t",  # NUL in the room
        "blendsync://h:1/%FF?token=t",  # not UTF-8
        "blendsync://h:1/%ED%A0%80?token=t",  # a lone surrogate, encoded
        "blendsync://h:1/" + "a" * (MAX_ROOM_NAME_BYTES + 1) + "?token=t",
        "blendsync://h:1/r?token=t%00",
    ],
)
def test_malformed_links_are_refused_with_a_reason(link):
    with pytest.raises(InviteError):
        Invite.parse(link)


def test_the_longest_room_fits_in_a_link():
    room = "a" * MAX_ROOM_NAME_BYTES
    assert Invite.parse(f"blendsync://h:1/{room}?token=t").room == room


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("30m", 1800),
        ("12h", 43200),
        ("7d", 604800),
        ("2w", 1209600),
        ("3650d", 3650 * 86400),
        ("315360000s", 315360000),  # the longest, in any unit
        ("5256000m", 315360000),
        ("never", None),
    ],
)
def test_expiry_durations(text, seconds):
    assert parse_expiry(text) == seconds


@pytest.mark.parametrize(
    "text",
    ["", "0d", "3651d", "315360001s", "9999999999s", "7", "d", "-1d", "1.5d", "7D", "1y", "9999999d", "٣d"],
)
def test_bad_expiry_durations_are_refused(text):
    with pytest.raises(InviteError, match="--expires"):
        parse_expiry(text)


@pytest.fixture
def installed(tmp_path) -> tuple[Path, int]:
    return init_server(tmp_path / "srv")


def invite(root: Path, *args: str) -> str:
    done = blendsync_cli("invite", "--data-dir", str(root), *args)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_invite_adds_a_scoped_expiring_user_and_prints_one_link(installed):
    root, port = installed
    before = int(time.time())
    link = invite(root, "--room", "shot/010", "--name", "ana", "--expires", "2d")
    parsed = Invite.parse(link)
    assert (parsed.host, parsed.port, parsed.room) == ("127.0.0.1", port, "shot/010")
    assert parsed.pin == certificate_pin(root / "tls" / "server.pem")
    ana = next(u for u in read_users(root / "tokens.toml") if u["name"] == "ana")
    assert ana["room"] == "shot/010" and ana["role"] == "user"
    assert before + 2 * 86400 <= ana["expires_at"] <= int(time.time()) + 2 * 86400


def test_invite_refuses_viewers_an_existing_name_and_bad_addresses(installed):
    root, _ = installed
    viewer = blendsync_cli("invite", "--data-dir", str(root), "--role", "viewer")
    assert viewer.returncode == 2 and "blendsync admin share ROOM" in viewer.stderr  # the tool that does
    assert invite(root, "--name", "ana")
    again = blendsync_cli("invite", "--data-dir", str(root), "--name", "ana")
    assert again.returncode == 2 and "exists" in again.stderr
    for address in ("h:0", "h:65536", "h:x", ":1", "[::1]x"):
        bad = blendsync_cli("invite", "--data-dir", str(root), "--address", address)
        assert bad.returncode == 2 and "--address" in bad.stderr, address
    users = [u["name"] for u in read_users(root / "tokens.toml")]
    assert users == ["admin", "ana"]  # nothing refused was added


@pytest.mark.parametrize(
    ("address", "host", "port"),
    [
        ("studio.lan", "studio.lan", None),
        ("studio.lan:443", "studio.lan", 443),
        ("[::1]:9", "::1", 9),
        ("::1", "::1", None),
    ],
)
def test_invite_address_overrides_the_config(installed, address, host, port):
    root, config_port = installed
    parsed = Invite.parse(invite(root, "--address", address))
    assert (parsed.host, parsed.port) == (host, port or config_port)


@pytest.fixture
def served(installed):
    root, port = installed
    process = ServerProcess(root / "rooms", port, ["--config", str(root / "blendsync.toml")])
    process.start()
    try:
        yield root
    finally:
        process.stop()


async def test_init_serve_invite_then_join_through_the_link(served):
    root = served
    link = invite(served, "--room", "shot-010", "--name", "ana")
    async with connect_invite(link, name="Blender") as ana:
        assert (ana.welcome.user, ana.welcome.role) == ("ana", "user")
        await ana.create_room("shot-010", keep_open=True)
        await ana.join("shot-010")
        seq = await ana.set("obj/cube", b"v")
        assert ana.seq == seq and ana.state == {"obj/cube": b"v"}
        with pytest.raises(ServerError) as info:
            await ana.create_room("shot-020")
        assert info.value.code == "forbidden"
    wrong_pin = Invite.parse(link).link().replace(Invite.parse(link).pin or "", PIN)
    with pytest.raises(PinMismatch, match="not the pinned one"):
        async with connect_invite(wrong_pin):
            pass
    # Time passes: the token expires (the server re-reads the tokens file).
    users = read_users(root / "tokens.toml")
    for user in users:
        if user["name"] == "ana":
            user["expires_at"] = int(time.time()) - 1
    write_users(root / "tokens.toml", users)
    with pytest.raises(ServerError) as info:
        async with connect_invite(link):
            pass
    assert info.value.code == "auth_failed" and "expired" in info.value.message


async def test_a_client_failing_over_checks_the_pin_again(installed, tmp_path):
    root, port = installed
    link = invite(root, "--room", "r", "--name", "ana")
    config = ["--config", str(root / "blendsync.toml")]
    process = ServerProcess(root / "rooms", port, config)
    process.start()
    try:
        async with connect_invite(link, failover=True, failover_timeout=5.0) as ana:
            await ana.create_room("r", keep_open=True)
            await ana.join("r")
            await ana.set("k", b"1")
            process.stop()
            process.start()  # same certificate: the client resumes
            await ana.set("k", b"2")
            assert ana.state == {"k": b"2"}
            process.stop()
            # Another certificate at the same address: the client must not resume (nor send its token).
            other = tmp_path / "other"
            assert blendsync_cli("init", "--data-dir", str(other)).returncode == 0
            cert = [
                "--tls-cert",
                str(other / "tls" / "server.pem"),
                "--tls-key",
                str(other / "tls" / "server.key"),
            ]
            process = ServerProcess(root / "rooms", port, [*config, *cert])
            process.start()
            with pytest.raises(ConnectionLost):
                await ana.set("k", b"3")
    finally:
        process.kill()
