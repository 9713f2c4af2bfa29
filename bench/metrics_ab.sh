#!/usr/bin/env bash
# bench/metrics_ab.sh [ROUNDS] [WORKDIR]
# What Prometheus metrics cost on the hot path: the shared fsbench on a
# fresh `tessera up --mount` cluster with metrics served (every server and
# the mount) and with `--no-metrics`, alternating on/off for ROUNDS rounds
# (default 2) in one run. Prints fsbench's seq_write_1M and
# small_create_4k lines per round and the mean ratio on/off of each.
# The random-read phase is kept short (it is not what metrics touch).
source "$(dirname "$0")/lib.sh"
ROUNDS=${1:-2}
W=${2:-/tmp/tessera-metrics-ab}
FSBENCH=${FSBENCH:-"$REPO/../shared/bench/fsbench.sh"}
build
mkdir -p "$W"
out="$W/results.txt"
: >"$out"
for r in $(seq 1 "$ROUNDS"); do
  for mode in on off; do
    flags=()
    [ "$mode" = off ] && flags=(--no-metrics)
    start_cluster "$W/cluster" --mount "$W/mnt" "${flags[@]}"
    for _ in $(seq 1 100); do grep -qs " $W/mnt " /proc/mounts && break; sleep 0.1; done
    FSBENCH_RAND_RUNTIME=3 FSBENCH_RAND_SIZE=64m "$FSBENCH" "$W/mnt" "$mode" 2>/dev/null \
      | grep -E " (seq_write_1M|small_create_4k) " | sed "s/^/round $r /" | tee -a "$out"
    stop_cluster
  done
done
ab_summary "$out" on off
