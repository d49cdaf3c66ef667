#!/bin/bash
# Lecture 1+383 and consult 30x3, builds C (before) and M (mimalloc) alternated, same generator.
here="$(dirname "$(realpath "$0")")"
L="$here/../../2026-12-01d/announcements-ab/lecture.sh"
R="$here/../recv-ab/run.sh"
mkdir -p /tmp/abm && cd /tmp/abm  # results land here
sum() { python3 - "$@" <<'PY'
import json,sys
d=json.load(open(sys.argv[1])); s=d['server']
print("==", sys.argv[2], sys.argv[3], sys.argv[4], round(s['received_per_process_cpu_second']), "cpu", s['process_cpu_seconds'], "loss %.3f%%" % (100*d['loss_ratio']), "p99", d['latency_ms'].get('p99'), "peak rss MiB", round(s['peak_rss_bytes']/2**20,1))
PY
}
for i in 1 2 3; do for v in C M; do
  $L /tmp/ab$v/release 383 lecture-$v-$i.json >/dev/null 2>&1; sum lecture-$v-$i.json lecture $v $i
  $R /tmp/ab$v/release consult-$v-$i.json --scenario consult --rooms 30 --participants 3 --seconds 12 >/dev/null 2>&1; sum consult-$v-$i.json consult-30x3 $v $i
done; done
for v in C M; do
  $R /tmp/ab$v/release idle-$v.json --scenario signaling-idle --total 10000 --participants 16 --seconds 5 >/dev/null 2>&1; sum idle-$v.json idle-10000 $v 1
done
echo ALLDONE
