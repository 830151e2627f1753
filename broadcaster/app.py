"""Run a broadcaster: open the embedded replication node, then serve clients until cancelled."""

from __future__ import annotations

import logging
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from replication import NodeConfig, open_node

from . import collector
from .addon_download import AddonZip, build_addon_zip
from .cli.addon import BuildError
from .config import ConfigError, ServerConfig, max_entry_bytes
from .server import Broadcaster

log = logging.getLogger("blendsync")


def node_config_for(config: ServerConfig) -> NodeConfig:
    """The replication node behind a broadcaster: one voter by default, or a member of a cluster."""
    secret = None
    if config.cluster_secret_file is not None:
        secret = config.cluster_secret_file.read_bytes().strip()
        if len(secret) < 16:
            raise ConfigError(f"the cluster secret in {config.cluster_secret_file} is shorter than 16 bytes")
    server_ssl = client_ssl = None
    if config.cluster_ca is not None and config.tls_cert is not None and config.tls_key is not None:
        from .tls import client_context, server_context

        # Cluster traffic over TLS: each node presents its certificate and checks its peers' against the
        # cluster CA (on top of the cluster secret, which still authenticates every connection).
        server_ssl = server_context(config.tls_cert, config.tls_key, client_ca=config.cluster_ca)
        client_ssl = client_context(ca=config.cluster_ca, cert=config.tls_cert, key=config.tls_key)
    return NodeConfig(
        data_dir=config.data_dir / "replication",
        node_id=config.node_id,
        peers=config.peer_map(),
        raft_listen=config.raft_listen,
        join=config.join,
        cluster_secret=secret,
        server_ssl=server_ssl,
        client_ssl=client_ssl,
        fsync=config.fsync,
        tick_interval=config.tick_interval,
        max_entry_bytes=max_entry_bytes(config.max_frame_size),
    )


def build_served_addon(config: ServerConfig) -> AddonZip | None:
    """The add-on zip for the HTTP port (about a second, once); None when this installation has no sources."""
    try:
        addon = build_addon_zip(config.addon_wheels_dir)
    except (BuildError, OSError) as exc:
        log.warning("not serving the add-on: %s", exc)
        return None
    log.info("serving the add-on %s (%s msgpack, sha256 %s)", addon.filename, addon.wheels, addon.sha256)
    return addon


@asynccontextmanager
async def open_broadcaster(config: ServerConfig) -> AsyncIterator[Broadcaster]:
    """A serving broadcaster (listening when this yields); stops when the block exits."""
    async with open_node(node_config_for(config)) as node, trio.open_nursery() as nursery:
        broadcaster = Broadcaster(config, node)
        if config.http_port is not None:
            from .http import serve_http

            # Before the client port opens, so that every welcome names the add-on the HTTP port serves.
            broadcaster.addon = build_served_addon(config)
            listeners = await nursery.start(serve_http, broadcaster, config.http_host, config.http_port)
            broadcaster.http_port = listeners[0].socket.getsockname()[1]
        await nursery.start(broadcaster.serve)
        try:
            yield broadcaster
        finally:
            nursery.cancel_scope.cancel()


async def serve_forever(config: ServerConfig) -> None:
    """Serve until SIGINT or SIGTERM, then shut down cleanly (the store is flushed on the way out)."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with open_broadcaster(config) as broadcaster, trio.open_nursery() as nursery:
            # The garbage collection policy is the process's: set here, not by open_broadcaster.
            stats = broadcaster.collector = collector.install()
            try:
                nursery.start_soon(collector.run_collections, stats, broadcaster.activity)
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
            finally:
                nursery.cancel_scope.cancel()
                collector.uninstall(stats)
