#!/usr/bin/env bash
# bench/tls_ab.sh [ROUNDS] [WORKDIR]
# What mutual TLS costs: the shared fsbench on a fresh `tessera up --mount`
# cluster with TLS (the default) and with `--insecure`, alternating for
# ROUNDS rounds (default 2) in one run; then, per mode, the CPU each
# process spent per small-file create (2,000 files of 4 KiB written
# through the mount, CPU read from /proc before and after). Prints each
# fsbench line per round, the mean ratio TLS/insecure of each figure, and
# the CPU table.
source "$(dirname "$0")/lib.sh"
ROUNDS=${1:-2}
W=${2:-/tmp/tessera-tls-ab}
FSBENCH=${FSBENCH:-"$REPO/../shared/bench/fsbench.sh"}
NFILES=${TLS_AB_FILES:-2000}
build
mkdir -p "$W"
out="$W/results.txt"
cpu="$W/cpu.txt"
: >"$out"
: >"$cpu"

# cpu_ticks PID...: "name ticks" (utime + stime) of each process.
cpu_ticks() {
  for p in "$@"; do
    local name
    name=$(tr '\0' ' ' <"/proc/$p/cmdline" | grep -oE 'tessera-(master|chunkserver|mount)' | head -1)
    awk -v n="$name" '{ s = $0; sub(/^.*\) /, "", s); split(s, f, " "); print n, f[12] + f[13] }' "/proc/$p/stat"
  done
}

for r in $(seq 1 "$ROUNDS"); do
  for mode in tls insecure; do
    flags=()
    [ "$mode" = insecure ] && flags=(--insecure)
    start_cluster "$W/cluster" --mount "$W/mnt" "${flags[@]}"
    for _ in $(seq 1 100); do grep -qs " $W/mnt " /proc/mounts && break; sleep 0.1; done
    FSBENCH_RAND_RUNTIME=5 FSBENCH_RAND_SIZE=128m "$FSBENCH" "$W/mnt" "$mode" 2>/dev/null \
      | grep -E " (seq_write_1M|seq_read_1M|small_create_4k|small_stat|small_read_4k) " \
      | sed "s/^/round $r /" | tee -a "$out"
    if [ "$r" = 1 ]; then
      pids=$(pgrep -P "$UP_PID" | tr '\n' ' ')
      mkdir -p "$W/mnt/cpu"
      head -c $((NFILES * 4096)) /dev/urandom >"$W/src"
      before=$(cpu_ticks $pids)
      for i in $(seq 1 "$NFILES"); do
        dd if="$W/src" of="$W/mnt/cpu/f$i" bs=4096 skip=$((i - 1)) count=1 status=none
      done
      sync
      after=$(cpu_ticks $pids)
      python3 - "$mode" "$NFILES" "$(getconf CLK_TCK)" "$before" "$after" <<'PY' | tee -a "$cpu"
import sys, collections
mode, n, hz = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def parse(s):
    d = collections.defaultdict(int)
    for line in s.splitlines():
        name, t = line.split()
        d[name] += int(t)
    return d
b, a = parse(sys.argv[4]), parse(sys.argv[5])
for name in sorted(a):
    print(f"{mode} cpu_ms_per_create {name} {(a[name] - b[name]) * 1000 / hz / n:.3f}")
PY
    fi
    stop_cluster
  done
done
ab_summary "$out" tls insecure
