#!/usr/bin/env bash
# bench/cli_bench.sh [WORKDIR]
# tessera put/get of one 1 GiB file and of 2,000 x 256 KiB files on a local
# cluster (3 masters, 3 chunkservers, 3 fsynced replicas), next to cp of the
# same data between local directories in the same run; then the CLI's peak
# RSS while putting a 4 GiB file. Prints "METRIC VALUE UNIT" lines.
source "$(dirname "$0")/lib.sh"
W=${1:-/tmp/tessera-bench}
build
rm -rf "$W"; mkdir -p "$W"
start_cluster "$W/cluster"

echo "generating data" >&2
head -c 1G /dev/urandom >"$W/big"
make_files "$W/small" 2000 262144
GIB=1073741824; SMALL_BYTES=$((2000 * 262144))

mbps() { python3 -c "print(f'{$1 / $2 / 1e6:.1f}')"; }
fps() { python3 -c "print(f'{$1 / $2:.0f}')"; }

drop_caches; t=$(secs cp "$W/big" "$W/big.cp"); echo "cp_1g_local $(mbps $GIB "$t") MB/s"
drop_caches; t=$(secs cp -r "$W/small" "$W/small.cp"); echo "cp_2000x256k_local $(fps 2000 "$t") files/s $(mbps $SMALL_BYTES "$t") MB/s"
rm -rf "$W/big.cp" "$W/small.cp"

drop_caches; t=$(secs "$BIN/tessera" put "$W/big" /big); echo "put_1g $(mbps $GIB "$t") MB/s"
drop_caches; t=$(secs "$BIN/tessera" get /big "$W/big.out"); echo "get_1g $(mbps $GIB "$t") MB/s"
cmp "$W/big" "$W/big.out" || { echo "get_1g returned different bytes" >&2; exit 1; }
drop_caches; t=$(secs "$BIN/tessera" put "$W/small" /small); echo "put_2000x256k $(fps 2000 "$t") files/s $(mbps $SMALL_BYTES "$t") MB/s"
drop_caches; t=$(secs "$BIN/tessera" get /small "$W/small.out"); echo "get_2000x256k $(fps 2000 "$t") files/s $(mbps $SMALL_BYTES "$t") MB/s"
diff -r "$W/small" "$W/small.out" >/dev/null || { echo "get of the small files differs" >&2; exit 1; }
rm -rf "$W/big.out" "$W/small.out"

echo "peak RSS of put of 4 GiB" >&2
head -c 4G /dev/urandom >"$W/huge"
python3 - "$BIN/tessera" "$W/huge" <<'PY'
import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[1], [sys.argv[1], "put", sys.argv[2], "/huge"])
_, status, ru = os.wait4(pid, 0)
if status != 0:
    raise SystemExit("put of 4 GiB failed")
print(f"put_4g_peak_rss {ru.ru_maxrss / 1024:.0f} MiB")
PY
rm -f "$W/huge" "$W/big"
stop_cluster
# The cluster holds 3 copies of 5 GiB: leave the logs, not the data.
rm -rf "$W/small" "$W/cluster"/master-* "$W/cluster"/chunkserver-*
