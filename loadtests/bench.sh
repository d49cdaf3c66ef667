#!/usr/bin/env bash
# Runs the load presets against a release build on this machine, server and generator pinned to
# different cores, and writes one JSON report per run into OUT (default loadtests/results/).
# Usage: loadtests/bench.sh [OUT]        (builds the release binaries first)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-loadtests/results}"
mkdir -p "$out"
cargo build --release -p huizhen -p huizhen-loadtests
bin=target/release
tmp=$(mktemp -d)
server_pid=""
stop_server() {
  [ -n "$server_pid" ] || return 0
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
}
trap 'stop_server; rm -rf "$tmp"' EXIT
cat >"$tmp/cfg.toml" <<TOML
[server]
listen = "127.0.0.1:18700"
cert_dir = "$tmp/certs"
[storage]
data_dir = "$tmp/data"
[media]
udp_bind = "127.0.0.1:0"
announce = ["127.0.0.1"]
[metrics]
listen = "127.0.0.1:19700"
[limits]
max_participants = 100
max_connections = 20000
[log]
filter = "warn"
TOML
password=$(head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')
printf '%s\n' "$password" | "$bin/huizhen" --config "$tmp/cfg.toml" user add \
  --username load --display-name Load --role doctor --password-stdin >/dev/null
cores=$(nproc)
server_core=0
gen_cores=$([ "$cores" -gt 1 ] && echo "1-$((cores - 1))" || echo 0)
# A fresh server process per run, so memory figures are that run's alone.
start_server() {
  taskset -c "$server_core" "$bin/huizhen" --config "$tmp/cfg.toml" serve >>"$tmp/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 100); do curl -skf https://127.0.0.1:18700/healthz >/dev/null && return 0; sleep 0.1; done
  echo "server did not start" >&2; cat "$tmp/server.log" >&2; exit 1
}

run() {
  local name=$1; shift
  echo "== $name: $*" >&2
  stop_server
  start_server
  HUIZHEN_LOADTEST_PASSWORD="$password" taskset -c "$gen_cores" "$bin/huizhen-loadtests" \
    --url https://127.0.0.1:18700 --metrics http://127.0.0.1:19700/metrics --username load \
    --json "$out/$name.json" "$@"
}
run consult-10x3 --scenario consult --rooms 10 --participants 3 --seconds "${SECONDS_PER_RUN:-20}"
run consult-30x3 --scenario consult --rooms 30 --participants 3 --seconds "${SECONDS_PER_RUN:-20}"
run training-1x30 --scenario training --viewers 30 --seconds "${SECONDS_PER_RUN:-20}"
run audio-10x4 --scenario audio --rooms 10 --participants 4 --seconds "${SECONDS_PER_RUN:-20}"
run join-storm-60 --scenario join-storm --total 60 --rate 20 --seconds 5
run signaling-idle-1000 --scenario signaling-idle --total 1000 --participants 16 --seconds 5

# The knee: consult rooms of 3, x1.5 per step, until loss > 1 % or p99 > 50 ms; then its plot.
run knee-consult --scenario consult --rooms 10 --participants 3 --seconds 8 --knee --knee-factor 1.5
python3 loadtests/plot.py "$out/knee-consult.json" "$out/knee-consult.png" \
  "consult (rooms of 3): knee search, $(nproc) vCPU"

# The limit, measured the same way (packets out per CPU second of the relaying thread).
stop_server
for mode in relay-udp relay-srtp; do
  echo "== $mode" >&2
  "$bin/huizhen-loadtests" --scenario "$mode" --fanout 2 --relay-rate 20000 --payload 1000 \
    --seconds "${SECONDS_PER_RUN:-20}" --json "$out/$mode.json"
done
