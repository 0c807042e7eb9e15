#!/usr/bin/env bash
# Tracker benchmark (not a test): the bitswarm tracker against aquatic (aquatic_udp, aquatic_http 0.9) and
# opentracker (Debian's build), every tool in the same run, all traffic on 127.0.0.1.
#
#   bash bench/tracker.sh                                    # everything, best of 2 rounds: about 25 minutes
#   BENCH_ROUNDS=1 BENCH_PARTS=udp BENCH_UDP_SECONDS=15 bash bench/tracker.sh
#
# UDP: aquatic_udp_load_test with its default settings (1 worker, 4 sockets, 1,000,000 torrents, 2,000,000
#   peers, 50% connect, 50% announce, 1% scrape) against each server, the server pinned to core 0
#   (`taskset -c 0`, one worker), the load tester to core 1. Responses/s are the load tester's average over
#   the last BENCH_UDP_SECONDS, after BENCH_WARMUP. The stock tester sends every announce with the same peer
#   id (20 zero bytes): aquatic and opentracker key peers by address and port, bitswarm by peer id, so there
#   bitswarm holds one peer per torrent and returns no peers. The "distinct peer ids" rows (BENCH_DISTINCT=1)
#   use the same tester built from its published source with one change, a peer id made from the peer's
#   index, so every server builds the same swarms. BENCH_UNPINNED=1 adds rows with two workers and nothing
#   pinned (the load tester shares the two cores).
# HTTP: wrk with bench/tracker-announce.lua (random peer id and port, a random info-hash of a fixed list,
#   compact), one wrk thread on core 1 with BENCH_HTTP_CONNS keep-alive connections, each server on core 0;
#   BENCH_UNPINNED=1 adds unpinned rows (aquatic_http needs a socket and a swarm worker, each a busy-polling
#   glommio executor, so one core is a poor fit for it).
# Memory: bench/tracker-load drives BENCH_MEM_PEERS distinct peers over BENCH_MEM_TORRENTS torrents into
#   each server over UDP, scrapes every torrent to count what it holds, and reads VmRSS before (the empty
#   process) and after: bytes per peer held.
# Server CPU % is the server's user+system time over the measured window: about 100% pinned means the
#   server was the bottleneck; less means the load generator (or another process on the core) was.
#
# opentracker: Debian builds it whitelist-only, so the script writes a whitelist of every info-hash the
# load generators use: aquatic_udp_load_test 0.9 derives its hashes from a fixed seed, and
# `tracker-load aquatic-hashes` reproduces them (the same rand 0.8 SmallRng draws; checked against what
# bitswarm saw).
#
# Environment: BENCH_PARTS (default udp,http,mem), BENCH_ROUNDS (2: each throughput row is the best of
# this many rounds, interleaved), BENCH_UDP_SECONDS (30), BENCH_WARMUP (10; both multiples of 5, the load
# tester's reporting interval), BENCH_HTTP_SECONDS (20), BENCH_HTTP_CONNS (64), BENCH_HTTP_TORRENTS (10000),
# BENCH_MEM_PEERS (1000000), BENCH_MEM_TORRENTS (100000), BENCH_UNPINNED (1), BENCH_DISTINCT (1),
# BENCH_PERF (0; 1 adds a `perf record` of bitswarm under each load, after the tables), BENCH_PORT (17100:
# ports PORT+1..PORT+4 are used), BENCH_DIR (/tmp/bitswarm-tracker-bench), BENCH_BIN (a bitswarm binary to
# use instead of building target/release/bitswarm).
# Tools are installed when missing: `cargo install` of aquatic 0.9.0 (minutes on 2 cores; the binaries stay
# in ~/.cargo/bin) and `apt-get install opentracker wrk`.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

PARTS=${BENCH_PARTS:-udp,http,mem}
UDP_SECONDS=${BENCH_UDP_SECONDS:-30}
WARMUP=${BENCH_WARMUP:-10}
HTTP_SECONDS=${BENCH_HTTP_SECONDS:-20}
HTTP_CONNS=${BENCH_HTTP_CONNS:-64}
HTTP_TORRENTS=${BENCH_HTTP_TORRENTS:-10000}
MEM_PEERS=${BENCH_MEM_PEERS:-1000000}
MEM_TORRENTS=${BENCH_MEM_TORRENTS:-100000}
UNPINNED=${BENCH_UNPINNED:-1}
DISTINCT=${BENCH_DISTINCT:-1}
ROUNDS=${BENCH_ROUNDS:-2}
PERF=${BENCH_PERF:-0}
PORT=${BENCH_PORT:-17100}
DIR=${BENCH_DIR:-/tmp/bitswarm-tracker-bench}
AQUATIC_VERSION=0.9.0
AQUATIC_TORRENTS=1000000 # aquatic_udp_load_test's default number_of_torrents (left as it is)
MEM_SEED=1
SERVER_CPU=0
LOAD_CPU=1
CARGO_BIN="${CARGO_HOME:-$HOME/.cargo}/bin"
LUA="$ROOT/bench/tracker-announce.lua"

