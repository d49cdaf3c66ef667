#!/bin/bash
# Consult 70 x 3, ours only, builds alternated (binaries in /tmp/abX/release); one summary line
# per run. Run as VARIANTS="A B" ROUNDS="1 2 3", then VARIANTS="A C D" ROUNDS="4 5"
# (heavy-ab.log). Writes heavy-X-N.json into the current directory.
R="$(dirname "$(realpath "$0")")/run.sh"
for i in $ROUNDS; do for v in $VARIANTS; do
  $R /tmp/ab$v/release heavy-$v-$i.json --scenario consult --rooms 70 --participants 3 --seconds 12 >/dev/null 2>&1
  python3 - heavy-$v-$i.json $v $i <<'PY'
import json,sys
d=json.load(open(sys.argv[1])); s=d['server']
print("== consult-70x3", sys.argv[2], sys.argv[3], round(s['received_per_process_cpu_second']), round(s['packets_out_per_media_cpu_second']), "cpu", s['process_cpu_seconds'], "loss %.3f%%" % (100*d['loss_ratio']), "p99", d['latency_ms'].get('p99'), "turn p99", s['turn_ms']['p99'])
PY
done; done
echo ALLDONE
