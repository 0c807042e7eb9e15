#!/usr/bin/env bash
# Directory benchmark (not a test): `bitswarm directory` over a database of 1,000,000 synthetic torrents.
#
#   bash bench/directory.sh                         # fill once (~70 s, cached in /tmp), then ~5 minutes
#   BENCH_SAMPLES=500 BENCH_WRK_SECONDS=5 bash bench/directory.sh
#   BENCH_PERF=1 bash bench/directory.sh            # also perf profiles of the server under the searches
#
# Fill: `cargo run --release -p directory --example fill` (crates/directory/examples/fill.rs) creates the
#   database: names, file names and descriptions from a generated 100,000-word vocabulary with Zipf
#   frequencies (the commonest word is in about a third of the torrents, the rarest in a handful), 1-20 files,
#   log-uniform sizes, categories, heavy-tailed seeders, five years of upload times; then Db::optimize (FTS5
#   merge, ANALYZE, WAL checkpoint). It is kept as $BENCH_DIR/directory-COUNT-SEED-vFILL.db (with the fill's
#   output and the vocabulary's document counts beside it) and reused by later runs (BENCH_REFILL=1 redoes it).
# Server: target/release/bitswarm directory on core 0 (`taskset -c 0`), WITH its embedded tracker (the
#   default setup: the tracker's allow-list is fed every listed torrent at start, so start-up time and RSS
#   include that), HTTP tracker and UDP tracker on 127.0.0.1. A second start with --no-tracker measures
#   start-up and RSS without the allow-list.
# Latency: bench/directory-latency.py on core 1: sequential GETs over one keep-alive connection, each timed
#   to the last body byte; BENCH_WARMUP unrecorded then BENCH_SAMPLES recorded per row, cycling through:
#   common words (the 10 commonest, each in tens of thousands of torrents), pairs of common words, rare words
#   (200 words in 1-30 torrents each), a common word on page 20, each as the HTML page and the JSON API; torrent
#   pages (HTML and JSON) of BENCH_SAMPLES random torrents. Relevance order (the default) everywhere.
# Throughput: wrk (1 thread, BENCH_WRK_CONNS connections, BENCH_WRK_SECONDS s) on core 1 against the home page,
#   a common-word search and a rare-word search.
# Targets (issue 6): search p99 < 50 ms, torrent page p99 < 10 ms, on this machine.
#
# Environment: BENCH_COUNT (1000000), BENCH_SEED (1), BENCH_SAMPLES (2000), BENCH_WARMUP (200),
# BENCH_WRK_SECONDS (15), BENCH_WRK_CONNS (16), BENCH_REFILL (0), BENCH_PERF (0), BENCH_PORT (17200: ports
# PORT+1..PORT+3), BENCH_DIR (/tmp/bitswarm-directory-bench), BENCH_BIN (a bitswarm binary instead of building).
# Installs wrk and util-linux (taskset) with apt-get when missing. Everything on 127.0.0.1; every process it
# starts is stopped by PID; logs in $BENCH_DIR/logs.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

COUNT=${BENCH_COUNT:-1000000}
SEED=${BENCH_SEED:-1}
SAMPLES=${BENCH_SAMPLES:-2000}
WARMUP=${BENCH_WARMUP:-200}
WRK_SECONDS=${BENCH_WRK_SECONDS:-15}
WRK_CONNS=${BENCH_WRK_CONNS:-16}
REFILL=${BENCH_REFILL:-0}
PERF=${BENCH_PERF:-0}
PORT=${BENCH_PORT:-17200}
DIR=${BENCH_DIR:-/tmp/bitswarm-directory-bench}
FILL_VERSION=1 # bump when examples/fill.rs changes what it writes
SERVER_CPU=0
LOAD_CPU=1
P_WEB=$((PORT + 1))
P_THTTP=$((PORT + 2))
P_TUDP=$((PORT + 3))
SEARCH_TARGET_MS=50
TORRENT_TARGET_MS=10

die() { echo "bench: $*" >&2; exit 1; }
note() { echo "bench: $*" >&2; }
for v in COUNT SEED SAMPLES WARMUP WRK_SECONDS WRK_CONNS PORT; do
  [[ "${!v}" =~ ^[0-9]+$ ]] || die "BENCH_$v must be a non-negative integer"
