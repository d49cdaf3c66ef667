#!/bin/bash
# One run.sh run, and the kernel's UDP receive drops (/proc/net/udp) on the server's sockets
# against all other sockets (the generator's), read until the server exits.
# usage: drops.sh BIN_DIR OUT.json GENERATOR_ARGS...
bin=$1; out=$2; shift 2
"$(dirname "$(realpath "$0")")/../recv-ab/run.sh" $bin $out "$@" >/dev/null 2>&1 &
rp=$!
sleep 3
pid=$(pgrep -f "huizhen --config" | head -1)
last=""
while kill -0 $pid 2>/dev/null; do
  inodes=$(ls -l /proc/$pid/fd 2>/dev/null | grep -o 'socket:\[[0-9]*\]' | grep -o '[0-9]*' | tr '\n' ' ')
  snap=$(awk 'NR>1 {print $10, $NF}' /proc/net/udp)
  [ -n "$inodes" ] && last="$inodes|$snap"
  sleep 0.5
done
wait $rp
python3 - "$last" "$out" <<'PY'
import sys, json
inodes, snap = sys.argv[1].split('|', 1)
inodes = set(inodes.split())
srv = oth = 0
for line in snap.strip().splitlines():
    ino, drops = line.split()
    if ino in inodes: srv += int(drops)
    else: oth += int(drops)
d = json.load(open(sys.argv[2]))
print("server socket drops", srv, "other sockets (generator) drops", oth, "lost", d['lost_packets'], "reordered", d['reordered_packets'])
PY
