#!/bin/bash
# System calls of the media worker thread per packet, counted by `perf stat` on its tracepoints
# for 5 s in the middle of a consult run (ROOMS rooms of 3), beside the run's own report.
# Writes sys-VARIANT-ROOMS.{json,perf} into the current directory.
# usage: syscalls.sh VARIANT ROOMS   (binaries in /tmp/abVARIANT/release, as for run.sh)
v=$1; rooms=$2
"$(dirname "$(realpath "$0")")/run.sh" /tmp/ab$v/release sys-$v-$rooms.json --scenario consult --rooms $rooms --participants 3 --seconds 15 >/dev/null 2>&1 &
sleep 14
pid=$(pgrep -f "huizhen --config" | head -1)
tid=$(grep -l "^media-0" /proc/$pid/task/*/comm | head -1 | cut -d/ -f5)
perf stat -e 'raw_syscalls:sys_enter,syscalls:sys_enter_recvfrom,syscalls:sys_enter_recvmmsg,syscalls:sys_enter_sendmmsg,syscalls:sys_enter_epoll_wait' -t $tid -x, -- sleep 5 2> sys-$v-$rooms.perf
wait
python3 - sys-$v-$rooms.json sys-$v-$rooms.perf $v $rooms <<'PY'
import json,sys
d=json.load(open(sys.argv[1])); s=d['server']
c={l.split(',')[2]: int(l.split(',')[0]) for l in open(sys.argv[2]) if l.count(',')>3 and l.split(',')[0].isdigit()}
pin=s['packets_in_per_s']*5; pout=s['packets_out_per_s']*5
print("==", sys.argv[3], "consult %sx3"%sys.argv[4], "syscalls per packet in %.3f, per packet out %.3f"%(c['raw_syscalls:sys_enter']/pin, c['raw_syscalls:sys_enter']/pout), {k.split(':')[1]: round(v/pin,3) for k,v in c.items()}, "per core", round(s['received_per_process_cpu_second']))
PY
