#!/usr/bin/env bash
# Instructions the media core spends per forwarded RTP packet, counted by callgrind: the figure
# to judge a change to the media path by on a shared machine, where wall-clock runs swing by
# 10-25 % and this does not move by one instruction between identical runs.
#
# It runs `forwarding_profile_workload` (an ignored test in src/sfu/tests.rs: str0m clients and
# the Sfu on a virtual clock, everyone publishing audio and video) twice under callgrind, with
# collection limited to the Sfu's entry points so the clients' own work is left out: once for
# SECONDS of media and once for none (connecting: ICE, DTLS key exchanges). The difference,
# divided by the RTP packets sent out, is the cost of one forwarded packet.
#
# Usage: loadtests/instructions.sh [OUT]
# Environment:
#   PARTICIPANTS=3   clients in the one room (each receives the others' audio and video)
#   MEDIA_SECONDS=20 seconds of media (virtual time)
#   IDLE=0           idle participants beside the room (observers with no peer connection)
#   SIMULCAST=0      1: also measure this tree with every camera in three simulcast layers and
#                    the bandwidth estimator on (as where `media.simulcast` is on), in the same
#                    invocation, and report it beside the single-layer figure
#   BASE=""          a git revision to measure too, checked out in a worktree under the
#                    target directory and built into the same target directory (its own
#                    copy of the crate, the dependencies shared); the report then gives this
#                    tree's figure against it
# Cargo builds the release test binary first when it is out of date.
# Writes OUT/instructions.json (default loadtests/results/) and prints a summary; the callgrind
# profiles stay beside it (callgrind-this-media.out etc.) for
# `callgrind_annotate --inclusive=yes OUT/callgrind-this-media.out`.
set -euo pipefail
self=$(realpath "$0")
cd "$(dirname "$self")/.."
out="${1:-loadtests/results}"
mkdir -p "$out"
out=$(realpath "$out")
participants="${PARTICIPANTS:-3}"
media_seconds="${MEDIA_SECONDS:-20}"
idle="${IDLE:-0}"
simulcast="${SIMULCAST:-0}"
base="${BASE:-}"

if ! command -v valgrind >/dev/null; then
  echo "== installing valgrind (apt-get)" >&2
  if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq >&2
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >&2
fi

# Builds the release test binary of the tree in $1 into target directory $2 if it is out of
# date; prints its path.
test_binary() {
  local tree=$1 target=$2
  echo "== cargo test --release --lib --no-run in $tree" >&2
  (cd "$tree" && CARGO_TARGET_DIR=$target cargo test --release --lib --no-run \
    --message-format=json) |
    python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["lib"]:
        print(m["executable"])
'
}

# Instructions collected in the Sfu and RTP packets in and out, for one run (simulcast if $4 is
# 1): "INSTRUCTIONS RTP_IN RTP_OUT".
count() {
  local bin=$1 seconds=$2 profile=$3 layers=${4:-0} log
  log=$(mktemp)
  HUIZHEN_PROFILE_PARTICIPANTS=$participants HUIZHEN_PROFILE_SECONDS=$seconds \
    HUIZHEN_PROFILE_IDLE=$idle HUIZHEN_PROFILE_SIMULCAST=$layers \
    valgrind --tool=callgrind --callgrind-out-file="$profile" \
    --toggle-collect='huizhen::sfu::Sfu::handle_receive' \
    --toggle-collect='huizhen::sfu::Sfu::handle_timeout' \
    --toggle-collect='huizhen::sfu::Sfu::poll_transmit' \
    --toggle-collect='huizhen::sfu::Sfu::poll_event' \
    --toggle-collect='huizhen::sfu::Sfu::handle_command' \
    --toggle-collect='huizhen::sfu::Sfu::next_timeout' \
    "$bin" --ignored --exact sfu::tests::forwarding_profile_workload --nocapture >"$log" 2>&1 || {
    cat "$log" >&2
    echo "instructions.sh: the workload failed under callgrind" >&2
    exit 1
  }
  local collected rtp_in rtp_out
  collected=$(sed -n 's/^==[0-9]*== Collected : \([0-9]*\)$/\1/p' "$log" | tail -1)
  rtp_in=$(sed -n 's/^forwarding_profile_workload: .* \([0-9]*\) RTP in, .*$/\1/p' "$log" | tail -1)
  rtp_out=$(sed -n 's/^forwarding_profile_workload: .* \([0-9]*\) RTP out$/\1/p' "$log" | tail -1)
  rm -f "$log"
  if [ -z "$collected" ] || [ -z "$rtp_out" ] || [ "$collected" = 0 ]; then
    echo "instructions.sh: nothing counted (did the Sfu's entry points get renamed?)" >&2
    exit 1
  fi
  echo "$collected $rtp_in $rtp_out"
}