P_BITSWARM=$((PORT + 1)) # UDP and HTTP
P_AQUATIC=$((PORT + 2))  # aquatic_udp, and aquatic_http on TCP
P_OT=$((PORT + 3))       # opentracker, UDP and HTTP
P_BITSWARM_HTTP=$((PORT + 4))

die() { echo "bench: $*" >&2; exit 1; }
note() { echo "bench: $*" >&2; }
has_part() { [[ ",$PARTS," == *",$1,"* ]]; }

for v in ROUNDS UDP_SECONDS WARMUP HTTP_SECONDS HTTP_CONNS HTTP_TORRENTS MEM_PEERS MEM_TORRENTS PORT; do
  [[ "${!v}" =~ ^[0-9]+$ ]] || die "BENCH_$v must be a non-negative integer"
done
[ $((UDP_SECONDS % 5)) -eq 0 ] && [ $((WARMUP % 5)) -eq 0 ] && [ "$UDP_SECONDS" -gt 0 ] ||
  die "BENCH_UDP_SECONDS and BENCH_WARMUP must be multiples of 5 (the load tester reports every 5 s)"
[ "$HTTP_TORRENTS" -ge 1 ] && [ "$HTTP_TORRENTS" -le "$AQUATIC_TORRENTS" ] || die "BENCH_HTTP_TORRENTS out of range"
[ "$(nproc)" -ge 2 ] || die "needs two cores (one for the server, one for the load generator)"

# ----- tools ----------------------------------------------------------------------------------------------
cargo_has() { cargo install --list 2>/dev/null | grep -q "^$1 v$AQUATIC_VERSION:"; }
need=()
for b in aquatic_udp aquatic_udp_load_test aquatic_http; do
  { cargo_has "$b" && [ -x "$CARGO_BIN/$b" ]; } || need+=("$b")
done
for b in "${need[@]}"; do
  note "installing $b $AQUATIC_VERSION with cargo install (minutes on 2 cores; cached in $CARGO_BIN)"
  timeout 3600 cargo install --force --version "$AQUATIC_VERSION" "$b" >&2 || die "cargo install $b failed"
