#!/usr/bin/env bash
# The protocol crates must stay pure (no tokio, no sockets): fail if any of them pulls in an async runtime or
# a networking crate, or if the dependency tree cannot be read at all.
set -euo pipefail
cd "$(dirname "$0")/.."
pure=(bencode metainfo tracker-proto tracker-core wire dht)
args=()
for c in "${pure[@]}"; do args+=(-p "$c"); done
if ! tree=$(cargo tree "${args[@]}" -e normal --prefix none); then
  echo "purity: cargo tree failed for ${pure[*]}" >&2
  exit 1
fi
bad=$(grep -E '^(tokio|mio|async-std|smol|socket2|hyper|reqwest) ' <<<"$tree" | sort -u || true)
if [ -n "$bad" ]; then
  echo "purity: pure crates (${pure[*]}) depend on: $bad" >&2
  exit 1
fi
echo "purity: ${pure[*]} have no runtime or socket dependency"
