#!/usr/bin/env bash
# bench/fuzz.sh [CASES]
# The decoder fuzz proptests run long: CASES cases per target (default
# 1,000,000) instead of CI's few thousand. Prints each target's result and
# the CPU time it took (for the "CPU-hours ran clean" figure).
set -euo pipefail
cd "$(dirname "$0")/.."
CASES=${1:-1000000}
export TESSERA_FUZZ_CASES=$CASES
cargo test -p tessera-master --release --no-run >/dev/null 2>&1 || cargo test -p tessera-master --release --no-run
/usr/bin/time -f "master decoders: %U s user, %S s sys, %e s wall" \
  cargo test -q -p tessera-master --release decoder_fuzz 2>&1 | grep -E "test result|decoders:|panicked"
