#!/usr/bin/env bash
# Peer-transfer benchmark (not a test): one single-file torrent (1 GiB of random bytes by default) moved
# between two BitTorrent programs over the loopback interface, for every pairing that matters to bitswarm,
# then 100 torrents seeded at once from one process.
#
#   bash bench/peers.sh                          # 1 GiB, best of 3 rounds per pair, then the 100 torrents
#   SIZE_MIB=256 BENCH_ROUNDS=1 bash bench/peers.sh
#   BENCH_CLIENTS="rqbit aria2" BENCH_PARTS=transfer bash bench/peers.sh
#
# Transfers, each from a fresh empty download folder, with a fresh tracker and a fresh seeder:
#   1. libtorrent seeds (bench/peers/lt_bench.py, libtorrent 2.0's high_performance_seed settings) to each
#      leecher in turn: bitswarm, rqbit, libtorrent, aria2, qBittorrent, Transmission;
#   2. bitswarm seeds (`bitswarm seed`) to each of the non-bitswarm leechers;
#   3. bitswarm seeds to bitswarm.
# Many torrents: `bitswarm seed T1 ... T100 -o DIR` (and libtorrent with the same 100 torrents in one
# session, for reference) once every torrent is verified and announced: RSS, peak RSS and CPU over an idle
# window.
#
# Where: everything runs inside a network namespace made for the run (root needed), each role with its own
# address on the namespace's loopback device `lo` (seeder 10.99.0.11, leecher 10.99.0.12; the tracker
# listens on the seeder's address), because Transmission never dials 127.0.0.0/8. Without root (or with
# BENCH_NETNS=0) everything runs on 127.0.0.1 and Transmission is skipped. The tracker is `bitswarm
# tracker`; every client finds the seeder through it (no DHT, PEX, LSD, UPnP or uTP anywhere).
#
# Measured per transfer (best round = the fastest):
# - seconds: from starting the leecher (or, for the daemons qBittorrent and Transmission, from adding the
#   torrent to the running daemon) until it has the whole file: its exit for the programs that exit when
#   done (bitswarm get, rqbit download -e, lt_bench.py get: wall time by /usr/bin/time), aria2's
#   --on-bt-download-complete hook (aria2 then spends ~2 s shutting down), the daemons' own status polled
#   every 0.1 s (qBittorrent's Web API, transmission-remote).
# - first MiB at: when the namespace's lo had carried 1 MiB more than at the start (polled every 0.1 s):
#   startup and unchoke latency (Transmission waits for its 10-second choke cycle).
# - leecher CPU and peak RSS: user+sys and max RSS by /usr/bin/time for the programs that exit; for the
#   daemons utime+stime from /proc/PID/stat and VmHWM from /proc/PID/status over the transfer (the peak is
#   reset with /proc/PID/clear_refs when the torrent is added). The seeder likewise over the transfer (its
#   peak reset when the leecher starts, so its startup hash check is not counted).
# - anon MiB: the largest RssAnon seen by the 0.1 s polling. RSS counts the mapped file pages of programs
#   that memory-map the payload (libtorrent 2.0 and qBittorrent do: about the file's size); anon does not.
# - every result is checked against the payload's SHA-256.
#
# Environment: SIZE_MIB (default 1024), BENCH_ROUNDS (3), BENCH_CLIENTS (leechers, default "bitswarm rqbit
# libtorrent aria2 qbittorrent transmission"), BENCH_PARTS ("transfer many"), BENCH_DIR
# (/tmp/bitswarm-peers-bench: the payload is kept there for later runs), BENCH_TIMEOUT (seconds per transfer,
# 600), BENCH_STALL (a transfer fails once less than 256 KiB moved in this many seconds, 60; a failed pair
# gets no more rounds), BENCH_PORT (first port, 17200), BENCH_NETNS (auto|1|0), MANY_COUNT (100), MANY_MIB
# (size of each of those torrents, 4), IDLE_SECONDS (30), BENCH_BIN (a bitswarm binary to use instead of
# building target/release/bitswarm). Logs: BENCH_DIR/runs/SEEDER-LEECHER-ROUND/*.log.
# Needs: bash bench/install-bench-tools.sh (libtorrent, aria2, Transmission, qBittorrent, rqbit, GNU time).
set -euo pipefail
export LC_ALL=C # a dot in $EPOCHREALTIME and printf
cd "$(dirname "$0")/.."
ROOT=$(pwd)

SIZE_MIB=${SIZE_MIB:-1024}
ROUNDS=${BENCH_ROUNDS:-3}
CLIENTS=${BENCH_CLIENTS:-bitswarm rqbit libtorrent aria2 qbittorrent transmission}
PARTS=${BENCH_PARTS:-transfer many}
DIR=${BENCH_DIR:-/tmp/bitswarm-peers-bench}
TIMEOUT=${BENCH_TIMEOUT:-600}
PORT_BASE=${BENCH_PORT:-17200}
NETNS_WANTED=${BENCH_NETNS:-auto}
MANY_COUNT=${MANY_COUNT:-100}
MANY_MIB=${MANY_MIB:-4}
IDLE_SECONDS=${IDLE_SECONDS:-30}
STALL=${BENCH_STALL:-60}
PY=/usr/bin/python3
LT_BENCH="$ROOT/bench/peers/lt_bench.py"
TOKEN=peers-bench-admin
STARTUP_TIMEOUT=120 # a seeder's hash check and first announce, a daemon's RPC coming up
POLL=0.1

die() { echo "peers-bench: $*" >&2; exit 1; }
note() { echo "peers-bench: $*" >&2; }
loud() { echo "peers-bench: !!! $*" >&2; }

for v in SIZE_MIB ROUNDS TIMEOUT PORT_BASE MANY_COUNT MANY_MIB IDLE_SECONDS STALL; do
  if ! [[ "${!v}" =~ ^[0-9]+$ ]] || [ "${!v}" -eq 0 ]; then die "$v must be a positive integer (got '${!v}')"; fi
