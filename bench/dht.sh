#!/usr/bin/env bash
# DHT node benchmark (not a test): how many queries per second one DHT node answers on one core, bitswarm's
# `bitswarm dht` against libtorrent 2.0's DHT node (python3-libtorrent) and aria2 1.36's, every node in the
# same run, all traffic on 127.0.0.0/8; then the memory per stored peer and per routing entry.
#
#   bash bench/dht.sh                                   # everything, best of 2 rounds: about 15 minutes
#   BENCH_ROUNDS=1 BENCH_SECONDS=10 BENCH_SERVERS=bitswarm,libtorrent bash bench/dht.sh
#
# Load: bench/dht-load (a standalone cargo project, KRPC encoded with the workspace's bencode crate only)
#   keeps BENCH_INFLIGHT queries outstanding from 32 sockets on 8 source addresses (127.77.0.1-8), each
#   socket a node with its own id; one run per query kind: ping, find_node (random targets), announce_peer
#   (a random port, the token of an earlier get_peers reply to the same socket for the same info-hash),
#   get_peers (random info-hashes of a pool of BENCH_HASHES), and mix (the four in equal parts). Each run
#   is BENCH_WARMUP seconds of warm-up, then BENCH_SECONDS measured.
# Servers, each on core 0 (`taskset -c 0`), the loader on core 1, a fresh server per round:
#   bitswarm   `bitswarm dht --listen 127.0.0.1:P` (release build) with the per-IP query limit off
#              (BITSWARM_DHT__NODE__MAX_QUERIES_PER_SEC_PER_IP=0); its other settings are the defaults
#              (1,000 info-hashes, 100 peers each; replies at most 1024 bytes and 8x the query).
#   libtorrent bench/dht/lt_dht.py: a libtorrent session with only its DHT (see that file for the settings:
#              its throttles raised, dht_upload_rate_limit 200 MB/s and dht_block_ratelimit 1,000,000/s,
#              routing restricted by IP off, store sized like bitswarm's: 100 peers, 1,000 info-hashes).
#   aria2      aria2c fetching the metadata of a magnet link nobody has, so its DHT runs (BENCH_SERVERS
#              without aria2 leaves it out); its defaults, DHT on 127.0.0.1:P, IPv6 DHT and LPD off.
#   Before the measured runs every server gets BENCH_PRIME seconds of the mix (not measured): the nodes it
#   pings while answering (the loader answers like a node) fill its routing table, and the announces fill
#   its store, so find_node and get_peers replies carry nodes and peers as on a node in service. The kinds
#   then run in the order above: get_peers reads the swarms announce_peer filled.
# Columns: responses/s from the loader over the window; server CPU % = its user+system time from
#   /proc/PID/stat over the window (about 100% pinned: the server was the bottleneck); responses per
#   server CPU-second; the loader's CPU; latency percentiles (send to reply, with BENCH_INFLIGHT in flight);
#   timeouts and KRPC errors; average peers (`values`) per get_peers reply, nodes per reply and bytes per
#   reply; RSS at the end of the run. Each row is the best of BENCH_ROUNDS rounds (by responses/s).
# Memory: `cargo test -p dht --test memory -- --nocapture` (a counting allocator around a node filled with
#   100,000 peers over 1,000 info-hashes, and a full routing table): bytes per stored peer and per entry.
#
# Environment: BENCH_PARTS (load,memory), BENCH_SERVERS (bitswarm,libtorrent,aria2), BENCH_KINDS
# (ping,find_node,announce_peer,get_peers,mix), BENCH_ROUNDS (2), BENCH_SECONDS (20), BENCH_WARMUP (5),
# BENCH_PRIME (10), BENCH_INFLIGHT (64), BENCH_HASHES (1000), BENCH_PERF (0; 1 adds a `perf record` of
# bitswarm under the mix, after the tables), BENCH_PORT (27200: ports PORT+1..PORT+5), BENCH_DIR
# (/tmp/bitswarm-dht-bench), BENCH_BIN (a bitswarm binary to use instead of building target/release/bitswarm).
# Tools are installed when missing: `apt-get install python3-libtorrent aria2`.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

