#!/bin/bash
# bench.sh's consult-10x3, consult-30x3 and audio-10x4, ours only, builds A (before) and B
# (recvmmsg) alternated, three rounds; one summary line per run (light-ab.log).
cd "$(dirname "$(realpath "$0")")/../../../.."  # the repository root
for round in 1 2 3; do
  for X in A B; do
    o=/tmp/abres/$X-$round
    RUNS="consult-10x3 consult-30x3 audio-10x4" CARGO_TARGET_DIR=/tmp/ab$X BUILD=0 JANUS=0 KNEE=0 SECONDS_PER_RUN=15 \
      loadtests/bench.sh $o > /tmp/abres/$X-$round.log 2>&1
    for n in consult-10x3 consult-30x3 audio-10x4; do
      python3 - "$o/$n.json" "$X" "$round" "$n" <<'PY'
import json,sys
d=json.load(open(sys.argv[1])); s=d['server']
print("==", sys.argv[4], sys.argv[2], sys.argv[3], round(s['received_per_process_cpu_second']), round(s['packets_out_per_media_cpu_second']), "cpu", s['process_cpu_seconds'], "loss %.3f%%" % (100*d['loss_ratio']), "p99", d['latency_ms'].get('p99'))
PY
    done
  done
done
echo ALLDONE
