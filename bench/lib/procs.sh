# Process helpers shared by the benchmark scripts (source it): every background process they start is
# recorded and stopped (TERM, then KILL after 10 s) when the script exits or is interrupted.
#   start LOG CPU CMD... : runs CMD in the background (pinned to CPU unless it is empty); sets SPID.
#   stop_pid PID, alive PID.
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
    for ((i = 0; i < 100; i++)); do
      alive "$p" || break
      sleep 0.1
    done
    alive "$p" && kill -KILL "$p" 2>/dev/null || true
  fi
  wait "$p" 2>/dev/null || true
}
SPID=
start() {
  local log=$1 cpu=$2
  shift 2
  if [ -n "$cpu" ]; then
    taskset -c "$cpu" "$@" >"$log" 2>&1 &
  else
    "$@" >"$log" 2>&1 &
  fi
  SPID=$!
  PIDS+=("$SPID")
}
