"""A trio client for the test replica's KV service (``tools/replica.py``), for fault tests and benchmarks.

Wire format: frames of a 4-byte big-endian length and a msgpack map, one response per request,
matched by ``id``. Writes carry ``client`` and ``seq``; a retry reuses the same ``seq`` so the
replica applies it at most once.

The client follows leader hints: a follower answers ``not_leader`` with the leader's id and KV
address, and the client retries there. An operation that cannot be completed before its deadline
fails with ``OutcomeUnknown`` when a write may have been applied by some attempt (a ``timeout``
answer, a lost connection, no answer in time), and with ``Unavailable`` when no attempt can have
applied anything.

A client can report every operation to a ``Recorder`` (tests/faults/history.py keeps them for the
linearizability check): ``invoke`` before it is sent, then ``ok``, ``unknown`` or ``fail``.
"""

from __future__ import annotations

import itertools
import struct
import time
from collections.abc import Callable
from typing import Any, Protocol

import msgpack
import trio

_HEADER = struct.Struct(">I")
MAX_FRAME = 64 * 1024 * 1024

# Kinds of operation, as a Recorder is told them (the names tests/faults/lincheck.py uses).
READ = "read"
WRITE = "write"
CAS = "cas"
DELETE = "delete"

#: errors after which the node certainly did not act on the request
DEFINITE_ERRORS = {"bad_request"}


class KVError(Exception):
    """The request failed and certainly had no effect."""

    def __init__(self, message: str, response: dict | None = None):
        super().__init__(message)
        self.response = response


class Unavailable(KVError):
    """No node could serve the request before the deadline; nothing was applied."""


class OutcomeUnknown(Exception):
    """The request may or may not have taken effect."""


class NotSent(OSError):
    """The request never left the client (no connection could be opened)."""


class Recorder(Protocol):
    """What a client tells about each operation: invoked, then completed (``ok``), of unknown outcome, or
    failed with certainly no effect. ``observed``: the current value a failed cas reported."""

    def invoke(self, process: Any, kind: str, key: str, value: Any = None, expect: Any = None) -> Any: ...

    def ok(self, entry: Any, result: Any = None, observed: Any = ...) -> None: ...

    def unknown(self, entry: Any) -> None: ...

    def fail(self, entry: Any) -> None: ...


# ---------------------------------------------------------------------------------------------------
# One connection


