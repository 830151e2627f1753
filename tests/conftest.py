"""Shared fixtures. Helpers live in support.py (importable from every test as ``support``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from support import ServerProcess, running_broadcaster


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[tuple[str, int]]:
    async with running_broadcaster(tmp_path / "data") as address:
        yield address


@pytest.fixture
def server_process(tmp_path: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path / "data")
    try:
        yield process
    finally:
        process.kill()