done
command -v timeout >/dev/null 2>&1 || die "timeout (coreutils) missing"
command -v curl >/dev/null 2>&1 || die "curl missing: bash bench/install-bench-tools.sh"
command -v sha256sum >/dev/null 2>&1 || die "sha256sum missing"
command -v setpriv >/dev/null 2>&1 || die "setpriv (util-linux) missing"
if ! /usr/bin/time -f '%M' -o /dev/null true 2>/dev/null; then
  die "GNU time missing (/usr/bin/time): bash bench/install-bench-tools.sh"
fi
TICKS=$(getconf CLK_TCK)

# ------------------------------------------------------------------------------------------------------
# bitswarm

if [ -n "${BENCH_BIN:-}" ]; then
  BIN=$BENCH_BIN
  note "using BENCH_BIN=$BIN (not building)"
else
  BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/bitswarm"
  note "building target/release/bitswarm"
  if ! cargo build --release -p bitswarm >&2; then
    [ -x "$BIN" ] || die "cargo build --release -p bitswarm failed and there is no older binary"
    loud "cargo build failed: using the existing (possibly stale) $BIN"
  fi
fi
[ -x "$BIN" ] || die "no bitswarm binary at $BIN"
HAVE_BSW_GET=0
HAVE_BSW_SEED=0
"$BIN" get --help >/dev/null 2>&1 && HAVE_BSW_GET=1
"$BIN" seed --help >/dev/null 2>&1 && HAVE_BSW_SEED=1
# Resume data goes to the run's folder (not ~/.local/state), so that every run starts from nothing.
BSW_RESUME=0
if "$BIN" seed --help 2>/dev/null | grep -q -- --resume-dir && "$BIN" get --help 2>/dev/null | grep -q -- --resume-dir; then
  BSW_RESUME=1
fi
# No DHT for bitswarm either (none of the clients here uses one): --no-dht where the binary has it.
BSW_NODHT=0
"$BIN" get --help 2>/dev/null | grep -q -- --no-dht && BSW_NODHT=1
# bsw_resume DIR: the resume-dir option for a bitswarm client process, if it has one (and --no-dht).
bsw_resume() {
  if [ "$BSW_RESUME" -eq 1 ]; then printf '%s\n' --resume-dir "$1"; fi
  if [ "$BSW_NODHT" -eq 1 ]; then printf '%s\n' --no-dht; fi
}
[ "$HAVE_BSW_GET" -eq 1 ] || loud "bitswarm client not available (\`bitswarm get --help\` fails): bitswarm leecher rows skipped"
[ "$HAVE_BSW_SEED" -eq 1 ] || loud "bitswarm client not available (\`bitswarm seed --help\` fails): bitswarm seeder rows skipped"

# ------------------------------------------------------------------------------------------------------
# Network: a namespace of our own (needed for Transmission), or plain 127.0.0.1.

NS=""
NSX=()
SEED_IP=127.0.0.1
LEECH_IP=127.0.0.1
PIDS=()

cleanup() {
  local p
  set +e
  for p in "${PIDS[@]}"; do
    stop_tree "$p" 3 2>/dev/null
  done
  if [ -n "$NS" ]; then
    ip netns del "$NS" 2>/dev/null || loud "could not delete network namespace $NS (ip netns del $NS)"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ "$NETNS_WANTED" != 0 ]; then
  if [ "$(id -u)" -eq 0 ] && command -v ip >/dev/null 2>&1 && ip netns add "bswbench-$$" 2>/dev/null; then
    NS="bswbench-$$"
    NSX=(ip netns exec "$NS")
    SEED_IP=10.99.0.11
    LEECH_IP=10.99.0.12
    ip netns exec "$NS" ip link set lo up
    ip netns exec "$NS" ip addr add "$SEED_IP/32" dev lo
    ip netns exec "$NS" ip addr add "$LEECH_IP/32" dev lo
    note "network namespace $NS: seeder and tracker $SEED_IP, leecher $LEECH_IP (on the namespace's lo)"
  elif [ "$NETNS_WANTED" = 1 ]; then
    die "cannot make a network namespace (needs root and iproute2)"
  else
    loud "no network namespace (needs root and iproute2): running on 127.0.0.1, Transmission skipped"
  fi
fi

# inns CMD...: runs CMD in the benchmark's network.
inns() { "${NSX[@]}" "$@"; }

# ------------------------------------------------------------------------------------------------------
# Processes

# start_bg LOG CMD...: starts CMD in the benchmark's network (killed if this script dies); sets BG_PID.
start_bg() {
  local log=$1
  shift
  setpriv --pdeathsig KILL -- "${NSX[@]}" "$@" </dev/null >"$log" 2>&1 &
  BG_PID=$!
  PIDS+=("$BG_PID")
}

# alive PID: PID runs (a zombie, exited but not yet reaped, does not count).
alive() {
  local st
  read -r st 2>/dev/null <"/proc/$1/stat" || return 1
  st=${st##*) }
  [ "${st:0:1}" != Z ]
}

# descendants PID: every process below PID.
descendants() {
  local c kids
  for c in /proc/"$1"/task/*/children; do
    kids=$(cat "$c" 2>/dev/null) || continue
    for k in $kids; do
      echo "$k"
      descendants "$k"
    done
  done
}

# stop_tree PID [GRACE]: SIGTERM to PID and its descendants, SIGKILL after GRACE seconds (default 10).
stop_tree() {
  local pid=$1 grace=${2:-10} all i
  alive "$pid" || { wait "$pid" 2>/dev/null || true; return 0; }
  all="$pid $(descendants "$pid" | tr '\n' ' ')"
  # shellcheck disable=SC2086 # a list of PIDs
  kill -TERM $all 2>/dev/null || true
  for ((i = 0; i < grace * 10; i++)); do
    alive "$pid" || break
    sleep 0.1
  done
  # shellcheck disable=SC2086
  kill -KILL $all 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# child_of PID: the first child of PID (the program under /usr/bin/time), or PID itself.
child_of() {
  local c
  c=$(cat /proc/"$1"/task/"$1"/children 2>/dev/null) || c=""
  c=${c%% *}
  echo "${c:-$1}"
}

# cpu_ticks PID -> CPU_TICKS (utime + stime of every thread). No fork: called while polling.
cpu_ticks() {
  local s f
  CPU_TICKS=0
  read -r s 2>/dev/null <"/proc/$1/stat" || return 0
  s=${s##*) }
  read -ra f <<<"$s"
  CPU_TICKS=$((f[11] + f[12]))
}

# mem_of PID -> HWM_KIB, ANON_KIB (0 when gone).
mem_of() {
  local k v rest
  HWM_KIB=0
  ANON_KIB=0
  [ -r "/proc/$1/status" ] || return 0
  while read -r k v rest; do
    case $k in
      VmHWM:) HWM_KIB=$v ;;
      RssAnon:) ANON_KIB=$v ;;
    esac
  done 2>/dev/null <"/proc/$1/status" || true
}

# reset_hwm PID: restart VmHWM from the current RSS (Linux clear_refs 5; root or the owner).
reset_hwm() { echo 5 >"/proc/$1/clear_refs" 2>/dev/null || true; }

# lo_bytes PID -> LO_BYTES: bytes received on lo in PID's network namespace.
lo_bytes() {
  local iface rx rest
  LO_BYTES=0
  while read -r iface rx rest; do
    case $iface in
      lo:) LO_BYTES=$rx ;;
      lo:*) LO_BYTES=${iface#lo:} ;;
    esac
  done 2>/dev/null <"/proc/$1/net/dev" || true
}

now() { echo "$EPOCHREALTIME"; }
fsub() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", a - b}'; }

# ------------------------------------------------------------------------------------------------------
# Payload, torrents

size=$((SIZE_MIB * 1024 * 1024))
rm -rf "$DIR/runs" "$DIR/logs"
mkdir -p "$DIR/seed" "$DIR/logs" "$DIR/many" "$DIR/torrents" "$DIR/runs"
LOGS=$DIR/logs
NAME="payload-${SIZE_MIB}MiB.bin"
PAYLOAD="$DIR/seed/$NAME"
TRACKER_PORT=$PORT_BASE
ANNOUNCE="http://$SEED_IP:$TRACKER_PORT/announce"

avail_kib=$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo)
if [ "$avail_kib" -lt $((3 * size / 1024 + 1048576)) ]; then
  loud "MemAvailable $((avail_kib / 1024)) MiB is small for a ${SIZE_MIB} MiB payload: transfers may hit the disk"
fi
if [ ! -f "$PAYLOAD" ] || [ "$(stat -c %s "$PAYLOAD")" -ne "$size" ]; then
  free_kib=$(df -Pk "$DIR" | awk 'NR==2 {print $4}')
  [ "$free_kib" -gt $((3 * size / 1024 + 262144)) ] || die "not enough disk space in $DIR for ${SIZE_MIB} MiB (x3)"
  note "writing ${SIZE_MIB} MiB of random data to $PAYLOAD (once)"
  rm -f "$PAYLOAD" "$PAYLOAD.sha256"
  head -c "$size" /dev/urandom >"$PAYLOAD.tmp"
  mv "$PAYLOAD.tmp" "$PAYLOAD"
fi
if [ ! -s "$PAYLOAD.sha256" ]; then
  sha256sum "$PAYLOAD" | awk '{print $1}' >"$PAYLOAD.sha256"
fi
PAYLOAD_SHA=$(cat "$PAYLOAD.sha256")
TORRENT="$DIR/torrents/$NAME.torrent"
"$BIN" create "$PAYLOAD" -o "$TORRENT" -f --no-date --tracker "$ANNOUNCE" --json >"$LOGS/create.json" ||
  die "bitswarm create failed"
INFO_HASH=$("$BIN" inspect "$TORRENT" --json | sed -n 's/.*"info_hash_v1": *"\([0-9a-f]\{40\}\)".*/\1/p' | head -1)
[ -n "$INFO_HASH" ] || die "cannot read the info-hash of $TORRENT"
PIECE_LEN=$("$BIN" inspect "$TORRENT" --json | sed -n 's/.*"piece_length": *\([0-9]*\).*/\1/p' | head -1)
note "payload $PAYLOAD (${SIZE_MIB} MiB, sha256 ${PAYLOAD_SHA:0:16}...), info-hash $INFO_HASH, pieces of ${PIECE_LEN:-?} bytes"

# ------------------------------------------------------------------------------------------------------
# Tracker

TRACKER_PID=""
tracker_get() { inns curl -s -m 5 -H "Authorization: Bearer $TOKEN" "http://$SEED_IP:$TRACKER_PORT$1"; }
# json_num JSON KEY: the first number under "KEY" in JSON (flat objects only).
json_num() { sed -n "s/.*\"$2\": *\\([0-9.eE+-]*\\).*/\\1/p" <<<"$1" | head -1; }

start_tracker() {
  local log=$1 i
  BITSWARM_TRACKER__ADMIN__TOKEN=$TOKEN start_bg "$log" "$BIN" tracker --http "$SEED_IP:$TRACKER_PORT" --no-udp
  TRACKER_PID=$BG_PID
  for ((i = 0; i < 300; i++)); do
    tracker_get /stats >/dev/null 2>&1 && return 0
    alive "$TRACKER_PID" || break
    sleep 0.1
  done
  loud "bitswarm tracker did not come up on $SEED_IP:$TRACKER_PORT: $(tail -3 "$log" 2>/dev/null)"
  return 1
}
stop_tracker() {
  [ -n "$TRACKER_PID" ] && stop_tree "$TRACKER_PID" 5
  TRACKER_PID=""
}

# wait_seeders HASH PID N: until the tracker counts N seeders of HASH (or /stats counts N torrents with N
# seeders when HASH is "all"), while PID lives; bounded by STARTUP_TIMEOUT.
wait_seeders() {
  local hash=$1 pid=$2 want=$3 deadline out s t
  deadline=$((SECONDS + STARTUP_TIMEOUT))
  while [ "$SECONDS" -lt "$deadline" ]; do
    alive "$pid" || return 1
    if [ "$hash" = all ]; then
      out=$(tracker_get /stats 2>/dev/null) || out=""
      s=$(json_num "$out" seeders)
      t=$(json_num "$out" torrents)
      [ "${s:-0}" -ge "$want" ] && [ "${t:-0}" -ge "$want" ] && return 0
    else
      out=$(tracker_get "/stats/$hash" 2>/dev/null) || out=""
      s=$(json_num "$out" seeders)
      [ "${s:-0}" -ge "$want" ] && return 0
    fi
    sleep 0.2
  done
  return 1
}

# ------------------------------------------------------------------------------------------------------
# Seeders

SEEDER_PID=""
# start_seeder KIND PORT LOG: libtorrent or bitswarm seeding the payload; waits until the tracker has it.
start_seeder() {
  local kind=$1 port=$2 log=$3
  case $kind in
    libtorrent)
      start_bg "$log" "$PY" "$LT_BENCH" seed --high-performance --listen "$SEED_IP:$port" \
        --timeout $((TIMEOUT + 600)) "$DIR/seed" "$TORRENT"
      ;;
    bitswarm)
      # shellcheck disable=SC2046 # zero or two words
      start_bg "$log" "$BIN" seed "$TORRENT" -o "$DIR/seed" --listen "$SEED_IP:$port" $(bsw_resume "${log%.log}.resume")
      ;;
  esac
  SEEDER_PID=$BG_PID
  if ! wait_seeders "$INFO_HASH" "$SEEDER_PID" 1; then
    loud "$kind seeder did not register with the tracker within ${STARTUP_TIMEOUT}s: $(tail -3 "$log" 2>/dev/null)"
    stop_tree "$SEEDER_PID" 5
    return 1
  fi
}

# ------------------------------------------------------------------------------------------------------
# Leechers

# client_skip NAME: why NAME cannot run here (empty if it can).
client_skip() {
  case $1 in
    bitswarm) [ "$HAVE_BSW_GET" -eq 1 ] || echo "bitswarm client not available" ;;
    rqbit) command -v rqbit >/dev/null 2>&1 || echo "rqbit not installed (bash bench/install-bench-tools.sh)" ;;
    libtorrent) "$PY" -c 'import libtorrent' >/dev/null 2>&1 || echo "python3-libtorrent missing for $PY" ;;
    aria2) command -v aria2c >/dev/null 2>&1 || echo "aria2c not installed" ;;
    qbittorrent) command -v qbittorrent-nox >/dev/null 2>&1 || echo "qbittorrent-nox not installed" ;;
    transmission)
      if ! command -v transmission-daemon >/dev/null 2>&1 || ! command -v transmission-remote >/dev/null 2>&1; then
        echo "transmission-daemon/transmission-remote not installed"
      elif [ -z "$NS" ]; then
        echo "Transmission never dials 127.0.0.0/8: needs the network namespace (root)"
      fi
      ;;
    *) echo "unknown client '$1'" ;;
  esac
}

# Each leecher run sets: R_SECS R_FIRST R_LCPU R_LHWM R_LANON R_SCPU R_SHWM R_SANON, or R_ERR.
# run_transfer SEEDER LEECHER ROUND_DIR PORT
run_transfer() {
  local seeder=$1 leecher=$2 rd=$3 port=$4
  local lport=$((port + 1)) rpc=$((port + 2)) ldir="$rd/download" tfile="$rd/time.txt" hook_ts="$rd/done.ts"
  local lpid="" kind t0 t_done="" deadline lo0 first="" real scpu0 scpu1 lcpu0=0 lanon=0 sanon=0
  local out p i tr_cfg qb_cfg e u s m last_lo last_move
  R_ERR=""
  mkdir -p "$ldir"
  sync

  # Daemons first come up, then the measured window starts when the torrent is added.
  case $leecher in
    qbittorrent)
      kind=daemon
      qb_cfg="$rd/qbittorrent/qBittorrent/config"
      mkdir -p "$qb_cfg"
      cat >"$qb_cfg/qBittorrent.conf" <<EOF
[LegalNotice]
Accepted=true

[BitTorrent]
Session\\DHTEnabled=false
Session\\LSDEnabled=false
Session\\PeXEnabled=false
Session\\Port=$lport
Session\\InterfaceAddress=$LEECH_IP
Session\\BTProtocol=TCP
Session\\QueueingSystemEnabled=false
Session\\AddTorrentPaused=false
Session\\DefaultSavePath=$ldir

[Preferences]
Connection\\UPnP=false
WebUI\\Port=$rpc
WebUI\\Address=127.0.0.1
WebUI\\LocalHostAuth=false
WebUI\\CSRFProtection=false
WebUI\\HostHeaderValidation=false
General\\Locale=en
EOF
      start_bg "$rd/leecher.log" qbittorrent-nox --profile="$rd/qbittorrent"
      lpid=$BG_PID
      for ((i = 0; i < STARTUP_TIMEOUT * 10; i++)); do
        inns curl -s -m 2 "http://127.0.0.1:$rpc/api/v2/app/version" >/dev/null 2>&1 && break
        alive "$lpid" || break
        sleep 0.1
      done
      inns curl -s -m 2 "http://127.0.0.1:$rpc/api/v2/app/version" >/dev/null 2>&1 ||
        { R_ERR="qBittorrent Web API did not come up: $(tail -2 "$rd/leecher.log")"; stop_tree "$lpid"; return; }
      ;;
    transmission)
      kind=daemon
      tr_cfg="$rd/transmission"
      mkdir -p "$tr_cfg"
      cat >"$tr_cfg/settings.json" <<EOF
{"rpc-enabled": true, "rpc-bind-address": "127.0.0.1", "rpc-port": $rpc, "rpc-authentication-required": false,
 "rpc-whitelist-enabled": false, "rpc-host-whitelist-enabled": false, "bind-address-ipv4": "$LEECH_IP",
 "bind-address-ipv6": "::1", "peer-port": $lport, "peer-port-random-on-start": false,
 "port-forwarding-enabled": false, "dht-enabled": false, "lpd-enabled": false, "pex-enabled": false,
 "utp-enabled": false, "blocklist-enabled": false, "download-dir": "$ldir", "incomplete-dir-enabled": false,
 "watch-dir-enabled": false, "start-added-torrents": true, "speed-limit-up-enabled": false,
 "speed-limit-down-enabled": false, "alt-speed-enabled": false, "ratio-limit-enabled": false,
 "idle-seeding-limit-enabled": false, "message-level": 1}
