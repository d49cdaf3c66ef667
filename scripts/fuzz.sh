#!/usr/bin/env bash
# Coverage-guided fuzzing of huizhen's parsers of untrusted input (docs/FUZZING.md).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     default: 60 seconds, every target
#
# Installs cargo-fuzz if it is missing, builds fuzz/ (libFuzzer, with sanitizer coverage; the
# stable toolchain with RUSTC_BOOTSTRAP=1, as cargo-fuzz needs nightly flags), and runs each
# target for SECONDS_PER_TARGET from its committed corpus (fuzz/corpus/<target>, never written
# to) plus a working corpus in fuzz/work/<target> that grows from run to run. A crash leaves its
# input in fuzz/artifacts/<target>/: turn it into a regression (copy it to
# fuzz/regressions/<target>/, which tests/fuzz_corpus.rs replays in every test run) and fix it.
# The last lines say, per target, how many inputs ran and whether it crashed; the exit status
# is 1 if any target crashed.

set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT/fuzz"
SECONDS_PER_TARGET="${1:-60}"
shift || true

export RUSTC_BOOTSTRAP=1
if ! command -v cargo-fuzz >/dev/null; then
  echo "installing cargo-fuzz…" >&2
  cargo install --locked cargo-fuzz >&2
fi

if [[ $# -gt 0 ]]; then
  TARGETS=("$@")
else
  mapfile -t TARGETS < <(cargo fuzz list)
fi

echo "building the fuzz targets (release, sanitizer coverage; the first build takes a while)…" >&2
cargo fuzz build -O >&2

summary=()
failed=0
for t in "${TARGETS[@]}"; do
  mkdir -p "work/$t" "artifacts/$t"
  log="work/$t.log"
  echo "fuzzing $t for ${SECONDS_PER_TARGET}s…" >&2
  set +e
  # The working corpus first: libFuzzer adds what it finds to the first directory only.
  cargo fuzz run -O "$t" "work/$t" "corpus/$t" -- \
    -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=2048 -timeout=10 -max_len=262144 \
    -print_final_stats=1 >"$log" 2>&1
  status=$?
  set -e
  runs="$(grep -E '^stat::number_of_executed_units:' "$log" | awk '{print $2}' | tail -n1)"
  if [[ "$status" == 0 ]]; then
    summary+=("$t: ${runs:-?} inputs, no crash")
  else
    failed=1
    summary+=("$t: CRASH after ${runs:-?} inputs (exit $status; see fuzz/$log and fuzz/artifacts/$t/)")
  fi
done
printf '%s\n' "${summary[@]}"
exit "$failed"
