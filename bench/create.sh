#!/usr/bin/env bash
# Creation benchmark (not a test): how fast `bitswarm create` hashes a large file from the page cache,
# against mktorrent, libtorrent (through tests/interop/lt_tool.py) and the machine's SHA-1/SHA-256 bound.
#
#   bash bench/create.sh                      # 4 GiB file under /tmp/bitswarm-bench
#   BENCH_SIZE_MIB=512 bash bench/create.sh   # smaller, quicker
#
# Environment: BENCH_SIZE_MIB (default 4096), BENCH_DIR (default /tmp/bitswarm-bench), BENCH_RUNS (default 3),
# BENCH_TIMEOUT (seconds per run, default 900), BENCH_OPENSSL_SECONDS (default 3), BENCH_BIN (use this
# bitswarm binary instead of building target/release/bitswarm).
# The data file is made once (random bytes) and kept in BENCH_DIR for later runs; delete the dir to reclaim it.
# Prints a markdown table: best wall time of BENCH_RUNS runs per tool, throughput, the percentage of the
# two-core hash bound reached (bound time / tool time) and speed relative to mktorrent.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

SIZE_MIB=${BENCH_SIZE_MIB:-4096}
DIR=${BENCH_DIR:-/tmp/bitswarm-bench}
RUNS=${BENCH_RUNS:-3}
RUN_TIMEOUT=${BENCH_TIMEOUT:-900}
OSSL_SECONDS=${BENCH_OPENSSL_SECONDS:-3}
PY=/usr/bin/python3
LT_TOOL="$ROOT/tests/interop/lt_tool.py"
TRACKER=http://127.0.0.1:1/announce
CORES=2 # the bound is for two cores, as the brief for this machine says; mktorrent gets -t 2

die() { echo "bench: $*" >&2; exit 1; }
note() { echo "bench: $*" >&2; }