PARTS=${BENCH_PARTS:-load,memory}
SERVERS=${BENCH_SERVERS:-bitswarm,libtorrent,aria2}
KINDS=${BENCH_KINDS:-ping,find_node,announce_peer,get_peers,mix}
ROUNDS=${BENCH_ROUNDS:-2}
SECONDS_RUN=${BENCH_SECONDS:-20}
WARMUP=${BENCH_WARMUP:-5}
PRIME=${BENCH_PRIME:-10}
INFLIGHT=${BENCH_INFLIGHT:-64}
HASHES=${BENCH_HASHES:-1000}
PERF=${BENCH_PERF:-0}
PORT=${BENCH_PORT:-27200}
DIR=${BENCH_DIR:-/tmp/bitswarm-dht-bench}
SERVER_CPU=0
LOAD_CPU=1
PY=/usr/bin/python3 # Debian's interpreter: the libtorrent bindings import only there

P_BITSWARM=$((PORT + 1))
P_LIBTORRENT=$((PORT + 2))
P_ARIA2=$((PORT + 3))
P_ARIA2_TCP=$((PORT + 4))
P_BITSWARM_HTTP=$((PORT + 5))

die() { echo "bench: $*" >&2; exit 1; }
note() { echo "bench: $*" >&2; }
has() { [[ ",$1," == *",$2,"* ]]; }

for v in ROUNDS SECONDS_RUN WARMUP PRIME INFLIGHT HASHES PORT; do
  [[ "${!v}" =~ ^[0-9]+$ ]] || die "BENCH_$v must be a non-negative integer"
done
[ "$ROUNDS" -ge 1 ] && [ "$SECONDS_RUN" -ge 1 ] && [ "$INFLIGHT" -ge 1 ] || die "BENCH_ROUNDS, BENCH_SECONDS, BENCH_INFLIGHT must be >= 1"
[ "$(nproc)" -ge 2 ] || die "needs two cores (one for the server, one for the load generator)"
for k in ${KINDS//,/ }; do
  case $k in ping | find_node | announce_peer | get_peers | mix) ;; *) die "unknown kind $k" ;; esac
done
for s in ${SERVERS//,/ }; do
  case $s in bitswarm | libtorrent | aria2) ;; *) die "unknown server $s" ;; esac
done

