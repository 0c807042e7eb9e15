#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs the tools the tests need, then lints, purity check, tests.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh

echo "== fmt"; cargo fmt --all -- --check
echo "== clippy"; cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== purity"; bash scripts/check-purity.sh
echo "== fuzz targets build"; cargo check --manifest-path fuzz/Cargo.toml --locked --quiet
echo "== tests"; cargo test --workspace --locked
echo "== all tests passed"
