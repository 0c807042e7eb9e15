#!/usr/bin/env bash
# Installs what bitswarm's tests need on a fresh Debian 12 machine: the real BitTorrent programs the interop
# tests run against. Idempotent: does nothing when everything is already present.
set -euo pipefail

need_apt=()
command -v mktorrent >/dev/null 2>&1 || need_apt+=(mktorrent)
command -v transmission-show >/dev/null 2>&1 || need_apt+=(transmission-cli)
command -v transmission-create >/dev/null 2>&1 || need_apt+=(transmission-cli)
/usr/bin/python3 -c 'import libtorrent' >/dev/null 2>&1 || need_apt+=(python3-libtorrent)
# interop_tracker: aria2 and Transmission as clients of the bitswarm tracker; Transmission's test runs in a
# private network namespace (`ip netns` from iproute2); every process they start gets a parent-death signal
# (`setpriv` from util-linux).
command -v aria2c >/dev/null 2>&1 || need_apt+=(aria2)
command -v transmission-daemon >/dev/null 2>&1 || need_apt+=(transmission-daemon)
command -v transmission-remote >/dev/null 2>&1 || need_apt+=(transmission-cli)
command -v ip >/dev/null 2>&1 || need_apt+=(iproute2)
command -v setpriv >/dev/null 2>&1 || need_apt+=(util-linux)
# interop_dht: libtorrent (python3-libtorrent) and aria2 with their DHT on loopback; nothing more to install.
# interop_clients: qBittorrent (headless, driven through its Web API) as a seeder and a downloader.
command -v qbittorrent-nox >/dev/null 2>&1 || need_apt+=(qbittorrent-nox)
# crates/net interop tests: the announce client against opentracker on loopback.
command -v opentracker >/dev/null 2>&1 || need_apt+=(opentracker)
# bench/create.sh: the SHA bound (openssl speed) and max RSS (GNU time at /usr/bin/time).
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
[ -x /usr/bin/time ] || need_apt+=(time)
# crates/bitswarm/tests/browser.rs: the directory's pages in headless Chromium, driven over WebDriver.
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need_apt+=(chromium-driver)

if [ ${#need_apt[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "install-deps: installing ${need_apt[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt
