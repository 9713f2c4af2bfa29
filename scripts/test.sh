#!/usr/bin/env bash
# Runs every test: unit tests beside the code, then the integration tests in
# tests/ that start real masters and chunkservers as processes on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/install-test-tools.sh
# The integration tests exec the workspace binaries; build them first.
cargo build --workspace --bins
cargo test --workspace --exclude tessera-tests
# One cluster at a time: each test starts 4-6 processes.
cargo test -p tessera-tests -- --test-threads=1
