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
exec cargo run --release --quiet -p scimlink -- serve "$@"