done
[ "$COUNT" -ge 1000 ] && [ "$SAMPLES" -ge 1 ] || die "BENCH_COUNT >= 1000 and BENCH_SAMPLES >= 1, please"
[ "$(nproc)" -ge 2 ] || die "needs two cores (one for the server, one for the load generator)"

# ----- tools ----------------------------------------------------------------------------------------------
apt_need=()
command -v wrk >/dev/null 2>&1 || apt_need+=(wrk)
command -v taskset >/dev/null 2>&1 || apt_need+=(util-linux)
command -v curl >/dev/null 2>&1 || apt_need+=(curl)
command -v python3 >/dev/null 2>&1 || apt_need+=(python3)
if [ ${#apt_need[@]} -gt 0 ]; then
  note "apt-get install ${apt_need[*]}"
  timeout 900 apt-get install -y "${apt_need[@]}" >&2 ||
    { timeout 900 apt-get update >&2 && timeout 900 apt-get install -y "${apt_need[@]}" >&2; } ||
    die "could not install ${apt_need[*]}"
fi
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
if [ -n "${BENCH_BIN:-}" ]; then
  BIN=$BENCH_BIN
  note "using BENCH_BIN=$BIN (not building)"
else
  note "building target/release/bitswarm"
  cargo build --release -p bitswarm >&2
  BIN="$TARGET/release/bitswarm"
fi
[ -x "$BIN" ] || die "no bitswarm binary at $BIN"

mkdir -p "$DIR/logs"
LOGS="$DIR/logs"
DB="$DIR/directory-$COUNT-$SEED-v$FILL_VERSION.db"

# ----- fill -----------------------------------------------------------------------------------------------
if [ "$REFILL" = 1 ] || [ ! -f "$DB.done" ]; then
  note "building the filler (crates/directory/examples/fill.rs)"
  cargo build --release -p directory --example fill >&2
  rm -f "$DB" "$DB-wal" "$DB-shm" "$DB.done" "$DB.words.tsv"
  note "filling $DB with $COUNT synthetic torrents (a few minutes per million)"
  timeout 7200 "$TARGET/release/examples/fill" "$DB" --count "$COUNT" --seed "$SEED" >"$DB.fill.txt" 2>"$LOGS/fill.log" ||
    { cat "$LOGS/fill.log" >&2; die "the filler failed"; }
  touch "$DB.done"
else
  note "reusing $DB (BENCH_REFILL=1 to fill again)"
fi
FILL=$(cat "$DB.fill.txt")
kv() { echo "$FILL" | tr ' ' '\n' | awk -F= -v k="$1" '$1 == k {print $2}'; }

# ----- request lists --------------------------------------------------------------------------------------
# Common: the 10 commonest words; pairs of the 20 commonest; rare: 200 words in 1-30 torrents; torrents:
# SAMPLES random ids. Written as paths, one per line.
python3 - "$DB" "$SAMPLES" "$DIR" <<'EOF'
import random, sqlite3, sys, urllib.parse
db, samples, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
words = []
with open(db + ".words.tsv") as f:
    for line in f:
        r, w, d = line.rstrip("\n").split("\t")
        words.append((int(r), w, int(d)))
words.sort(key=lambda x: -x[2])
rng = random.Random(7)
common = [w for _, w, _ in words[:10]]
top = [w for _, w, _ in words[:20]]
pairs = [f"{a} {b}" for a in top for b in top if a < b]
rng.shuffle(pairs)
pairs = pairs[:50]
rare = [w for _, w, d in words if 1 <= d <= 30]
rng.shuffle(rare)
rare = rare[:200]
q = lambda s: urllib.parse.quote_plus(s)
lists = {
    "common": [f"/search?q={q(w)}" for w in common],
    "common-api": [f"/api/search?q={q(w)}" for w in common],
    "pairs": [f"/search?q={q(w)}" for w in pairs],
    "pairs-api": [f"/api/search?q={q(w)}" for w in pairs],
    "rare": [f"/search?q={q(w)}" for w in rare],
    "rare-api": [f"/api/search?q={q(w)}" for w in rare],
    "deep": [f"/search?q={q(w)}&page=20" for w in common],
    "deep-api": [f"/api/search?q={q(w)}&page=20" for w in common],
}
c = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
(max_id,) = c.execute("SELECT max(id) FROM torrents").fetchone()
hashes = []
for i in rng.sample(range(1, max_id + 1), min(samples, max_id)):
    row = c.execute("SELECT lower(hex(info_hash)) FROM torrents WHERE id = ?", (i,)).fetchone()
    if row:
        hashes.append(row[0])
lists["torrent"] = [f"/t/{h}" for h in hashes]
lists["torrent-api"] = [f"/api/torrents/{h}" for h in hashes]
for name, paths in lists.items():
    with open(f"{out}/paths-{name}.txt", "w") as f:
        f.write("\n".join(paths) + "\n")
with open(f"{out}/words-summary.txt", "w") as f:
    f.write(f"common={','.join(common)} common_docs={words[0][2]}..{words[9][2]} "
            f"rare_docs={min(d for _, w, d in words if w in rare)}..{max(d for _, w, d in words if w in rare)}\n")
EOF
WORDS_SUMMARY=$(cat "$DIR/words-summary.txt")
COMMON1=$(head -1 "$DIR/paths-common.txt")
RARE1=$(head -1 "$DIR/paths-rare.txt")

# ----- processes ------------------------------------------------------------------------------------------
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do stop_pid "$p"; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM
alive() {
  local st
  st=$(ps -o stat= -p "$1" 2>/dev/null || true)
  [ -n "$st" ] && [[ "$st" != Z* ]]
}
stop_pid() {
  local p=$1 i
  if alive "$p"; then
    kill -TERM "$p" 2>/dev/null || true
    for ((i = 0; i < 150; i++)); do
      alive "$p" || break
      sleep 0.1
    done
    alive "$p" && kill -KILL "$p" 2>/dev/null || true
  fi
  wait "$p" 2>/dev/null || true
}
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
anon_kib() { awk '/^RssAnon:/ {print $2}' "/proc/$1/status"; }
hwm_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$1/stat"; }
CLK_TCK=$(getconf CLK_TCK)
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }

# start_server TRACKER(1/0) LOG : starts the directory on core 0 and waits until the home page answers;
# sets SPID and STARTUP (seconds from exec to the first 200).
SPID=
STARTUP=
TRACKER_READY=
start_server() {
  local tracker=$1 log=$2 t0 i flags=()
  STARTUP=
  if [ "$tracker" = 1 ]; then
    flags=(--tracker-http "127.0.0.1:$P_THTTP" --tracker-udp "127.0.0.1:$P_TUDP")
  else
    flags=(--no-tracker)
  fi
  t0=$(date +%s.%N)
  taskset -c "$SERVER_CPU" "$BIN" directory --listen "127.0.0.1:$P_WEB" --database "$DB" --insecure-cookies \
    "${flags[@]}" >"$log" 2>&1 &
  SPID=$!
  PIDS+=("$SPID")
  for ((i = 0; i < 3000; i++)); do
    alive "$SPID" || { cat "$log" >&2; die "the directory exited at start"; }
    if curl -sf -m 5 -o /dev/null "http://127.0.0.1:$P_WEB/"; then
      STARTUP=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.2f", b - a}')
      break
    fi
    sleep 0.1
  done
  [ -n "$STARTUP" ] || { cat "$log" >&2; die "the directory did not answer within 300 s"; }
  # The embedded tracker's sockets are served once its allow-list holds every torrent.
  TRACKER_READY=-
  [ "$tracker" = 1 ] || return 0
  for ((i = 0; i < 3000; i++)); do
    if curl -sf -m 5 -o /dev/null "http://127.0.0.1:$P_THTTP/stats"; then
      TRACKER_READY=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.2f", b - a}')
      return 0
    fi
    sleep 0.1
  done
  cat "$log" >&2
  die "the embedded tracker did not answer within 300 s"
}

# ----- start-up without the tracker -------------------------------------------------------------------------
note "start-up with --no-tracker"
start_server 0 "$LOGS/directory-no-tracker.log"
NT_STARTUP=$STARTUP
sleep 1
NT_RSS=$(rss_kib "$SPID")
NT_ANON=$(anon_kib "$SPID")
stop_pid "$SPID"

# ----- the measured server --------------------------------------------------------------------------------
note "starting the directory with its embedded tracker (allow-list fed with every torrent)"
start_server 1 "$LOGS/directory.log"
SRV=$SPID
TR_STARTUP=$STARTUP
TR_READY=$TRACKER_READY
sleep 1
TR_RSS=$(rss_kib "$SRV")
TR_ANON=$(anon_kib "$SRV")

declare -A L_P50 L_P99 L_MAX L_N L_ERR L_BYTES
L_ORDER=()
latency() { # NAME LABEL
  local name=$1 label=$2 out="$LOGS/latency-$1.json" samples=$SAMPLES
  note "latency: $label ($SAMPLES samples after $WARMUP)"
  timeout 1800 taskset -c "$LOAD_CPU" python3 "$ROOT/bench/directory-latency.py" "127.0.0.1:$P_WEB" \
    "$DIR/paths-$name.txt" "$samples" "$WARMUP" >"$out" || die "latency client failed on $name"
  alive "$SRV" || die "the server died during $name (see $LOGS)"
  L_ORDER+=("$name")
  L_LABEL[$name]=$label
  L_N[$name]=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["samples"])' "$out")
  L_ERR[$name]=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["errors"])' "$out")
  L_P50[$name]=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["p50"])' "$out")
  L_P99[$name]=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["p99"])' "$out")
  L_MAX[$name]=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["max"])' "$out")
  L_BYTES[$name]=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["mean_bytes"])' "$out")
}
declare -A L_LABEL
latency common "search, common word (HTML)"
latency common-api "search, common word (JSON API)"
latency pairs "search, two common words (HTML)"
latency pairs-api "search, two common words (JSON API)"
latency rare "search, rare word (HTML)"
latency rare-api "search, rare word (JSON API)"
latency deep "search, common word, page 20 (HTML)"
latency deep-api "search, common word, page 20 (JSON API)"
latency torrent "torrent page (HTML)"
latency torrent-api "torrent (JSON API)"