EOF
      start_bg "$rd/leecher.log" transmission-daemon -f -g "$tr_cfg"
      lpid=$BG_PID
      for ((i = 0; i < STARTUP_TIMEOUT * 10; i++)); do
        inns timeout 5 transmission-remote "127.0.0.1:$rpc" -l >/dev/null 2>&1 && break
        alive "$lpid" || break
        sleep 0.1
      done
      inns timeout 5 transmission-remote "127.0.0.1:$rpc" -l >/dev/null 2>&1 ||
        { R_ERR="transmission-daemon RPC did not come up: $(tail -2 "$rd/leecher.log")"; stop_tree "$lpid"; return; }
      ;;
    *) kind="exit" ;;
  esac

  # The window starts.
  reset_hwm "$SEEDER_PID"
  cpu_ticks "$SEEDER_PID"
  scpu0=$CPU_TICKS
  lo_bytes "$SEEDER_PID"
  lo0=$LO_BYTES
  t0=$(now)
  local TIME=(/usr/bin/time -f '%e %U %S %M' -o "$tfile" setpriv --pdeathsig KILL --)
  case $leecher in
    bitswarm)
      # shellcheck disable=SC2046
      start_bg "$rd/leecher.log" "${TIME[@]}" "$BIN" get "$TORRENT" -o "$ldir" --listen "$LEECH_IP:$lport" \
        $(bsw_resume "$rd/leecher.resume")
      ;;
    rqbit)
      start_bg "$rd/leecher.log" "${TIME[@]}" rqbit --disable-dht --disable-dht-persistence \
        --disable-upnp-port-forward --disable-lsd --listen-ip "$LEECH_IP" --listen-port "$lport" \
        download -e --disable-http-api -o "$ldir" "$TORRENT"
      ;;
    libtorrent)
      start_bg "$rd/leecher.log" "${TIME[@]}" "$PY" "$LT_BENCH" get --listen "$LEECH_IP:$lport" \
        --timeout "$TIMEOUT" "$TORRENT" "$ldir"
      ;;
    aria2)
      printf '#!/bin/sh\ndate +%%s.%%N >"%s"\n' "$hook_ts" >"$rd/hook.sh"
      chmod +x "$rd/hook.sh"
      start_bg "$rd/leecher.log" "${TIME[@]}" aria2c --enable-dht=false --enable-dht6=false \
        --bt-enable-lpd=false --enable-peer-exchange=false --seed-time=0 --listen-port="$lport" \
        --file-allocation=none --summary-interval=0 --show-console-readout=false --console-log-level=notice \
        --on-bt-download-complete="$rd/hook.sh" -d "$ldir" "$TORRENT"
      ;;
    qbittorrent)
      reset_hwm "$lpid"
      cpu_ticks "$lpid"
      lcpu0=$CPU_TICKS
      out=$(inns curl -s -m 10 -F "torrents=@$TORRENT" -F "savepath=$ldir" "http://127.0.0.1:$rpc/api/v2/torrents/add") || out=""
      [ "$out" = "Ok." ] || { R_ERR="qBittorrent refused the torrent: $out"; stop_tree "$lpid"; return; }
      ;;
    transmission)
      reset_hwm "$lpid"
      cpu_ticks "$lpid"
      lcpu0=$CPU_TICKS
      out=$(inns timeout 10 transmission-remote "127.0.0.1:$rpc" -a "$TORRENT" -w "$ldir" 2>&1) || out="$out (failed)"
      case $out in *success*) ;; *) R_ERR="transmission-remote -a: $out"; stop_tree "$lpid"; return ;; esac
      ;;
  esac
  [ "$kind" = exit ] && lpid=$BG_PID

  # Poll until done: the program's exit, aria2's hook or the daemon's status.
  deadline=$((SECONDS + TIMEOUT))
  last_lo=$lo0
  last_move=$SECONDS
  while :; do
    lo_bytes "$SEEDER_PID"
    if [ -z "$first" ] && [ $((LO_BYTES - lo0)) -ge 1048576 ]; then first=$(fsub "$(now)" "$t0"); fi
    if [ $((LO_BYTES - last_lo)) -ge 262144 ]; then
      last_lo=$LO_BYTES
      last_move=$SECONDS
    fi
    real=$(child_of "$lpid")
    mem_of "$real"
    [ "$ANON_KIB" -gt "$lanon" ] && lanon=$ANON_KIB
    mem_of "$SEEDER_PID"
    [ "$ANON_KIB" -gt "$sanon" ] && sanon=$ANON_KIB
    case $leecher in
      aria2) [ -s "$hook_ts" ] && { t_done=$(cat "$hook_ts"); break; } ;;
      qbittorrent)
        out=$(inns curl -s -m 5 "http://127.0.0.1:$rpc/api/v2/torrents/info?hashes=$INFO_HASH") || out=""
        p=$(json_num "$out" progress)
        if awk -v p="${p:-0}" 'BEGIN {exit !(p >= 1)}'; then t_done=$(now); break; fi
        ;;
      transmission)
        out=$(inns timeout 5 transmission-remote "127.0.0.1:$rpc" -t "$INFO_HASH" -i 2>/dev/null) || out=""
        case $out in *"Percent Done: 100%"*) t_done=$(now); break ;; esac
        ;;
    esac
    if ! alive "$lpid"; then
      [ "$kind" = exit ] && [ "$leecher" != aria2 ] && break
      [ "$leecher" = aria2 ] && [ -s "$hook_ts" ] && { t_done=$(cat "$hook_ts"); break; }
      R_ERR="$leecher exited before completing: $(tail -3 "$rd/leecher.log" | tr '\n' ' ')"
      break
    fi
    alive "$SEEDER_PID" || { R_ERR="the $seeder seeder died: $(tail -3 "$rd/seeder.log" | tr '\n' ' ')"; break; }
    if [ "$SECONDS" -ge "$deadline" ]; then
      R_ERR="timed out after ${TIMEOUT}s"
      break
    fi
    if [ $((SECONDS - last_move)) -ge "$STALL" ]; then
      R_ERR="stalled: less than 256 KiB moved on lo in ${STALL}s ($(((LO_BYTES - lo0) / 1048576)) MiB in all)"
      break
    fi
    sleep "$POLL"
  done

  # The seeder's side of the window.
  cpu_ticks "$SEEDER_PID"
  scpu1=$CPU_TICKS
  mem_of "$SEEDER_PID"
  R_SHWM=$HWM_KIB
  R_SCPU=$(awk -v a="$scpu0" -v b="$scpu1" -v t="$TICKS" 'BEGIN {printf "%.2f", (b - a) / t}')
  R_SANON=$sanon
  R_LANON=$lanon
  R_FIRST=${first:--}

  if [ "$kind" = daemon ]; then
    cpu_ticks "$lpid"
    R_LCPU=$(awk -v a="$lcpu0" -v b="$CPU_TICKS" -v t="$TICKS" 'BEGIN {printf "%.2f", (b - a) / t}')
    mem_of "$lpid"
    R_LHWM=$HWM_KIB
    stop_tree "$lpid" 10
  else
    # Programs that exit: wait for it (aria2 announces `stopped` and closes its connections for ~2 s).
    if [ -n "$R_ERR" ]; then
      stop_tree "$lpid" 5
    else
      for ((i = 0; i < 600; i++)); do
        alive "$lpid" || break
        sleep 0.1
      done
      alive "$lpid" && note "$leecher still running 60 s after completing: stopping it"
      stop_tree "$lpid" 5
    fi
    if [ -z "$R_ERR" ]; then
      if [ ! -s "$tfile" ] || ! read -r e u s m < <(tail -1 "$tfile") || ! [[ "$e" =~ ^[0-9.]+$ ]]; then
        R_ERR="$leecher failed: $(tr '\n' ' ' <"$tfile" 2>/dev/null) $(tail -3 "$rd/leecher.log" | tr '\n' ' ')"
      else
        R_LCPU=$(awk -v u="$u" -v s="$s" 'BEGIN {printf "%.2f", u + s}')
        R_LHWM=$m
        [ -z "$t_done" ] && R_SECS=$e
      fi
    fi
  fi
  [ -n "$R_ERR" ] && return
  [ -n "$t_done" ] && R_SECS=$(fsub "$t_done" "$t0")

  # The result must be the payload.
  if [ ! -f "$ldir/$NAME" ]; then
    R_ERR="no $NAME in the download folder ($(find "$ldir" -mindepth 1 -maxdepth 2 | head -3 | tr '\n' ' '))"
  elif [ "$(sha256sum "$ldir/$NAME" | awk '{print $1}')" != "$PAYLOAD_SHA" ]; then
    R_ERR="the downloaded file differs from the payload (sha256)"
  fi
}

