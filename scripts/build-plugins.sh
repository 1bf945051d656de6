#!/usr/bin/env bash
# Builds the bundled connectors (and, with --fixtures, the test fixtures) as
# WebAssembly components:
#   dist/plugins/NAME.wasm        the bundled connectors `scimlink serve` loads
#   dist/test-plugins/NAME.wasm   hostile and compatibility fixtures for tests
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2 \
  || rustup target add wasm32-wasip2

target_dir=${CARGO_TARGET_DIR:-target}
out=$target_dir/wasm32-wasip2/wasm
build() { cargo build --quiet --profile wasm --target wasm32-wasip2 "$@"; }

bundled=(custom-scim coda cinode scalekit swimlane-turbine)
mkdir -p dist/plugins
build $(printf -- '-p %s ' "${bundled[@]}")
for name in "${bundled[@]}"; do
  # Copy under a temporary name and rename, so a running host never reads
  # half a file.
  cp "$out/${name//-/_}.wasm" "dist/plugins/.$name.wasm.tmp"
  mv "dist/plugins/.$name.wasm.tmp" "dist/plugins/$name.wasm"
done

if [[ "${1:-}" == "--fixtures" ]]; then
  mkdir -p dist/test-plugins
  fixtures=(minimal hostile contract-v0-1 contract-v0-2 missing-export incompatible-major deleting wrong aliasing)
  build $(printf -- '-p fixture-%s ' "${fixtures[@]}")
  for name in "${fixtures[@]}"; do
    cp "$out/fixture_${name//-/_}.wasm" "dist/test-plugins/$name.wasm"
  done
  # One crate, several versions: each build names its version in its output.
  for version in 1.0.0 2.0.0 3.0.0; do
    FIXTURE_VERSION=$version build -p fixture-versioned
    cp "$out/fixture_versioned.wasm" "dist/test-plugins/versioned-$version.wasm"
  done
  FIXTURE_VERSION=4.0.0 FIXTURE_BROKEN=1 build -p fixture-versioned
  cp "$out/fixture_versioned.wasm" "dist/test-plugins/versioned-broken.wasm"
  # The aliasing connector that attacks the host from `describe`, while it
  # is being loaded.
  FIXTURE_ALIAS_DESCRIBE=1 build -p fixture-aliasing
  cp "$out/fixture_aliasing.wasm" "dist/test-plugins/aliasing-describe.wasm"
fi
