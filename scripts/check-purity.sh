#!/usr/bin/env bash
# The protocol crates must stay pure (no tokio, no sockets): fail if any of them pulls in an async runtime.
set -euo pipefail
cd "$(dirname "$0")/.."
pure=(bencode metainfo tracker-proto)
args=()
for c in "${pure[@]}"; do args+=(-p "$c"); done
bad=$(cargo tree "${args[@]}" -e normal --prefix none 2>/dev/null | grep -E '^(tokio|mio|async-std|smol) ' | sort -u || true)
if [ -n "$bad" ]; then
  echo "purity: pure crates (${pure[*]}) depend on: $bad" >&2
  exit 1
fi
echo "purity: ${pure[*]} have no runtime dependency"