# ------------------------------------------------------------------------------------------------------
# The transfer matrix

declare -A RES
ORDER=()
pair_index=0

record() {
  local label=$1
  ORDER+=("$label")
  RES[$label]=$2
}

# run_pair SEEDER LEECHER: best of ROUNDS; each round with a fresh tracker and seeder.
run_pair() {
  local seeder=$1 leecher=$2 label="$1 -> $2" r best="" best_row="" why err="" port rd
  why=$(client_skip "$leecher")
  if [ -n "$why" ]; then
    loud "$label: $why: skipped"
    record "$label" "skip|$why"
    return
  fi
  for ((r = 1; r <= ROUNDS; r++)); do
    pair_index=$((pair_index + 1))
    port=$((PORT_BASE + 10 * pair_index))
    rd="$DIR/runs/${seeder}-${leecher}-$r"
    rm -rf "$rd"
    mkdir -p "$rd"
    start_tracker "$rd/tracker.log" || { err="tracker did not start"; break; }
    if ! start_seeder "$seeder" "$port" "$rd/seeder.log"; then
      err="the $seeder seeder did not come up (see $rd/seeder.log)"
      stop_tracker
      break
    fi
    R_SECS="" R_ERR=""
    run_transfer "$seeder" "$leecher" "$rd" "$((port + 2))"
    stop_tree "$SEEDER_PID" 10
    stop_tracker
    if [ -n "$R_ERR" ]; then
      loud "$label round $r: $R_ERR (logs in $rd); no more rounds of this pair"
      err=$R_ERR
      break
    fi
    rm -rf "$rd/download"
    note "$label round $r: ${R_SECS}s, leecher CPU ${R_LCPU}s, seeder CPU ${R_SCPU}s, first MiB at ${R_FIRST}s"
    if [ -z "$best" ] || awk -v a="$R_SECS" -v b="$best" 'BEGIN {exit !(a < b)}'; then
      best=$R_SECS
      best_row="ok|$R_SECS|$R_FIRST|$R_LCPU|$R_LHWM|$R_LANON|$R_SCPU|$R_SHWM|$R_SANON"
    fi
  done
  if [ -n "$best_row" ]; then
    record "$label" "$best_row"
  else
    record "$label" "fail|$err"
  fi
}

