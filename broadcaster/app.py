"""Run a broadcaster: open the embedded replication node, then serve clients until cancelled."""

from __future__ import annotations

import logging
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from replication.node import NodeConfig, open_node

from .config import ServerConfig
from .server import Broadcaster

log = logging.getLogger("blendsync")


@asynccontextmanager
async def open_broadcaster(config: ServerConfig) -> AsyncIterator[Broadcaster]:
    """A serving broadcaster (listening when this yields); stops when the block exits."""
    node_config = NodeConfig(data_dir=config.data_dir / "replication", fsync=config.fsync)
    async with open_node(node_config) as node, trio.open_nursery() as nursery:
        broadcaster = Broadcaster(config, node)
        await nursery.start(broadcaster.serve)
        if config.http_port is not None:
            from .http import serve_http

            await nursery.start(serve_http, broadcaster, config.http_host, config.http_port)
        try:
            yield broadcaster
        finally:
            nursery.cancel_scope.cancel()


async def serve_forever(config: ServerConfig) -> None:
    """Serve until SIGINT or SIGTERM, then shut down cleanly (the store is flushed on the way out)."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with open_broadcaster(config) as broadcaster:
            print(
                f"blendsync broadcaster listening on {', '.join(broadcaster.listen_addresses)}"
                f" (data in {config.data_dir})",
                flush=True,
            )
            if broadcaster.http_addresses:
                print(f"HTTP admin port on {', '.join(broadcaster.http_addresses)}", flush=True)
            async for signum in signals:
                log.info("received %s, shutting down", signal.Signals(signum).name)
                return
