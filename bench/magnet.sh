#!/usr/bin/env bash
# Magnet link to first byte (benchmark, not a test): how long a leecher given only a magnet link (xt + the
# tracker's tr) takes to fetch the metadata (BEP 9) and to verify its first piece, bitswarm against
# libtorrent, from the same libtorrent seeder, on 127.0.0.1.
#
#   bash bench/magnet.sh                  # 64 MiB payload, 256 KiB pieces, 7 rounds per leecher
#   ROUNDS=3 SIZE_MIB=16 bash bench/magnet.sh
#
# Each round: a fresh empty folder and resume folder, the leecher started with the magnet link; it reports
# `metadata` and `first_piece` with seconds since its own start (bitswarm `get --json`, libtorrent through
# bench/peers/lt_bench.py `get`: both count from inside the program, so Python's start-up is not charged to
# libtorrent); the leecher then finishes the download (checked by SHA-256) and exits. The seeder is
# libtorrent (lt_bench.py seed), the tracker `bitswarm tracker` (HTTP); no DHT, LSD, PEX or uTP anywhere.
# Prints the median and best of each, and bitswarm's ratio to libtorrent. Environment: ROUNDS (7),
# SIZE_MIB (64), BENCH_DIR (/tmp/bitswarm-magnet-bench), BENCH_PORT (17300), BENCH_BIN (a bitswarm binary).
# Needs: python3-libtorrent (bash bench/install-bench-tools.sh).
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-7}
SIZE_MIB=${SIZE_MIB:-64}
DIR=${BENCH_DIR:-/tmp/bitswarm-magnet-bench}
PORT=${BENCH_PORT:-17300}
PY=/usr/bin/python3
LT=bench/peers/lt_bench.py
BIN=${BENCH_BIN:-}
if [ -z "$BIN" ]; then
  echo "magnet-bench: building target/release/bitswarm" >&2
  cargo build --release -q -p bitswarm
  BIN=target/release/bitswarm
fi
$PY -c 'import libtorrent' 2>/dev/null || { echo "magnet-bench: python3-libtorrent missing (bash bench/install-bench-tools.sh)" >&2; exit 1; }
command -v jq >/dev/null || { echo "magnet-bench: jq missing (apt-get install jq)" >&2; exit 1; }

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

rm -rf "$DIR/runs" "$DIR/tracker" "$DIR/t.torrent"
mkdir -p "$DIR/seed" "$DIR/runs" "$DIR/tracker"
PAYLOAD="$DIR/seed/magnet-payload-${SIZE_MIB}MiB.bin"
if [ ! -s "$PAYLOAD" ]; then
  head -c $((SIZE_MIB << 20)) /dev/urandom > "$PAYLOAD"
fi
WANT=$(sha256sum "$PAYLOAD" | cut -d' ' -f1)
TRACKER="http://127.0.0.1:$PORT/announce"
"$BIN" create "$PAYLOAD" -o "$DIR/t.torrent" --tracker "$TRACKER" --piece-length 262144 --no-date >/dev/null
HASH=$("$BIN" inspect "$DIR/t.torrent" --json | jq -r .info_hash_v1)
TR=$(jq -rn --arg t "$TRACKER" '$t|@uri')
MAGNET="magnet:?xt=urn:btih:$HASH&tr=$TR"

"$BIN" tracker --http "127.0.0.1:$PORT" --no-udp > "$DIR/tracker/log" 2>&1 &
PIDS+=($!)
$PY "$LT" seed --listen "127.0.0.1:$((PORT + 1))" "$DIR/seed" "$DIR/t.torrent" --timeout 3600 > "$DIR/seeder.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 300); do grep -q '"ready"' "$DIR/seeder.log" 2>/dev/null && break; sleep 0.1; done
grep -q '"ready"' "$DIR/seeder.log" || { echo "magnet-bench: libtorrent seeder not ready" >&2; cat "$DIR/seeder.log" >&2; exit 1; }

# one_round KIND N: prints "metadata_seconds first_piece_seconds"
one_round() {
  local kind=$1 n=$2 rd="$DIR/runs/$1-$2" out
  mkdir -p "$rd/dl"
  if [ "$kind" = bitswarm ]; then
    timeout 120 "$BIN" get "$MAGNET" -o "$rd/dl" --json --no-dht --listen 127.0.0.1:0 --resume-dir "$rd/resume" \
      > "$rd/out.jsonl" 2> "$rd/err.log" || { echo "magnet-bench: bitswarm round $n failed" >&2; tail "$rd/err.log" >&2; return 1; }
  else
    timeout 120 $PY "$LT" get --listen 127.0.0.1:0 --timeout 110 "$MAGNET" "$rd/dl" \
      > "$rd/out.jsonl" 2> "$rd/err.log" || { echo "magnet-bench: libtorrent round $n failed" >&2; tail "$rd/err.log" >&2; return 1; }
  fi
  out=$(find "$rd/dl" -type f -name 'magnet-payload-*' | head -1)
  [ "$(sha256sum "$out" | cut -d' ' -f1)" = "$WANT" ] || { echo "magnet-bench: $kind round $n: wrong bytes" >&2; return 1; }
  local meta first
  meta=$(jq -r 'select(.event=="metadata") | .seconds' "$rd/out.jsonl" | head -1)
  first=$(jq -r 'select(.event=="first_piece") | .seconds' "$rd/out.jsonl" | head -1)
  echo "${meta:-nan} ${first:-nan}"
}

declare -A META FIRST
for kind in bitswarm libtorrent; do
  META[$kind]=""; FIRST[$kind]=""
done
for n in $(seq 1 "$ROUNDS"); do
  for kind in bitswarm libtorrent; do
    read -r m f < <(one_round "$kind" "$n")
    echo "magnet-bench: $kind round $n: metadata at ${m}s, first piece at ${f}s" >&2
    META[$kind]+="$m "; FIRST[$kind]+="$f "
  done
done

stats() { # "values..." -> "median best"
  tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.4f %.4f\n", m, a[1]}'
}
read -r bm_med bm_best < <(stats "${META[bitswarm]}")
read -r bf_med bf_best < <(stats "${FIRST[bitswarm]}")
read -r lm_med lm_best < <(stats "${META[libtorrent]}")
read -r lf_med lf_best < <(stats "${FIRST[libtorrent]}")
echo
echo "## Magnet link to first byte: ${SIZE_MIB} MiB, 256 KiB pieces, from a libtorrent seed through a tracker, $ROUNDS rounds"
echo
echo "| leecher | metadata median (s) | metadata best (s) | first piece median (s) | first piece best (s) |"
echo "|---|---:|---:|---:|---:|"
echo "| bitswarm | $bm_med | $bm_best | $bf_med | $bf_best |"
echo "| libtorrent $($PY -c 'import libtorrent; print(libtorrent.__version__)') | $lm_med | $lm_best | $lf_med | $lf_best |"
echo
awk -v b="$bf_med" -v l="$lf_med" 'BEGIN { if (b > 0) printf "- bitswarm reaches its first verified piece in %.2fx libtorrent'"'"'s time (median; %.1fx faster)\n", b / l, l / b }'