# ------------------------------------------------------------------------------------------------------
# Many torrents in one process

declare -A MANY
MANY_ORDER=()
run_many() {
  local kind=$1
  local rd="$DIR/runs/many-$kind" t0 t_ready c0 c1 i k v rest rss=0 anon=0 hwm=0 threads=0 port
  local torrents=()
  for ((i = 1; i <= MANY_COUNT; i++)); do torrents+=("$DIR/many/t/m$(printf %03d "$i").torrent"); done
  rm -rf "$rd"
  mkdir -p "$rd"
  MANY_ORDER+=("$kind")
  pair_index=$((pair_index + 1))
  port=$((PORT_BASE + 10 * pair_index))
  start_tracker "$rd/tracker.log" || { MANY[$kind]="fail|tracker did not start"; return; }
  t0=$(now)
  case $kind in
    bitswarm)
      # shellcheck disable=SC2046
      start_bg "$rd/seeder.log" "$BIN" seed "${torrents[@]}" -o "$DIR/many/data" --listen "$SEED_IP:$port" \
        $(bsw_resume "$rd/resume")
      ;;
    libtorrent) start_bg "$rd/seeder.log" "$PY" "$LT_BENCH" seed --listen "$SEED_IP:$port" \
      --timeout $((STARTUP_TIMEOUT + IDLE_SECONDS + 600)) "$DIR/many/data" "${torrents[@]}" ;;
  esac
  SEEDER_PID=$BG_PID
  if ! wait_seeders all "$SEEDER_PID" "$MANY_COUNT"; then
    loud "$kind: not all $MANY_COUNT torrents seeding (per the tracker) within ${STARTUP_TIMEOUT}s: $(tail -3 "$rd/seeder.log" | tr '\n' ' ')"
    MANY[$kind]="fail|not all $MANY_COUNT torrents announced as seeding within ${STARTUP_TIMEOUT}s"
    stop_tree "$SEEDER_PID"
    stop_tracker
    return
  fi
  t_ready=$(fsub "$(now)" "$t0")
  note "$kind: $MANY_COUNT torrents seeding after ${t_ready}s; settling 5 s, then ${IDLE_SECONDS} s idle"
  sleep 5
  cpu_ticks "$SEEDER_PID"
  c0=$CPU_TICKS
  sleep "$IDLE_SECONDS"
  cpu_ticks "$SEEDER_PID"
  c1=$CPU_TICKS
  while read -r k v rest; do
    case $k in
      VmRSS:) rss=$v ;;
      RssAnon:) anon=$v ;;
      VmHWM:) hwm=$v ;;
      Threads:) threads=$v ;;
    esac
  done <"/proc/$SEEDER_PID/status"
  alive "$SEEDER_PID" || { MANY[$kind]="fail|the seeder died"; stop_tracker; return; }
  stop_tree "$SEEDER_PID" 10
  stop_tracker
  MANY[$kind]="ok|$t_ready|$rss|$anon|$hwm|$threads|$(awk -v a="$c0" -v b="$c1" -v t="$TICKS" -v s="$IDLE_SECONDS" \
    'BEGIN {printf "%.3f|%.2f", (b - a) / t, 100 * (b - a) / t / s}')"
}

# ------------------------------------------------------------------------------------------------------
# Run

want_client() { [[ " $CLIENTS " == *" $1 "* ]]; }
started=$SECONDS
if [[ " $PARTS " == *" transfer "* ]]; then
  note "reading the payload into the page cache"
  cat "$PAYLOAD" >/dev/null
  for c in bitswarm rqbit libtorrent aria2 qbittorrent transmission; do
    want_client "$c" && run_pair libtorrent "$c"
  done
  if [ "$HAVE_BSW_SEED" -eq 1 ]; then
    for c in rqbit libtorrent aria2 qbittorrent transmission bitswarm; do
      want_client "$c" && run_pair bitswarm "$c"
    done
  else
    for c in rqbit libtorrent aria2 qbittorrent transmission bitswarm; do
      want_client "$c" && record "bitswarm -> $c" "skip|bitswarm client not available"
    done
  fi
fi

if [[ " $PARTS " == *" many "* ]]; then
  mkdir -p "$DIR/many/data" "$DIR/many/t"
  note "$MANY_COUNT torrents of ${MANY_MIB} MiB each under $DIR/many"
  for ((i = 1; i <= MANY_COUNT; i++)); do
    mf="$DIR/many/data/m$(printf %03d "$i").bin"
    if [ ! -f "$mf" ] || [ "$(stat -c %s "$mf")" -ne $((MANY_MIB * 1048576)) ]; then
      head -c $((MANY_MIB * 1048576)) /dev/urandom >"$mf"
    fi
    "$BIN" create "$mf" -o "$DIR/many/t/m$(printf %03d "$i").torrent" -f --no-date --tracker "$ANNOUNCE" >/dev/null ||
      die "bitswarm create $mf failed"
  done
  if [ "$HAVE_BSW_SEED" -eq 1 ]; then
    run_many bitswarm
  else
    loud "bitswarm client not available: skipped (many torrents)"
    MANY_ORDER+=(bitswarm)
    MANY[bitswarm]="skip|bitswarm client not available"
  fi
  if "$PY" -c 'import libtorrent' >/dev/null 2>&1; then
    run_many libtorrent
  else
    MANY_ORDER+=(libtorrent)
    MANY[libtorrent]="skip|python3-libtorrent missing"
  fi
fi

# ------------------------------------------------------------------------------------------------------
# Report

mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }
echo
if [ ${#ORDER[@]} -gt 0 ]; then
  # The reference: the fastest non-bitswarm leecher from the libtorrent seeder.
  ref_secs=""
  ref_label=""
  for label in "${ORDER[@]}"; do
    IFS='|' read -r st secs _ <<<"${RES[$label]}"
    [ "$st" = ok ] || continue
    case $label in "libtorrent -> bitswarm" | "bitswarm -> "*) continue ;; esac
    if [ -z "$ref_secs" ] || awk -v a="$secs" -v b="$ref_secs" 'BEGIN {exit !(a < b)}'; then
      ref_secs=$secs
      ref_label=$label
    fi
  done
  echo "## Peer transfers: ${SIZE_MIB} MiB single-file torrent, pieces of $((PIECE_LEN / 1024)) KiB, best of ${ROUNDS}"
  echo
  echo "$(nproc) CPUs ($(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)); $([ -n "$NS" ] && echo "network namespace, lo" || echo "127.0.0.1")."
  echo "\"vs fastest\" = time of the fastest non-bitswarm leecher from libtorrent (${ref_label:-none}) / this time."
  echo "RSS counts mapped file pages (libtorrent and qBittorrent map the payload); anon = largest RssAnon seen."
  echo
  echo "| seeder -> leecher | seconds | MiB/s | first MiB at (s) | vs fastest | leecher CPU (s) | leecher peak RSS (MiB) | leecher anon (MiB) | seeder CPU (s) | seeder peak RSS (MiB) | seeder anon (MiB) |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  for label in "${ORDER[@]}"; do
    IFS='|' read -r st secs first lcpu lhwm lanon scpu shwm sanon <<<"${RES[$label]}"
    case $st in
      ok)
        awk -v l="$label" -v s="$secs" -v f="$first" -v sz="$SIZE_MIB" -v ref="$ref_secs" -v lc="$lcpu" \
          -v lh="$(mib "$lhwm")" -v la="$(mib "$lanon")" -v sc="$scpu" -v sh="$(mib "$shwm")" -v sa="$(mib "$sanon")" \
          'BEGIN {
            vs = (ref == "") ? "-" : sprintf("%.2fx", ref / s)
            printf "| %s | %.2f | %.1f | %s | %s | %s | %s | %s | %s | %s | %s |\n", l, s, sz / s, f, vs, lc, lh, la, sc, sh, sa }'
        ;;
      skip) echo "| $label | skipped: $secs | | | | | | | | | |" ;;
      *) echo "| $label | FAILED: $secs | | | | | | | | | |" ;;
    esac
  done
  # bitswarm against the others, where both sides ran.
  ratio_lines=()
  for label in "${ORDER[@]}"; do
    IFS='|' read -r st secs _ lcpu lhwm _ scpu shwm _ <<<"${RES[$label]}"
    [ "$st" = ok ] || continue
    case $label in
      "libtorrent -> bitswarm")
        # against the non-bitswarm leechers from the same seeder: least CPU and least RSS among them
        best_cpu=""
        best_rss=""
        for other in "${ORDER[@]}"; do
          case $other in "libtorrent -> bitswarm" | "bitswarm -> "*) continue ;; esac
          IFS='|' read -r ost _ _ ocpu orss _ <<<"${RES[$other]}"
          [ "$ost" = ok ] || continue
          if [ -z "$best_cpu" ] || awk -v a="$ocpu" -v b="$best_cpu" 'BEGIN {exit !(a < b)}'; then best_cpu=$ocpu; fi
          if [ -z "$best_rss" ] || [ "$orss" -lt "$best_rss" ]; then best_rss=$orss; fi
        done
        [ -n "$best_cpu" ] && ratio_lines+=("$(awk -v c="$lcpu" -v bc="$best_cpu" -v r="$lhwm" -v br="$best_rss" -v s="$secs" -v rs="$ref_secs" \
          'BEGIN {printf "- bitswarm as leecher: %.2fx the speed of the fastest other leecher, %.2fx the CPU of the most frugal one, %.2fx the peak RSS of the smallest one", rs / s, (bc > 0 ? c / bc : 0), (br > 0 ? r / br : 0)}')")
        ;;
      "bitswarm -> "*)
        other="libtorrent -> ${label#bitswarm -> }"
        [ -n "${RES[$other]:-}" ] || continue
        IFS='|' read -r ost osecs _ _ _ _ oscpu oshwm _ <<<"${RES[$other]}"
        [ "$ost" = ok ] || continue
        ratio_lines+=("$(awk -v l="${label#bitswarm -> }" -v s="$secs" -v os="$osecs" -v c="$scpu" -v oc="$oscpu" -v r="$shwm" -v or="$oshwm" \
          'BEGIN {printf "- bitswarm as seeder to %s: %.2fx the speed of libtorrent seeding to it, %.2fx its seeder CPU, %.2fx its seeder peak RSS", l, os / s, (oc > 0 ? c / oc : 0), (or > 0 ? r / or : 0)}')")
        ;;
    esac
  done
  if [ ${#ratio_lines[@]} -gt 0 ]; then
    echo
    printf '%s\n' "${ratio_lines[@]}"
  fi
fi

if [ ${#MANY_ORDER[@]} -gt 0 ]; then
  echo
  echo "## ${MANY_COUNT} torrents (${MANY_MIB} MiB each) seeded from one process, idle"
  echo
  echo "Ready = until the tracker counted every torrent seeding (verification and first announces); then 5 s"
  echo "settling and ${IDLE_SECONDS} s measured with no peer connected."
  echo
  echo "| seeder | ready (s) | RSS (MiB) | anon RSS (MiB) | peak RSS (MiB) | threads | idle CPU (s in ${IDLE_SECONDS} s) | idle CPU (%) |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|"
  for kind in "${MANY_ORDER[@]}"; do
    IFS='|' read -r st ready rss anon hwm threads cpu pct <<<"${MANY[$kind]}"
    case $st in
      ok) echo "| $kind | $ready | $(mib "$rss") | $(mib "$anon") | $(mib "$hwm") | $threads | $cpu | $pct |" ;;
      skip) echo "| $kind | skipped: $ready | | | | | | |" ;;
      *) echo "| $kind | FAILED: $ready | | | | | | |" ;;
    esac
  done
fi
echo
note "done in $((SECONDS - started)) s; logs under $DIR/runs"
