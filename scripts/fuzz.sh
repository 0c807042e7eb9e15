#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for N seconds each (default 30), after seeding fuzz/corpus from the
# metainfo fixtures and hostile corpus. Stops at the first target that finds a crash (libFuzzer writes the
# input to fuzz/artifacts/<target>/); prints each target's closing figures.
#
# Usage: bash scripts/fuzz.sh [SECONDS] [TARGET...]
# Needs cargo-fuzz (installed here with `cargo install cargo-fuzz` when missing) and a C++ compiler.
# Only a stable toolchain is assumed: RUSTC_BOOTSTRAP=1 lets it take the -Z flags cargo-fuzz passes.
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${1:-30}"
shift || true
case "$secs" in
  '' | *[!0-9]*) echo "fuzz.sh: SECONDS must be a whole number, got '$secs'" >&2; exit 2 ;;
esac

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz.sh: installing cargo-fuzz" >&2
  cargo install --locked cargo-fuzz
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz list)
fi

bash fuzz/seed_corpus.sh >/dev/null
export RUSTC_BOOTSTRAP=1
for t in "${targets[@]}"; do
  echo "== $t (${secs}s)"
  log="$(mktemp)"
  status=0
  (cd fuzz && cargo fuzz run "$t" -- -max_total_time="$secs") >"$log" 2>&1 || status=$?
  grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)' "$log" || true
  if [ "$status" -ne 0 ]; then
    tail -n 60 "$log"
    rm -f "$log"
    echo "fuzz.sh: $t FAILED (exit $status); the crashing input is under fuzz/artifacts/$t/" >&2
    exit 1
  fi
  rm -f "$log"
done
echo "fuzz.sh: ${#targets[@]} targets, ${secs}s each, no crash"