done
apt_need=()
command -v opentracker >/dev/null 2>&1 || apt_need+=(opentracker)
command -v wrk >/dev/null 2>&1 || apt_need+=(wrk)
command -v taskset >/dev/null 2>&1 || apt_need+=(util-linux)
command -v curl >/dev/null 2>&1 || apt_need+=(curl)
if [ ${#apt_need[@]} -gt 0 ]; then
  note "apt-get install ${apt_need[*]}"
  timeout 900 apt-get install -y "${apt_need[@]}" >&2 ||
    { timeout 900 apt-get update >&2 && timeout 900 apt-get install -y "${apt_need[@]}" >&2; } ||
    die "could not install ${apt_need[*]}"
fi
OPENTRACKER=$(command -v opentracker)

if [ -n "${BENCH_BIN:-}" ]; then
  BIN=$BENCH_BIN
  note "using BENCH_BIN=$BIN (not building)"
else
  note "building target/release/bitswarm"
  cargo build --release -p bitswarm >&2
  BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/bitswarm"
fi
[ -x "$BIN" ] || die "no bitswarm binary at $BIN"
note "building bench/tracker-load"
HELPER_TARGET="${CARGO_TARGET_DIR:-$ROOT/target}/tracker-load"
(cd "$ROOT/bench/tracker-load" && cargo build --release --target-dir "$HELPER_TARGET" >&2)
LOADER="$HELPER_TARGET/release/tracker-load"

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
mkdir -p "$DIR/logs" "$DIR/ot"
LOGS="$DIR/logs"
# Info-hash lists: aquatic_udp_load_test's (checked below against what bitswarm saw), the HTTP set (its
# first BENCH_HTTP_TORRENTS) and the memory set; opentracker's whitelist is all of them.
"$LOADER" aquatic-hashes "$AQUATIC_TORRENTS" >"$DIR/aquatic-hashes.txt"
head -n "$HTTP_TORRENTS" "$DIR/aquatic-hashes.txt" >"$DIR/http-hashes.txt"
"$LOADER" hashes "$MEM_SEED" "$MEM_TORRENTS" >"$DIR/mem-hashes.txt"
cat "$DIR/aquatic-hashes.txt" "$DIR/mem-hashes.txt" >"$DIR/ot/whitelist.txt"
CHECK_HASH=$(head -1 "$DIR/aquatic-hashes.txt")
CHECK_HASH_Q=$(echo "$CHECK_HASH" | sed 's/../%&/g')

# ----- processes ------------------------------------------------------------------------------------------
source bench/lib/procs.sh # (the script runs from the repository root)
wait_udp() { # PORT PID LOG
  "$LOADER" ping "127.0.0.1:$1" 60 2>/dev/null && alive "$2" || { cat "$3" >&2; die "no UDP tracker on port $1"; }
}
wait_http() { # PORT PID LOG : an announce for a listed hash must succeed
  local i body=""
  for ((i = 0; i < 300; i++)); do
    alive "$2" || break
    body=$(curl -s -m 2 "http://127.0.0.1:$1/announce?info_hash=$CHECK_HASH_Q&peer_id=-BW0001-000000000000&port=6881&uploaded=0&downloaded=0&left=0&compact=1" | tr -d '\0' || true)
    if [[ "$body" == *interval* ]] && [[ "$body" != *failure* ]]; then return 0; fi
    sleep 0.2
  done
  cat "$3" >&2
  die "no working HTTP announce on port $1 (last answer: ${body:0:120})"
}
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
hwm_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$1/stat"; }
CLK_TCK=$(getconf CLK_TCK)
now_s() { date +%s.%N; }
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }
cpu_pct() { # TICKS0 TICKS1 T0 T1
  awk -v a="$1" -v b="$2" -v s="$3" -v e="$4" -v hz="$CLK_TCK" 'BEGIN {printf "%.0f", (b - a) / hz / (e - s) * 100}'
}

# Server launchers: each sets SPID. Arguments: WORKERS CPU (CPU empty: not pinned).
start_bitswarm_udp() {
  start "$LOGS/bitswarm-udp.log" "$2" env BITSWARM_TRACKER__UDP__WORKERS="$1" \
    "$BIN" tracker --udp "127.0.0.1:$P_BITSWARM" --http "127.0.0.1:$P_BITSWARM_HTTP"
  wait_udp "$P_BITSWARM" "$SPID" "$LOGS/bitswarm-udp.log"
}
start_aquatic_udp() {
  "$CARGO_BIN/aquatic_udp" -p | sed -e "s/^socket_workers = .*/socket_workers = $1/" \
    -e "s/^address = .*/address = \"127.0.0.1:$P_AQUATIC\"/" >"$DIR/aquatic_udp.toml"
  start "$LOGS/aquatic_udp.log" "$2" "$CARGO_BIN/aquatic_udp" -c "$DIR/aquatic_udp.toml"
  wait_udp "$P_AQUATIC" "$SPID" "$LOGS/aquatic_udp.log"
}
start_opentracker() {
  # Chrooted to $DIR/ot (the whitelist path is read after the chroot); drops to user nobody.
  cat >"$DIR/ot/opentracker.conf" <<EOF
listen.udp.workers $1
listen.tcp 127.0.0.1:$P_OT
listen.udp 127.0.0.1:$P_OT
access.whitelist whitelist.txt
tracker.rootdir $DIR/ot
EOF
  chmod 755 "$DIR/ot"
  chmod 644 "$DIR/ot/whitelist.txt"
  start "$LOGS/opentracker.log" "$2" "$OPENTRACKER" -f "$DIR/ot/opentracker.conf"
  wait_udp "$P_OT" "$SPID" "$LOGS/opentracker.log"
  # The whitelist loads in the background: wait until a listed hash is accepted.
  wait_http "$P_OT" "$SPID" "$LOGS/opentracker.log"
}
start_bitswarm_http() {
  start "$LOGS/bitswarm-http.log" "$2" "$BIN" tracker --no-udp --http "127.0.0.1:$P_BITSWARM_HTTP"
  wait_http "$P_BITSWARM_HTTP" "$SPID" "$LOGS/bitswarm-http.log"
}
start_aquatic_http() {
  "$CARGO_BIN/aquatic_http" -p | sed -e "s/^socket_workers = .*/socket_workers = $1/" \
    -e "s/^swarm_workers = .*/swarm_workers = $1/" \
    -e "s/^address = .*/address = \"127.0.0.1:$P_AQUATIC\"/" >"$DIR/aquatic_http.toml"
  start "$LOGS/aquatic_http.log" "$2" "$CARGO_BIN/aquatic_http" -c "$DIR/aquatic_http.toml"
  wait_http "$P_AQUATIC" "$SPID" "$LOGS/aquatic_http.log"
}

# ----- UDP ------------------------------------------------------------------------------------------------
# aquatic_udp_load_test announces every peer with the peer id 0 (twenty zero bytes). aquatic and opentracker
# key a swarm's peers by address and port, bitswarm by peer id (BEP 3), so under the stock tester bitswarm
# holds one peer per torrent and answers every announce with no peers: less work than the others do. The
# "distinct peer ids" rows use a copy of the same tester (same version, same settings) whose only change is
# a peer id made from the peer's index, so every server builds the same swarms.
AQ_SRC=""
build_distinct_tester() {
  local reg patched="$DIR/aquatic_udp_load_test-distinct" out="${CARGO_TARGET_DIR:-$ROOT/target}/aquatic-distinct"
  reg=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/aquatic_udp_load_test-$AQUATIC_VERSION 2>/dev/null | head -1 || true)
  if [ -z "$reg" ]; then
    # Let cargo unpack the published source into its registry cache.
    mkdir -p "$DIR/fetch/src"
    printf '[package]\nname = "fetch"\nversion = "0.0.0"\nedition = "2021"\n[dependencies]\naquatic_udp_load_test = "=%s"\n[workspace]\n' \
      "$AQUATIC_VERSION" >"$DIR/fetch/Cargo.toml"
    : >"$DIR/fetch/src/lib.rs"
    (cd "$DIR/fetch" && timeout 900 cargo fetch >&2) || die "could not fetch aquatic_udp_load_test's source"
    reg=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/aquatic_udp_load_test-$AQUATIC_VERSION | head -1)
  fi
  rm -rf "$patched"
  cp -r "$reg" "$patched"
  sed -i 's/peer_id: PeerId(\[0; 20\]),/peer_id: { let mut id = *b"-AQ0900-000000000000"; id[8..16].copy_from_slice(\&(peer_index as u64).to_be_bytes()); PeerId(id) },/' \
    "$patched/src/worker.rs"
  grep -q 'AQ0900' "$patched/src/worker.rs" || die "could not patch aquatic_udp_load_test's peer id"
  note "building aquatic_udp_load_test with distinct peer ids (minutes the first time)"
  (cd "$patched" && timeout 3600 cargo build --release --target-dir "$out" >&2) || die "building the patched load tester failed"
  DISTINCT_TESTER="$out/release/aquatic_udp_load_test"
}