declare -A W_RPS W_P50 W_P99 W_NON2XX W_CPU
W_ORDER=()
throughput() { # NAME PATH
  local name=$1 path=$2 out="$LOGS/wrk-$1.txt" s0 s1 t0 t1
  note "wrk: $name $path (${WRK_SECONDS} s)"
  t0=$(date +%s.%N); s0=$(cpu_ticks "$SRV")
  timeout $((WRK_SECONDS + 60)) taskset -c "$LOAD_CPU" wrk -t1 -c"$WRK_CONNS" -d"${WRK_SECONDS}s" --latency \
    "http://127.0.0.1:$P_WEB$path" >"$out" 2>&1 || die "wrk failed on $name (see $out)"
  t1=$(date +%s.%N); s1=$(cpu_ticks "$SRV")
  alive "$SRV" || die "the server died under wrk (see $LOGS)"
  W_ORDER+=("$name")
  W_RPS[$name]=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$out")
  W_P50[$name]=$(awk '$1 == "50%" {print $2}' "$out")
  W_P99[$name]=$(awk '$1 == "99%" {print $2}' "$out")
  W_NON2XX[$name]=$(awk '/Non-2xx or 3xx responses:/ {print $5}' "$out")
  W_CPU[$name]=$(awk -v a="$s0" -v b="$s1" -v s="$t0" -v e="$t1" -v hz="$CLK_TCK" \
    'BEGIN {printf "%.0f", (b - a) / hz / (e - s) * 100}')
}
throughput "home page" "/"
throughput "search, common word" "$COMMON1"
throughput "search, rare word" "$RARE1"
END_RSS=$(rss_kib "$SRV")
END_HWM=$(hwm_kib "$SRV")
END_ANON=$(anon_kib "$SRV")

