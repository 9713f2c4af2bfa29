#!/usr/bin/env bash
# Third-party conformance programs the FUSE tests run against the mount:
#   pjdfstest  POSIX file-system test suite (Rust port of pjd's suite)
#   fsx        the file-system exerciser (random I/O checked against a model)
# Installed with cargo, pinned, under <target>/tools (kept between runs).
# And from Debian: chromium (headless) for the web console's browser test.
set -euo pipefail
if ! command -v chromium >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "installing: chromium" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium fonts-dejavu-core >/dev/null
fi
cd "$(dirname "$0")/.."
root="${CARGO_TARGET_DIR:-target}/tools"
for spec in pjdfstest@0.2.2 fsx@0.3.2; do
  name=${spec%@*}
  version=${spec#*@}
  # Installed at this very version (cargo records it): nothing to do, and
  # no registry round trip. Another version is replaced.
  grep -qs "\"$name $version " "$root/.crates.toml" && [ -x "$root/bin/$name" ] && continue
  echo "installing $spec into $root" >&2
  # --force: replace a binary cargo did not record (copied in by hand).
  cargo install --quiet --locked --force --root "$root" "$spec"
done