def parse_hostport(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


class Connection:
    """One TCP connection to one node's KV port; one request at a time."""

    def __init__(self, stream: trio.SocketStream):
        self.stream = stream
        self.buffer = bytearray()
        self.ids = itertools.count(1)
        self.broken = False

    @classmethod
    async def open(cls, address: str) -> Connection:
        return cls(await trio.open_tcp_stream(*parse_hostport(address)))

    async def request(self, message: dict) -> dict:
        """Send ``message`` (an ``id`` is added) and return the matching response. Raises OSError-like
        errors on a broken connection; the caller owns the timeout (cancellation breaks the connection)."""
        request_id = await self.send(message)
        while True:
            response = await self.receive()
            if response.get("id") == request_id:
                return response

    async def send(self, message: dict, request_id: int | None = None) -> int:
        """Send ``message`` with ``request_id`` (default: a fresh one), which is returned; the answer comes
        from ``receive`` (a benchmark keeps several requests in flight this way)."""
        if request_id is None:
            request_id = next(self.ids)
        body = msgpack.packb({**message, "id": request_id}, use_bin_type=True)
        try:
            await self.stream.send_all(_HEADER.pack(len(body)) + body)
        except BaseException:
            self.broken = True
            raise
        return request_id

    async def receive(self) -> dict:
        """The next response, whichever request it answers."""
        try:
            while True:
                response = await self._receive()
                if isinstance(response, dict):
                    return response
        except BaseException:
            self.broken = True
            raise

    async def _receive(self) -> Any:
        while True:
            if len(self.buffer) >= 4:
                (length,) = _HEADER.unpack_from(self.buffer)
                if length > MAX_FRAME:
                    raise trio.BrokenResourceError(f"frame of {length} bytes")
                if len(self.buffer) >= 4 + length:
                    body = bytes(self.buffer[4 : 4 + length])
                    del self.buffer[: 4 + length]
                    return msgpack.unpackb(body, raw=False)
            data = await self.stream.receive_some(65536)
            if not data:
                raise trio.BrokenResourceError("connection closed by the node")
            self.buffer += data

    async def aclose(self) -> None:
        self.broken = True
        await trio.aclose_forcefully(self.stream)


async def request_once(address: str, message: dict, timeout: float = 2.0) -> dict | None:
    """One request on a fresh connection; None on any failure or timeout."""
    with trio.move_on_after(timeout):
        try:
            conn = await Connection.open(address)
        except OSError:
            return None
        try:
            return await conn.request(message)
        except (
            OSError,
            trio.BrokenResourceError,
            trio.ClosedResourceError,
            ValueError,
            msgpack.UnpackException,
        ):
            return None
        finally:
            await conn.aclose()
    return None


# ---------------------------------------------------------------------------------------------------
# The client


_TRANSPORT_ERRORS = (
    OSError,
    trio.BrokenResourceError,
    trio.ClosedResourceError,
    ValueError,
    msgpack.UnpackException,
)


class KVClient:
    """Talks to a cluster whose nodes' KV addresses are given by ``addresses()`` (node id -> "host:port",
    looked up afresh on each attempt, so restarted nodes are found)."""

    _names = itertools.count(1)

    def __init__(
        self,
        addresses: Callable[[], dict[int, str]] | dict[int, str],
        *,
        client_id: str | None = None,
        history: Recorder | None = None,
        process: Any = None,
        op_timeout: float = 5.0,
        attempt_timeout: float = 3.0,
    ):
        self._addresses = addresses if callable(addresses) else (lambda: dict(addresses))
        self.client_id = client_id or f"c{next(self._names)}-{time.monotonic_ns()}"
        self.history = history
        self.process = process if process is not None else self.client_id
        self.op_timeout = op_timeout
        self.attempt_timeout = attempt_timeout
        self.seq = 0
        self.leader: int | None = None
        self._connections: dict[int, Connection] = {}
        self._rotation = 0
        self.attempts = 0

    # ---- public operations --------------------------------------------------------------------------

    async def put(self, key: str, value: bytes) -> int:
        """Returns the log index of the write."""
        response = await self._recorded(WRITE, key, {"op": "put", "key": key, "value": value}, value=value)
        return response.get("index", 0)

    async def delete(self, key: str) -> int:
        response = await self._recorded(DELETE, key, {"op": "delete", "key": key})
        return response.get("index", 0)

    async def cas(self, key: str, expect: bytes | None, new: bytes) -> tuple[bool, bytes | None]:
        """Returns (swapped, current value when not swapped)."""
        message = {"op": "cas", "key": key, "expect": expect, "value": new}
        response = await self._recorded(CAS, key, message, value=new, expect=expect)
        return bool(response["ok"]), response.get("value")

    async def get(self, key: str, consistency: str = "linearizable") -> bytes | None:
        message = {"op": "get", "key": key, "consistency": consistency}
        response = await self._recorded(READ, key, message)
        return response.get("value")

    async def get_from(
        self, node: int, key: str, consistency: str = "local", record: bool = False
    ) -> bytes | None:
        """Read on one given node, without following the leader. Raises KVError on an error answer and
        OutcomeUnknown when the node does not answer in time."""
        entry = (
            self.history.invoke(self.process, READ, key) if (record and self.history is not None) else None
        )
        message = {"op": "get", "key": key, "consistency": consistency}
        try:
            response = await self._attempt(node, message, self.attempt_timeout)
        except (*_TRANSPORT_ERRORS, trio.TooSlowError) as exc:
            if entry is not None:
                self.history.fail(entry)
            raise OutcomeUnknown(f"node {node}: {exc!r}") from exc
        if response.get("error") is not None or not response.get("ok", False):
            if entry is not None:
                self.history.fail(entry)
            raise KVError(f"node {node}: {response.get('error')}", response)
        if entry is not None:
            self.history.ok(entry, response.get("value"))
        return response.get("value")

    async def send_to(self, node: int, message: dict, timeout: float | None = None) -> dict | None:
        """One raw request to one node, nothing recorded and no retry: the response, or None when the
        node does not answer in time or the connection fails."""
        try:
            return await self._attempt(node, message, timeout or self.attempt_timeout)
        except (*_TRANSPORT_ERRORS, trio.TooSlowError):
            return None

    async def status(self, node: int, timeout: float = 1.0) -> dict | None:
        """The node's status map, or None when it does not answer."""
        try:
            return await self._attempt(node, {"op": "status"}, timeout)
        except (*_TRANSPORT_ERRORS, trio.TooSlowError):
            return None

    async def aclose(self) -> None:
        for conn in self._connections.values():
            await conn.aclose()
        self._connections.clear()

    async def __aenter__(self) -> KVClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ---- machinery ----------------------------------------------------------------------------------

    async def _recorded(
        self, kind: str, key: str, message: dict, value: Any = None, expect: Any = None
    ) -> dict:
        writes = kind != READ
        if writes:
            self.seq += 1
            message = {**message, "client": self.client_id, "seq": self.seq}
        entry = None
        if self.history is not None:
            entry = self.history.invoke(
                self.process, kind, key, value=value if kind != DELETE else None, expect=expect
            )
        try:
            response = await self._call(message, may_apply=writes)
        except OutcomeUnknown:
            if entry is not None:
                self.history.unknown(entry)
            raise
        except KVError:
            if entry is not None:
                self.history.fail(entry)
            raise
        except BaseException:
            # Cancelled mid-flight: a write may still apply.
            if entry is not None:
                if writes:
                    self.history.unknown(entry)
                else:
                    self.history.fail(entry)
            raise
        if entry is not None:
            if kind == CAS:
                swapped = bool(response["ok"])
                if swapped:
                    self.history.ok(entry, True)
                else:
                    self.history.ok(entry, False, observed=response.get("value"))
            elif kind == READ:
                self.history.ok(entry, response.get("value"))
            else:
                self.history.ok(entry)
        return response

    def _pick(self, avoid: set[int]) -> int | None:
        """The leader if known, else the next node in turn; nodes in ``avoid`` (those that already
        failed this operation) only once every node has failed."""
        addresses = self._addresses()
        if not addresses:
            return None
        if self.leader in addresses and self.leader not in avoid:
            return self.leader
        ids = sorted(addresses)
        candidates = [i for i in ids if i not in avoid]
        if not candidates:
            avoid.clear()
            candidates = ids
        self._rotation += 1
        return candidates[self._rotation % len(candidates)]

    async def _attempt(self, node: int, message: dict, timeout: float) -> dict:
        """One request to one node, on the cached connection (reopened if broken). Raises ``NotSent``
        when the request never left this process."""
        address = self._addresses().get(node)
        if address is None:
            raise NotSent(f"node {node} has no address")
        self.attempts += 1
        conn = self._connections.get(node)
        sent = False
        try:
            with trio.fail_after(timeout):
                if conn is None or conn.broken:
                    try:
                        conn = await Connection.open(address)
                    except OSError as exc:
                        raise NotSent(f"cannot connect to node {node} at {address}: {exc}") from exc
                    self._connections[node] = conn
                sent = True
                try:
                    return await conn.request(message)
                except BaseException:
                    self._connections.pop(node, None)
                    await conn.aclose()
                    raise
        except trio.TooSlowError as exc:
            if not sent:
                raise NotSent(f"timed out connecting to node {node} at {address}") from exc
            raise

    async def _call(self, message: dict, may_apply: bool) -> dict:
        """Run ``message`` against the cluster until it succeeds or the op deadline passes."""
        deadline = trio.current_time() + self.op_timeout
        maybe_applied = False
        last_problem = "no attempt"
        backoff = 0.02
        failed: set[int] = set()

        async def pause() -> None:
            nonlocal backoff
            await trio.sleep(min(backoff, max(0.0, deadline - trio.current_time())))
            backoff = min(backoff * 2, 0.2)

        while True:
            remaining = deadline - trio.current_time()
            if remaining <= 0:
                break
            node = self._pick(failed)
            if node is None:
                await pause()
                continue
            try:
                response = await self._attempt(node, message, min(self.attempt_timeout, remaining))
            except (trio.TooSlowError, *_TRANSPORT_ERRORS) as exc:
                # A request that never left cannot have applied anything; any other failure may have.
                if not isinstance(exc, NotSent):
                    maybe_applied = True
                last_problem = f"node {node}: {exc!r}"
                failed.add(node)
                self.leader = None
                await pause()
                continue
            error = response.get("error")
            if error is None:
                # Stick to the leader the node names (every answer carries its view), else to this node.
                hint = response.get("leader")
                self.leader = hint if hint in self._addresses() else node
                return response
            last_problem = f"node {node}: {error}"
            if error in DEFINITE_ERRORS:
                raise KVError(last_problem, response)
            failed.add(node)
            hint = response.get("leader")
            self.leader = hint if hint in self._addresses() and hint not in failed else None
            if error != "not_leader":
                # "timeout", "unavailable" or anything else: the node may have proposed it.
                maybe_applied = True
            if self.leader is None:
                await pause()
        if may_apply and maybe_applied:
            raise OutcomeUnknown(last_problem)
        raise Unavailable(last_problem)
