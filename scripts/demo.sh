#!/usr/bin/env bash
# The main job until the peer engine lands: build bitswarm, generate a payload (a folder with nested dirs, an
# empty file and odd sizes), make v1, v2 and hybrid torrents of it and inspect them.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p bitswarm
bin="$PWD/target/release/bitswarm"
work=$(mktemp -d /tmp/bitswarm-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/Movie-xyz/extras/subs"
head -c $((48 * 1024 * 1024 + 12345)) /dev/urandom > "$work/Movie-xyz/movie.mkv"
head -c 70001 /dev/urandom > "$work/Movie-xyz/extras/trailer.mp4"
printf 'subtitle\n' > "$work/Movie-xyz/extras/subs/en.srt"
: > "$work/Movie-xyz/extras/empty.nfo"
for v in v1 v2 hybrid; do
  echo "== bitswarm create --$v"
  "$bin" create "$work/Movie-xyz" -o "$work/movie-$v.torrent" --"$v" --tracker http://127.0.0.1:6969/announce
done
echo "== bitswarm inspect (hybrid)"
"$bin" inspect "$work/movie-hybrid.torrent"
echo "== bitswarm inspect --json (v1), piped through python for a summary"
"$bin" inspect "$work/movie-v1.torrent" --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["name"], d["info_hash_v1"], d["total_size"], "bytes in", d["piece_count"], "pieces")'
