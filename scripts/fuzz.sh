#!/usr/bin/env bash
# Runs the fuzz targets in fuzz/ one after another, each for a bounded time,
# and prints what each did:
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# SECONDS per target (default 600); every target by default
# (`cargo fuzz list`). Each target starts from its corpus kept in the
# repository (fuzz/corpus/TARGET, read only) and from what earlier runs
# found (fuzz/target/corpus/TARGET, not committed). A crash is saved under
# fuzz/artifacts/TARGET/ and makes the script exit 1 naming it, after the
# other targets have run.
#
# Environment: FUZZ_TOOLCHAIN (default nightly), FUZZ_SANITIZER (default
# none: the targets run safe Rust, where the failures are panics; `address`
# for AddressSanitizer), FUZZ_TARGET_DIR (default fuzz/target).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

if ! command -v cargo >/dev/null && [[ -f "$HOME/.cargo/env" ]]; then
  # shellcheck disable=SC1091
  source "$HOME/.cargo/env"
fi

per_target=${1:-600}
if ! [[ $per_target =~ ^[0-9]+$ ]] || ((per_target == 0)); then
  echo "usage: scripts/fuzz.sh [SECONDS] [TARGET...]" >&2
  exit 2
fi
shift $(($# > 0 ? 1 : 0))

toolchain=${FUZZ_TOOLCHAIN:-nightly}
sanitizer=${FUZZ_SANITIZER:-none}
target_dir=${FUZZ_TARGET_DIR:-target}

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz" >&2
  nice -n 10 cargo install --locked cargo-fuzz
fi
rustup run "$toolchain" rustc --version >/dev/null 2>&1 \
  || rustup toolchain install "$toolchain" --profile minimal

fuzz() { nice -n 10 cargo "+$toolchain" fuzz "$@"; }

all=$(fuzz list)
targets=("$@")
((${#targets[@]})) || mapfile -t targets <<<"$all"
for target in "${targets[@]}"; do
  if ! grep -qx -- "$target" <<<"$all"; then
    echo "no fuzz target $target; the targets are:" $all >&2
    exit 2
  fi
done

build_flags=(--sanitizer "$sanitizer" --target-dir "$target_dir")
echo "building ${targets[*]} ($toolchain, sanitizer $sanitizer)" >&2
for target in "${targets[@]}"; do
  fuzz build "${build_flags[@]}" "$target"
done

mkdir -p "$target_dir/fuzz-logs"
rows=()
crashes=()
for target in "${targets[@]}"; do
  seeds=corpus/$target
  found=$target_dir/corpus/$target
  log=$target_dir/fuzz-logs/$target.log
  # The log as a reader finds it from the repository's root.
  shown_log=$log
  [[ $log == /* ]] || shown_log=fuzz/$log
  mkdir -p "$seeds" "$found" "artifacts/$target"
  echo "fuzzing $target for ${per_target}s (log: $shown_log)" >&2
  status=0
  # New inputs go to the first folder: the repository's corpus stays as
  # it is.
  fuzz run "${build_flags[@]}" "$target" "$found" "$seeds" -- \
    -max_total_time="$per_target" -timeout=10 -print_final_stats=1 \
    >"$log" 2>&1 || status=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  [[ -n $runs ]] || runs=$(grep -o '^#[0-9]*' "$log" | tail -n 1 | tr -d '#')
  seconds=$(grep -o 'Done [0-9]* runs in [0-9]* second' "$log" | awk '{print $5}' | tail -n 1)
  artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
  if ((status != 0)); then
    [[ -n $artifact ]] || artifact="(no input saved; see $shown_log)"
    crashes+=("$target: ${artifact#./}")
    rows+=("$(printf '%-20s %12s %8s %8s' "$target" "${runs:-?}" "${seconds:--}" 1)")
  else
    rows+=("$(printf '%-20s %12s %8s %8s' "$target" "${runs:-?}" "${seconds:-$per_target}" 0)")
  fi
done

echo
printf '%-20s %12s %8s %8s\n' target runs seconds crashes
printf '%s\n' "${rows[@]}"
if ((${#crashes[@]})); then
  echo
  echo "crashes (replay with: cargo +$toolchain fuzz run -s $sanitizer TARGET FILE, from fuzz/):"
  printf '  %s\n' "${crashes[@]}"
  exit 1
fi
