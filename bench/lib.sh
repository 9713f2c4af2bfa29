# Shared helpers for the benchmarks: a release build and a local cluster on
# ports away from the defaults, stopped (by PID) on exit.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# BENCH_PROFILE=debug measures the dev build (workspace opt-level 1,
# dependencies opt-level 2) when a release build is not at hand.
PROFILE=${BENCH_PROFILE:-release}
# BENCH_BIN=DIR measures binaries built elsewhere (an A/B against an older
# commit: build it in a worktree, point BENCH_BIN at its target/release).
BIN=${BENCH_BIN:-"$REPO/target/$PROFILE"}
BASE_PORT=${BENCH_BASE_PORT:-17400}
export TESSERA_MASTERS="127.0.0.1:$BASE_PORT,127.0.0.1:$((BASE_PORT + 1)),127.0.0.1:$((BASE_PORT + 2))"

build() {
  "$REPO/scripts/install-deps.sh"
  if [ -n "${BENCH_BIN:-}" ]; then return 0; fi
  if [ "$PROFILE" = release ]; then
    (cd "$REPO" && cargo build --release --bins >&2)
  else
    (cd "$REPO" && cargo build --bins >&2)
  fi
}

# start_cluster DIR [--mount MNT]: starts `tessera up` in the background.
start_cluster() {
  local dir=$1; shift
  rm -rf "$dir"; mkdir -p "$dir"
  "$BIN/tessera" up --dir "$dir" --base-port "$BASE_PORT" "$@" >"$dir.up.log" 2>&1 &
  UP_PID=$!
  # The CLI's identity: the admin certificate `up` makes (or plaintext).
  if [[ " $* " == *" --insecure "* ]]; then
    unset TESSERA_TLS_DIR; export TESSERA_INSECURE=1
  else
    unset TESSERA_INSECURE; export TESSERA_TLS_DIR="$dir/tls/admin"
  fi
  trap stop_cluster EXIT
  # 60 s: a first start makes its certificates and mounts; on two busy
  # cores right after the previous cluster stopped, 30 s was once too few.
  for _ in $(seq 1 300); do
    if "$BIN/tessera" --timeout 2 cluster status --json 2>/dev/null \
      | python3 -c 'import json,sys; s=json.load(sys.stdin); sys.exit(0 if any(m["role"]=="Leader" for m in s["masters"]) and sum(c["alive"] for c in s["chunkservers"])>=3 else 1)'; then
      return 0
    fi
    sleep 0.2
  done
  echo "cluster did not come up; see $dir.up.log:" >&2
  tail -5 "$dir.up.log" >&2 || true
  return 1
}

stop_cluster() {
  if [ -n "${UP_PID:-}" ] && kill -0 "$UP_PID" 2>/dev/null; then
    kill -TERM "$UP_PID"
    wait "$UP_PID" 2>/dev/null || true
  fi
  UP_PID=
}

drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true; }

# secs CMD...: runs CMD, prints elapsed seconds on stdout.
secs() {
  local t0 t1
  t0=$(date +%s.%N); "$@" >/dev/null; t1=$(date +%s.%N)
  python3 -c "print(f'{$t1 - $t0:.3f}')"
}

# Fresh random files that never repeat (dedup must not flatter the figures).
make_files() { # DIR COUNT SIZE
  python3 - "$@" <<'PY'
import os, sys
d, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.makedirs(d, exist_ok=True)
for i in range(n):
    with open(os.path.join(d, "f%05d" % i), "wb") as f:
        f.write(os.urandom(size))
PY
}

# tessera_then_moosefs WORKDIR: runs the caller's `run LABEL DIR` on a Tessera
# mount, then on MooseFS (../shared/bench/moosefs-up.sh) in the same run;
# their lines go to WORKDIR/tessera.txt and WORKDIR/moosefs.txt.
tessera_then_moosefs() {
  local w=$1
  start_cluster "$w/cluster" --mount "$w/mnt"
  for _ in $(seq 1 100); do grep -qs " $w/mnt " /proc/mounts && break; sleep 0.1; done
  run tessera "$w/mnt" | tee "$w/tessera.txt"
  stop_cluster
  # Its data would crowd MooseFS's disk (both live on this machine).
  rm -rf "$w/cluster"
  bash "$REPO/../shared/bench/moosefs-up.sh" "$w/mfs" >&2
  run moosefs "$w/mfs" | tee "$w/moosefs.txt" || true
  bash "$REPO/../shared/bench/moosefs-down.sh" "$w/mfs" >&2 || true
}

# ab_summary FILE A B: for lines "round R MODE METRIC VALUE UNIT" in FILE,
# each metric's mean under modes A and B and the ratio A/B.
ab_summary() {
  python3 - "$@" <<'PY'
import sys, collections
path, a, b = sys.argv[1:4]
v = collections.defaultdict(list)
for line in open(path):
    p = line.split()
    v[(p[3], p[2])].append(float(p[4]))
for metric in sorted({m for m, _ in v}):
    x, y = v[(metric, a)], v[(metric, b)]
    if x and y:
        mx, my = sum(x) / len(x), sum(y) / len(y)
        print(f"{metric}: {a} {mx:.1f}, {b} {my:.1f}, {a}/{b} {mx / my:.3f}")
PY
}
