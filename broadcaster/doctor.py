"""``blendsync doctor``'s checks: a server seen from an artist's machine, one step at a time.

Each step runs only if the ones before it passed (no TCP without DNS, no token without TLS), and says
what it found in plain words. The steps: DNS, TCP, TLS and pin, token and protocol version, a round trip
through a room, latency. The round trip writes one key in a scratch room that is deleted afterwards; with
a token scoped to one room (an invite link) it joins and leaves that room instead, writing nothing.
"""

from __future__ import annotations

import math
import secrets
import socket
import ssl
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field

import trio

from . import __version__
from .client import Client, ConnectionLost, ServerError, connect
from .tls import PinMismatch

LATENCY_SAMPLES = 5


@dataclass
class Target:
    host: str
    port: int
    token: str | None = None
    pin: str | None = None
    ssl_context: ssl.SSLContext | None = None  # verify against a CA instead of a pin
    room: str | None = None  # the one room an invite's token may enter
    timeout: float = 5.0

    @property
    def tls(self) -> bool:
        return self.pin is not None or self.ssl_context is not None


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)
    verdict: str = ""
    healthy: bool = False
    say: Callable[[str], None] = print

    def ok(self, step: str, text: str) -> None:
        self._line(f"ok    {step}: {text}")

    def warn(self, step: str, text: str) -> None:
        self._line(f"warn  {step}: {text}")

    def fail(self, step: str, text: str, verdict: str) -> Report:
        self._line(f"FAIL  {step}: {text}")
        self.verdict = f"verdict: {verdict}"
        self._line(self.verdict)
        return self

    def _line(self, text: str) -> None:
        self.lines.append(text)
        self.say(text)


async def diagnose(target: Target, say: Callable[[str], None] = print) -> Report:
    report = Report(say=say)
    where = f"{target.host}:{target.port}"
    try:
        with trio.fail_after(target.timeout):
            infos = await trio.socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        return report.fail(
            "dns", f"{target.host!r} does not resolve ({exc})", f"the name {target.host} is unknown"
        )
    except trio.TooSlowError:
        return report.fail(
            "dns", f"no answer for {target.host!r} within {target.timeout:g} s", "DNS does not answer"
        )
    addresses = sorted({info[4][0] for info in infos})
    report.ok("dns", f"{target.host} is {', '.join(addresses)}")

    try:
        with trio.fail_after(target.timeout):
            stream = await trio.open_tcp_stream(target.host, target.port)
        await stream.aclose()
    except trio.TooSlowError:
        return report.fail(
            "tcp",
            f"{where} does not answer within {target.timeout:g} s: a firewall may drop the connection",
            f"cannot reach {where}",
        )
    except OSError as exc:
        reason = getattr(exc.__cause__, "strerror", None) or exc.strerror or exc  # trio wraps the cause
        return report.fail(
            "tcp",
            f"nothing answers on {where} ({reason}): is the server running, is the port right?",
            f"nothing is listening on {where}",
        )
    report.ok("tcp", f"{where} accepts connections")

    try:
        with trio.fail_after(target.timeout):
            async with connect(
                target.host,
                target.port,
                name="blendsync doctor",
                kind="tool",
                token=target.token,
                pin=target.pin,
                ssl_context=target.ssl_context,
            ) as client:
                _report_connection(report, target, client)
                if not await _round_trip(report, target, client):
                    return report
                await _latency(report, client)
    except PinMismatch as exc:
        return report.fail("tls", str(exc), "the server's certificate does not match the link's pin")
    except ServerError as exc:
        return _refused(report, target, exc)
    except trio.TooSlowError:
        return report.fail(
            "hello",
            f"{where} accepted the connection but did not answer within {target.timeout:g} s",
            "the server does not answer",
        )
    except (ConnectionLost, OSError, trio.BrokenResourceError) as exc:
        if target.tls:
            return report.fail(
                "tls", f"the TLS handshake failed ({exc}): does the server use TLS?", "TLS failed"
            )
        return report.fail(
            "hello",
            f"the server closed the connection before welcoming this client ({exc}): it may require TLS"
            " (use an invite link, or --tls)",
            "the server did not welcome a plain connection",
        )
    report.verdict = "verdict: healthy"
    report.healthy = True
    report.say(report.verdict)
    return report


def _report_connection(report: Report, target: Target, client: Client) -> None:
    if target.pin is not None:
        report.ok("tls", f"TLS with the pinned certificate ({target.pin[:19]}...)")
    elif target.ssl_context is not None:
        report.ok("tls", "TLS with a certificate the CA vouches for")
    else:
        report.warn("tls", "plain TCP: tokens and scenes cross the network in clear")
    welcome = client.welcome
    who = (
        f"as {welcome.user!r} ({welcome.role})"
        if welcome.user
        else "(the server has no users: no token needed)"
    )
    report.ok("token", f"accepted {who}")
    report.ok(
        "version", f"server {welcome.server_version}, protocol {welcome.protocol} (this client {__version__})"
    )


def _refused(report: Report, target: Target, exc: ServerError) -> Report:
    if exc.code == "auth_failed":
        if not target.token:
            return report.fail(
                "token",
                "the server requires a token: use an invite link, --token or $BLENDSYNC_TOKEN",
                "no token given",
            )
        return report.fail(
            "token",
            "the server refused the token: it is unknown, was removed or has expired (ask for a new link)",
            "the server refused the token",
        )
    if exc.code == "version_mismatch":
        return report.fail(
            "version",
            f"{exc.message}: update blendsync on this machine or the server",
            "protocol versions differ",
        )
    return report.fail("hello", f"the server refused this client: {exc}", "the server refused the connection")


async def _round_trip(report: Report, target: Target, client: Client) -> bool:
    if target.room is not None:
        # An invite's token enters one room: prove it can, and write nothing into the artists' scene.
        try:
            joined = await client.join(target.room)
        except ServerError as exc:
            if exc.code == "no_such_room":
                report.ok(
                    "room",
                    f"room {target.room!r} does not exist yet; the first artist with the link creates it",
                )
                return True
            report.fail("room", f"joining {target.room!r} failed: {exc}", "the room round trip failed")
            return False
        await client.leave()
        report.ok("room", f"joined and left {target.room!r} (seq {joined.seq}, {len(joined.clients)} there)")
        return True
    scratch = f"doctor-{secrets.token_hex(6)}"
    try:
        await client.create_room(scratch)  # not kept open: deleted when this client leaves
        try:
            await client.join(scratch)
            payload = secrets.token_bytes(16)
            seq = await client.set("doctor/probe", payload)
            if client.state.get("doctor/probe") != payload:
                report.fail("room", "the written key did not come back", "the room round trip failed")
                return False
            await client.leave()
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(2):
                try:
                    await client.delete_room(scratch)
                except ServerError:
                    pass  # already gone with its last member: the usual case
    except ServerError as exc:
        report.fail(
            "room", f"a round trip in scratch room {scratch!r} failed: {exc}", "the room round trip failed"
        )
        return False
    report.ok("room", f"wrote and read back a key in scratch room {scratch!r} (seq {seq}), then deleted it")
    return True


async def _latency(report: Report, client: Client) -> None:
    samples = []
    for _ in range(LATENCY_SAMPLES):
        start = trio.current_time()
        await client.list_rooms()
        samples.append((trio.current_time() - start) * 1000)
    median = statistics.median(samples)
    text = f"median {median:.1f} ms, worst {max(samples):.1f} ms over {LATENCY_SAMPLES} round trips"
    if median > 150 or math.isnan(median):
        report.warn("latency", text + ": editing will feel slow")
    else:
        report.ok("latency", text)
