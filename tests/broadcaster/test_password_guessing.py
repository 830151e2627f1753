"""Room-password guessing is slowed per client address and per room, without touching anyone else.

Clients come from different loopback addresses (127.0.0.x) so that the per-address rules can tell them apart.
"""

from __future__ import annotations

import re
import signal
import struct

import msgpack
import pytest
import trio
from support import BroadcasterCluster, running_broadcaster, wait_for

from broadcaster.client import ServerError, connect
from broadcaster.config import ConfigError, ServerConfig
from broadcaster.password_attempts import FORGET_AFTER, Failures, address_key
from protocol import PROTOCOL_VERSION, encode_frame


async def join_from(local: str, host: str, port: int, room: str, password: str | None) -> dict:
    """Hello and join_room from the loopback address ``local``; the answer to the join."""
    stream = await trio.open_tcp_stream(host, port, local_address=local)
    hello = {"type": "hello", "protocol": PROTOCOL_VERSION, "client_name": local}
    join = {"type": "join_room", "room": room, "password": password, "ref": 1}
    try:
        await stream.send_all(encode_frame(hello) + encode_frame(join))
        buffer = b""
        with trio.fail_after(30):
            while True:
                while len(buffer) >= 4 and len(buffer) >= 4 + struct.unpack(">I", buffer[:4])[0]:
                    length = struct.unpack(">I", buffer[:4])[0]
                    frame = msgpack.unpackb(buffer[4 : 4 + length])
                    buffer = buffer[4 + length :]
                    if frame.get("ref") == 1:
                        return frame
                chunk = await stream.receive_some(65536)
                assert chunk, "closed without an answer to the join"
                buffer += chunk
    finally:
        await stream.aclose()


def outcome(frame: dict) -> str:
    return frame["code"] if frame["type"] == "error" else frame["type"]


def retry_after(frame: dict) -> float:
    assert frame["type"] == "error" and frame["code"] == "rate_limited" and frame["fatal"] is False
    match = re.search(r"retry after (\d+\.\d) s$", frame["message"])
    assert match, frame["message"]
    return float(match.group(1))


@pytest.fixture
def guessing(tmp_path):
    def start(**settings):
        return running_broadcaster(tmp_path / "d", **settings)

    return start


async def make_rooms(host: str, port: int, *rooms: str) -> None:
    async with connect(host, port, name="owner") as owner:
        for room in rooms:
            await owner.create_room(room, keep_open=True, password=f"{room}-pw")


async def test_wrong_passwords_from_one_address_lock_that_address_out(guessing):
    settings = dict(password_failures_per_address=3, password_failures_per_room=0, password_lockout=1.0)
    async with guessing(**settings) as (host, port):
        await make_rooms(host, port, "shot", "other")
        for _ in range(3):
            assert outcome(await join_from("127.0.0.2", host, port, "shot", "guess")) == "wrong_password"
        # Locked out: refused before the password is checked, even the right one and in another room.
        locked = await join_from("127.0.0.2", host, port, "shot", "shot-pw")
        wait = retry_after(locked)
        assert 0 < wait <= 1.0 and "from this address" in locked["message"]
        assert outcome(await join_from("127.0.0.2", host, port, "other", "other-pw")) == "rate_limited"
        # Another address is not affected, in this room or another.
        assert outcome(await join_from("127.0.0.3", host, port, "shot", "shot-pw")) == "joined"
        assert outcome(await join_from("127.0.0.3", host, port, "other", "other-pw")) == "joined"
        # After the lockout the right password works at once ...
        await trio.sleep(wait)
        assert outcome(await join_from("127.0.0.2", host, port, "shot", "shot-pw")) == "joined"
        # ... and it does not wipe the count: the next wrong one locks out for twice as long.
        assert outcome(await join_from("127.0.0.2", host, port, "shot", "guess")) == "wrong_password"
        assert 1.0 < retry_after(await join_from("127.0.0.2", host, port, "shot", "x")) <= 2.0