# ----- tools ----------------------------------------------------------------------------------------------
apt_need=()
has "$SERVERS" libtorrent && ! "$PY" -c 'import libtorrent' 2>/dev/null && apt_need+=(python3-libtorrent)
has "$SERVERS" aria2 && ! command -v aria2c >/dev/null 2>&1 && apt_need+=(aria2)
command -v taskset >/dev/null 2>&1 || apt_need+=(util-linux)
command -v curl >/dev/null 2>&1 || apt_need+=(curl)
if [ ${#apt_need[@]} -gt 0 ]; then
  note "apt-get install ${apt_need[*]}"
  timeout 900 apt-get install -y "${apt_need[@]}" >&2 ||
    { timeout 900 apt-get update >&2 && timeout 900 apt-get install -y "${apt_need[@]}" >&2; } ||
    die "could not install ${apt_need[*]}"
fi
LT_VERSION=$("$PY" -c 'import libtorrent; print(libtorrent.__version__)' 2>/dev/null || echo "not installed")
ARIA2_VERSION=$(aria2c --version 2>/dev/null | head -1 | awk '{print $3}' || echo "not installed")

if has "$PARTS" load; then
  if [ -n "${BENCH_BIN:-}" ]; then
    BIN=$BENCH_BIN
    note "using BENCH_BIN=$BIN (not building)"
  else
    note "building target/release/bitswarm"
    cargo build --release -p bitswarm >&2
    BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/bitswarm"
  fi
  [ -x "$BIN" ] || die "no bitswarm binary at $BIN"
  note "building bench/dht-load"
  HELPER_TARGET="${CARGO_TARGET_DIR:-$ROOT/target}/dht-load"
  (cd "$ROOT/bench/dht-load" && cargo build --release --target-dir "$HELPER_TARGET" >&2)
  LOADER="$HELPER_TARGET/release/dht-load"
fi

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
rm -rf "$DIR/logs" "$DIR/aria2"
mkdir -p "$DIR/logs" "$DIR/aria2"
LOGS="$DIR/logs"

# ----- processes ------------------------------------------------------------------------------------------
source bench/lib/procs.sh # (the script runs from the repository root)
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
CLK_TCK=$(getconf CLK_TCK)
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }
jget() { # FILE EXPR : a field of the loader's JSON (EXPR indexes d, e.g. ['latency_us']['p99'])
  "$PY" -c "import json, sys; d = json.load(open(sys.argv[1])); print(d$2)" "$1"
}

# start_server NAME : sets SPID and SPORT
SPORT=
start_server() {
  local p
  for p in $P_BITSWARM $P_LIBTORRENT $P_ARIA2; do # another program there would answer our pings
    ! "$LOADER" ping "127.0.0.1:$p" 1 2>/dev/null || die "something already answers KRPC on 127.0.0.1:$p (set BENCH_PORT)"
  done
  case $1 in
  bitswarm)
    SPORT=$P_BITSWARM
    start "$LOGS/bitswarm-r$round.log" "$SERVER_CPU" env BITSWARM_DHT__NODE__MAX_QUERIES_PER_SEC_PER_IP=0 \
      "$BIN" dht --listen "127.0.0.1:$SPORT" --http "127.0.0.1:$P_BITSWARM_HTTP"
    ;;
  libtorrent)
    SPORT=$P_LIBTORRENT
    start "$LOGS/libtorrent-r$round.log" "$SERVER_CPU" "$PY" "$ROOT/bench/dht/lt_dht.py" "$SPORT" 100 1000
    ;;
  aria2)
    SPORT=$P_ARIA2
    local d="$DIR/aria2/r$round" hash
    mkdir -p "$d"
    hash=$(head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n')
    start "$LOGS/aria2-r$round.log" "$SERVER_CPU" aria2c --enable-dht=true --enable-dht6=false \
      --dht-listen-port="$SPORT" --dht-file-path="$d/dht.dat" --listen-port="$P_ARIA2_TCP" \
      --bt-enable-lpd=false --enable-peer-exchange=false --bt-metadata-only=true --bt-stop-timeout=0 \
      --dir="$d" --console-log-level=warn --summary-interval=0 "magnet:?xt=urn:btih:$hash"
    ;;
  esac
  "$LOADER" ping "127.0.0.1:$SPORT" 60 2>/dev/null && alive "$SPID" ||
    { tail -20 "$LOGS/$1-r$round.log" >&2; die "$1: no DHT node answering on 127.0.0.1:$SPORT"; }
}

declare -A R_BYTES R_RPS R_SCPU R_LCPU R_P50 R_P99 R_TO R_ERR R_VALUES R_NODES R_RSS R_SENT R_LATE
declare -A EMPTY_RSS
BS_STATS=""
ROWS=()
# load_run SERVER KIND SPID : one measured run; keeps the best round of (SERVER, KIND). Nothing is started
# while the loader runs (it samples the server's CPU itself): on this machine a script polling with a new
# process every 100 ms cut a pinned server's throughput by up to half.
load_run() {
  local server=$1 kind=$2 spid=$3 out err
  out="$LOGS/$server-$kind-r$round.json"
  err="$LOGS/$server-$kind-r$round.err"
  note "$server: $kind, ${WARMUP} s + ${SECONDS_RUN} s"
  timeout -k 5 $((WARMUP + SECONDS_RUN + 60)) taskset -c "$LOAD_CPU" "$LOADER" run "127.0.0.1:$SPORT" \
    --kind "$kind" --seconds "$SECONDS_RUN" --warmup "$WARMUP" --inflight "$INFLIGHT" --hashes "$HASHES" \
    --watch-pid "$spid" --clk-tck "$CLK_TCK" >"$out" 2>"$err" || { tail -5 "$err" >&2; die "$server $kind: the loader failed"; }
  alive "$spid" || die "$server: the server died during $kind (see $LOGS)"
  local rps key="$server|$kind"
  rps=$(jget "$out" "['responses_per_sec']")
  note "$server $kind: $rps responses/s, server CPU $(jget "$out" "['server_cpu_pct']")%, loader CPU $(jget "$out" "['loader_cpu_pct']")%"
  [ -n "${R_RPS[$key]:-}" ] || ROWS+=("$key")
  if [ -z "${R_RPS[$key]:-}" ] || awk -v a="$rps" -v b="${R_RPS[$key]}" 'BEGIN {exit !(a > b)}'; then
    R_RPS[$key]=$rps
    R_SCPU[$key]=$(jget "$out" "['server_cpu_pct']")
    R_LCPU[$key]=$(jget "$out" "['loader_cpu_pct']")
    R_P50[$key]=$(jget "$out" "['latency_us']['p50']")
    R_P99[$key]=$(jget "$out" "['latency_us']['p99']")
    R_TO[$key]=$(jget "$out" "['timeouts']")
    R_ERR[$key]=$(jget "$out" "['errors']")
    R_LATE[$key]=$(jget "$out" "['late'] + d['malformed']")
    R_SENT[$key]=$(jget "$out" "['queries_sent']")
    R_VALUES[$key]=$(jget "$out" "['values_per_get_peers']")
    R_NODES[$key]=$(jget "$out" "['nodes_per_reply']")
    R_BYTES[$key]=$(jget "$out" "['bytes_in'] // max(1, d['responses'] + d['errors'])")
    R_RSS[$key]=$(jget "$out" "['server_rss_kib']")
  fi
}

