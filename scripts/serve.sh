#!/usr/bin/env bash
# Builds the bundled connectors and runs the host on them. Arguments are
# passed to `scimlink serve` (see `scimlink serve --help`).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null && [[ -f "$HOME/.cargo/env" ]]; then
  # shellcheck disable=SC1091
  source "$HOME/.cargo/env"
fi
./scripts/build-plugins.sh
# The whole workspace's binaries, so that dependencies are built with the
# same features as the test suite's and a machine that ran the tests does
# not compile them again.
cargo build --release --quiet --workspace --bins
exec "${CARGO_TARGET_DIR:-target}/release/scimlink" serve "$@"
