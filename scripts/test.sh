#!/usr/bin/env bash
# Runs the whole test suite: formatting, lints, the components, every test.
# Works on a fresh machine with a rustup toolchain: it installs what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null && [[ -f "$HOME/.cargo/env" ]]; then
  # shellcheck disable=SC1091
  source "$HOME/.cargo/env"
fi
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy

echo "==> the test peers (scim2-server, scim2-tester, schemathesis)"
export SCIMLINK_PYTHON_ENV="${SCIMLINK_PYTHON_ENV:-/var/tmp/scimlink-py}"
if [[ ! -x "$SCIMLINK_PYTHON_ENV/bin/python" ]]; then
  python3 -m venv "$SCIMLINK_PYTHON_ENV"
fi
"$SCIMLINK_PYTHON_ENV/bin/python" -m pip install --quiet --disable-pip-version-check \
  -r tests/peers/requirements.txt

echo "==> building the connector components"
./scripts/build-plugins.sh --fixtures

echo "==> cargo fmt --check"
cargo fmt --all --check

echo "==> cargo clippy"
cargo clippy --release --workspace --all-targets --quiet -- -D warnings

echo "==> cargo test"
cargo test --release --workspace