async def test_wrong_passwords_from_many_addresses_lock_the_room(guessing):
    settings = dict(password_failures_per_address=0, password_failures_per_room=3, password_lockout=1.0)
    async with guessing(**settings) as (host, port):
        await make_rooms(host, port, "shot", "other")
        # An address that joined the room with its password before the attack.
        assert outcome(await join_from("127.0.0.9", host, port, "shot", "shot-pw")) == "joined"
        for address in ("127.0.0.2", "127.0.0.3", "127.0.0.4"):
            assert outcome(await join_from(address, host, port, "shot", "guess")) == "wrong_password"
        locked = await join_from("127.0.0.5", host, port, "shot", "shot-pw")
        wait = retry_after(locked)
        assert "for room 'shot'" in locked["message"]
        # Other rooms are open to everyone, and the known address still gets into the locked room.
        assert outcome(await join_from("127.0.0.2", host, port, "other", "other-pw")) == "joined"
        assert outcome(await join_from("127.0.0.9", host, port, "shot", "shot-pw")) == "joined"
        await trio.sleep(wait)
        assert outcome(await join_from("127.0.0.5", host, port, "shot", "shot-pw")) == "joined"


async def test_parallel_guesses_get_exactly_the_allowance_and_a_bystander_goes_on(guessing):
    settings = dict(password_failures_per_address=3, password_failures_per_room=0, password_lockout=60.0)
    async with guessing(**settings) as (host, port), connect(host, port, name="bystander") as bystander:
        await make_rooms(host, port, "shot")
        await bystander.create_room("quiet", keep_open=True)
        await bystander.join("quiet")
        answers: list[str] = []
        writes: list[int] = []

        async def guess() -> None:
            answers.append(outcome(await join_from("127.0.0.2", host, port, "shot", "guess")))

        async def write() -> None:
            for i in range(20):
                writes.append(await bystander.set(f"k{i}", b"x"))

        async with trio.open_nursery() as nursery:
            for _ in range(30):
                nursery.start_soon(guess)
            nursery.start_soon(write)
        # Checks run one at a time and each sees the lockouts before it: never more than the allowance.
        assert answers.count("wrong_password") == 3
        assert answers.count("rate_limited") == 27
        assert writes == sorted(writes) and len(writes) == 20
        await wait_for(lambda: len(bystander.state) == 20)


async def test_a_refused_guess_holds_its_connection_until_the_retry_time(guessing):
    settings = dict(password_failures_per_address=1, password_failures_per_room=0, password_lockout=2.0)
    async with guessing(**settings) as (host, port):
        await make_rooms(host, port, "shot")
        stream = await trio.open_tcp_stream(host, port, local_address="127.0.0.2")
        hello = {"type": "hello", "protocol": PROTOCOL_VERSION, "client_name": "guesser"}
        guesses = [{"type": "join_room", "room": "shot", "password": "guess", "ref": i} for i in (1, 2)]
        frames = []
        buffer = b""

        async def next_frame() -> dict:
            nonlocal buffer
            while True:
                if len(buffer) >= 4 and len(buffer) >= 4 + struct.unpack(">I", buffer[:4])[0]:
                    length = struct.unpack(">I", buffer[:4])[0]
                    frame = msgpack.unpackb(buffer[4 : 4 + length])
                    buffer = buffer[4 + length :]
                    if frame["type"] != "ping":
                        return frame
                chunk = await stream.receive_some(65536)
                assert chunk
                buffer += chunk

        with trio.fail_after(30):
            # Two guesses and a ping in one go: the second guess is refused, and nothing after it is
            # read from this connection until the lockout is over.
            sent = trio.current_time()
            await stream.send_all(
                b"".join(encode_frame(body) for body in [hello, *guesses, {"type": "ping", "nonce": 7}])
            )
            for _ in range(4):
                frames.append(await next_frame())
            answered = trio.current_time()
        await stream.aclose()
        assert [outcome(f) for f in frames] == ["welcome", "wrong_password", "rate_limited", "pong"]
        assert answered - sent >= retry_after(frames[2]) - 0.1


