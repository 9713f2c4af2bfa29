#!/usr/bin/env bash
# Builds Tessera and starts a local cluster: 3 masters (127.0.0.1:7400-7402)
# and 3 chunkservers (127.0.0.1:7410-7412), data under $1 (default
# /tmp/tessera). Runs in the foreground until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
cargo build --release --bins
exec ./target/release/tessera up --dir "${1:-/tmp/tessera}" "${@:2}"
