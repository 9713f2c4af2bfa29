#!/usr/bin/env bash
# bench/raft_log_ab.sh [WORKDIR]
# Same-run A/B of how the masters make Raft appends durable: the segment
# journal (master/src/store/log_journal.rs, the default) against RocksDB's
# own WAL fsynced per append with WAL files recycled
# (`--raft-log-sync rocksdb-wal`). Steady state: `tessera bench meta`
# (10,000 files created, stated, listed, renamed, deleted, 32 in flight) on
# 3 masters, each mode run ROUNDS times, alternating (A B A B ...), so drift
# on the machine hits both. Prints the bench's lines prefixed by the mode.
source "$(dirname "$0")/lib.sh"
W=${1:-/tmp/tessera-raft-log-ab}
FILES=${META_FILES:-10000}
ROUNDS=${ROUNDS:-2}
build
rm -rf "$W"; mkdir -p "$W"
for r in $(seq 1 "$ROUNDS"); do
  for mode in journal rocksdb-wal; do
    TESSERA_RAFT_LOG_SYNC=$mode start_cluster "$W/$mode-$r" --masters 3 --chunkservers 3
    "$BIN/tessera" bench meta --files "$FILES" --clients 32 | sed "s/^/$mode round$r: /"
    stop_cluster
    rm -rf "$W/$mode-$r"
  done
done
