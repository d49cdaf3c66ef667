#!/usr/bin/env bash
# The multi-core scaling run: the consult knee search against our server with 1, 2, 4, …
# media workers (each worker its own core and UDP port, the generator on the cores left), then
# loadtests/scaling.py writes scaling.md and scaling.png: the largest load held, forwarded
# packets per second and per media-core second against the number of workers.
#
# Made for a many-core machine (build here, carry target/release/huizhen and
# huizhen-loadtests there with BUILD=0). The generator needs about as many cores per packet as
# the server, so by default the workers go up to about 40 % of the cores, in powers of two; the
# report says, for each count, whether the generator's cores or the server's were the limit.
#
# Usage: loadtests/scaling.sh [OUT]        (default loadtests/results/scaling)
# Environment:
#   WORKER_COUNTS="1 2 4"   the worker counts to run (default: powers of two up to 40 % of the cores)
#   KNEE_SECONDS=8          measured seconds per knee step
#   ROOMS_PER_WORKER=10     rooms of 3 per worker at the knee search's first step
#   BUILD=1                 0: use the binaries already in CARGO_TARGET_DIR (default target/)
set -euo pipefail
self=$(realpath "$0")
cd "$(dirname "$self")/.."
out="${1:-loadtests/results/scaling}"
mkdir -p "$out"
cores=$(nproc)
counts="${WORKER_COUNTS:-}"
if [ -z "$counts" ]; then
  w=1
  while [ $((w * 5)) -le $((cores * 2)) ]; do
    counts="$counts $w"
    w=$((w * 2))
  done
  counts="${counts:-1}"
fi
if [ "${BUILD:-1}" = 1 ]; then
  cargo build --release -p huizhen -p huizhen-loadtests
fi
for w in $counts; do
  echo "== $w media worker(s)" >&2
  WORKERS="$w" JANUS=0 BUILD=0 KNEE=1 RUNS=knee-consult \
    KNEE_START_ROOMS=$((${ROOMS_PER_WORKER:-10} * w)) loadtests/bench.sh "$out/workers-$w"
done
python3 loadtests/scaling.py "$out" "consult knee against media workers, $cores vCPU"
