#!/usr/bin/env bash
# One lecture (1 presenter + VIEWERS) against huizhen, ours only: server on CPU 0, generator on
# CPU 1, the server's and generator's CPU sampled every 0.5 s into OUTJSON.cpu.log, the
# generator's summary in OUTJSON.log. Used for the announcement A/B of 2026-12-01 (fourth session):
#   for i in 1 2; do for v in A C; do lecture.sh /tmp/ab$v 575 ab-$v-$i.json; done; done
# with /tmp/abX holding the huizhen and huizhen-loadtests release binaries of each build.
# The server's configuration and the run are those of the later, general
# ../../2026-12-02/recv-ab/run.sh (the same configuration this script held then).
# usage: lecture.sh BIN_DIR VIEWERS OUTJSON
set -euo pipefail
bin=$1; viewers=$2; outjson=$3
exec "$(dirname "$(realpath "$0")")/../../2026-12-02/recv-ab/run.sh" "$bin" "$outjson" \
  --scenario training --viewers "$viewers" --seconds 8
