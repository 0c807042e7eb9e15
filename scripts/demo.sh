#!/usr/bin/env bash
# The main job: build bitswarm and run `bitswarm demo`, a whole swarm on loopback in one process (an HTTP
# tracker, a seeder whose upload is limited, four peers that start empty), shown filling up live. Extra
# arguments go to `bitswarm demo` (see `bitswarm demo --help`), e.g. `bash scripts/demo.sh --size 1G --peers 8`.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null 2>&1 || { echo "demo: cargo is needed (https://rustup.rs)" >&2; exit 1; }
cargo build --release -q -p bitswarm
exec "$PWD/target/release/bitswarm" demo "$@"
