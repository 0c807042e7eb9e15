#!/usr/bin/env bash
# Installs the BitTorrent clients and tools that bench/peers.sh runs against bitswarm (idempotent: what is
# there already is left alone). Needs root (apt-get) and a Rust toolchain (cargo) for rqbit.
#
#   bash bench/install-bench-tools.sh
#
# - Debian packages: python3-libtorrent (libtorrent 2.0), aria2, transmission-daemon and transmission-cli
#   (Transmission 3.00 and transmission-remote), qbittorrent-nox, time (GNU /usr/bin/time), iproute2 (ip
#   netns), curl (qBittorrent's Web API), and what building rqbit needs: libssl-dev, pkg-config, npm.
# - rqbit 9.x with `cargo install rqbit --locked` into ~/.cargo/bin: about 11 minutes on 2 cores, skipped
#   when `rqbit` is on PATH already. RQBIT_VERSION picks another version requirement (default ^9).
set -euo pipefail

note() { echo "install-bench-tools: $*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
  note "run as root (apt-get install)"
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
# package -> a command (or file) that shows it is installed
declare -A probe=(
  [python3-libtorrent]='import libtorrent under /usr/bin/python3'
  [aria2]=aria2c
  [transmission-daemon]=transmission-daemon
  [transmission-cli]=transmission-remote
  [qbittorrent-nox]=qbittorrent-nox
  [time]=/usr/bin/time
  [iproute2]=ip
  [curl]=curl
  [libssl-dev]=/usr/include/openssl/ssl.h
  [pkg-config]=pkg-config
)
missing=()
for pkg in "${!probe[@]}"; do
  p=${probe[$pkg]}
  if [ "$pkg" = python3-libtorrent ]; then
    /usr/bin/python3 -c 'import libtorrent' >/dev/null 2>&1 || missing+=("$pkg")
  elif [[ "$p" == /* ]]; then
    [ -e "$p" ] || missing+=("$pkg")
  else
    command -v "$p" >/dev/null 2>&1 || missing+=("$pkg")
  fi
done
# npm: only needed to build rqbit (its web UI), and any npm will do (NodeSource's nodejs ships its own and
# conflicts with Debian's npm package).
if ! command -v rqbit >/dev/null 2>&1 && ! command -v npm >/dev/null 2>&1; then
  missing+=(npm)
fi

if [ ${#missing[@]} -gt 0 ]; then
  note "apt-get install ${missing[*]}"
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
else
  note "Debian packages: all present"
fi

if command -v rqbit >/dev/null 2>&1; then
  note "rqbit: present ($(rqbit --version 2>/dev/null || echo '?'))"
else
  command -v cargo >/dev/null 2>&1 || { note "cargo not found: cannot build rqbit"; exit 1; }
  note "cargo install rqbit ${RQBIT_VERSION:-^9} --locked (about 11 minutes on 2 cores)"
  cargo install rqbit --version "${RQBIT_VERSION:-^9}" --locked
  command -v rqbit >/dev/null 2>&1 || note "rqbit installed into $(dirname "$(command -v cargo)"); put it on PATH"
fi
