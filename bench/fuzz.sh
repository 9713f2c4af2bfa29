#!/usr/bin/env bash
# bench/fuzz.sh [CASES]
# Every fuzz proptest, run long: TESSERA_FUZZ_CASES=CASES (default
# 1,000,000; each target scales it to its own cost) instead of CI's 3,000.
# Prints each target's result and the CPU time it took (for the "CPU-hours
# ran clean" figure). Targets: the masters' Raft wire, log entry and state
# value decoders; the state machine under hostile commands; both log
# journals' replay; the CLI's path parsing; protobuf timestamps.
set -euo pipefail
cd "$(dirname "$0")/.."
CASES=${1:-1000000}
export TESSERA_FUZZ_CASES=$CASES
run() { # NAME PACKAGE FILTER
  cargo test -q -p "$2" --release --lib --no-run >/dev/null 2>&1 || cargo test -p "$2" --release --lib --no-run
  /usr/bin/time -f "$1: %U s user, %S s sys, %e s wall" \
    cargo test -q -p "$2" --release --lib "$3" 2>&1 | grep -E "test result|s user|panicked|minimal failing" || true
}
run "master decoders" tessera-master decoder_fuzz
run "master commands" tessera-master hostile_ops
run "master log journal replay" tessera-master log_journal::tests::fuzz
run "chunkserver journal replay" tessera-chunkserver journal::tests::fuzz
run "CLI paths" tessera-client path::tests::fuzz
run "timestamps" tessera-proto time::