async def test_a_locked_out_guess_is_refused_before_asking_the_cluster(tmp_path):
    async with BroadcasterCluster(tmp_path / "cluster", 3) as cluster:
        await cluster.leader()
        async with connect(*cluster.address(1), name="owner") as owner:
            await owner.create_room("shot", keep_open=True, password="shot-pw")
        async with connect(*cluster.address(1), name="guesser") as guesser:
            with trio.fail_after(60):  # guess until the lockout is long enough to act within it
                while True:
                    try:
                        await guesser.join("shot", password="guess")
                    except ServerError as exc:
                        if exc.code != "rate_limited":
                            assert exc.code == "wrong_password"
                            continue
                        wait = float(re.search(r"retry after (\d+\.\d) s$", exc.message).group(1))
                        if wait >= 4.0:
                            break
                        await trio.sleep(wait * 1.5)  # the server holds this connection that long
        # Node 1 alone cannot fence a read any more: a guess that gets that far waits, then is unavailable.
        cluster.signal(2, signal.SIGSTOP)
        cluster.signal(3, signal.SIGSTOP)
        try:
            async with connect(*cluster.address(1), name="again") as again:
                # A bound, not a timing claim: the code below tells a refusal from a fenced read.
                with pytest.raises(ServerError) as info, trio.fail_after(30):
                    await again.join("shot", password="shot-pw")
                assert info.value.code == "rate_limited"
        finally:
            cluster.signal(2, signal.SIGCONT)
            cluster.signal(3, signal.SIGCONT)


def test_failures_double_the_lockout_up_to_the_cap_and_are_forgotten():
    table = Failures(free=2, first=1.0, longest=5.0)
    table.failed("a", 0.0)
    assert table.locked_for("a", 0.0) == 0.0
    locks = []
    for t in (10.0, 20.0, 30.0, 40.0, 50.0):
        table.failed("a", t)
        locks.append(table.locked_for("a", t))
    assert locks == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert table.locked_for("a", 52.0) == 3.0
    # Quiet for FORGET_AFTER: the count starts again.
    later = 50.0 + FORGET_AFTER
    assert table.locked_for("a", later) == 0.0 and len(table) == 0
    table.failed("a", later)
    assert table.locked_for("a", later) == 0.0


def test_tracking_is_bounded_and_keeps_the_most_recent():
    table = Failures(free=1, first=100.0, longest=100.0, capacity=100)
    for i in range(10_000):  # an attacker with many addresses
        table.failed(f"10.0.{i // 256}.{i % 256}", float(i) / 1000)
    assert len(table) == 100
    assert table.locked_for("10.0.39.15", 10.0) > 0  # the last one failed
    assert table.locked_for("10.0.0.0", 10.0) == 0.0  # the oldest was dropped
    assert Failures(free=0, first=1.0, longest=1.0).locked_for("x", 0.0) == 0.0


@pytest.mark.parametrize(
    ("peer", "key"),
    [
        ("127.0.0.2:5000", "127.0.0.2"),
        ("[2001:db8::1]:5000", "2001:db8::/64"),
        ("[2001:db8::ffff:1]:1", "2001:db8::/64"),  # the same /64: one host
        ("[2001:db8:0:1::1]:1", "2001:db8:0:1::/64"),
        ("[::ffff:192.0.2.7]:80", "192.0.2.7"),
        ("?", "?"),
    ],
)
def test_addresses_are_counted_per_host(peer, key):
    assert address_key(peer) == key


@pytest.mark.parametrize(
    "settings",
    [
        {"password_lockout": 0.0},
        {"password_lockout": 61.0},  # above password_lockout_max
        {"password_failures_per_address": -1},
        {"password_failures_per_room": -1},
    ],
)
def test_bad_guessing_settings_are_refused(settings):
    config = ServerConfig()
    config.update(settings)
    with pytest.raises(ConfigError):
        config.check()
