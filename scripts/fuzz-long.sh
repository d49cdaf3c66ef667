#!/usr/bin/env bash
# Long coverage-guided fuzz runs on a many-core machine (docs/FUZZING.md, "Long runs").
#
#   scripts/fuzz-long.sh build
#       builds fuzz/ 's `any` binary (every target in one; libFuzzer, optimised, debug
#       assertions, no sanitizer: the crate forbids unsafe code) into fuzz/bin/any, a single
#       file to carry to the machine that runs it.
#   scripts/fuzz-long.sh run RUNS JOBS MAX_SECONDS [TARGET...]
#       runs each target (default: all) with JOBS libFuzzer processes side by side, sharing one
#       working corpus (fuzz/work/<target>), until together they have executed RUNS inputs or
#       MAX_SECONDS have passed; prints one line per target (inputs run, seconds, crashes) and
#       exits 1 if any process crashed (inputs in fuzz/artifacts/<target>/).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT/fuzz"
mode="${1:-}"
shift || true

case "$mode" in
build)
  export RUSTC_BOOTSTRAP=1
  command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz >&2
  cargo fuzz build -O -s none any >&2
  mkdir -p bin
  triple="$(rustc -vV | sed -n 's/^host: //p')"
  cp "target/$triple/release/any" bin/any
  strip bin/any 2>/dev/null || true
  ls -l bin/any
  ;;
run)
  runs="${1:?RUNS}"; jobs="${2:?JOBS}"; max_seconds="${3:?MAX_SECONDS}"
  shift 3
  bin="$ROOT/fuzz/bin/any"
  [[ -x "$bin" ]] || { echo "no $bin: run '$0 build' first" >&2; exit 2; }
  if [[ $# -gt 0 ]]; then
    targets=("$@")
  else
    targets=(signaling upload_metadata content_kind dicom ecg pdf annotation keyframe stun sdp_answer red media_session audit_trail)
  fi
  per_job=$(( (runs + jobs - 1) / jobs ))
  failed=0
  printf '%-16s %12s %8s %9s %8s\n' target inputs seconds per_sec crashes
  for t in "${targets[@]}"; do
    mkdir -p "work/$t" "artifacts/$t" "logs/$t"
    start=$(date +%s)
    pids=()
    for j in $(seq 1 "$jobs"); do
      HUIZHEN_FUZZ_TARGET="$t" "$bin" "work/$t" "corpus/$t" \
        -runs="$per_job" -max_total_time="$max_seconds" -rss_limit_mb=2048 -timeout=10 \
        -max_len=262144 -seed="$j" -artifact_prefix="artifacts/$t/" -print_final_stats=1 \
        >"logs/$t/$j.log" 2>&1 &
      pids+=($!)
    done
    crashes=0
    for p in "${pids[@]}"; do wait "$p" || crashes=$((crashes + 1)); done
    seconds=$(( $(date +%s) - start ))
    total=$(cat "logs/$t/"*.log | sed -n 's/^stat::number_of_executed_units: *//p' | awk '{s+=$1} END {print s+0}')
    printf '%-16s %12s %8s %9s %8s\n' "$t" "$total" "$seconds" "$(( total / (seconds > 0 ? seconds : 1) ))" "$crashes"
    [[ "$crashes" == 0 ]] || failed=1
  done
  exit "$failed"
  ;;
*)
  sed -n '2,14p' "$0" >&2
  exit 2
  ;;
esac
