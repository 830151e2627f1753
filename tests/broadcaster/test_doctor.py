"""``blendsync doctor`` against a real server set up by ``blendsync init``: each fault gets its verdict."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import ServerProcess, blendsync_cli, init_server

from broadcaster.auth import add_user
from broadcaster.client import connect
from broadcaster.invite import Invite
from broadcaster.tls import certificate_pin
from tools.cluster import free_port

OTHER_PIN = "sha256:" + "00" * 32


@pytest.fixture
def served(tmp_path):
    root, port = init_server(tmp_path / "srv")
    process = ServerProcess(root / "rooms", port, ["--config", str(root / "blendsync.toml")])
    process.start()
    try:
        yield root, port
    finally:
        process.stop()


def doctor(*args: str) -> tuple[int, list[str]]:
    done = blendsync_cli("doctor", "--timeout", "10", *args)
    return done.returncode, done.stdout.splitlines()


def invite(root: Path, *args: str) -> str:
    done = blendsync_cli("invite", "--data-dir", str(root), *args)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_healthy_server_through_an_invite_link(served):
    root, _ = served
    link = invite(root, "--room", "shot-010")
    code, lines = doctor(link)
    assert code == 0 and lines[-1] == "verdict: healthy", lines
    assert [line.split(":")[0].split()[-1] for line in lines[:-1]] == [
        "dns",
        "tcp",
        "tls",
        "token",
        "version",
        "room",
        "latency",
    ]
    assert any("does not exist yet" in line for line in lines)


async def test_a_healthy_server_with_an_admin_token_leaves_no_scratch_room(served):
    root, port = served
    token = add_user(root / "tokens.toml", "ops", "admin")
    pin = certificate_pin(root / "tls" / "server.pem")
    code, lines = doctor("--host", "127.0.0.1", "--port", str(port), "--token", token, "--pin", pin)
    assert code == 0 and lines[-1] == "verdict: healthy", lines
    assert any("wrote and read back a key in scratch room" in line for line in lines)
    async with connect("127.0.0.1", port, token=token, pin=pin) as admin:
        assert await admin.list_rooms() == []


def test_wrong_port(served):
    port = free_port()
    code, lines = doctor("--port", str(port))
    assert code == 1 and lines[-1] == f"verdict: nothing is listening on 127.0.0.1:{port}", lines


def test_wrong_pin(served):
    root, _ = served
    invite_ = Invite.parse(invite(root, "--room", "r"))
    code, lines = doctor(Invite(invite_.host, invite_.port, "r", invite_.token, OTHER_PIN).link())
    assert code == 1 and lines[-1] == "verdict: the server's certificate does not match the link's pin", lines
    assert "FAIL  tls: the server's certificate is not the pinned one" in lines[-2]


@pytest.mark.parametrize("token", ["bst_unknown", "removed"])
def test_wrong_token(served, token):
    root, _ = served
    invite_ = Invite.parse(invite(root, "--room", "r", "--name", "ana"))
    if token == "removed":
        assert (
            blendsync_cli("token", "remove", "ana", "--tokens-file", str(root / "tokens.toml")).returncode
            == 0
        )
        token = invite_.token
    code, lines = doctor(Invite(invite_.host, invite_.port, "r", token, invite_.pin).link())
    assert code == 1 and lines[-1] == "verdict: the server refused the token", lines


def test_plain_tcp_to_a_tls_server(served):
    _, port = served
    code, lines = doctor("--port", str(port))
    assert code == 1 and lines[-1] == "verdict: the server did not welcome a plain connection", lines


@pytest.mark.parametrize(
    "args",
    [
        ["https://x:1/r?token=t"],
        ["--port", "0"],
        ["--port", "65536"],
        ["--pin", "sha256:xyz"],
        ["--timeout", "0"],
    ],
)
def test_bad_arguments_are_refused_before_any_check(args):
    done = blendsync_cli("doctor", *args)
    assert done.returncode == 2 and done.stdout == "" and "blendsync doctor:" in done.stderr
