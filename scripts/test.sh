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

echo "==> Chromium and playwright-core for the console's tests"
if ! command -v chromium >/dev/null; then
  # Debian's Chromium: the console is tested in a real browser, never in
  # one a test tool downloads.
  if [[ $(id -u) -ne 0 ]]; then
    echo "Chromium is not installed and this script is not root: install Debian's" >&2
    echo "chromium package" >&2
    exit 1
  fi
  echo "==> installing Debian's chromium package"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null \
    || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; }
fi
if [[ ! -d tests/console/node_modules/playwright-core ]]; then
  (cd tests/console && npm ci --no-audit --no-fund --silent)
fi

echo "==> PostgreSQL for the store's tests"
if [[ -z "${SCIMLINK_TEST_DATABASE_URL:-}" ]]; then
  # A throwaway cluster on a Unix socket, removed when the tests end.
  pg_base=$(mktemp -d /tmp/scimlink-pg.XXXXXX)
  chmod 0755 "$pg_base"
  trap './scripts/postgres.sh stop "$pg_base/cluster" >/dev/null 2>&1 || true; rm -rf "$pg_base"' EXIT
  SCIMLINK_TEST_DATABASE_URL=$(./scripts/postgres.sh start "$pg_base/cluster")
  export SCIMLINK_TEST_DATABASE_URL
fi

echo "==> building the connector components"
./scripts/build-plugins.sh --fixtures

echo "==> cargo fmt --check"
cargo fmt --all --check

echo "==> cargo clippy"
cargo clippy --release --workspace --all-targets --quiet -- -D warnings

echo "==> cargo test"
cargo test --release --workspace
