"""The status page the HTTP port serves at ``/``: one HTML document, its data read by its own script.

It polls ``/status`` every second (cards, the rooms, clients and cluster tables) and ``/history`` every
two seconds (health_history.py: the last ten minutes of this node, drawn as charts by uPlot from
``/vendor/uplot/``, never from a CDN). The room table sorts by any column (click its header; again for
the other direction; ``?sort=-keys`` opens it sorted). The page passes its own query string
(``?token=...``) on to both documents. Every value is set as text, never as HTML: names are data.
"""

from __future__ import annotations

import json

# Stroke colours of the charts, one per series (the tests find the drawn lines by them).
CHART_COLOURS = {
    "ops": "#1f77b4",
    "clients": "#2ca02c",
    "write": "#d62728",
    "fsync": "#9467bd",
    "lag": ("#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"),
}

_TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>blendsync broadcaster</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/vendor/uplot/uPlot.min.css">
<script src="/vendor/uplot/uPlot.iife.min.js"></script>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
  h1 { font-size: 1.3em; } h2 { font-size: 1.05em; margin-top: 1.5em; }
  table { border-collapse: collapse; }
  td, th { padding: .2em .8em; border-bottom: 1px solid #ddd; text-align: left; }
  .num { text-align: right; font-variant-numeric: tabular-nums; }
  #state { color: #777; } .stale { color: #b00 !important; }
  .cards span { display: inline-block; margin-right: 2em; } .cards b { font-size: 1.4em; }
  #charts { display: flex; flex-wrap: wrap; gap: 1em; }
  #charts .chart { width: 440px; }
  #charts-note { color: #777; }
  th.sortable { cursor: pointer; user-select: none; }
  th[aria-sort="ascending"]::after { content: " \\25B2"; }
  th[aria-sort="descending"]::after { content: " \\25BC"; }
</style>
</head>
<body>
<h1>blendsync broadcaster <small id="version"></small></h1>
<p id="state">loading...</p>
<p class="cards">
  <span>rooms <b id="room-count">-</b></span>
  <span>clients <b id="client-count">-</b></span>
  <span>connections <b id="connection-count">-</b></span>
  <span>ops/s <b id="ops-rate">-</b></span>
</p>
<p id="addon" hidden>Blender add-on for this server: <a id="addon-link" href="/addon/blendsync.zip">blendsync
<span id="addon-version"></span></a> (install from disk in Blender; no token needed)</p>
<h2>Last 10 minutes <small id="charts-node"></small></h2>
<p id="charts-note"></p>
<div id="charts">
  <div class="chart" id="chart-ops"></div>
  <div class="chart" id="chart-clients"></div>
  <div class="chart" id="chart-write"></div>
  <div class="chart" id="chart-fsync"></div>
  <div class="chart" id="chart-lag"></div>
</div>
<h2>Rooms</h2>
<table><thead><tr id="room-heads">
<th class="sortable" data-key="name">room</th><th class="sortable num" data-key="users">clients</th>
<th class="sortable num" data-key="keys">keys</th><th class="sortable num" data-key="bytes">bytes</th>
<th class="sortable num" data-key="seq">seq</th><th class="sortable num" data-key="locks">locks</th>
<th class="sortable" data-key="locked">password</th></tr></thead>
<tbody id="rooms"></tbody></table>
<h2>Clients</h2>
<table><thead><tr><th>name</th><th>role</th><th>room</th><th>peer</th><th class="num">ops</th>
<th class="num">queued</th></tr></thead><tbody id="clients"></tbody></table>
<h2>Cluster nodes</h2>
<table><thead><tr><th>node</th><th>address</th><th>role</th><th class="num">lag</th><th>connected</th>
</tr></thead>
<tbody id="nodes"></tbody></table>
<script>
"use strict";
const COLOURS = __COLOURS__;
const $ = (id) => document.getElementById(id);
function row(cells) {
  const tr = document.createElement("tr");
  for (const [value, numeric] of cells) {
    const td = document.createElement("td");
    td.textContent = value === null || value === undefined ? "-" : String(value);
    if (numeric) td.className = "num";
    tr.appendChild(td);
  }
  return tr;
}
function fill(id, rows) { $(id).replaceChildren(...rows.map(row)); }

// ---- the room table, sortable by any column ----
let rooms = [];
let sortKey = "name", sortDir = 1;
function compare(a, b) {
  const x = a[sortKey], y = b[sortKey];
  if (typeof x === "number" && typeof y === "number") return (x - y) * sortDir;
  return String(x).localeCompare(String(y)) * sortDir || String(a.name).localeCompare(String(b.name));
}
function renderRooms() {
  const sorted = [...rooms].sort(compare);
  fill("rooms", sorted.map(r => [[r.name], [r.users, 1], [r.keys, 1], [r.bytes, 1], [r.seq, 1], [r.locks, 1],
                                 [r.locked ? "yes" : "no"]]));
  for (const th of document.querySelectorAll("#room-heads th")) {
    if (th.dataset.key === sortKey) th.setAttribute("aria-sort", sortDir > 0 ? "ascending" : "descending");
    else th.removeAttribute("aria-sort");
  }
}
for (const th of document.querySelectorAll("#room-heads th")) {
  th.addEventListener("click", () => {
    sortDir = th.dataset.key === sortKey ? -sortDir : 1;
    sortKey = th.dataset.key;
    renderRooms();
  });
}
const startSort = new URLSearchParams(location.search).get("sort");  // e.g. ?sort=-keys (a link to a view)
if (startSort) { sortDir = startSort.startsWith("-") ? -1 : 1; sortKey = startSort.replace(/^-/, ""); }

function render(s) {
  $("version").textContent = s.version;
  $("addon").hidden = !s.addon;
  if (s.addon) $("addon-version").textContent = s.addon.version;
  $("room-count").textContent = s.room_count;
  $("client-count").textContent = s.client_count;
  $("connection-count").textContent = s.connections;
  $("ops-rate").textContent = s.rates.ops_per_second;
  rooms = s.rooms;
  renderRooms();
  fill("clients", s.clients.map(c => [[c.name], [c.role], [c.room], [c.peer], [c.operations, 1],
                                      [c.queued_bytes, 1]]));
  fill("nodes", s.cluster.map(n => [[n.id + (n.self ? " (this)" : "")], [n.address], [n.role], [n.lag, 1],
                                    [n.connected ? "yes" : "no"]]));
  $("state").textContent = "updated " + new Date().toLocaleTimeString() + " (every second)";
  $("state").classList.remove("stale");
}
async function refresh() {
  try {
    const response = await fetch("status" + location.search, {cache: "no-store"});
    if (!response.ok) throw new Error("HTTP " + response.status);
    render(await response.json());
  } catch (error) {
    $("state").textContent = "cannot reach the broadcaster: " + error.message;
    $("state").classList.add("stale");
  }
}

// ---- charts of /history (uPlot) ----
const charts = {};
function chart(id, title, unit, series, data) {
  const names = series.map(s => s.label).join("|");
  const existing = charts[id];
  if (existing && existing.names === names) { existing.plot.setData(data); return; }
  if (existing) existing.plot.destroy();
  const options = {
    title: title, width: 440, height: 180,
    scales: {x: {time: true}},
    series: [{}, ...series.map(s => ({label: s.label, stroke: s.colour, width: 2, spanGaps: false,
                                      value: (u, v) => v === null || v === undefined ? "-" : v + unit}))],
    axes: [{}, {size: 60}],
  };
  charts[id] = {names: names, plot: new uPlot(options, data, $(id))};
}
function drawHistory(h) {
  $("charts-node").textContent = h.node === null ? "" : "(node " + h.node + ", kept in memory)";
  const t = h.time;
  chart("chart-ops", "ops/s", "", [{label: "ops/s", colour: COLOURS.ops}], [t, h.ops_per_second]);
  chart("chart-clients", "connected clients", "", [{label: "clients", colour: COLOURS.clients}],
        [t, h.clients]);
  chart("chart-write", "fan-out delivery p99 (ms)", " ms", [{label: "p99", colour: COLOURS.write}],
        [t, h.write_p99_ms]);
  chart("chart-fsync", "fsync p99 (ms)", " ms", [{label: "p99", colour: COLOURS.fsync}], [t, h.fsync_p99_ms]);
  const peers = Object.keys(h.lag);
  chart("chart-lag", "replication lag (entries)", "",
        peers.map((p, i) => ({label: p, colour: COLOURS.lag[i % COLOURS.lag.length]})),
        [t, ...peers.map(p => h.lag[p])]);
}
async function refreshHistory() {
  if (typeof uPlot === "undefined") {
    $("charts-note").textContent = "charts need the browser libraries (scripts/bootstrap installs them)";
    return;
  }
  try {
    const response = await fetch("history" + location.search, {cache: "no-store"});
    if (!response.ok) throw new Error("HTTP " + response.status);
    drawHistory(await response.json());
    $("charts-note").textContent = "";
  } catch (error) {
    $("charts-note").textContent = "cannot read the history: " + error.message;
  }
}
refresh();
refreshHistory();
setInterval(refresh, 1000);
setInterval(refreshHistory, 2000);
</script>
</body>
</html>
"""

STATUS_PAGE = _TEMPLATE.replace("__COLOURS__", json.dumps(CHART_COLOURS))