declare -A U_RPS U_ANN U_ERR U_PEERS U_RSS U_HWM U_SCPU U_LCPU
U_ORDER=()
# udp_run LABEL PORT SERVER_PID LOAD_CPU TESTER : keeps the best round of LABEL
udp_run() {
  local label=$1 port=$2 spid=$3 lcpu=$4 tester=$5 tag out cfg lpid warm_lines deadline
  local t0="" t1="" s0="" s1="" l0="" l1="" tl sl ll report=0
  tag=$(echo "$label" | tr -c 'a-zA-Z0-9_\n' '-')
  out="$LOGS/udp-load-$tag.txt"
  cfg="$DIR/udp-load-$tag.toml"
  "$tester" -p | sed -e "s/^server_address = .*/server_address = \"127.0.0.1:$port\"/" \
    -e "s/^duration = .*/duration = $((WARMUP + UDP_SECONDS))/" \
    -e "s/^summarize_last = .*/summarize_last = $UDP_SECONDS/" \
    -e "s/^extra_statistics = .*/extra_statistics = false/" >"$cfg"
  note "UDP: $label, $((WARMUP + UDP_SECONDS)) s"
  start "$out" "$lcpu" "$tester" -c "$cfg"
  lpid=$SPID
  warm_lines=$((WARMUP / 5))
  deadline=$(($(date +%s) + WARMUP + UDP_SECONDS + 180))
  # The measured window: from the end of the warm-up intervals to the last sample before the report.
  while alive "$lpid"; do
    [ "$(date +%s)" -lt "$deadline" ] || { stop_pid "$lpid"; die "$label: load tester did not finish in time"; }
    grep -q '^Average responses per second' "$out" && report=1
    if [ "$report" = 0 ]; then
      tl=$(now_s); sl=$(cpu_ticks "$spid"); ll=$(cpu_ticks "$lpid" 2>/dev/null || echo "${ll:-0}")
      if [ -z "$t0" ] && [ "$(grep -c '^Responses in:' "$out" || true)" -ge "$warm_lines" ]; then
        t0=$tl; s0=$sl; l0=$ll
      fi
      if [ -n "$t0" ]; then t1=$tl; s1=$sl; l1=$ll; fi
    fi
    sleep 0.2
  done
  wait "$lpid" 2>/dev/null || true
  grep -q '^Average responses per second' "$out" || { tail -20 "$out" >&2; die "$label: no load test report"; }
  alive "$spid" || die "$label: the server died during the run (see $LOGS)"
  [ -n "$t0" ] && [ -n "$t1" ] && [ "$t0" != "$t1" ] || { t0=0; t1=1; s0=0; s1=0; l0=0; l1=0; }
  local rps
  rps=$(awk '/^Average responses per second:/ {print $5}' "$out")
  note "UDP: $label: $rps responses/s, server CPU $(cpu_pct "$s0" "$s1" "$t0" "$t1")%"
  [ -n "${U_RPS[$label]:-}" ] || U_ORDER+=("$label")
  if [ -z "${U_RPS[$label]:-}" ] || awk -v a="$rps" -v b="${U_RPS[$label]}" 'BEGIN {exit !(a > b)}'; then
    U_RPS[$label]=$rps
    U_ANN[$label]=$(awk '/load test report/ {r = 1} r && /Announce responses:/ {print $4; exit}' "$out")
    U_ERR[$label]=$(awk '/load test report/ {r = 1} r && /Error responses:/ {print $4; exit}' "$out")
    U_PEERS[$label]=$(awk '/^Peers per announce response:/ {v = $5} END {print v}' "$out")
    U_RSS[$label]=$(rss_kib "$spid")
    U_HWM[$label]=$(hwm_kib "$spid")
    U_SCPU[$label]=$(cpu_pct "$s0" "$s1" "$t0" "$t1")
    U_LCPU[$label]=$(cpu_pct "$l0" "$l1" "$t0" "$t1")
  fi
}

