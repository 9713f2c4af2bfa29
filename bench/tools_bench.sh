#!/usr/bin/env bash
# bench/tools_bench.sh [WORKDIR]
# Real tools on a Tessera mount and on MooseFS (goal 3, fsync before close)
# in the same run, one line per figure and the ratio Tessera/MooseFS
# (higher is better for every line: rates, or 1/seconds).
#
#   tar_x        extract a real source tree (crate sources from the cargo
#                registry, TOOLS_FILES files, default 3000)      files/s
#   cp_a_out     cp -a of the tree out of the mount                files/s
#   cp_a_in      cp -a of it back into the mount                   files/s
#   rsync_out    rsync -a out of the mount                          files/s
#   rsync_in     rsync -a into the mount                            files/s
#   git          git init + add + commit + status in the tree       1/s (1/seconds)
#   warm_reread  4 readers re-reading a 1 GiB data set (4 x 256 MiB) they
#                read once before                                   MB/s
#   randwrite    fio 4 KiB random writes, fsync after each, 64 MiB  IOPS
#   sqlite       inserts, one transaction each (TOOLS_ROWS, 500)    rows/s
#
# Every file is fresh data (the data set is random; the source tree is
# real text, identical on both systems). BENCH_PROFILE=debug measures the
# dev build.
source "$(dirname "$0")/lib.sh"
W=${1:-/tmp/tessera-tools}
NFILES=${TOOLS_FILES:-3000}
ROWS=${TOOLS_ROWS:-500}
build
command -v fio >/dev/null || apt-get install -y -qq fio >/dev/null 2>&1
command -v sqlite3 >/dev/null || apt-get install -y -qq sqlite3 >/dev/null 2>&1
mkdir -p "$W"

# The source tree: whole crates from the cargo registry, sorted, until
# NFILES files; packed once so both systems extract the same bytes.
if [ ! -f "$W/tree.tar" ]; then
  reg=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/ | head -1)
  python3 - "$reg" "$NFILES" "$W/tree.list" <<'PY'
import os, sys
reg, want, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
picked, n = [], 0
for c in sorted(os.listdir(reg)):
    files = sum(len(fs) for _, _, fs in os.walk(os.path.join(reg, c)))
    if n + files > want * 1.1:
        continue
    picked.append(c)
    n += files
    if n >= want:
        break
open(out, "w").write("\n".join(picked) + "\n")
print(f"tree: {len(picked)} crates, {n} files", file=sys.stderr)
PY
  tar -C "$reg" -cf "$W/tree.tar" -T "$W/tree.list"
fi
FILES=$(tar -tf "$W/tree.tar" | grep -vc '/$')

rate() { python3 -c "print(f'{$1 / $2:.1f}')"; }

# run LABEL DIR: one line per figure, "LABEL METRIC VALUE UNIT".
run() {
  local L=$1 D=$2/tools.$$ s out
  mkdir -p "$D"
  out=$(mktemp -d)
  s=$(secs tar -xf "$W/tree.tar" -C "$D/") ; echo "$L tar_x $(rate "$FILES" "$s") files/s"
  s=$(secs cp -a "$D" "$out/cp") ; echo "$L cp_a_out $(rate "$FILES" "$s") files/s"
  s=$(secs cp -a "$out/cp" "$D/cp_back") ; echo "$L cp_a_in $(rate "$FILES" "$s") files/s"
  s=$(secs rsync -a "$D/" "$out/rs/") ; echo "$L rsync_out $(rate "$FILES" "$s") files/s"
  rm -rf "$D/cp_back"
  s=$(secs rsync -a "$out/cp/" "$D/rs_back/") ; echo "$L rsync_in $(rate "$FILES" "$s") files/s"
  rm -rf "$D/rs_back" "$out"
  s=$(secs sh -c "cd '$D' && git init -q . && git add -A && git -c user.name=b -c user.email=b@b commit -qm t && git status --porcelain")
  echo "$L git $(python3 -c "print(f'{1 / $s:.3f}')") 1/s"
  rm -rf "$D"

  # Warm re-read: 4 x 256 MiB written, read once (warms every cache), then timed.
  mkdir -p "$2/data.$$"
  for i in 1 2 3 4; do head -c $((256 << 20)) /dev/urandom >"$2/data.$$/d$i"; done
  for i in 1 2 3 4; do cat "$2/data.$$/d$i" >/dev/null & done; wait
  s=$(secs sh -c "for i in 1 2 3 4; do cat '$2/data.$$/d'\$i >/dev/null & done; wait")
  echo "$L warm_reread $(rate 1073.741824 "$s") MB/s"
  rm -rf "$2/data.$$"

  local iops
  iops=$(fio --output-format=terse --terse-version=3 --name=rw --filename="$2/rw.$$" --size=64m \
    --bs=4k --rw=randwrite --fsync=1 --runtime=15 --time_based --refill_buffers --ioengine=psync \
    | awk -F';' '{print $49}')
  rm -f "$2/rw.$$"
  echo "$L randwrite $iops IOPS"

  python3 - "$2/db.$$" "$ROWS" "$L" <<'PY'
import os, sqlite3, sys, time
path, rows, label = sys.argv[1], int(sys.argv[2]), sys.argv[3]
db = sqlite3.connect(path, isolation_level=None)
db.execute("CREATE TABLE t(i INTEGER, v BLOB)")
t0 = time.time()
for i in range(rows):
    db.execute("BEGIN")
    db.execute("INSERT INTO t VALUES(?, ?)", (i, os.urandom(200)))
    db.execute("COMMIT")
print(f"{label} sqlite {rows / (time.time() - t0):.1f} rows/s")
PY
  rm -f "$2/db.$$"*
}

# TOOLS_TESSERA_ONLY=1: Tessera's lines only (moosefs.txt of an earlier run stays).
# TOOLS_MOOSEFS_ONLY=1: MooseFS's lines only (tessera.txt stays).
if [ -n "${TOOLS_TESSERA_ONLY:-}" ]; then
  start_cluster "$W/cluster" --mount "$W/mnt"
  for _ in $(seq 1 100); do grep -qs " $W/mnt " /proc/mounts && break; sleep 0.1; done
  run tessera "$W/mnt" | tee "$W/tessera.txt"
  stop_cluster
  rm -rf "$W/cluster"
elif [ -n "${TOOLS_MOOSEFS_ONLY:-}" ]; then
  bash "$REPO/../shared/bench/moosefs-up.sh" "$W/mfs" >&2
  run moosefs "$W/mfs" | tee "$W/moosefs.txt" || true
  bash "$REPO/../shared/bench/moosefs-down.sh" "$W/mfs" >&2 || true
else
  tessera_then_moosefs "$W"
fi

echo "# metric          tessera    moosefs   ratio"
paste "$W/tessera.txt" "$W/moosefs.txt" | awk '{printf "%-14s %10s %10s %7.2f  %s\n", $2, $3, $7, ($7 > 0 ? $3 / $7 : 0), $4}'
