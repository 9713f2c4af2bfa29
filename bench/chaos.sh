#!/usr/bin/env bash
# bench/chaos.sh [SECONDS]
# The chaos soak of tests/tests/chaos.rs for longer (default 600 s): two
# mounts and the CLI write, rename and append while a nemesis SIGKILLs and
# restarts, or SIGSTOPs and resumes, one random server at a time
# (chunkservers and masters, the leader among them), or cuts a master off
# the network (each master runs in its own network namespace). Needs
# root. Prints the report:
# operations, files, faults by kind, the longest wait per fault kind; fails
# if any acknowledged write is missing or wrong, any operation failed, or
# fsck does not find 3 copies of everything afterwards.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
"$REPO/scripts/install-deps.sh"
cd "$REPO"
cargo build --bins >&2
LOG=${CHAOS_LOG:-/tmp/tessera-chaos.log}
echo "full output in $LOG" >&2
TESSERA_CHAOS_SECS=${1:-600} cargo test -p tessera-tests --test chaos -- --nocapture 2>&1 | tee "$LOG" \
  | grep -E "^chaos |panicked|test result"
