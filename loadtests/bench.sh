#!/usr/bin/env bash
# Runs the load presets against a release build on this machine, server and generator pinned to
# different cores, and writes one JSON report per run into OUT (default loadtests/results/).
#
# Side by side: the consult and training runs and both knee searches also run against a
# Janus VideoRoom (the Debian package `janus`, installed here with apt-get when missing),
# configured into the temporary directory: the VideoRoom plugin and the WebSocket transport only,
# no event handlers, no STUN/TURN, no IPv6. Same generator, same core as our server, in this one
# invocation, each run straight after ours: janus-NAME.json beside NAME.json, then
# loadtests/compare.py writes side-by-side.md and side-by-side.png. Both servers' process CPU
# and memory are read from /proc (--server-pid), so they are measured the same way.
#
# Janus (libnice) gathers no ICE candidates on loopback interfaces and pins its media sockets
# to the interface it gathered on, so it cannot do ICE with peers on 127.0.0.1. Rather than let
# it use a real interface, the runs happen in a private network namespace (unshare --net, so
# nothing outside this machine's processes can reach either server) holding the loopback and a
# veth pair that leads nowhere: Janus gathers on hzj0 (10.213.0.1), the generator's Janus peers
# bind to that address, and every packet still takes the kernel's local delivery path, as our
# server's do on 127.0.0.1.
#
# Usage: loadtests/bench.sh [OUT]
# Environment:
#   SECONDS_PER_RUN=20    measured seconds per run (knee steps: KNEE_SECONDS=8)
#   JANUS=1               0: our server only
#   SIDE_BY_SIDE_ONLY=0   1: only the runs that have a Janus counterpart
#   KNEE=1                0: skip the knee searches (consult, training, join-storm)
#   KNEE_START_ROOMS=10   rooms of 3 at the consult knee search's first step
#   KNEE_TRAINING_VIEWERS=50  viewers at the training knee search's first step (one lecture,
#                         its audience x1.5 per step up to the largest room, 1000, then more
#                         lectures of that size)
#   BUILD=1               0: use the binaries already built
#   RUNS=""               names of the runs to do (e.g. "consult-10x3 knee-consult"); all if empty
#   IDLE_SESSIONS=1000    sessions of the signaling-idle run (named signaling-idle-N)
#   JOIN_STORM_TOTAL=60   participants of the join-storm run (named join-storm-N), joining
#   JOIN_STORM_RATE=20    at this many per second; also the first step of knee-join-storm
#   BESIDE_IDLE=2000      idle sessions held open during consult-10x3-beside-idle-N
#   WORKERS=1             media workers of our server (one UDP port and one core each: the
#                         server and Janus are pinned to cores 0..WORKERS-1, the generator
#                         to the rest)
#   CARGO_TARGET_DIR      where the binaries are (default target/)
set -euo pipefail
self=$(realpath "$0")
cd "$(dirname "$self")/.."
out="${1:-loadtests/results}"
mkdir -p "$out"
secs="${SECONDS_PER_RUN:-20}"
workers="${WORKERS:-1}"
knee_secs="${KNEE_SECONDS:-8}"
with_janus="${JANUS:-1}"
only_pairs="${SIDE_BY_SIDE_ONLY:-0}"
if [ "${BUILD:-1}" = 1 ]; then
  cargo build --release -p huizhen -p huizhen-loadtests
fi
bin="${CARGO_TARGET_DIR:-target}/release"
janus_ip=10.213.0.1
# Installing Janus needs root: as root, or through sudo.
as_root() {
  if [ "$(id -u)" = 0 ]; then
    "$@"
  elif command -v sudo >/dev/null; then
    sudo "$@"
  else
    echo "bench.sh: installing Janus needs root or sudo; install the Debian package janus" \
      "first, or run with JANUS=0 (our server only)" >&2
    exit 1
  fi
}
if [ "$with_janus" = 1 ] && [ -z "${HUIZHEN_BENCH_NETNS:-}" ]; then
  if ! command -v janus >/dev/null; then
    echo "== installing janus (apt-get)" >&2
    # Keep the package from starting its own, default-configured service.
    policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      as_root sh -c 'printf "#!/bin/sh\nexit 101\n" >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d'
      policy=/usr/sbin/policy-rc.d
    fi
    status=0
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y janus >&2 || status=$?
    [ -n "$policy" ] && as_root rm -f "$policy"
    [ "$status" = 0 ] || exit "$status"
  fi
  # The plots need matplotlib, and the namespace has no network to fetch it from.
  python3 loadtests/plotting.py
  # Without root, a user namespace of our own makes us root in the new network namespace
  # only: enough to set up its links, nothing outside it.
  if [ "$(id -u)" = 0 ]; then
    exec unshare --net env HUIZHEN_BENCH_NETNS=1 BUILD=0 "$self" "$@"
  fi
  exec unshare --net --map-root-user env HUIZHEN_BENCH_NETNS=1 BUILD=0 "$self" "$@"