# udp_case NAME WORKERS PINNED(1/0) TESTER SUFFIX
udp_case() {
  local name=$1 workers=$2 pinned=$3 tester=$4 suffix=$5 scpu="" lcpu="" label port
  if [ "$pinned" = 1 ]; then scpu=$SERVER_CPU; lcpu=$LOAD_CPU; fi
  if [ "$workers" = 1 ]; then label="$name (1 worker"; else label="$name ($workers workers"; fi
  if [ "$pinned" = 1 ]; then label="$label, pinned$suffix)"; else label="$label, unpinned$suffix)"; fi
  case $name in
  bitswarm) start_bitswarm_udp "$workers" "$scpu"; port=$P_BITSWARM ;;
  aquatic_udp) start_aquatic_udp "$workers" "$scpu"; port=$P_AQUATIC ;;
  opentracker) start_opentracker "$workers" "$scpu"; port=$P_OT ;;
  esac
  local pid=$SPID
  udp_run "$label" "$port" "$pid" "$lcpu" "$tester"
  if [ "$name" = bitswarm ]; then
    if [ -z "$suffix" ] && [ "$pinned" = 1 ]; then
      # The reproduced hash list must be the tester's: its most requested hash is the first.
      curl -sf -m 5 "http://127.0.0.1:$P_BITSWARM_HTTP/stats/$CHECK_HASH" >/dev/null ||
        die "the reproduced aquatic info-hashes do not match what aquatic_udp_load_test announced"
    fi
    BS_UDP_STATS[$label]=$(curl -s -m 5 "http://127.0.0.1:$P_BITSWARM_HTTP/stats" || true)
  fi
  stop_pid "$pid"
}

declare -A BS_UDP_STATS
if has_part udp; then
  STOCK_TESTER="$CARGO_BIN/aquatic_udp_load_test"
  [ "$DISTINCT" = 1 ] && build_distinct_tester
  for ((round = 1; round <= ROUNDS; round++)); do
    note "UDP round $round of $ROUNDS"
    for name in bitswarm aquatic_udp opentracker; do udp_case "$name" 1 1 "$STOCK_TESTER" ""; done
    if [ "$DISTINCT" = 1 ]; then
      for name in bitswarm aquatic_udp opentracker; do
        udp_case "$name" 1 1 "$DISTINCT_TESTER" ", distinct peer ids"
      done
    fi
    if [ "$UNPINNED" = 1 ]; then
      for name in bitswarm aquatic_udp opentracker; do udp_case "$name" 2 0 "$STOCK_TESTER" ""; done
    fi
  done
fi

# ----- HTTP -----------------------------------------------------------------------------------------------
declare -A H_RPS H_NON2XX H_READERR H_P99 H_RSS H_HWM H_SCPU H_LCPU BS_HTTP_STATS
H_ORDER=()
http_run() { # LABEL PORT SERVER_PID LOAD_CPU : keeps the best round of LABEL
  local label=$1 port=$2 spid=$3 lcpu=$4 tag out t0 t1 s0 s1 l0 l1 lpid
  tag=$(echo "$label" | tr -c 'a-zA-Z0-9_\n' '-')
  out="$LOGS/http-wrk-$tag.txt"
  note "HTTP: $label, ${WARMUP} s warm-up + ${HTTP_SECONDS} s"
  if [ "$WARMUP" -gt 0 ]; then
    start "$LOGS/http-warmup-$tag.txt" "$lcpu" timeout $((WARMUP + 60)) wrk -t1 -c"$HTTP_CONNS" -d"${WARMUP}s" \
      -s "$LUA" "http://127.0.0.1:$port" -- "$DIR/http-hashes.txt"
    wait "$SPID" || die "$label: wrk warm-up failed"
  fi
  t0=$(now_s); s0=$(cpu_ticks "$spid")
  start "$out" "$lcpu" wrk -t1 -c"$HTTP_CONNS" -d"${HTTP_SECONDS}s" --latency -s "$LUA" \
    "http://127.0.0.1:$port" -- "$DIR/http-hashes.txt"
  lpid=$SPID
  l0=$(cpu_ticks "$lpid" 2>/dev/null || echo 0)
  local deadline=$(($(date +%s) + HTTP_SECONDS + 60)) ll=$l0
  t1=$t0; s1=$s0
  while alive "$lpid"; do
    [ "$(date +%s)" -lt "$deadline" ] || { stop_pid "$lpid"; die "$label: wrk did not finish in time"; }
    t1=$(now_s); s1=$(cpu_ticks "$spid"); ll=$(cpu_ticks "$lpid" 2>/dev/null || echo "$ll")
    sleep 0.2
  done
  l1=$ll
  wait "$lpid" 2>/dev/null || true
  grep -q '^Requests/sec:' "$out" || { cat "$out" >&2; die "$label: wrk printed no result"; }
  alive "$spid" || die "$label: the server died during the run (see $LOGS)"
  wait_http "$port" "$spid" /dev/null
  local rps
  rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
  note "HTTP: $label: $rps announces/s, server CPU $(cpu_pct "$s0" "$s1" "$t0" "$t1")%"
  [ -n "${H_RPS[$label]:-}" ] || H_ORDER+=("$label")
  if [ -z "${H_RPS[$label]:-}" ] || awk -v a="$rps" -v b="${H_RPS[$label]}" 'BEGIN {exit !(a > b)}'; then
    H_RPS[$label]=$rps
    H_NON2XX[$label]=$(awk '/Non-2xx or 3xx responses:/ {print $5}' "$out")
    H_READERR[$label]=$(awk '/Socket errors:/ {gsub(",", ""); print $6}' "$out")
    H_P99[$label]=$(awk '$1 == "99%" {print $2}' "$out")
    H_RSS[$label]=$(rss_kib "$spid")
    H_HWM[$label]=$(hwm_kib "$spid")
    H_SCPU[$label]=$(cpu_pct "$s0" "$s1" "$t0" "$t1")
    H_LCPU[$label]=$(cpu_pct "$l0" "$l1" "$t0" "$t1")
  fi
}

