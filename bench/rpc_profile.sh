#!/usr/bin/env bash
# bench/rpc_profile.sh [tar|rsync|cp|sqlite] [WORKDIR]
# Which metadata RPCs a real tool costs: runs one tool into a fresh mount
# (the source tree of tools_bench.sh) with the mount's per-call debug log
# on, then prints per RPC the count, mean latency and total time, and the
# tool's wall time. `sqlite`: 300 inserts, one transaction each (SQLite's
# default rollback journal), into a database in the mount. The log costs some speed; use tools_bench.sh for rates.
source "$(dirname "$0")/lib.sh"
TOOL=${1:-tar}
W=${2:-/tmp/tessera-rpc-profile}
TREE=${TOOLS_TREE:-/tmp/tessera-tools/tree.tar}
build
[ -f "$TREE" ] || { echo "no $TREE: run bench/tools_bench.sh once (it packs the tree)" >&2; exit 1; }
rm -rf "$W"; mkdir -p "$W/src"
tar -C "$W/src" -xf "$TREE"
export RUST_LOG="info,tessera_rpc::meta=debug"
start_cluster "$W/cluster" --mount "$W/mnt"
for _ in $(seq 1 100); do grep -qs " $W/mnt " /proc/mounts && break; sleep 0.1; done
mkdir "$W/mnt/t"
t0=$(date +%s.%N)
case "$TOOL" in
  tar) tar -C "$W/mnt/t" -xf "$TREE" ;;
  rsync) rsync -a "$W/src/" "$W/mnt/t/" ;;
  cp) cp -a "$W/src/." "$W/mnt/t/" ;;
  sqlite) python3 - "$W/mnt/t/db" <<'PY'
import os, sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("CREATE TABLE t(i INTEGER, v BLOB)")
for i in range(300):
    db.execute("BEGIN"); db.execute("INSERT INTO t VALUES(?, ?)", (i, os.urandom(200))); db.execute("COMMIT")
PY
  ;;
  *) echo "unknown tool $TOOL" >&2; exit 2 ;;
esac
t1=$(date +%s.%N)
# Changes the mount acknowledged before their commit, by kind.
sleep 1.2
python3 - "$BASE_PORT" <<'PY' || true
import sys, urllib.request
text = urllib.request.urlopen(f"http://127.0.0.1:{int(sys.argv[1]) + 119}/metrics", timeout=5).read().decode()
for line in text.splitlines():
    if line.startswith("tessera_mount_write_behind_total"):
        print("written behind:", line)
    if line.startswith("tessera_mount_lock_calls_total") or line.startswith("tessera_mount_opens_total"):
        print(line)
PY
stop_cluster
python3 -c "print(f'$TOOL wall {$t1 - $t0:.2f} s')"
sed 's/\x1b\[[0-9;]*m//g' "$W/cluster/logs/mount.log" \
  | grep -o 'meta_rpc{rpc="[a-z_]*".*micros=[0-9]*' \
  | sed 's/meta_rpc{rpc="\([a-z_]*\)".*micros=\([0-9]*\)/\1 \2/' \
  | awk '{n[$1]++; t[$1]+=$2} END {for (k in n) printf "%-16s %7d calls %7.0f us mean %7.2f s total\n", k, n[k], t[k]/n[k], t[k]/1e6}' \
  | sort -k6 -rn