if [ "$PERF" = 1 ] && command -v perf >/dev/null 2>&1; then
  for name in common pairs torrent; do
    note "perf: the server under '$name' searches (not in the table)"
    timeout 300 perf record -F 999 -g -o "$DIR/perf-$name.data" -p "$SRV" -- sleep 15 >/dev/null 2>&1 &
    perf_pid=$!
    PIDS+=("$perf_pid")
    timeout 60 taskset -c "$LOAD_CPU" python3 "$ROOT/bench/directory-latency.py" "127.0.0.1:$P_WEB" \
      "$DIR/paths-$name.txt" 100000 0 >/dev/null 2>&1 || true
    wait "$perf_pid" 2>/dev/null || true
    perf report -i "$DIR/perf-$name.data" --stdio --no-children -g none --percent-limit 1 --sort dso,symbol \
      2>/dev/null | grep -v -e '^$' -e '^#' | cut -c1-140 >"$DIR/perf-$name.txt" || true
    note "perf: $DIR/perf-$name.txt"
  done
fi
stop_pid "$SRV"

# ----- report ---------------------------------------------------------------------------------------------
echo
rev=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)
echo "bitswarm $rev. Machine: $(nproc) cores, $(awk -F: '/model name/ {print $2; exit}' /proc/cpuinfo | sed 's/^ *//'); $(uname -r); load average at the end $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine shows in the tails)."
echo
echo "Database: $(kv inserted) synthetic torrents, filled in $(kv insert_seconds) s ($(kv rate_per_second)/s) + $(kv optimize_seconds) s optimize; $(awk -v b="$(kv database_bytes)" 'BEGIN {printf "%.0f", b / 1048576}') MiB ($DB). Words: $WORDS_SUMMARY."
echo
echo "Latency (bench/directory-latency.py on core $LOAD_CPU, sequential, one keep-alive connection, $SAMPLES samples per row after $WARMUP; server on core $SERVER_CPU with its embedded tracker):"
echo
echo "| request | samples | errors | p50 (ms) | p99 (ms) | max (ms) | body (KiB) | target | result |"
echo "|---|---:|---:|---:|---:|---:|---:|---|---|"
ALL=PASS
for n in "${L_ORDER[@]}"; do
  if [[ "$n" == torrent* ]]; then t=$TORRENT_TARGET_MS; else t=$SEARCH_TARGET_MS; fi
  if [ "${L_ERR[$n]}" = 0 ] && awk -v p="${L_P99[$n]}" -v t="$t" 'BEGIN {exit !(p < t)}'; then r=PASS; else r=FAIL; ALL=FAIL; fi
  printf '| %s | %s | %s | %.1f | %.1f | %.1f | %.1f | p99 < %s ms | %s |\n' "${L_LABEL[$n]}" "${L_N[$n]}" "${L_ERR[$n]}" \
    "${L_P50[$n]}" "${L_P99[$n]}" "${L_MAX[$n]}" "$(awk -v b="${L_BYTES[$n]}" 'BEGIN {print b / 1024}')" "$t" "$r"