http_case() { # NAME PINNED(1/0)
  local name=$1 pinned=$2 scpu="" lcpu="" label port workers=1
  if [ "$pinned" = 1 ]; then scpu=$SERVER_CPU; lcpu=$LOAD_CPU; label="$name (pinned)"; else workers=2; label="$name (unpinned)"; fi
  case $name in
  bitswarm) start_bitswarm_http "$workers" "$scpu"; port=$P_BITSWARM_HTTP ;;
  aquatic_http) start_aquatic_http 1 "$scpu"; port=$P_AQUATIC ;; # one socket and one swarm worker
  opentracker) start_opentracker "$workers" "$scpu"; port=$P_OT ;;
  esac
  local pid=$SPID
  http_run "$label" "$port" "$pid" "$lcpu"
  [ "$name" = bitswarm ] && BS_HTTP_STATS[$label]=$(curl -s -m 5 "http://127.0.0.1:$P_BITSWARM_HTTP/stats" || true)
  stop_pid "$pid"
}

if has_part http; then
  for ((round = 1; round <= ROUNDS; round++)); do
    note "HTTP round $round of $ROUNDS"
    for name in bitswarm aquatic_http opentracker; do http_case "$name" 1; done
    if [ "$UNPINNED" = 1 ]; then
      for name in bitswarm aquatic_http opentracker; do http_case "$name" 0; done
    fi
  done
fi

# ----- memory ---------------------------------------------------------------------------------------------
declare -A M_EMPTY M_FULL M_HELD M_FAILED M_SECS M_BPP M_SFAILED
M_ORDER=()
mem_run() { # LABEL PORT SERVER_PID
  local label=$1 port=$2 spid=$3 tag out
  tag=$(echo "$label" | tr -c 'a-zA-Z0-9_\n' '-')
  out="$LOGS/mem-$tag.txt"
  sleep 1
  M_EMPTY[$label]=$(rss_kib "$spid")
  note "memory: $label: $MEM_PEERS peers over $MEM_TORRENTS torrents"
  timeout 900 "$LOADER" fill "127.0.0.1:$port" "$MEM_TORRENTS" "$MEM_PEERS" "$MEM_SEED" 600 >"$out" ||
    { cat "$out" >&2; die "$label: the loader failed"; }
  sleep 2
  alive "$spid" || die "$label: the server died during the fill"
  M_ORDER+=("$label")
  M_FULL[$label]=$(rss_kib "$spid")
  M_HELD[$label]=$(awk -F= '$1 == "held" {print $2}' "$out")
  M_FAILED[$label]=$(awk -F= '$1 == "failed" {print $2}' "$out")
  M_SECS[$label]=$(awk -F= '$1 == "seconds" {print $2}' "$out")
  M_SFAILED[$label]=$(awk -F= '$1 == "scrape_failed" {print $2}' "$out")
  M_BPP[$label]=$(awk -v a="${M_EMPTY[$label]}" -v b="${M_FULL[$label]}" -v n="${M_HELD[$label]}" \
    'BEGIN {if (n > 0) printf "%.1f", (b - a) * 1024 / n; else print "-"}')
}

