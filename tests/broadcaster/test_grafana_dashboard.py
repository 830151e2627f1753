"""docs/grafana-dashboard.json names only metrics a real server exports: every ``blendsync_*`` metric in its
queries is in ``/metrics`` of the leader of a 3-node cluster of ``blendsync serve`` processes (the lag and
peer metrics exist only where there are peers), after a write and an error so that the labelled counters
have samples too.
"""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

import pytest
import trio
from support import BroadcasterCluster

from broadcaster.client import ServerError, connect
from tools.cluster import free_port

pytestmark = pytest.mark.timeout(120)

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana-dashboard.json"
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def queries(node: object) -> list[str]:
    """Every ``expr`` in the dashboard, at any depth (panels, rows, targets)."""
    if isinstance(node, dict):
        found = [node["expr"]] if isinstance(node.get("expr"), str) else []
        return found + [q for value in node.values() for q in queries(value)]
    if isinstance(node, list):
        return [q for item in node for q in queries(item)]
    return []


def named_metrics(dashboard: dict) -> set[str]:
    names = set()
    for expr in queries(dashboard):
        names.update(re.findall(r"\bblendsync_[a-z0-9_]+", expr))
    return names


def exported(text: str) -> tuple[set[str], set[str]]:
    """(families declared by ``# TYPE``, names that have at least one sample line)."""
    families = set(re.findall(r"^# TYPE (\S+) ", text, re.MULTILINE))
    samples = set(re.findall(r"^([a-z_][a-z0-9_]*)(?:\{| )", text, re.MULTILINE))
    return families, samples


def test_the_dashboard_is_grafana_json_with_queries():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["panels"] and dashboard["templating"]["list"]
    assert len(named_metrics(dashboard)) >= 20
    titles = {panel["title"] for panel in dashboard["panels"]}
    for title in ("Operations per second", "Connected clients", "Fan-out delivery p99", "fsync p99"):
        assert title in titles
    assert any(title.startswith("Replication lag") for title in titles)


class ClusterWithHttp(BroadcasterCluster):
    """Each node with its own HTTP port."""

    def __init__(self, root: Path, size: int = 3):
        self.http_ports = {i: free_port() for i in range(1, size + 1)}
        super().__init__(root, size)

    def command(self, i: int, join: bool = False, **options):
        return [*super().command(i, join, **options), "--http-port", str(self.http_ports[i])]


async def test_every_metric_the_dashboard_names_is_exported_by_a_real_server(tmp_path):
    names = named_metrics(json.loads(DASHBOARD.read_text()))
    async with ClusterWithHttp(tmp_path / "cluster", 3) as cluster:
        leader = await cluster.leader()
        async with connect(*cluster.address(leader), name="ana") as ana:
            await ana.create_room("r", keep_open=True)
            await ana.join("r")
            await ana.set("k", b"v")
            with pytest.raises(ServerError):
                await ana.create_room("r")  # an error frame: blendsync_errors_total{code} has a sample

            def scrape() -> str:
                url = f"http://127.0.0.1:{cluster.http_ports[leader]}/metrics"
                with urllib.request.urlopen(url, timeout=10) as response:
                    return response.read().decode()

            text = await trio.to_thread.run_sync(scrape)
    families, samples = exported(text)
    missing = set()
    for name in names:
        family = next((name[: -len(s)] for s in HISTOGRAM_SUFFIXES if name.endswith(s)), name)
        if family not in families or name not in samples:
            missing.add(name)
    # A limit refusal needs a configured limit to be hit: its family is declared, with no sample yet.
    assert missing <= {"blendsync_limit_refusals_total"}, sorted(missing)
    assert "blendsync_limit_refusals_total" in families
