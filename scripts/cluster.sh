#!/usr/bin/env bash
# Builds Tessera and starts a local cluster: 3 masters (127.0.0.1:7400-7402),
# 3 chunkservers (127.0.0.1:7410-7412), data under $1 (default /tmp/tessera),
# mounted at $2 (default $1/mnt). Runs in the foreground until Ctrl-C, which
# unmounts and stops every process.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
cargo build --release --bins
DIR=${1:-/tmp/tessera}
MNT=${2:-$DIR/mnt}
exec ./target/release/tessera up --dir "$DIR" --mount "$MNT" "${@:3}"