if has_part mem; then
  start_bitswarm_udp 1 "$SERVER_CPU"
  bs=$SPID
  mem_run "bitswarm" "$P_BITSWARM" "$bs"
  BS_MEM_PEERS=$(curl -s -m 10 "http://127.0.0.1:$P_BITSWARM_HTTP/stats" | sed -n 's/.*"peers":\([0-9]*\).*/\1/p')
  stop_pid "$bs"
  start_aquatic_udp 1 "$SERVER_CPU"
  aq=$SPID
  mem_run "aquatic_udp" "$P_AQUATIC" "$aq"
  stop_pid "$aq"
  start_opentracker 1 "$SERVER_CPU"
  ot=$SPID
  mem_run "opentracker" "$P_OT" "$ot"
  stop_pid "$ot"
fi

# ----- optional profiles ----------------------------------------------------------------------------------
if [ "$PERF" = 1 ] && command -v perf >/dev/null 2>&1; then
  if has_part udp; then
    start_bitswarm_udp 1 "$SERVER_CPU"
    bs=$SPID
    note "perf: bitswarm under the UDP load (results not in the table)"
    timeout $((WARMUP + UDP_SECONDS + 120)) perf record -F 499 -g -o "$DIR/perf-udp.data" -p "$bs" -- \
      sleep $((WARMUP + 15)) >/dev/null 2>&1 &
    perf_pid=$!
    PIDS+=("$perf_pid")
    udp_run "bitswarm (perf)" "$P_BITSWARM" "$bs" "$LOAD_CPU" "${DISTINCT_TESTER:-$CARGO_BIN/aquatic_udp_load_test}"
    wait "$perf_pid" 2>/dev/null || true
    stop_pid "$bs"
    {
      perf report -i "$DIR/perf-udp.data" --stdio --no-children -g none --sort dso
      perf report -i "$DIR/perf-udp.data" --stdio --no-children -g none --percent-limit 0.5 --sort dso,symbol
    } 2>/dev/null | grep -v -e '^$' -e '^#' | cut -c1-140 >"$DIR/perf-udp.txt" || true
    note "perf: UDP profile in $DIR/perf-udp.txt"
  fi
  if has_part http; then
    start_bitswarm_http 1 "$SERVER_CPU"
    bs=$SPID
    note "perf: bitswarm under the HTTP load (results not in the table)"
    timeout $((WARMUP + HTTP_SECONDS + 120)) perf record -F 499 -g -o "$DIR/perf-http.data" -p "$bs" -- \
      sleep $((WARMUP + 10)) >/dev/null 2>&1 &
    perf_pid=$!
    PIDS+=("$perf_pid")
    http_run "bitswarm (perf)" "$P_BITSWARM_HTTP" "$bs" "$LOAD_CPU"
    wait "$perf_pid" 2>/dev/null || true
    stop_pid "$bs"
    {
      perf report -i "$DIR/perf-http.data" --stdio --no-children -g none --sort dso
      perf report -i "$DIR/perf-http.data" --stdio --no-children -g none --percent-limit 0.5 --sort dso,symbol
    } 2>/dev/null | grep -v -e '^$' -e '^#' | cut -c1-140 >"$DIR/perf-http.txt" || true
    note "perf: HTTP profile in $DIR/perf-http.txt"
  fi
fi

