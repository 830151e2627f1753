"""Helpers shared by the tests: real broadcasters on 127.0.0.1, ephemeral ports, real lmdb on disk."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import trio

from broadcaster.app import open_broadcaster
from broadcaster.config import ServerConfig

REPO = Path(__file__).resolve().parent.parent


@asynccontextmanager
async def running_broadcaster(data_dir: Path, **settings) -> AsyncIterator[tuple[str, int]]:
    config = ServerConfig(host="127.0.0.1", port=0, data_dir=data_dir)
    config.update(settings)
    async with open_broadcaster(config) as broadcaster:
        host, port = broadcaster.listen_addresses[0].rsplit(":", 1)
        yield host, int(port)


class ServerProcess:
    """``blendsync serve`` as a child process, the way a self-hoster runs it."""

    def __init__(self, data_dir: Path, port: int = 0, extra: list[str] | None = None):
        self.data_dir = data_dir
        self.port = port
        self.extra = extra or []
        self.proc: subprocess.Popen[str] | None = None

    def start(self, timeout: float = 20.0) -> tuple[str, int]:
        command = [
            sys.executable,
            "-m",
            "broadcaster.cli",
            "--log-level",
            "warning",
            "serve",
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
            *self.extra,
        ]
        self.proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        match = re.search(r"listening on (\S+):(\d+)", line)
        if not match:
            self.kill()
            raise RuntimeError(f"server did not start: {line!r}")
        self.port = int(match.group(2))  # restarts reuse the port, as a real deployment would
        return match.group(1), self.port

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            self.proc.wait(timeout=20)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)


async def wait_for(predicate, timeout: float = 10.0, interval: float = 0.01) -> None:
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(interval)
