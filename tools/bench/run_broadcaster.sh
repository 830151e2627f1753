#!/usr/bin/env bash
# Start a fresh single-node broadcaster (fsync on) on a free port, run the broadcaster benchmarks against it,
# print one JSON line per benchmark (each with its bare-relay baseline from the same run), then stop it.
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/bootstrap
data=$(mktemp -d)
port=${BENCH_PORT:-12899}
.venv/bin/blendsync --log-level warning serve --port "$port" --data-dir "$data" > "$data/serve.log" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 50); do grep -q listening "$data/serve.log" 2>/dev/null && break; sleep 0.1; done
bench=".venv/bin/python -m tools.bench"
$bench fanout --port "$port" --clients 10 --messages 2000 --size 256 --json
$bench fanout --port "$port" --clients 20 --messages 600 --size 256 --rate 120 --json
$bench join --port "$port" --history 100000 --keys 1000 --size 256 --json
# Last: it locks 127.0.0.1 out of password joins for a while.
$bench guessing --port "$port" --guessers 100 --json
