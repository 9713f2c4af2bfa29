#!/usr/bin/env bash
# bench/repair_bench.sh [WORKDIR]
# 4 chunkservers holding 1 GiB (3 replicas); SIGKILL one and measure the time
# from the kill to "fully repaired" (the leader's healer settled: no chunk
# under-replicated) and the repair throughput (bytes re-replicated / time).
# Default settings: dead timeout 5 s (a killed server is found sooner: its
# presence stream to the leader drops and its port refuses), 12 copies per
# server at once, no byte budget (--repair-mbps 0).
# Then the same on MooseFS in the same run (bench/moosefs_repair.sh, 4
# chunkservers, goal 3); REPAIR_PEER=none skips it.
source "$(dirname "$0")/lib.sh"
W=${1:-/tmp/tessera-repair-bench}
build
rm -rf "$W"; mkdir -p "$W"
# 1 GiB of data at 3 copies, and its copy for the read-back.
free_kb=$(df -Pk "$(dirname "$W")" | awk 'NR==2 {print $4}')
if [ "$free_kb" -lt $((6 * 1024 * 1024)) ]; then
  echo "repair_bench needs 6 GiB free beside $W (has $((free_kb / 1024)) MiB)" >&2; exit 1
fi
start_cluster "$W/cluster" --chunkservers 4
status() { "$BIN/tessera" --timeout 5 cluster status --json; }
# settled N: N servers alive and the healer with nothing to do (the put
# must not race the fourth server's joining, nor the kill a rebalance).
settled() {
  status | python3 -c '
import json,sys
s=json.load(sys.stdin); r=s["repair"]
alive=sum(1 for c in s["chunkservers"] if c["alive"])
sys.exit(0 if alive=='"$1"' and r and r["settled"] else 1)'
}
for _ in $(seq 1 300); do settled 4 && break; sleep 0.2; done
head -c 1G /dev/urandom >"$W/data"
"$BIN/tessera" put "$W/data" /data >&2
sleep 1
for _ in $(seq 1 300); do settled 4 && break; sleep 0.2; done
before=$(status | python3 -c 'import json,sys; s=json.load(sys.stdin); print(next(c["used"] for c in s["chunkservers"] if c["id"]=="cs-2"))')
pid=$(pgrep -f -- "--data-dir $W/cluster/chunkserver-2" | head -1)
[ -n "$pid" ] || { echo "chunkserver-2 not found" >&2; exit 1; }
t0=$(date +%s.%N)
kill -9 "$pid"
# Polled until settled (bounded: 10 minutes): the first poll that finds
# cs-2 dead marks detection; the rest is copying.
t_dead=
deadline=$(( $(date +%s) + 600 ))
while :; do
  state=$(status | python3 -c '
import json,sys
s=json.load(sys.stdin); r=s["repair"]
dead=any(c["id"]=="cs-2" and c["state"]=="dead" for c in s["chunkservers"])
done=dead and r and r["settled"] and r["under_replicated"]==0 and r["missing"]==0
print("done" if done else ("dead" if dead else "alive"))' 2>/dev/null || echo alive)
  if [ "$state" != alive ] && [ -z "$t_dead" ]; then t_dead=$(date +%s.%N); fi
  [ "$state" = done ] && break
  if [ "$(date +%s)" -gt "$deadline" ]; then echo "repair not settled within 10 minutes" >&2; exit 1; fi
  sleep 0.1
done
t1=$(date +%s.%N)
python3 -c "d=$t1-$t0; dd=$t_dead-$t0; print(f'repair_time_after_kill {d:.1f} s'); print(f'repair_detection {dd:.2f} s (kill to cs-2 dead in cluster status, 0.1 s polls)'); print(f'repair_copy_time {d-dd:.1f} s'); print(f'repair_bytes {$before} B'); print(f'repair_throughput {$before/d/1e6:.1f} MB/s (from the kill, failure detection included)')"
"$BIN/tessera" get /data "$W/data.out" && cmp "$W/data" "$W/data.out" && echo "readback ok" >&2
rm -f "$W/data" "$W/data.out"
stop_cluster
[ -n "${KEEP:-}" ] || rm -rf "$W"
if [ "${REPAIR_PEER:-moosefs}" = moosefs ]; then
  "$REPO/bench/moosefs_repair.sh"
fi
