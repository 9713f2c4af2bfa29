#!/usr/bin/env bash
# bench/moosefs_repair.sh: the peer side of repair_bench.sh. MooseFS from
# ../shared/bench/moosefs-up.sh (3 chunkservers, goal 3, fsync before close)
# plus a fourth chunkserver this script starts in the same private network
# namespace; 1 GiB of fresh random data written through mfsmount; SIGKILL of
# one chunkserver; the time from the kill until every chunk of the file has
# 3 valid copies again (mfsfileinfo, polled every 0.1 s).
# Stops only what it started (the fourth chunkserver by its recorded PID,
# the rest through moosefs-down.sh) and deletes the data.
set -euo pipefail
SHARED=$(cd "$(dirname "$0")/../../shared/bench" 2>/dev/null && pwd || true)
[ -x "$SHARED/moosefs-up.sh" ] || { echo "moosefs_repair: ../shared/bench/moosefs-up.sh not found" >&2; exit 1; }
export MFS_ROOT=${MFS_ROOT:-/tmp/tessera-mfs-repair}
NS=${MFS_NETNS:-mfslo}
IP=${MFS_IP:-10.99.0.1}
BASE=${MFS_PORT_BASE:-9419}
NSX=(nsenter "--net=/run/netns/$NS")
CS4="$MFS_ROOT/cs4"
DATA=${1:-/tmp/tessera-mfs-repair.data}

cleanup() {
  local pid
  pid=$(cat "$MFS_ROOT/run/cs4.pid" 2>/dev/null || true)
  if [ -n "$pid" ] && grep -qs '^mfschunkserver' "/proc/$pid/comm"; then
    mfschunkserver -c "$CS4/mfschunkserver.cfg" stop >/dev/null 2>&1 || kill -TERM "$pid"
    for _ in $(seq 1 100); do grep -qs '^mfschunkserver' "/proc/$pid/comm" || break; sleep 0.1; done
  fi
  rm -f "$MFS_ROOT/run/cs4.pid" "$DATA"
  MFS_CLEAN=1 "$SHARED/moosefs-down.sh" >&2 || true
  rm -rf "$CS4"
}
trap cleanup EXIT

"$SHARED/moosefs-up.sh" >&2
MNT=$(cat "$MFS_ROOT/run/mountpoint")

# The fourth chunkserver: configured as moosefs-up.sh configures the others.
mkdir -p "$CS4/data"
echo "$CS4/data" >"$CS4/mfshdd.cfg"
cat >"$CS4/mfschunkserver.cfg" <<CFG
WORKING_USER = root
WORKING_GROUP = root
SYSLOG_IDENT = mfschunkserver-bench4
DATA_PATH = $CS4
HDD_CONF_FILENAME = $CS4/mfshdd.cfg
HDD_LEAVE_SPACE_DEFAULT = 2GiB
HDD_FSYNC_BEFORE_CLOSE = ${MFS_FSYNC:-1}
BIND_HOST = $IP
MASTER_HOST = $IP
MASTER_PORT = $((BASE + 1))
CSSERV_LISTEN_HOST = $IP
CSSERV_LISTEN_PORT = $((BASE + 6))
CFG
"${NSX[@]}" mfschunkserver -c "$CS4/mfschunkserver.cfg" start >"$CS4/start.log" 2>&1
tr -dc 0-9 <"$CS4/.mfschunkserver.lock" >"$MFS_ROOT/run/cs4.pid"
for _ in $(seq 1 60); do
  n=$("${NSX[@]}" mfscli -H "$IP" -P "$((BASE + 2))" -SCS -s '|' 2>/dev/null | grep -c "^chunk servers:|$IP|" || true)
  [ "${n:-0}" -ge 4 ] && break
  sleep 1
done
[ "${n:-0}" -ge 4 ] || { echo "moosefs_repair: only ${n:-0} of 4 chunkservers registered" >&2; exit 1; }

# copies FILE -> "chunks fully_copied": chunks with 3 valid copies.
copies() {
  "${NSX[@]}" mfsfileinfo "$1" 2>/dev/null | python3 -c '
import re,sys
chunks=[]; 
for line in sys.stdin:
    if re.match(r"\s*chunk \d+:", line): chunks.append(0)
    elif re.match(r"\s*copy \d+:", line) and "VALID" in line and chunks: chunks[-1]+=1
print(len(chunks), sum(1 for c in chunks if c>=3))'
}

head -c 1G /dev/urandom >"$DATA"
cp "$DATA" "$MNT/data" && sync
for _ in $(seq 1 300); do
  read -r total full < <(copies "$MNT/data")
  [ "$total" -gt 0 ] && [ "$total" = "$full" ] && break
  sleep 0.2
done
[ "$total" = "$full" ] || { echo "moosefs_repair: the file never had 3 copies of every chunk" >&2; exit 1; }
used=$(du -sb "$MFS_ROOT/cs2/data" | cut -f1)
pid=$(tr -dc 0-9 <"$MFS_ROOT/cs2/.mfschunkserver.lock")
t0=$(date +%s.%N)
kill -9 "$pid"
# Until the master has noticed (the server off its list), its copies still
# count; only then is "3 valid copies of every chunk" the repaired state.
for _ in $(seq 1 1200); do
  n=$("${NSX[@]}" mfscli -H "$IP" -P "$((BASE + 2))" -SCS -s '|' 2>/dev/null | grep -c "^chunk servers:|$IP|" || true)
  [ "${n:-4}" -le 3 ] && break
  sleep 0.05
done
for _ in $(seq 1 1200); do
  read -r total full < <(copies "$MNT/data")
  [ "$total" = "$full" ] && break
  sleep 0.1
done
t1=$(date +%s.%N)
[ "$total" = "$full" ] || { echo "moosefs_repair: not repaired after 2 minutes ($full of $total chunks)" >&2; exit 1; }
python3 -c "d=$t1-$t0; print(f'moosefs_repair_time_after_kill {d:.1f} s'); print(f'moosefs_repair_bytes {$used} B (the killed chunkserver held)'); print(f'moosefs_repair_throughput {$used/d/1e6:.1f} MB/s')"
cmp "$DATA" "$MNT/data" && echo "moosefs readback ok" >&2
# moosefs-down.sh stops cs1..cs3 by config; cs2 is already gone.