[[ "$SIZE_MIB" =~ ^[0-9]+$ ]] && [ "$SIZE_MIB" -gt 0 ] || die "BENCH_SIZE_MIB must be a positive integer"
[[ "$RUNS" =~ ^[0-9]+$ ]] && [ "$RUNS" -gt 0 ] || die "BENCH_RUNS must be a positive integer"
missing=()
command -v mktorrent >/dev/null 2>&1 || missing+=(mktorrent)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v timeout >/dev/null 2>&1 || missing+=(timeout)
"$PY" -c 'import libtorrent' >/dev/null 2>&1 || missing+=("python3-libtorrent (for $PY)")
[ ${#missing[@]} -eq 0 ] || die "missing: ${missing[*]}; run \`bash scripts/install-deps.sh\` first"

have_time=0
if [ -x /usr/bin/time ] && /usr/bin/time -f '%M' -o /dev/null true 2>/dev/null; then
  have_time=1
else
  note "/usr/bin/time (GNU time) not found: the max RSS column is left out (apt-get install time)"
fi

if [ -n "${BENCH_BIN:-}" ]; then
  BIN=$BENCH_BIN
  note "using BENCH_BIN=$BIN (not building)"
else
  note "building target/release/bitswarm"
  cargo build --release -p bitswarm >&2
  BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/bitswarm"
fi
[ -x "$BIN" ] || die "no bitswarm binary at $BIN"

size=$((SIZE_MIB * 1024 * 1024))
mkdir -p "$DIR/out"
DATA="$DIR/data-${SIZE_MIB}MiB.bin"

# Memory: the file must fit in the page cache (next to the tools' own memory), or this measures the disk.
avail_kib=$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo)
need_kib=$((size / 1024 + 1024 * 1024))
if [ "$avail_kib" -lt "$need_kib" ]; then
  note "WARNING: MemAvailable is $((avail_kib / 1024)) MiB but the file is ${SIZE_MIB} MiB (+1 GiB headroom):"
  note "WARNING: it will not stay in the page cache, so the numbers below measure the disk. Lower BENCH_SIZE_MIB."
else
  note "memory: $((avail_kib / 1024)) MiB available for a ${SIZE_MIB} MiB file"
fi

if [ ! -f "$DATA" ] || [ "$(stat -c %s "$DATA")" -ne "$size" ]; then
  free_kib=$(df -Pk "$DIR" | awk 'NR==2 {print $4}')
  [ "$free_kib" -gt $((size / 1024 + 65536)) ] || die "not enough disk space in $DIR for ${SIZE_MIB} MiB"
  note "writing ${SIZE_MIB} MiB of random data to $DATA (once)"
  rm -f "$DATA"
  head -c "$size" /dev/urandom >"$DATA.tmp"
  mv "$DATA.tmp" "$DATA"
fi
note "reading $DATA into the page cache"
cat "$DATA" >/dev/null

# Machine bound: openssl's single-core rate (bytes/s) with SHA extensions, 16 KiB blocks.
openssl_rate() {
  local alg=$1 rate
  rate=$(openssl speed -mr -evp "$alg" -bytes 16384 -seconds "$OSSL_SECONDS" 2>/dev/null |
    awk -F: -v a="$alg" '$1 == "+F" && tolower($3) == a {print $4}' | tail -1)
  [ -n "$rate" ] || die "could not read openssl speed -evp $alg"
  echo "$rate"
}
note "measuring SHA-1 and SHA-256 with openssl speed (${OSSL_SECONDS}s each)"
sha1_rate=$(openssl_rate sha1)
sha256_rate=$(openssl_rate sha256)
# Best possible wall times on $CORES cores: v1 hashes everything once with SHA-1; hybrid also with SHA-256.
bound_v1=$(awk -v s="$size" -v r="$sha1_rate" -v c="$CORES" 'BEGIN {printf "%.4f", s / (c * r)}')
bound_sha256=$(awk -v s="$size" -v r="$sha256_rate" -v c="$CORES" 'BEGIN {printf "%.4f", s / (c * r)}')
bound_hybrid=$(awk -v a="$bound_v1" -v b="$bound_sha256" 'BEGIN {printf "%.4f", a + b}')

# run_tool LABEL CMD... : runs it RUNS times (output torrent removed first), records best wall time and max RSS.
declare -A best rss kind
order=()
run_tool() {
  local label=$1 out=$2 hashes=$3
  shift 3
  local i t0 t1 secs log="$DIR/out/run.log" rssfile="$DIR/out/rss.txt" b="" r=""
  for ((i = 1; i <= RUNS; i++)); do
    rm -f "$out" "$rssfile"
    t0=$(date +%s%N)
    if [ "$have_time" -eq 1 ]; then
      timeout "$RUN_TIMEOUT" /usr/bin/time -f '%M' -o "$rssfile" "$@" >"$log" 2>&1 || {
        cat "$log" >&2
        die "$label failed or timed out (run $i): $*"
      }
    else
      timeout "$RUN_TIMEOUT" "$@" >"$log" 2>&1 || {
        cat "$log" >&2
        die "$label failed or timed out (run $i): $*"
      }
    fi
    t1=$(date +%s%N)
    [ -s "$out" ] || die "$label wrote no torrent at $out"
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", (b - a) / 1e9}')
    note "$label run $i: ${secs}s"
    if [ -z "$b" ] || awk -v x="$secs" -v y="$b" 'BEGIN {exit !(x < y)}'; then b=$secs; fi
    if [ "$have_time" -eq 1 ]; then
      local m
      m=$(tail -1 "$rssfile")
      if [ -z "$r" ] || [ "$m" -gt "$r" ]; then r=$m; fi
    fi
  done
  # The torrent must at least parse in libtorrent.
  timeout 120 "$PY" "$LT_TOOL" info "$out" >/dev/null || die "$label: libtorrent cannot read $out"
  best[$label]=$b
  rss[$label]=$r
  kind[$label]=$hashes
  order+=("$label")
}

O="$DIR/out"
run_tool "bitswarm v1" "$O/bitswarm-v1.torrent" v1 \
  "$BIN" create "$DATA" -o "$O/bitswarm-v1.torrent" --v1 --piece-length 1M --no-date --tracker "$TRACKER"
run_tool "bitswarm hybrid" "$O/bitswarm-hybrid.torrent" hybrid \
  "$BIN" create "$DATA" -o "$O/bitswarm-hybrid.torrent" --hybrid --piece-length 1M --no-date --tracker "$TRACKER"
run_tool "mktorrent (v1)" "$O/mktorrent.torrent" v1 \
  mktorrent -t "$CORES" -l 20 -a "$TRACKER" -o "$O/mktorrent.torrent" "$DATA"
run_tool "libtorrent v1" "$O/lt-v1.torrent" v1 \
  "$PY" "$LT_TOOL" create --version v1 --piece-length 1048576 --tracker "$TRACKER" "$DATA" "$O/lt-v1.torrent"
run_tool "libtorrent hybrid" "$O/lt-hybrid.torrent" hybrid \
  "$PY" "$LT_TOOL" create --version hybrid --piece-length 1048576 --tracker "$TRACKER" "$DATA" "$O/lt-hybrid.torrent"
rm -f "$O/run.log" "$O/rss.txt"

mk=${best["mktorrent (v1)"]}
echo
echo "## bitswarm create: ${SIZE_MIB} MiB file from page cache, 1 MiB pieces, best of ${RUNS}"
echo
echo "$(nproc) CPUs ($(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)); openssl speed, one core, 16 KiB blocks:"
awk -v a="$sha1_rate" -v b="$sha256_rate" 'BEGIN {printf "SHA-1 %.2f GB/s, SHA-256 %.2f GB/s.\n", a / 1e9, b / 1e9}'
echo "Two-core bounds: v1 (SHA-1 only) ${bound_v1}s, hybrid (SHA-1 + SHA-256) ${bound_hybrid}s."
echo "\"% of bound\" = bound time / tool time; \"vs mktorrent\" = mktorrent time / tool time (>1 is faster)."
echo
if [ "$have_time" -eq 1 ]; then
  echo "| tool | best wall (s) | GB/s | % of SHA-1 2-core bound | % of own hash bound | vs mktorrent | max RSS (MiB) |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
else
  echo "| tool | best wall (s) | GB/s | % of SHA-1 2-core bound | % of own hash bound | vs mktorrent |"
  echo "|---|---:|---:|---:|---:|---:|"
fi
for label in "${order[@]}"; do
  t=${best[$label]}
  own=$bound_v1
  [ "${kind[$label]}" = hybrid ] && own=$bound_hybrid
  row=$(awk -v l="$label" -v t="$t" -v s="$size" -v b1="$bound_v1" -v bo="$own" -v mk="$mk" 'BEGIN {
    printf "| %s | %.3f | %.2f | %.1f%% | %.1f%% | %.2fx |", l, t, s / t / 1e9, 100 * b1 / t, 100 * bo / t, mk / t }')
  if [ "$have_time" -eq 1 ]; then
    row="$row $(awk -v k="${rss[$label]}" 'BEGIN {printf "%.1f |", k / 1024}')"
  fi
  echo "$row"
done
if [ "$have_time" -ne 1 ]; then
  echo
  echo "(max RSS not measured: /usr/bin/time is missing)"
fi