# Measures the tree in $1 (target directory $2), keeping the profiles as OUT/callgrind-$3-*,
# simulcast if $4 is 1; prints "PER_PACKET_OUT MEDIA CONNECTING RTP_IN RTP_OUT".
measure() {
  local tree=$1 target=$2 label=$3 layers=${4:-0} bin run media rtp_in rtp_out connecting
  bin=$(test_binary "$tree" "$target")
  [ -x "$bin" ] || { echo "instructions.sh: no test binary for $tree" >&2; exit 1; }
  run=$(count "$bin" "$media_seconds" "$out/callgrind-$label-media.out" "$layers")
  read -r media rtp_in rtp_out <<<"$run"
  run=$(count "$bin" 0 "$out/callgrind-$label-connecting.out" "$layers")
  read -r connecting _ _ <<<"$run"
  if [ "$rtp_out" = 0 ]; then
    echo "instructions.sh: no RTP packet went out in $media_seconds s" >&2
    exit 1
  fi
  echo "$(((media - connecting) / rtp_out)) $media $connecting $rtp_in $rtp_out"
}

target="${CARGO_TARGET_DIR:-$PWD/target}"
rev=$(git rev-parse --short HEAD)
dirty=$(git status --porcelain --untracked-files=no | head -1)
[ -n "$dirty" ] && rev="$rev+changes"
echo "== this tree ($rev): $participants participants beside $idle idle, $media_seconds s" >&2
result=$(measure "$PWD" "$target" this)
read -r per media connecting rtp_in rtp_out <<<"$result"

simulcast_json=null
if [ "$simulcast" = 1 ]; then
  echo "== this tree, every camera in three simulcast layers" >&2
  result=$(measure "$PWD" "$target" this-simulcast 1)
  read -r sper smedia sconnecting srtp_in srtp_out <<<"$result"
  simulcast_json="{\"per_packet\": $sper, \"media\": $smedia, \"connecting\": $sconnecting, \"rtp_in\": $srtp_in, \"rtp_out\": $srtp_out}"
fi

base_json=null
if [ -n "$base" ]; then
  base_rev=$(git rev-parse --short "$base")
  tree="$target/instructions-base/tree"
  rm -rf "$tree"
  git worktree prune
  git worktree add --detach --force "$tree" "$base" >&2
  trap 'git worktree remove --force "$tree" >/dev/null 2>&1 || true' EXIT
  echo "== base ($base_rev)" >&2
  result=$(measure "$tree" "$target" base)
  read -r bper bmedia bconnecting _ brtp_out <<<"$result"
  base_json="{\"rev\": \"$base_rev\", \"per_packet\": $bper, \"media\": $bmedia, \"connecting\": $bconnecting, \"rtp_out\": $brtp_out}"
fi

cat >"$out/instructions.json" <<EOF
{
  "rev": "$rev",
  "participants": $participants,
  "idle": $idle,
  "seconds": $media_seconds,
  "per_packet": $per,
  "media": $media,
  "connecting": $connecting,
  "rtp_in": $rtp_in,
  "rtp_out": $rtp_out,
  "simulcast": $simulcast_json,
  "base": $base_json
}
EOF
echo "instructions per forwarded packet: $per ($rev; $media in the Sfu with media, $connecting connecting only, $rtp_out RTP out)"
if [ -n "$base" ]; then
  python3 - "$per" "$bper" "$base_rev" <<'PY'
import sys
new, old, rev = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
print(f"base {rev}: {old}; this tree {100 * (new - old) / old:+.1f} %")
PY
fi
echo "written: $out/instructions.json"
if [ "$simulcast" = 1 ]; then
  echo "with simulcast: $sper per forwarded packet ($smedia with media, $sconnecting connecting only, $srtp_in RTP in, $srtp_out RTP out); single layer: $rtp_in RTP in, $rtp_out RTP out"
fi
