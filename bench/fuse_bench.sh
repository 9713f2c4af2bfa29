#!/usr/bin/env bash
# bench/fuse_bench.sh [WORKDIR]
# Runs ../shared/bench/fsbench.sh on a Tessera mount and on MooseFS (goal 3,
# fsync before close) in the same run, and prints each figure side by side
# with the ratio Tessera/MooseFS (higher is better for rates, lower for
# latencies and times).
source "$(dirname "$0")/lib.sh"
W=${1:-/tmp/tessera-fsbench}
FSBENCH=${FSBENCH:-$REPO/../shared/bench/fsbench.sh}
[ -x "$FSBENCH" ] || FSBENCH="bash $FSBENCH"
build
mkdir -p "$W"
start_cluster "$W/cluster" --mount "$W/mnt"
for _ in $(seq 1 100); do grep -qs " $W/mnt " /proc/mounts && break; sleep 0.1; done
# One untimed 1 GiB write and read first, on each target: on this VM the first pass
# over fresh memory (page cache) is several times slower than later ones,
# which otherwise favours whichever system runs second.
warm_up() {
  command -v fio >/dev/null || apt-get install -y -qq fio >/dev/null 2>&1 || true
  fio --output-format=terse --fallocate=none --ioengine=psync --numjobs=1 --refill_buffers --name=warmup \
    --filename="$1/warmup.$$" --rw=write --bs=1M --size=1g --end_fsync=1 >/dev/null 2>&1 || true
  # And one untimed read of it from cold caches, so the read path of
  # whichever system runs first is as warm as that of the second.
  sync
  echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
  fio --output-format=terse --ioengine=psync --numjobs=1 --name=warmup-read \
    --filename="$1/warmup.$$" --rw=read --bs=1M --size=1g >/dev/null 2>&1 || true
  rm -f "$1/warmup.$$"
}
warm_up "$W/mnt"
$FSBENCH "$W/mnt" tessera | tee "$W/tessera.txt"
stop_cluster

MFS_UP="$REPO/../shared/bench/moosefs-up.sh"
MFS_DOWN="$REPO/../shared/bench/moosefs-down.sh"
bash "$MFS_UP" "$W/mfs" >&2
warm_up "$W/mfs"
$FSBENCH "$W/mfs" moosefs | tee "$W/moosefs.txt" || true
bash "$MFS_DOWN" "$W/mfs" >&2 || true

python3 - "$W/tessera.txt" "$W/moosefs.txt" <<'PY'
import sys
def load(p):
    d = {}
    for line in open(p):
        parts = line.split()
        if len(parts) >= 4:
            d[parts[1]] = (float(parts[2]), parts[3])
    return d
t, m = load(sys.argv[1]), load(sys.argv[2])
print(f"{'metric':<24} {'tessera':>12} {'moosefs':>12} {'ratio':>8}")
for k, (tv, unit) in t.items():
    if k in m and k not in ("drop_caches", "loadavg_start", "loadavg_end"):
        mv = m[k][0]
        print(f"{k:<24} {tv:>12.1f} {mv:>12.1f} {tv / mv if mv else float('nan'):>8.2f}  {unit}")
PY
