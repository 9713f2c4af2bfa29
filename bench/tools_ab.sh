#!/usr/bin/env bash
# bench/tools_ab.sh A_BIN B_BIN [ROUNDS] [WORKDIR]
# Same-run A/B of two builds on the metadata-heavy tool lines of
# tools_bench.sh: tar x of the source tree into a fresh mount, then cp -a
# of it (from local disk) into the same mount, each on a fresh cluster;
# rounds alternate A, B, A, B. A_BIN and B_BIN are directories holding
# tessera, tessera-master, tessera-chunkserver and tessera-mount (copy
# them out of target/release: a build in between replaces them).
# The tree is tools_bench.sh's (run it once, or set TOOLS_TREE).
set -euo pipefail
A=$1; B=$2; ROUNDS=${3:-2}; W=${4:-/tmp/tessera-tools-ab}
TREE=${TOOLS_TREE:-/tmp/tessera-tools/tree.tar}
[ -f "$TREE" ] || { echo "no $TREE: run bench/tools_bench.sh once (it packs the tree)" >&2; exit 1; }
FILES=$(tar -tf "$TREE" | grep -vc '/$')
rm -rf "$W"; mkdir -p "$W/src"; tar -C "$W/src" -xf "$TREE"
secs() { local t0 t1; t0=$(date +%s.%N); "$@" >/dev/null; t1=$(date +%s.%N); python3 -c "print($t1 - $t0)"; }
rate() { python3 -c "print(f'{$1 / $2:.1f}')"; }
for r in $(seq 1 "$ROUNDS"); do
  for side in A B; do
    [ "$side" = A ] && bin=$A || bin=$B
    (
      export BENCH_BIN=$bin
      source "$(dirname "$0")/lib.sh"
      start_cluster "$W/cluster" --mount "$W/mnt"
      for _ in $(seq 1 100); do grep -qs " $W/mnt " /proc/mounts && break; sleep 0.1; done
      mkdir "$W/mnt/t" "$W/mnt/c"
      s=$(secs tar -C "$W/mnt/t" -xf "$TREE"); echo "round $r $side tar_x $(rate "$FILES" "$s") files/s"
      s=$(secs cp -a "$W/src/." "$W/mnt/c/"); echo "round $r $side cp_a_in $(rate "$FILES" "$s") files/s"
      stop_cluster
    )
  done
done
