#!/usr/bin/env bash
# One load-generator run against huizhen, ours only: server (one media worker) on CPU 0,
# generator on CPU 1, the generator's summary in OUTJSON.log, the server's and generator's CPU
# sampled every 0.5 s into OUTJSON.cpu.log. Used for the recvmmsg A/B of
# 2026-12-02, alternating builds with the same generator:
#   for i in 1 2 3; do for v in A B; do
#     run.sh /tmp/ab$v/release ab-$v-$i.json --scenario consult --rooms 70 --participants 3 --seconds 12
#   done; done
# with /tmp/abX/release holding the huizhen release binary of each build and the same
# huizhen-loadtests binary.
# usage: run.sh BIN_DIR OUTJSON GENERATOR_ARGS...
set -euo pipefail
bin=$1; outjson=$(realpath "$2"); shift 2
tmp=$(mktemp -d)
cat >"$tmp/cfg.toml" <<TOML
[server]
listen = "127.0.0.1:18800"
cert_dir = "$tmp/certs"
[storage]
data_dir = "$tmp/data"
[media]
udp_bind = "127.0.0.1:0"
workers = 1
announce = ["127.0.0.1"]
[metrics]
listen = "127.0.0.1:19800"
[limits]
max_participants = 1000
max_connections = 20000
[log]
filter = "warn"
TOML
printf 'pw12345678pw\n' | "$bin/huizhen" --config "$tmp/cfg.toml" user add --username load --display-name Load --role doctor --password-stdin >/dev/null
taskset -c 0 "$bin/huizhen" --config "$tmp/cfg.toml" serve >>"$tmp/server.log" 2>&1 &
pid=$!
for _ in $(seq 100); do curl -skf https://127.0.0.1:18800/healthz >/dev/null && break; sleep 0.1; done
ulimit -n "$(ulimit -Hn)"
( while kill -0 $pid 2>/dev/null; do g=$(pgrep -f huizhen-loadtests | head -1); echo "$(date +%s.%N | cut -c1-14) srv $(awk '{print $14+$15}' /proc/$pid/stat 2>/dev/null) gen $( [ -n "$g" ] && awk '{print $14+$15}' /proc/$g/stat 2>/dev/null)"; sleep 0.5; done ) > "$outjson.cpu.log" 2>/dev/null &
HUIZHEN_LOADTEST_PASSWORD=pw12345678pw taskset -c 1 "$bin/huizhen-loadtests" --url https://127.0.0.1:18800 --metrics http://127.0.0.1:19800/metrics --username load --server-pid $pid --json "$outjson" "$@" > "$outjson.log" 2>&1 || true
kill $pid; wait $pid || true
tail -5 "$tmp/server.log"; rm -rf "$tmp"
