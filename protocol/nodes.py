"""The nodes a client may use, in failover order (docs/protocol.md section 2, "Failing over").

The configured addresses come first, then every node a server lists in ``welcome.nodes``. A client that
leaves a node goes to the next one, wrapping around, so the node it left is tried last.
"""

from __future__ import annotations

Address = tuple[str, int]

SILENT_HEARTBEATS = 3  # a server silent this many heartbeat intervals is dead


def parse_address(text: str) -> Address:
    """``"host:port"`` or ``"[v6]:port"`` (as in ``welcome.nodes``) -> ``(host, port)``."""
    host, _, port = text.strip().rpartition(":")
    return host.strip("[]"), int(port)


class Nodes:
    def __init__(self, addresses: list[Address]):
        self.known: list[Address] = list(dict.fromkeys(addresses))
        self.current: Address | None = self.known[0] if self.known else None  # the node in use

    def learn(self, nodes: list[str]) -> None:
        """Add the nodes a server listed in ``welcome.nodes`` (entries that are no address are skipped)."""
        for item in nodes:
            try:
                address = parse_address(item)
            except ValueError:
                continue
            if address not in self.known:
                self.known.append(address)

    def order(self) -> list[Address]:
        """Every known node, starting after the one in use (which comes last)."""
        known = list(self.known)
        if self.current in known:
            i = known.index(self.current)
            known = known[i + 1 :] + known[: i + 1]
        return known

    def advance(self) -> Address:
        """Leave the node in use for the next one; returns it."""
        self.current = self.order()[0]
        return self.current
