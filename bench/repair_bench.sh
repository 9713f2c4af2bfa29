#!/usr/bin/env bash
# bench/repair_bench.sh [WORKDIR]
# 4 chunkservers holding 1 GiB (3 replicas); SIGKILL one and measure the time
# from the kill to "fully repaired" (the leader's healer settled: no chunk
# under-replicated) and the repair throughput (bytes re-replicated / time).
# Default settings: dead timeout 5 s (a killed server is found sooner: the
# leader's connect to it is refused), repair pass every 2 s, 4 copies per
# server at once, 100 MB/s repair budget per source.
source "$(dirname "$0")/lib.sh"
W=${1:-/tmp/tessera-repair-bench}
build
rm -rf "$W"; mkdir -p "$W"
start_cluster "$W/cluster" --chunkservers 4
head -c 1G /dev/urandom >"$W/data"
"$BIN/tessera" put "$W/data" /data >&2
sleep 4
status() { "$BIN/tessera" --timeout 5 cluster status --json; }
before=$(status | python3 -c 'import json,sys; s=json.load(sys.stdin); print(next(c["used"] for c in s["chunkservers"] if c["id"]=="cs-2"))')
pid=$(pgrep -f -- "--data-dir $W/cluster/chunkserver-2" | head -1)
[ -n "$pid" ] || { echo "chunkserver-2 not found" >&2; exit 1; }
t0=$(date +%s.%N)
kill -9 "$pid"
# Polled from the kill: "repaired" needs cs-2 off the ring (dead) as well.
while :; do
  if status | python3 -c 'import json,sys; r=json.load(sys.stdin)["repair"]; sys.exit(0 if r and r["settled"] and r["under_replicated"]==0 and r["missing"]==0 else 1)'; then
    # settled must also mean cs-2 is off the ring (dead)
    if status | python3 -c 'import json,sys; s=json.load(sys.stdin); sys.exit(0 if any(c["id"]=="cs-2" and c["state"]=="dead" for c in s["chunkservers"]) else 1)'; then
      break
    fi
  fi
  sleep 0.5
done
t1=$(date +%s.%N)
python3 -c "d=$t1-$t0; print(f'repair_time_after_kill {d:.1f} s'); print(f'repair_bytes {$before} B'); print(f'repair_throughput {$before/d/1e6:.1f} MB/s (from the kill, failure detection included)')"
"$BIN/tessera" get /data "$W/data.out" && cmp "$W/data" "$W/data.out" && echo "readback ok" >&2
rm -f "$W/data" "$W/data.out"
