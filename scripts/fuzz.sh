#!/usr/bin/env bash
# Runs every fuzz target (fuzz/fuzz_targets) for a bounded time and fails if any finds a
# crash (a panic, a broken invariant, a sanitizer report, a timeout or an OOM).
#
#   scripts/fuzz.sh [seconds-per-target] [target...]     # default 20 s, every target
#
# Seeds come from fuzz/corpus/<target> (committed, read-only here); inputs libFuzzer finds
# go to fuzz/corpus-work/<target> (ignored by git), so later runs start from them.
# Crash inputs land in fuzz/artifacts/<target>/; see docs/fuzzing.md to reproduce one.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"

secs="${1:-20}"
shift || true
export PATH="$HOME/.cargo/bin:$PATH"

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz from crates.io"
  cargo install cargo-fuzz --locked
fi

# cargo-fuzz needs unstable rustc flags (-Zsanitizer, coverage passes): nightly if there is
# one, else the stable compiler told to accept them.
toolchain=()
if rustup run nightly rustc --version >/dev/null 2>&1; then
  toolchain=(+nightly)
else
  echo "fuzz: no nightly toolchain; using stable with RUSTC_BOOTSTRAP=1"
  export RUSTC_BOOTSTRAP=1
fi

if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cd fuzz && cargo "${toolchain[@]}" fuzz list)
fi

# One build for all targets, so each run below spends its time fuzzing.
(cd fuzz && cargo "${toolchain[@]}" fuzz build)

failed=()
summary=()
for t in "${targets[@]}"; do
  work="$root/fuzz/corpus-work/$t"
  mkdir -p "$work"
  log="$(mktemp)"
  echo "fuzz: $t for ${secs}s"
  # -timeout: one input taking over 10 s is a hang worth reporting; -rss_limit_mb keeps a
  # memory blow-up a finding rather than a dead machine.
  if (cd fuzz && cargo "${toolchain[@]}" fuzz run "$t" "$work" "$root/fuzz/corpus/$t" -- \
      -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1) >"$log" 2>&1; then
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    summary+=("$(printf '%-20s %10s execs %8s/s' "$t" "${execs:-?}" "${rate:-?}")")
  else
    # The cause (a panic message or a sanitizer report), then how to reproduce it.
    grep -m1 -A8 -E 'panicked at|ERROR: (AddressSanitizer|libFuzzer)' "$log" || true
    tail -n 20 "$log"
    failed+=("$t")
    summary+=("$(printf '%-20s CRASH (input in fuzz/artifacts/%s/)' "$t" "$t")")
  fi
  rm -f "$log"
done

printf 'fuzz: %s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]}" >&2
  exit 1
fi
