#!/usr/bin/env bash
# bench/meta_bench.sh [WORKDIR]
# Metadata operations per second (`tessera bench meta`: create, stat,
# readdir, rename, delete of 10,000 empty files in one directory, 32 in
# flight) with 1 and with 3 masters; then, with 3 masters, the masters' RSS
# after creating 1,000,000 files (100 directories of 10,000).
# META_FILES / META_BIG_FILES / META_CLIENTS override the sizes.
source "$(dirname "$0")/lib.sh"
W=${1:-/tmp/tessera-meta-bench}
FILES=${META_FILES:-10000}
BIG=${META_BIG_FILES:-1000000}
CLIENTS=${META_CLIENTS:-32}
build
rm -rf "$W"; mkdir -p "$W"

rss() { # data dir of a master -> "VmRSS VmHWM" in MiB
  local pid
  pid=$(pgrep -f -- "--data-dir $1( |$)" | head -1)
  awk '/VmRSS|VmHWM/ {sub(":", "", $1); printf "%s=%d MiB ", $1, $2/1024}' "/proc/$pid/status"
}

for m in 1 3; do
  start_cluster "$W/c$m" --masters "$m" --chunkservers 3
  masters=$(python3 -c "print(','.join(f'127.0.0.1:{$BASE_PORT + i}' for i in range($m)))")
  echo "== $m master(s): $FILES files, $CLIENTS in flight"
  TESSERA_MASTERS=$masters "$BIN/tessera" bench meta --files "$FILES" --clients "$CLIENTS"
  if [ "$m" = 3 ]; then
    echo "== master memory: after $FILES files (created and deleted): $(rss "$W/c3/master-1")"
    # The namespace grows to BIG files in two steps; memory is read after each
    # (it should level off at the RocksDB cache, not grow with the files).
    first=$((BIG / 10))
    TESSERA_MASTERS=$masters "$BIN/tessera" --timeout 120 bench meta --dir /big1 --files "$first" --dirs 10 \
      --clients "$CLIENTS" --phases create
    for i in 1 2 3; do echo "== master-$i memory after $first files: $(rss "$W/c3/master-$i")"; done
    TESSERA_MASTERS=$masters "$BIN/tessera" --timeout 120 bench meta --dir /big2 --files "$((BIG - first))" \
      --dirs 90 --clients "$CLIENTS" --phases create
    for i in 1 2 3; do echo "== master-$i memory after $BIG files: $(rss "$W/c3/master-$i")"; done
    du -sh "$W/c3/master-1" | sed 's/^/== master-1 data dir: /'
  fi
  stop_cluster
done