if has "$PARTS" load; then
  for ((round = 1; round <= ROUNDS; round++)); do
    note "round $round of $ROUNDS"
    for server in ${SERVERS//,/ }; do
      start_server "$server"
      spid=$SPID
      sleep 1
      EMPTY_RSS[$server]=$(rss_kib "$spid")
      if [ "$PRIME" -gt 0 ]; then
        note "$server: priming with ${PRIME} s of the mix (not measured)"
        timeout $((PRIME + 60)) taskset -c "$LOAD_CPU" "$LOADER" run "127.0.0.1:$SPORT" --kind mix \
          --seconds "$PRIME" --warmup 0 --inflight "$INFLIGHT" --hashes "$HASHES" \
          >"$LOGS/$server-prime-r$round.json" 2>/dev/null || die "$server: the priming run failed"
      fi
      for kind in ${KINDS//,/ }; do load_run "$server" "$kind" "$spid"; done
      if [ "$server" = bitswarm ]; then
        BS_STATS=$(curl -s -m 5 "http://127.0.0.1:$P_BITSWARM_HTTP/stats" || true)
      fi
      stop_pid "$spid"
    done
  done
fi

# ----- optional profile -----------------------------------------------------------------------------------
if [ "$PERF" = 1 ] && has "$PARTS" load && command -v perf >/dev/null 2>&1; then
  round=perf
  start_server bitswarm
  spid=$SPID
  note "perf: bitswarm under the mix (results not in the table)"
  timeout $((WARMUP + SECONDS_RUN + 120)) perf record -F 499 -g -o "$DIR/perf-dht.data" -p "$spid" -- \
    sleep $((WARMUP + 10)) >/dev/null 2>&1 &
  perf_pid=$!
  PIDS+=("$perf_pid")
  taskset -c "$LOAD_CPU" "$LOADER" run "127.0.0.1:$SPORT" --kind mix --seconds "$SECONDS_RUN" --warmup "$WARMUP" \
    --inflight "$INFLIGHT" >"$LOGS/perf-load.json" 2>/dev/null || true
  wait "$perf_pid" 2>/dev/null || true
  stop_pid "$spid"
  perf report -i "$DIR/perf-dht.data" --stdio --no-children -g none --percent-limit 0.5 --sort dso,symbol 2>/dev/null |
    grep -v -e '^$' -e '^#' | cut -c1-140 >"$DIR/perf-dht.txt" || true
  note "perf: profile in $DIR/perf-dht.txt"
fi

# ----- memory ---------------------------------------------------------------------------------------------
MEM_OUT=""
if has "$PARTS" memory; then
  note "memory: cargo test -p dht --test memory"
  MEM_OUT=$(cargo test -q -p dht --test memory -- --nocapture --test-threads 1 2>&1 | grep -oE "(peer store: |after 20,000 |routing table: ).*") ||
    die "the memory test failed (cargo test -p dht --test memory)"
fi

# ----- report ---------------------------------------------------------------------------------------------
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2fx", a / b; else print "-"}'; }
ms() { awk -v u="$1" 'BEGIN {printf "%.2f", u / 1000}'; }
echo
rev=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)
echo "bitswarm $rev; libtorrent $LT_VERSION; aria2 $ARIA2_VERSION. Machine: $(nproc) cores, $(awk -F: '/model name/ {print $2; exit}' /proc/cpuinfo | sed 's/^ *//'); $(uname -r). Best of $ROUNDS round(s) per row. Load average at the start: $LOAD_START, at the end: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews the rows it overlaps)."
if has "$PARTS" load; then
  echo
  echo "**DHT queries** (bench/dht-load: $INFLIGHT queries in flight from 32 sockets on 8 loopback addresses; ${SECONDS_RUN} s measured after ${WARMUP} s; after ${PRIME} s of the mix to fill each node's table and store; server on core $SERVER_CPU, loader on core $LOAD_CPU):"
  echo
  echo "| server | queries | responses/s | vs libtorrent | server CPU | responses per server CPU-second | loader CPU | p50 / p99 latency (ms) | timeouts, errors | peers per get_peers reply | nodes per reply | bytes per reply | RSS end (MiB) |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  for kind in ${KINDS//,/ }; do
    for server in ${SERVERS//,/ }; do
      key="$server|$kind"
      [ -n "${R_RPS[$key]:-}" ] || continue
      per_cpu=$(awk -v r="${R_RPS[$key]}" -v c="${R_SCPU[$key]}" 'BEGIN {if (c > 0) printf "%.0f", r / (c / 100); else print "-"}')
      vals="-"
      [[ "$kind" == get_peers || "$kind" == mix ]] && vals=$(printf '%.1f' "${R_VALUES[$key]}")
      printf '| %s | %s | %.0f | %s | %.0f%% | %s | %.0f%% | %s / %s | %s, %s | %s | %.1f | %s | %s |\n' "$server" "$kind" \
        "${R_RPS[$key]}" "$(ratio "${R_RPS[$key]}" "${R_RPS[libtorrent|$kind]:-0}")" "${R_SCPU[$key]}" "$per_cpu" \
        "${R_LCPU[$key]}" "$(ms "${R_P50[$key]}")" "$(ms "${R_P99[$key]}")" "${R_TO[$key]}" "${R_ERR[$key]}" \
        "$vals" "${R_NODES[$key]}" "${R_BYTES[$key]}" "$(mib "${R_RSS[$key]}")"
    done
  done
  echo
  for server in ${SERVERS//,/ }; do
    [ -n "${EMPTY_RSS[$server]:-}" ] && echo "- $server: RSS $(mib "${EMPTY_RSS[$server]}") MiB at start (last round)."
  done
  for kind in ${KINDS//,/ }; do
    b="bitswarm|$kind"
    l="libtorrent|$kind"
    [ -n "${R_RPS[$b]:-}" ] && [ -n "${R_RPS[$l]:-}" ] || continue
    echo "- $kind: bitswarm / libtorrent $(ratio "${R_RPS[$b]}" "${R_RPS[$l]}") in responses/s; per server CPU-second $(ratio "$(awk -v r="${R_RPS[$b]}" -v c="${R_SCPU[$b]}" 'BEGIN {print r / (c / 100 + 1e-9)}')" "$(awk -v r="${R_RPS[$l]}" -v c="${R_SCPU[$l]}" 'BEGIN {print r / (c / 100 + 1e-9)}')")."
  done
  [ -z "$BS_STATS" ] || echo "- bitswarm's /stats at the end of the last round: $BS_STATS"
fi
if [ -n "$MEM_OUT" ]; then
  echo
  echo "**Memory** (\`cargo test -p dht --test memory -- --nocapture\`: a counting allocator around the node; bytes asked of the allocator, not its per-block overhead):"
  echo
  echo "$MEM_OUT" | sed 's/^/- /'
fi
echo
echo "Raw outputs: $LOGS"