# ----- report ---------------------------------------------------------------------------------------------
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2fx", a / b; else print "-"}'; }
ge() { awk -v a="$1" -v b="$2" 'BEGIN {exit !(a >= b)}'; }
group() { local g=${1#* (}; echo "${g#* worker*, }"; } # "bitswarm (1 worker, pinned, x)" -> "pinned, x)"
echo
rev=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)
echo "bitswarm $rev ($BIN). Machine: $(nproc) cores, $(awk -F: '/model name/ {print $2; exit}' /proc/cpuinfo | sed 's/^ *//'); $(uname -r). Best of $ROUNDS round(s) per row. Load average at the start: $LOAD_START, at the end: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews the rows it overlaps)."
if has_part udp; then
  echo
  echo "**UDP** (aquatic_udp_load_test $AQUATIC_VERSION, its default request mix and settings: 1 worker, 4 sockets, 1,000,000 torrents, 2,000,000 peers; average over ${UDP_SECONDS} s after ${WARMUP} s; pinned: server on core $SERVER_CPU, load tester on core $LOAD_CPU):"
  echo
  echo "| server | responses/s | vs aquatic_udp | announce resp/s | error resp/s | peers per announce | server CPU | responses per server CPU-second | load tester CPU | RSS end (MiB) | peak RSS (MiB) |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  for l in "${U_ORDER[@]}"; do
    [[ "$l" == *"(perf)"* ]] && continue
    ref=""
    for o in "${U_ORDER[@]}"; do
      [[ "$o" == aquatic_udp* ]] && [ "$(group "$o")" = "$(group "$l")" ] && ref=$o
    done
    per_cpu=$(awk -v r="${U_RPS[$l]}" -v c="${U_SCPU[$l]}" 'BEGIN {if (c > 0) printf "%.0f", r / (c / 100); else print "-"}')
    printf '| %s | %.0f | %s | %.0f | %.0f | %s | %s%% | %s | %s%% | %s | %s |\n' "$l" "${U_RPS[$l]}" \
      "$(ratio "${U_RPS[$l]}" "${U_RPS[$ref]:-0}")" "${U_ANN[$l]}" "${U_ERR[$l]}" "${U_PEERS[$l]}" \
      "${U_SCPU[$l]}" "$per_cpu" "${U_LCPU[$l]}" "$(mib "${U_RSS[$l]}")" "$(mib "${U_HWM[$l]}")"
  done
  echo
  for g in "pinned)" "pinned, distinct peer ids)"; do
    b="bitswarm (1 worker, $g"
    a="aquatic_udp (1 worker, $g"
    [ -n "${U_RPS[$b]:-}" ] && [ -n "${U_RPS[$a]:-}" ] || continue
    if ge "${U_RPS[$b]}" "${U_RPS[$a]}"; then v=met; else v="NOT met"; fi
    echo "- Target (bitswarm >= aquatic_udp, 1 worker, $g: $v ($(ratio "${U_RPS[$b]}" "${U_RPS[$a]}"))."
  done
  for l in "${!BS_UDP_STATS[@]}"; do
    [[ "$l" == *"(perf)"* ]] || echo "- bitswarm's /stats after \"$l\": ${BS_UDP_STATS[$l]}"
  done
fi
if has_part http; then
  echo
  echo "**HTTP announces** (wrk 1 thread, $HTTP_CONNS keep-alive connections, bench/tracker-announce.lua: random peer id and port over $HTTP_TORRENTS info-hashes, compact; ${HTTP_SECONDS} s after ${WARMUP} s; pinned: server on core $SERVER_CPU, wrk on core $LOAD_CPU):"
  echo
  echo "| server | announces/s | vs best other | p99 latency | non-2xx | connections closed by server | server CPU | wrk CPU | RSS end (MiB) | peak RSS (MiB) |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  for l in "${H_ORDER[@]}"; do
    [[ "$l" == *"(perf)"* ]] && continue
    best=0
    for o in "${H_ORDER[@]}"; do
      [[ "$o" == "$l" || "$o" == *"(perf)"* ]] && continue
      [ "${o#* }" = "${l#* }" ] || continue
      awk -v x="${H_RPS[$o]}" -v y="$best" 'BEGIN {exit !(x > y)}' && best=${H_RPS[$o]}
    done
    closes=no
    awk -v r="${H_READERR[$l]:-0}" 'BEGIN {exit !(r > 0)}' && closes="yes (${H_READERR[$l]})"
    printf '| %s | %.0f | %s | %s | %s | %s | %s%% | %s%% | %s | %s |\n' "$l" "${H_RPS[$l]}" "$(ratio "${H_RPS[$l]}" "$best")" \
      "${H_P99[$l]:--}" "${H_NON2XX[$l]:-0}" "$closes" "${H_SCPU[$l]}" "${H_LCPU[$l]}" \
      "$(mib "${H_RSS[$l]}")" "$(mib "${H_HWM[$l]}")"
  done
  echo
  for g in "(pinned)" "(unpinned)"; do
    [ -n "${H_RPS[bitswarm $g]:-}" ] || continue
    v=met
    for o in "${H_ORDER[@]}"; do
      [[ "$o" == bitswarm* || "$o" != *" $g" ]] && continue
      ge "${H_RPS[bitswarm $g]}" "${H_RPS[$o]}" || v="NOT met"
    done
    echo "- Target (bitswarm >= the best of the others, $g): $v."
  done
  for l in "${!BS_HTTP_STATS[@]}"; do
    echo "- bitswarm's /stats after \"$l\": ${BS_HTTP_STATS[$l]}"
  done
fi
if has_part mem; then
  echo
  echo "**Memory**: $MEM_PEERS distinct peers over $MEM_TORRENTS torrents announced over UDP (bench/tracker-load fill), then a scrape of every torrent; RSS from /proc/PID/status:"
  echo
  echo "| server | empty RSS (MiB) | full RSS (MiB) | peers held (scrape) | announces unanswered | fill time (s) | bytes per peer |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
  for l in "${M_ORDER[@]}"; do
    printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$l" "$(mib "${M_EMPTY[$l]}")" "$(mib "${M_FULL[$l]}")" \
      "${M_HELD[$l]}" "${M_FAILED[$l]}" "${M_SECS[$l]}" "${M_BPP[$l]}"
  done
  if [ -n "${M_BPP[bitswarm]:-}" ]; then
    if awk -v b="${M_BPP[bitswarm]}" 'BEGIN {exit !(b + 0 <= 128)}' && [ "${BS_MEM_PEERS:-0}" -ge "$MEM_PEERS" ]; then
      v=met
    else
      v="NOT met"
    fi
    echo
    echo "- Target (bitswarm <= 128 bytes per peer with all $MEM_PEERS held): $v; bitswarm's /stats: peers=${BS_MEM_PEERS:-?}."
  fi
fi
echo
echo "Raw outputs: $LOGS"
