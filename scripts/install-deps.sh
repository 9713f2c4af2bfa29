#!/usr/bin/env bash
# System packages Tessera needs on a fresh Debian machine:
#   libclang-dev  bindgen for the RocksDB bindings (rocksdb is built from source)
#   fuse3         fusermount3 for FUSE mounts
#   rsync, git, make  used by the FUSE integration tests (tools run inside the mount)
#   iproute2      `ip netns` for the network-partition tests
#   sqlite3, util-linux  SQLite writers on two mounts; fincore (page-cache checks); nsenter (chaos lab)
# Installs only what is missing; needs root (or sudo) the first time.
set -euo pipefail
need=()
for p in libclang-dev fuse3 rsync git make iproute2 sqlite3 util-linux; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "installing: ${need[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