done
echo
echo "Throughput (wrk on core $LOAD_CPU, 1 thread, $WRK_CONNS keep-alive connections, $WRK_SECONDS s; the server on core $SERVER_CPU):"
echo
echo "| page | requests/s | p50 | p99 | non-2xx | server CPU |"
echo "|---|---:|---:|---:|---:|---:|"
for n in "${W_ORDER[@]}"; do
  printf '| %s | %s | %s | %s | %s | %s%% |\n' "$n" "${W_RPS[$n]}" "${W_P50[$n]}" "${W_P99[$n]}" "${W_NON2XX[$n]:-0}" "${W_CPU[$n]}"
done
echo
echo "Start-up and memory (RSS includes the database pages SQLite maps, up to 256 MiB; anonymous memory is the program's own):"
echo
echo "| server | first page after (s) | tracker serving after (s) | RSS after start (MiB) | anonymous (MiB) | RSS at the end (MiB) | anonymous at the end (MiB) | peak RSS (MiB) |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
printf '| with the embedded tracker (allow-list fed %s torrents) | %s | %s | %s | %s | %s | %s | %s |\n' "$(kv inserted)" "$TR_STARTUP" "$TR_READY" \
  "$(mib "$TR_RSS")" "$(mib "$TR_ANON")" "$(mib "$END_RSS")" "$(mib "$END_ANON")" "$(mib "$END_HWM")"
printf '| --no-tracker | %s | - | %s | %s | - | - | - |\n' "$NT_STARTUP" "$(mib "$NT_RSS")" "$(mib "$NT_ANON")"
echo
echo "Targets: $ALL (search p99 < $SEARCH_TARGET_MS ms, torrent page p99 < $TORRENT_TARGET_MS ms)."
echo
echo "Raw outputs: $LOGS"