fi
if [ -n "${HUIZHEN_BENCH_NETNS:-}" ]; then
  ip link set lo up
  ip link add hzj0 type veth peer name hzj1
  ip addr add "$janus_ip/30" dev hzj0
  ip addr add 10.213.0.2/30 dev hzj1
  ip link set hzj0 up
  ip link set hzj1 up
fi
tmp=$(mktemp -d)
server_pid=""
janus_pid=""
stop_pid() {
  [ -n "$1" ] || return 0
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
stop_server() { stop_pid "$server_pid"; server_pid=""; }
stop_janus() { stop_pid "$janus_pid"; janus_pid=""; }
trap 'stop_server; stop_janus; rm -rf "$tmp"' EXIT
cat >"$tmp/cfg.toml" <<TOML
[server]
listen = "127.0.0.1:18700"
cert_dir = "$tmp/certs"
[storage]
data_dir = "$tmp/data"
[media]
udp_bind = "127.0.0.1:0"
workers = $workers
announce = ["127.0.0.1"]
[metrics]
listen = "127.0.0.1:19700"
[limits]
# Room for a lecture of hundreds (the largest a room may be).
max_participants = 1000
max_connections = 20000
# Every load-generator connection comes from one address (127.0.0.1): the per-address cap,
# meant for clients, must not be what the benchmark measures.
max_http_connections = 21000
max_connections_per_address = 21000
[log]
filter = "warn"
TOML
password=$(head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')
printf '%s\n' "$password" | "$bin/huizhen" --config "$tmp/cfg.toml" user add \
  --username load --display-name Load --role doctor --password-stdin >/dev/null
# The server (and Janus) get one core per media worker, the generator the rest.
cores=$(nproc)
if [ "$cores" -gt "$workers" ]; then
  server_core="0-$((workers - 1))"
  gen_cores="$workers-$((cores - 1))"
else
  echo "warning: $cores cores for $workers media workers and the generator: they share" >&2
  server_core="0-$((cores - 1))"
  gen_cores="$server_core"
fi
# A fresh server process per run, so memory figures are that run's alone.
start_server() {
  taskset -c "$server_core" "$bin/huizhen" --config "$tmp/cfg.toml" serve >>"$tmp/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 100); do curl -skf https://127.0.0.1:18700/healthz >/dev/null && return 0; sleep 0.1; done
  echo "server did not start" >&2; cat "$tmp/server.log" >&2; exit 1
}

# Janus, configured in $tmp/janus with only what the comparison needs.
janus_port=18188
setup_janus() {
  local videoroom websockets
  videoroom=$(dpkg -L janus | grep '/plugins/libjanus_videoroom\.so$' | head -1)
  websockets=$(dpkg -L janus | grep '/transports/libjanus_websockets\.so$' | head -1)
  [ -n "$videoroom" ] && [ -n "$websockets" ] || { echo "janus: plugin files not found" >&2; exit 1; }
  local j="$tmp/janus"
  # Folders holding only the one plugin and the one transport: nothing else is loaded.
  mkdir -p "$j/etc" "$j/plugins" "$j/transports" "$j/events" "$j/loggers"
  ln -s "$videoroom" "$j/plugins/"
  ln -s "$websockets" "$j/transports/"
  cat >"$j/etc/janus.jcfg" <<JCFG
general: {
	configs_folder = "$j/etc"
	plugins_folder = "$j/plugins"
	transports_folder = "$j/transports"
	events_folder = "$j/events"
	loggers_folder = "$j/loggers"
	interface = "$janus_ip"
	debug_level = 3
	admin_secret = "$(head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')"
	protected_folders = ["/bin", "/boot", "/dev", "/etc", "/lib", "/proc", "/sbin", "/sys", "/usr", "/var"]
}
certificates: {
}
media: {
	ipv6 = false
	rtp_port_range = "20000-40000"
}
nat: {
	nice_debug = false
	ice_enforce_list = "hzj0"
	ignore_mdns = true
}
plugins: {
}
transports: {
}
loggers: {
}
events: {
	broadcast = false
}
JCFG
  cat >"$j/etc/janus.transport.websockets.jcfg" <<JCFG
general: {
	json = "plain"
	ws = true
	ws_port = $janus_port
	ws_ip = "127.0.0.1"
	ws_acl = "127."
	wss = false
}
admin: {
	admin_ws = false
	admin_wss = false
}
JCFG
  # No preconfigured rooms: the generator creates each run's rooms over the API.
  printf 'general: {\n}\n' >"$j/etc/janus.plugin.videoroom.jcfg"
}
start_janus() {
  taskset -c "$server_core" janus -C "$tmp/janus/etc/janus.jcfg" -F "$tmp/janus/etc" \
    --disable-colors >>"$tmp/janus.log" 2>&1 &
  janus_pid=$!
  for _ in $(seq 100); do
    (exec 3<>/dev/tcp/127.0.0.1/$janus_port) 2>/dev/null && return 0
    sleep 0.1
  done
  echo "janus did not start" >&2; cat "$tmp/janus.log" >&2; exit 1
}

# Whether RUNS (when set) names this run.
wanted() { [ -z "${RUNS:-}" ] || [[ " $RUNS " == *" $1 "* ]]; }
run() {
  local name=$1; shift
  [ "$only_pairs" = 1 ] && return 0
  wanted "$name" || return 0
  ours "$name" "$@"
}
ours() {
  local name=$1; shift
  echo "== $name: $*" >&2
  stop_janus
  stop_server
  start_server
  HUIZHEN_LOADTEST_PASSWORD="$password" taskset -c "$gen_cores" "$bin/huizhen-loadtests" \
    --url https://127.0.0.1:18700 --metrics http://127.0.0.1:19700/metrics --username load \
    --server-pid "$server_pid" --json "$out/$name.json" "$@"
}
theirs() {
  local name=$1; shift
  echo "== janus-$name: $*" >&2
  stop_server
  stop_janus
  start_janus
  taskset -c "$gen_cores" "$bin/huizhen-loadtests" --target janus \
    --janus-url "ws://127.0.0.1:$janus_port/" --janus-bind "$janus_ip" --server-pid "$janus_pid" \
    --json "$out/janus-$name.json" "$@"
}
# A run with IDLE idle signaling sessions (observers in rooms of 16 where nobody publishes)
# held open beside it by a second generator process: what quiet participants cost the media
# worker while others' media flows.
beside_idle() {
  local name=$1 idle=$2; shift 2
  [ "$only_pairs" = 1 ] && return 0
  wanted "$name" || return 0
  echo "== $name: $idle idle sessions beside: $*" >&2
  stop_janus
  stop_server
  start_server
  HUIZHEN_LOADTEST_PASSWORD="$password" taskset -c "$gen_cores" "$bin/huizhen-loadtests" \
    --url https://127.0.0.1:18700 --metrics "" --username load \
    --scenario signaling-idle --total "$idle" --participants 16 --seconds 3600 \
    >"$tmp/idle.log" 2>&1 &
  local idle_pid=$! present=0
  for _ in $(seq 1200); do
    present=$(curl -sf http://127.0.0.1:19700/metrics | awk '$1 == "huizhen_participants" { print int($2) }')
    [ "${present:-0}" -ge "$idle" ] && break
    sleep 0.25
  done
  if [ "${present:-0}" -lt "$idle" ]; then
    echo "only ${present:-0} of $idle idle sessions joined" >&2; cat "$tmp/idle.log" >&2
    stop_pid "$idle_pid"; exit 1
  fi
  HUIZHEN_LOADTEST_PASSWORD="$password" taskset -c "$gen_cores" "$bin/huizhen-loadtests" \
    --url https://127.0.0.1:18700 --metrics http://127.0.0.1:19700/metrics --username load \
    --server-pid "$server_pid" --json "$out/$name.json" "$@"
  stop_pid "$idle_pid"
}
both() {
  wanted "$1" || return 0
  ours "$@"
  [ "$with_janus" = 1 ] && theirs "$@"
  return 0
}
[ "$with_janus" = 1 ] && setup_janus

both consult-10x3 --scenario consult --rooms 10 --participants 3 --seconds "$secs"
both consult-30x3 --scenario consult --rooms 30 --participants 3 --seconds "$secs"
both training-1x30 --scenario training --viewers 30 --seconds "$secs"
beside="${BESIDE_IDLE:-2000}"
beside_idle "consult-10x3-beside-idle-$beside" "$beside" --scenario consult --rooms 10 \
  --participants 3 --seconds "$secs"
run audio-10x4 --scenario audio --rooms 10 --participants 4 --seconds "$secs"
storm="${JOIN_STORM_TOTAL:-60}"
run "join-storm-$storm" --scenario join-storm --total "$storm" --rate "${JOIN_STORM_RATE:-20}" \
  --seconds 5
idle="${IDLE_SESSIONS:-1000}"
run "signaling-idle-$idle" --scenario signaling-idle --total "$idle" --participants 16 --seconds 5

# The knee: consult rooms of 3, x1.5 per step, until loss > 1 % or p99 > 50 ms; then its plot.
if [ "${KNEE:-1}" = 1 ] && wanted knee-consult; then
  both knee-consult --scenario consult --rooms "${KNEE_START_ROOMS:-10}" --participants 3 \
    --seconds "$knee_secs" \
    --knee --knee-factor 1.5
  python3 loadtests/plot.py "$out/knee-consult.json" "$out/knee-consult.png" \
    "consult (rooms of 3): knee search, $(nproc) vCPU"
fi
# The same for training: one lecture whose audience grows x1.5 per step (up to the largest room,
# then more lectures of that size).
if [ "${KNEE:-1}" = 1 ] && wanted knee-training; then
  both knee-training --scenario training --rooms 1 --viewers "${KNEE_TRAINING_VIEWERS:-50}" \
    --seconds "$knee_secs" --knee --knee-factor 1.5
  python3 loadtests/plot.py "$out/knee-training.json" "$out/knee-training.png" \
    "training (one presenter, a growing audience): knee search, $(nproc) vCPU"
fi
# Arrivals: a join storm whose rate grows x1.5 per step (the participants with it, so each
# storm lasts as long) until a join fails or join p95 passes 300 ms.
if [ "${KNEE:-1}" = 1 ] && wanted knee-join-storm; then
  both knee-join-storm --scenario join-storm --total "${JOIN_STORM_TOTAL:-60}" \
    --rate "${JOIN_STORM_RATE:-20}" --seconds 5 --knee --knee-factor 1.5
  python3 loadtests/plot.py "$out/knee-join-storm.json" "$out/knee-join-storm.png" \
    "join storm (rooms of 3, arrivals per second growing): knee search, $(nproc) vCPU"
fi
stop_server
stop_janus
if [ "$with_janus" = 1 ]; then
  python3 loadtests/compare.py "$out" \
    "huizhen and Janus $(janus --help 2>&1 | sed -n 's/^Janus version: .*(\(.*\))/\1/p'), $(nproc) vCPU"
fi

# The limit, measured the same way (packets out per CPU second of the relaying thread): one
# system call per datagram, then the server's own batched media I/O (recvmmsg/sendmmsg).
[ "$only_pairs" = 1 ] && exit 0
for mode in relay-udp relay-srtp; do
  for io in per-datagram batched; do
    name=$mode
    [ "$io" = batched ] && name=$mode-batched
    wanted "$name" || continue
    echo "== $name" >&2
    "$bin/huizhen-loadtests" --scenario "$mode" --relay-io "$io" --fanout 2 --relay-rate 20000 \
      --payload 1000 --seconds "$secs" --json "$out/$name.json"
  done
done
