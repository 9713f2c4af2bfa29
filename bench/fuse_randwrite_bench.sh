#!/usr/bin/env bash
# bench/fuse_randwrite_bench.sh [WORKDIR]
# Random 4 KiB writes, each followed by fsync (a database's pattern), on a
# Tessera mount and on MooseFS (goal 3, fsync before close) in the same run:
# fio randwrite, bs=4k, fsync=1, on a 64 MiB and a 1 GiB file laid out first,
# fresh random data per block. Prints IOPS per system and the ratio.
source "$(dirname "$0")/lib.sh"
W=${1:-/tmp/tessera-randwrite}
RT=${RANDWRITE_RUNTIME:-15}
build
command -v fio >/dev/null || apt-get install -y -qq fio >/dev/null 2>&1
mkdir -p "$W"

# run LABEL DIR: one line per file size, "LABEL randwrite_fsync_<size> IOPS".
run() {
  for size in 64m 1g; do
    local iops
    iops=$(fio --output-format=terse --terse-version=3 --name=rw --filename="$2/rw.$size" --size="$size" \
      --bs=4k --rw=randwrite --fsync=1 --runtime="$RT" --time_based --refill_buffers --ioengine=psync \
      | awk -F';' '{print $49}')
    rm -f "$2/rw.$size"
    echo "$1 randwrite_fsync_$size $iops IOPS"
  done
}

tessera_then_moosefs "$W"

paste "$W/tessera.txt" "$W/moosefs.txt" | awk '{printf "%-24s %10s %10s %8.2f  IOPS\n", $2, $3, $7, ($7 > 0 ? $3 / $7 : 0)}'
